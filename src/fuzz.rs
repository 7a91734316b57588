//! Fuzz bodies: what `cargo fuzz` targets (in `fuzz/`) run, kept in the
//! library so ordinary tests run them over a seed corpus on stable Rust.
//! Each must never panic, whatever the bytes.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::capture::{read_bytes, SkipCounters};
use crate::config::Pipeline;
use crate::output::{Format, Output, TimeFormat};
use crate::replay::Replayer;
use crate::wire::template::{self, DecodeError, Limits};
use crate::wire::Datagram;

/// Decode arbitrary bytes as a v5 datagram, strict and lenient, and read every field.
pub fn decode(data: &[u8]) {
    for lenient in [false, true] {
        if let Ok(d) = Datagram::parse_with(data, lenient) {
            assert!((1..=30).contains(&d.count()));
            let h = d.header();
            let mut acc = h.export_ns();
            for r in d.records() {
                let f = r.fields();
                acc = acc
                    .wrapping_add(h.uptime_to_ns(f.first))
                    .wrapping_add(h.uptime_to_ns(f.last))
                    .wrapping_add(f.packets as u64);
            }
            std::hint::black_box(acc);
        }
    }
}

/// Decode arbitrary bytes as a sequence of v9/IPFIX datagrams through one
/// fresh [`template::Decoder`] with small caps: each datagram is prefixed
/// by its 2-byte big-endian length (the last takes what is left). The
/// sequence is fed three times: twice from one exporter, so templates learnt
/// on the first pass decode the data of the second, then from a second
/// exporter that starts with no templates. Checks: the records handed on
/// are the flow records plus the reverse records; only datagram-level
/// reasons come back as `Err`, the others only in summaries; the caps and
/// the byte budget hold.
/// Returns the records handed on (so tests can see that seeds reach the
/// data path).
pub fn v9_ipfix(data: &[u8]) -> u64 {
    let limits = Limits {
        max_exporters: 2,
        max_templates_per_exporter: 16,
        max_templates: 24,
        max_fields: 128,
        max_samplers_per_exporter: 4,
        max_template_bytes: 40 << 10,
        max_template_bytes_per_exporter: 24 << 10,
    };
    let mut dec = template::Decoder::new(limits);
    let mut total = 0u64;
    let exporters = [[192, 0, 2, 1], [192, 0, 2, 2]].map(std::net::IpAddr::from);
    for exporter in [exporters[0], exporters[0], exporters[1]] {
        let mut rest = data;
        while !rest.is_empty() {
            let (dg, tail) = next_datagram(rest);
            rest = tail;
            let mut emitted = 0u32;
            match dec.decode(exporter, dg, &mut |r| {
                emitted += 1;
                std::hint::black_box(r);
            }) {
                Ok(s) => {
                    assert_eq!(emitted, s.flow_records + s.reverse_records, "{s:?}");
                    total += emitted as u64;
                    assert!(s.rejects[..DecodeError::DATAGRAM_REASONS].iter().all(|&n| n == 0));
                }
                Err(e) => {
                    assert!(e.rejects_datagram(), "{e:?}");
                    assert_eq!(emitted, 0);
                }
            }
        }
    }
    let cache = dec.cache();
    assert!(cache.len() <= limits.max_templates && cache.exporters() <= limits.max_exporters);
    assert!(cache.bytes() <= limits.max_template_bytes, "{} bytes", cache.bytes());
    for e in exporters {
        assert!(cache.exporter_bytes(e) <= limits.max_template_bytes_per_exporter);
    }
    total
}

/// The first datagram of a [`v9_ipfix`] input and the rest: a 2-byte length
/// then that many bytes, or everything left when the length runs past it.
fn next_datagram(rest: &[u8]) -> (&[u8], &[u8]) {
    let Some((len, body)) = rest.split_first_chunk::<2>() else { return (rest, &[]) };
    let n = u16::from_be_bytes(*len) as usize;
    if n >= body.len() {
        (body, &[])
    } else {
        body.split_at(n)
    }
}

/// Replay arbitrary bytes as a capture or raw file through the whole
/// pipeline (dump and stitching on, every format), checking conservation on
/// the JSON lines written: the flow rows' records, packets and octets sum to
/// the accepted records' (every flow emitted, none twice), there is one
/// record row per accepted record, and one flow row per flow counted.
pub fn replay(data: &[u8]) {
    for format in [Format::Jsonl, Format::Csv, Format::Zeek] {
        let p = Pipeline { dump: true, max_flows: 8, ..Pipeline::default() };
        let written = Captured::default();
        let mut out = Output::new(
            format,
            TimeFormat::Rfc3339,
            Box::new(std::io::BufWriter::new(written.clone())),
        );
        let mut r = Replayer::new(&p, &mut out);
        let mut skips = SkipCounters::default();
        let _ = read_bytes(data, None, &mut skips, |f| r.feed(f));
        let report = r.finish(&skips).expect("writing to memory cannot fail");
        out.finish().expect("writing to memory cannot fail");
        assert_eq!(report.flows.values().sum::<u64>(), report.flows_total);
        assert_eq!(report.active_flows, 0);
        if format != Format::Jsonl {
            continue;
        }
        let text = String::from_utf8(written.0.lock().unwrap().clone()).expect("JSON is UTF-8");
        let (mut flows, mut record_rows, mut sums) = (0u64, 0u64, [0u64; 3]);
        for line in text.lines() {
            let row: serde_json::Value = serde_json::from_str(line).expect("one JSON row a line");
            match row["type"].as_str() {
                Some("flow") => {
                    flows += 1;
                    for (sum, key) in sums.iter_mut().zip(["records", "packets", "octets"]) {
                        *sum += row[key].as_u64().expect("flow counters are numbers");
                    }
                }
                Some("record") => record_rows += 1,
                _ => {}
            }
        }
        assert_eq!(flows, report.flows_total, "flow rows against flows counted");
        assert_eq!(record_rows, report.records, "record rows against accepted records");
        // Records the flow table cannot take yet (IPv6) are counted at the seam.
        let pending =
            [report.ipv6_records_pending, report.ipv6_packets_pending, report.ipv6_octets_pending];
        let stitched = [0, 1, 2].map(|i| sums[i] + pending[i]);
        assert_eq!(stitched, [report.records, report.packets, report.octets], "flow sums");
    }
}

/// A writer into memory that the caller can read after the output is done.
#[derive(Debug, Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
