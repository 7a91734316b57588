//! Tests of the output formats: fixed time formats, addresses, and row kinds
//! interleaved in one file.

use super::*;

#[test]
fn times_have_fixed_formats() {
    let mut s = String::new();
    push_time(&mut s, 1_430_591_884_898_328_000, TimeFormat::Rfc3339);
    assert_eq!(s, "2015-05-02T18:38:04.898328000Z");
    s.clear();
    push_time(&mut s, 1_430_591_884_000_000_005, TimeFormat::Rfc3339);
    push_time(&mut s, 5, TimeFormat::Epoch);
    assert_eq!(s, "2015-05-02T18:38:04.000000005Z0.000000005");
    // Same second again (cached prefix), then another second.
    s.clear();
    push_time(&mut s, 1_430_591_884_100_000_000, TimeFormat::Rfc3339);
    s.push(' ');
    push_time(&mut s, 1_430_591_885_000_000_000, TimeFormat::Rfc3339);
    assert_eq!(s, "2015-05-02T18:38:04.100000000Z 2015-05-02T18:38:05.000000000Z");
}

#[test]
fn calendar_matches_humantime_everywhere_in_range() {
    use std::time::{Duration, UNIX_EPOCH};
    // Every day boundary of the first 40 years, then a spread up to the end
    // of the u64-nanosecond range (year 2554), and leap days.
    let mut secs: Vec<u64> = (0..40 * 366).map(|d| d * 86_400 + (d * 7919) % 86_400).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        secs.push(x % (u64::MAX / 1_000_000_000));
    }
    secs.extend([951_782_400, 951_868_799, 4_107_542_400, u64::MAX / 1_000_000_000]);
    for s in secs {
        let mut ours = String::new();
        super::push_civil(&mut ours, s);
        let want =
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s)).to_string();
        assert_eq!(format!("{ours}Z"), want, "secs {s}");
    }
}

#[test]
fn addresses_format_like_display() {
    for a in ["0.0.0.0", "255.255.255.255", "10.0.20.3", "192.168.1.100", "::1", "2001:db8::7"] {
        let ip: std::net::IpAddr = a.parse().unwrap();
        let mut s = String::new();
        super::push_addr(&mut s, ip);
        assert_eq!(s, ip.to_string());
    }
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ip = std::net::IpAddr::V4((x as u32).into());
        let mut s = String::new();
        super::push_addr(&mut s, ip);
        assert_eq!(s, ip.to_string(), "{ip}");
    }
}

#[test]
fn interleaved_row_kinds_each_carry_their_own_fields() {
    // --dump interleaves headers, records and flows: every JSON line carries
    // its kind and exactly that kind's fields (those its schema lists).
    use crate::wire::{encode, Datagram, HeaderFields, RecordFields};
    let mut buf = Vec::new();
    let h = HeaderFields { sys_uptime: 5000, unix_secs: 1_700_000_000, ..Default::default() };
    encode(
        &h,
        &[RecordFields { src_addr: 1, packets: 2, octets: 3, ..Default::default() }],
        &mut buf,
    );
    let d = Datagram::parse(&buf).unwrap();
    let (hdr, rec) = (d.header(), d.records().next().unwrap());
    let ex: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let fr = crate::flow::FlowRecord::from_wire(ex, &hdr, &rec, false);
    let mut shard = crate::flow::Shard::new(
        crate::flow::ShardConfig {
            key: Default::default(),
            linger_ns: 1,
            idle_ns: 1,
            max_flows: 10,
        },
        0,
    );
    let mut flows = Vec::new();
    shard.apply(0, &fr, &mut flows);
    shard.flush(1, &mut flows);
    let names = |r: &dyn Fn(&mut Names)| {
        let mut n = Names { names: Vec::new() };
        r(&mut n);
        n.names.into_iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>()
    };
    let hrow = HeaderRow { ts: 7, exporter: ex, header: &hdr };
    let fields = rec.fields();
    let rrow = RecordRow { ts: 7, exporter: ex, header: &hdr, index: 0, rec: &fields };
    let frow = FlowRow(&flows[0]);
    let want = [
        ("header", names(&|n| hrow.visit(n))),
        ("record", names(&|n| rrow.visit(n))),
        ("flow", names(&|n| frow.visit(n))),
    ];
    let mut out = Output::new(
        Format::Jsonl,
        TimeFormat::Rfc3339,
        Box::new(std::io::BufWriter::new(Vec::new())),
    );
    let mut lines = Vec::new();
    for _ in 0..2 {
        for k in 0..3 {
            match k {
                0 => out.write(&hrow).unwrap(),
                1 => out.write(&rrow).unwrap(),
                _ => out.write(&frow).unwrap(),
            }
            lines.push((k, out.line.clone()));
        }
    }
    for (k, line) in lines {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let (kind, fields) = &want[k];
        assert_eq!(v["type"], *kind);
        let got: Vec<String> =
            v.as_object().unwrap().keys().filter(|k| *k != "type").cloned().collect();
        let mut fields = fields.clone();
        fields.sort();
        let mut got = got;
        got.sort();
        assert_eq!(got, fields, "{line}");
    }
}

/// A destination the test can read back after the output is done with it.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl OutWrite for Shared {
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
    fn accepted(&self) -> Option<u64> {
        Some(self.0.lock().unwrap().len() as u64)
    }
}

/// Zeek blocks: `#open` after `#path`, `#close` before the next block and
/// at the end (replace_writer and finish), at the set clock; the bytes of
/// `#close` count for no row, so every row still counts written.
#[test]
fn zeek_blocks_open_and_close() {
    use crate::wire::Header;
    let h = Header {
        version: 5,
        count: 1,
        sys_uptime: 0,
        unix_secs: 0,
        unix_nsecs: 0,
        flow_sequence: 0,
        engine_type: 0,
        engine_id: 0,
        sampling: 0,
    };
    let ex: IpAddr = "192.0.2.1".parse().unwrap();
    let (a, b) = (Shared::default(), Shared::default());
    let mut out = Output::new(Format::Zeek, TimeFormat::Rfc3339, Box::new(a.clone()));
    out.set_clock(1_430_591_884_000_000_000);
    for ts in [1, 2] {
        out.write(&HeaderRow { ts, exporter: ex, header: &h }).unwrap();
    }
    let rec = crate::wire::RecordFields::default();
    out.write(&RecordRow { ts: 3, exporter: ex, header: &h, index: 0, rec: &rec }).unwrap();
    out.replace_writer(Box::new(b.clone())).unwrap();
    out.write(&HeaderRow { ts: 4, exporter: ex, header: &h }).unwrap();
    out.flush().unwrap();
    assert_eq!(out.written(), out.handed());
    assert_eq!(out.written().rows, 4);
    out.finish().unwrap();
    let text = |s: &Shared| String::from_utf8(s.0.lock().unwrap().clone()).unwrap();
    let (a, b) = (text(&a), text(&b));
    let marks = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("#path") || l.starts_with("#open") || l.starts_with("#close"))
            .map(str::to_string)
            .collect()
    };
    let stamp = "2015-05-02-18-38-04";
    assert_eq!(
        marks(&a),
        [
            "#path\tnfstitch_headers".to_string(),
            format!("#open\t{stamp}"),
            format!("#close\t{stamp}"),
            "#path\tnfstitch_records".to_string(),
            format!("#open\t{stamp}"),
            format!("#close\t{stamp}"),
        ]
    );
    assert!(a.ends_with(&format!("#close\t{stamp}\n")));
    assert_eq!(marks(&b)[2], format!("#close\t{stamp}"), "finish closes the last block");
}
