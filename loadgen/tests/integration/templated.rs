//! `--version 9` and `--version 10` (NetFlow v9 and IPFIX): every datagram
//! loadgen writes decoded by nfstitch's own v9/IPFIX decoder, against the
//! truth; templates at the start, refreshed, and held back
//! (`--data-before-template`); and v5 pinned byte for byte.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use loadgen::{Config, ConnTruth, CorruptCounts, ExporterTruth, Sums, Truth};
use nfstitch::capture::{read_path, SkipCounters};
use nfstitch::wire::template::{DatagramSummary, Decoder, MessageHeader, TemplatedRecord, Version};

/// FNV-1a 64 over every datagram (with its exporter and time) of a run.
fn digest(cfg: &Config) -> (u64, u64) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut n = 0;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= x as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    loadgen::generate(cfg, |d| {
        n += 1;
        eat(&(d.exporter as u64).to_be_bytes());
        eat(&d.ts_ns.to_be_bytes());
        eat(d.bytes);
    })
    .unwrap();
    (h, n)
}

/// The v5 model of the tests below.
fn v5_model() -> Config {
    Config {
        count: Some(600),
        pps: 1000,
        time_scale: Some(200.0),
        flows: 3000,
        active_timeout: Duration::from_secs(60),
        inactive_timeout: Duration::from_secs(5),
        exporters: 3,
        sampling: 100,
        corrupt_ratio: 0.05,
        ..Config::default()
    }
}

#[test]
fn v5_output_is_pinned_byte_for_byte() {
    // Digests of the v5 traffic before v9/IPFIX came to loadgen (commit
    // a431835): the templated versions must not change a byte of v5. The
    // first model sends corrupt datagrams: its digest changed once, on
    // purpose, when the `bad_version` kind stopped writing version words 9
    // and 10 (nfstitch reads those as NetFlow v9 and IPFIX now); it was
    // 0xe78d_e897_7ba9_930e.
    assert_eq!(digest(&v5_model()), (0xb334_77de_16f9_2926, 629));
    let other = Config {
        count: Some(2000),
        records_per_datagram: 7,
        same_src_ip: true,
        exporters: 5,
        seed: 99,
        ..Config::default()
    };
    assert_eq!(digest(&other), (0xf27f_52f7_156f_6c96, 2000));
}

/// A small templated run where router timeouts happen (as `v5_model`).
fn model(version: u16, count: u64) -> Config {
    Config {
        version,
        ipv6: 0.3,
        records_per_datagram: 12,
        corrupt_ratio: 0.0,
        truth_connections: true,
        ..Config { count: Some(count), ..v5_model() }
    }
}

/// What a decoder saw of one exporter.
#[derive(Debug, Default)]
struct Seen {
    sums: Sums,
    template_records: u64,
    options_records: u64,
    ipv6_records: u64,
    /// Datagrams with a data set the decoder had no template for, and those sets.
    no_template_datagrams: u64,
    no_template_sets: u64,
    template_datagrams: u64,
    /// Per datagram: export ms (capture time) and whether it carried templates.
    templates_at: Vec<(u64, bool)>,
    next_seq: Option<u32>,
}

impl Seen {
    /// Count one accepted datagram; check its header against the RFCs.
    /// `ts_ns`: the capture time, the export time's (not known live).
    fn add(
        &mut self,
        s: &DatagramSummary,
        recs: &[TemplatedRecord],
        ts_ns: Option<u64>,
        bytes: &[u8],
    ) {
        assert_eq!(s.rejected_total(), 0, "{s:?}");
        if s.data_sets_no_template == 0 {
            assert!(!s.count_mismatch(), "v9 count = every record: {s:?}");
        }
        let h: MessageHeader = s.header;
        let ts_ns = ts_ns.unwrap_or(h.export_ns());
        assert_eq!(h.export_secs as u64, ts_ns / 1_000_000_000, "export time = capture time");
        if let Some(seq) = self.next_seq {
            assert_eq!(h.sequence, seq, "sequence per RFC");
        }
        self.next_seq = match h.version {
            Version::V9 => Some(h.sequence.wrapping_add(1)),
            // Records of a set without its template cannot be counted.
            Version::Ipfix if s.data_sets_no_template > 0 => None,
            Version::Ipfix => Some(h.sequence.wrapping_add(s.data_records())),
        };
        if h.version == Version::Ipfix {
            assert_eq!(u16::from_be_bytes([bytes[2], bytes[3]]) as usize, bytes.len());
        }
        self.sums.datagrams += 1;
        for r in recs {
            self.sums.records += 1;
            self.sums.packets += r.packets;
            self.sums.octets += r.octets;
            self.ipv6_records += r.src_addr.is_ipv6() as u64;
            assert_eq!(r.src_addr.is_ipv6(), r.dst_addr.is_ipv6());
        }
        self.template_records += (s.templates + s.options_templates) as u64;
        self.options_records += s.options_records as u64;
        self.no_template_sets += s.data_sets_no_template as u64;
        self.no_template_datagrams += (s.data_sets_no_template > 0) as u64;
        self.template_datagrams += (s.templates > 0) as u64;
        self.templates_at.push((ts_ns / 1_000_000, s.templates > 0));
    }

    /// Everything the truth says of this exporter, as decoded.
    fn check(&self, t: &ExporterTruth) {
        let early = t.no_template();
        let readable = Sums {
            datagrams: t.datagrams,
            records: t.records - early.records,
            packets: t.packets - early.packets,
            octets: t.octets - early.octets,
        };
        assert_eq!(self.sums, readable, "records, packets, octets of {}", t.exporter);
        assert_eq!(self.template_records, t.template_records);
        assert_eq!(self.options_records, t.options_records);
        if t.no_template_records == 0 {
            assert_eq!(self.ipv6_records, t.ipv6_records);
        } else {
            // The IPv6 records of datagrams without a template are not read.
            assert!(self.ipv6_records < t.ipv6_records);
        }
        assert_eq!(self.template_datagrams, t.template_datagrams);
        assert_eq!(self.no_template_datagrams, t.no_template_datagrams);
        assert_eq!(self.no_template_sets, t.no_template_sets);
    }
}

/// Decode a run's pcap with nfstitch's v9/IPFIX decoder: per exporter
/// address, what was seen, and every record.
fn decode_pcap(
    cfg: &Config,
) -> (Truth, BTreeMap<IpAddr, Seen>, Vec<TemplatedRecord>, CorruptCounts) {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("lg.pcap");
    let (truth, _plan) = loadgen::write_pcap(cfg, &pcap).unwrap();
    let mut dec = Decoder::default();
    let mut per: BTreeMap<IpAddr, Seen> = BTreeMap::new();
    let mut all = Vec::new();
    let mut skips = SkipCounters::default();
    let mut corrupt = CorruptCounts::default();
    let damage = read_path(&pcap, None, &mut skips, |f| {
        let mut recs = Vec::new();
        match dec.decode(f.src, f.payload, &mut |r| recs.push(r)) {
            Ok(s) => per.entry(f.src).or_default().add(&s, &recs, f.ts_ns, f.payload),
            Err(e) => {
                assert!(recs.is_empty(), "nothing from a rejected datagram");
                assert!(corrupt.add_named(e.reason()), "{e}");
            }
        }
        all.extend(recs);
    })
    .unwrap();
    assert_eq!(damage, None);
    assert_eq!(skips.skipped, [0; 6]);
    (truth, per, all, corrupt)
}

/// A connection: exporter, source, source port, destination, destination port, protocol.
type Key = (IpAddr, IpAddr, u16, IpAddr, u16, u8);

/// Decoded records summed by connection key, in the truth's shape.
fn connections(recs: &[TemplatedRecord]) -> BTreeMap<Key, [u64; 4]> {
    let mut m: BTreeMap<_, [u64; 4]> = BTreeMap::new();
    for r in recs {
        let c = m
            .entry((r.exporter, r.src_addr, r.src_port, r.dst_addr, r.dst_port, r.proto))
            .or_default();
        c[0] += 1;
        c[1] += r.packets;
        c[2] += r.octets;
        c[3] |= r.tcp_flags as u64;
    }
    m
}

fn truth_connections(conns: &[ConnTruth]) -> BTreeMap<Key, [u64; 4]> {
    conns
        .iter()
        .map(|c| {
            (
                (c.exporter, c.src_addr, c.src_port, c.dst_addr, c.dst_port, c.proto),
                [c.records, c.packets, c.octets, c.tcp_flags as u64],
            )
        })
        .collect()
}

#[test]
fn v9_and_ipfix_pcaps_decode_to_the_truth_exactly() {
    for version in [9, 10] {
        // With malformed datagrams of every kind the decoder rejects whole.
        let cfg = Config { corrupt_ratio: 0.05, ..model(version, 900) };
        let (truth, per, recs, corrupt) = decode_pcap(&cfg);
        assert_eq!(corrupt, truth.corrupt, "each malformed datagram for its reason");
        let kinds = if version == 9 { 4 } else { 5 };
        let c = &truth.corrupt;
        let seen = [c.too_short, c.bad_version, c.length_mismatch, c.set_too_short, c.set_overrun];
        assert_eq!(seen.iter().filter(|&&n| n > 0).count(), kinds, "{c:?}");
        assert_eq!(per.len(), 3);
        for t in &truth.exporters {
            per[&t.exporter].check(t);
        }
        let total: Sums = per.values().map(|s| s.sums).sum();
        assert_eq!(total, Sums::from(&truth));
        assert_eq!(total.datagrams, 900);
        // The mix: about 30% IPv6 records, and templates refreshed.
        let share = truth.ipv6_records as f64 / truth.records as f64;
        assert!((0.2..0.4).contains(&share), "IPv6 share {share}");
        assert!(truth.exporters.iter().all(|e| e.template_datagrams > 1), "{truth:?}");
        assert!(recs.iter().all(|r| r.sampling_interval == Some(100)), "sampling options");
        // Connections, IPv6 ones included, as the truth lists them.
        let conns = truth.connections.as_ref().expect("listed");
        assert!(conns.iter().any(|c| c.src_addr.is_ipv6()));
        assert!(conns.iter().any(|c| c.proto == 58), "ICMPv6");
        assert_eq!(connections(&recs), truth_connections(conns), "version {version}");
        // Times: IPFIX ms are exact; v9 against whole export seconds, up to 999 ms early.
        let mut first: BTreeMap<_, u64> = BTreeMap::new();
        for r in &recs {
            let f = first
                .entry((r.exporter, r.src_addr, r.src_port, r.dst_addr, r.dst_port, r.proto))
                .or_insert(u64::MAX);
            *f = (*f).min(r.first_ns);
        }
        for c in conns {
            let got = first[&(c.exporter, c.src_addr, c.src_port, c.dst_addr, c.dst_port, c.proto)];
            if version == 10 {
                assert_eq!(got, c.first, "{c:?}");
            } else {
                assert!(got <= c.first && c.first - got < 1_000_000_000, "{c:?}: {got}");
            }
        }
        let ends: Vec<u8> = recs.iter().map(|r| r.end_reason).filter(|&e| e != 0).collect();
        if version == 10 {
            assert_eq!(ends.len(), recs.len());
            for reason in 1..=4 {
                assert!(ends.contains(&reason), "flowEndReason {reason} occurs");
            }
        } else {
            assert!(ends.is_empty());
        }
    }
}

/// Decode `generate`'s datagrams per exporter index.
fn decode_run(cfg: &Config) -> (Truth, BTreeMap<usize, Seen>) {
    let mut dec = Decoder::default();
    let mut per: BTreeMap<usize, Seen> = BTreeMap::new();
    let (truth, _) = loadgen::generate(cfg, |d| {
        let mut recs = Vec::new();
        let from = IpAddr::V4(d.src.0);
        let s = dec.decode(from, d.bytes, &mut |r| recs.push(r)).expect("accepted");
        per.entry(d.exporter).or_default().add(&s, &recs, Some(d.ts_ns), d.bytes);
    })
    .unwrap();
    (truth, per)
}

#[test]
fn templates_are_refreshed_by_router_time_and_by_count() {
    // Router time: 1000 pps x200 over 3 exporters, ~0.6 s between one
    // exporter's datagrams; a 5 s interval resends every ~9th.
    let by_time = Config { template_interval: Some(Duration::from_secs(5)), ..model(9, 600) };
    let (truth, per) = decode_run(&by_time);
    for (e, seen) in &per {
        seen.check(&truth.exporters[*e]);
        let mut last = None;
        for &(ms, tpl) in &seen.templates_at {
            let due = last.is_none_or(|l| ms - l >= 5000);
            assert_eq!(tpl, due, "exporter {e} at {ms}: templates iff 5 s passed");
            if tpl {
                last = Some(ms);
            }
        }
        assert!(seen.template_datagrams > 10, "{}", seen.template_datagrams);
    }
    // By count: every 7th datagram, however little time passed.
    let by_count = Config {
        template_interval: Some(Duration::from_secs(24 * 3600)),
        template_every: Some(7),
        ..model(10, 600)
    };
    let (truth, per) = decode_run(&by_count);
    for (e, seen) in &per {
        seen.check(&truth.exporters[*e]);
        let tpl: Vec<bool> = seen.templates_at.iter().map(|t| t.1).collect();
        let want: Vec<bool> = (0..tpl.len()).map(|i| i % 7 == 0).collect();
        assert_eq!(tpl, want, "exporter {e}");
    }
}

#[test]
fn data_before_the_template_is_counted() {
    for version in [9, 10] {
        let cfg = Config { data_before_template: Some(3), ..model(version, 300) };
        let (truth, per) = decode_run(&cfg);
        for (e, seen) in &per {
            let t = &truth.exporters[*e];
            assert_eq!(t.no_template_datagrams, 3);
            seen.check(t);
            // The decoder saw no template for exactly the first 3 datagrams;
            // the 4th brings them, and its own data decodes.
            let tpl: Vec<bool> = seen.templates_at.iter().map(|t| t.1).take(5).collect();
            assert_eq!(tpl, [false, false, false, true, false]);
            // What it could read is the truth without those datagrams'
            // records (`check` above): so much a collector must hold to count.
            let lost = t.no_template();
            assert_eq!(lost.datagrams, 3);
            assert_eq!(lost.records, 3 * 12, "full datagrams");
            assert!(lost.packets > 0 && lost.octets > 0 && t.no_template_sets >= 3);
        }
    }
}

/// A live run into a socket on 127.0.0.1, decoded per exporter address.
fn live(cfg: Config) -> (Truth, loadgen::SendReport, BTreeMap<IpAddr, Seen>, Vec<TemplatedRecord>) {
    let (truth, report, got) = crate::util::send_and_receive(cfg);
    let mut dec = Decoder::default();
    let mut per: BTreeMap<IpAddr, Seen> = BTreeMap::new();
    let mut all = Vec::new();
    for (from, d) in &got {
        let mut recs = Vec::new();
        let s = dec.decode(from.ip(), d, &mut |r| recs.push(r)).expect("accepted");
        per.entry(from.ip()).or_default().add(&s, &recs, None, d);
        all.extend(recs);
    }
    (truth, report, per, all)
}

#[test]
fn live_and_pool_v9_and_ipfix_reach_a_socket_whole() {
    for version in [9, 10] {
        let base = Config {
            count: Some(3000),
            pps: 20_000,
            truth_connections: false,
            ..model(version, 3000)
        };
        let (truth, report, per, _) = live(base.clone());
        assert_eq!(report.valid_sent, 3000);
        for t in &truth.exporters {
            per[&t.exporter].check(t);
        }
        // --pool 90: 30 datagrams per exporter cycled ~33 times; the
        // templates ride in each pass.
        let pooled = Config { pool: Some(90), ..base };
        let (truth, report, per, recs) = live(pooled);
        assert_eq!(report.valid_sent, 3000);
        assert!(truth.pool.is_some());
        assert_eq!(per.len(), 3);
        for t in &truth.exporters {
            let seen = &per[&t.exporter];
            seen.check(t);
            assert!(t.template_datagrams >= 33, "once a pass at least: {t:?}");
        }
        // Records moved with their export: each ends before it, within the
        // router's reach.
        for r in &recs {
            assert!(r.first_ns <= r.last_ns, "{r:?}");
        }
    }
}

/// The shared captures' independent v9/IPFIX parser (`tools/nfparse.py`,
/// written from the RFCs for the oracle, not from any decoder).
fn nfparse() -> Option<std::path::PathBuf> {
    let dir =
        std::env::var_os("NFSTITCH_TESTDATA").map(std::path::PathBuf::from).unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata")
        });
    let tool = dir.join("v9-ipfix/tools/nfparse.py");
    if !tool.is_file() {
        crate::skip::skip(&format!("{} not found (set NFSTITCH_TESTDATA)", tool.display()));
        return None;
    }
    if std::process::Command::new("python3").arg("--version").output().is_err() {
        crate::skip::skip("python3 not installed (.ci/install-deps.sh installs it)");
        return None;
    }
    Some(tool)
}

#[test]
fn an_independent_parser_agrees_with_the_truth() {
    let Some(tool) = nfparse() else {
        return;
    };
    for version in [9, 10] {
        let dir = tempfile::tempdir().unwrap();
        let pcap = dir.path().join("lg.pcap");
        let cfg = Config { truth_connections: false, ..model(version, 600) };
        let (truth, _) = loadgen::write_pcap(&cfg, &pcap).unwrap();
        // --v9-count: stop a v9 datagram after the header's count of
        // records, as tshark does: a wrong count would lose records.
        let out = std::process::Command::new("python3")
            .arg(&tool)
            .args(["--json", "--v9-count"])
            .arg(&pcap)
            .output()
            .expect("run nfparse.py");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(j["errors"].as_array().map(Vec::len), Some(0), "{j}");
        assert_eq!(j["versions"], serde_json::json!([version]));
        assert_eq!(j["datagrams"], truth.datagrams);
        assert_eq!(j["flow_records"], truth.records);
        assert_eq!(j["packets"], truth.packets);
        assert_eq!(j["octets"], truth.octets);
        assert_eq!(j["ipv6_records"], truth.ipv6_records);
        assert_eq!(j["ipv4_records"], truth.records - truth.ipv6_records);
        assert_eq!(j["options_records"], truth.options_records);
        let t = j["templates"].as_u64().unwrap() + j["options_templates"].as_u64().unwrap();
        assert_eq!(t, truth.template_records);
        assert_eq!(j["sets_without_template"], 0);
        assert_eq!(j["sets_ignored_by_count"], 0, "v9 count covers every record");
        let times = if version == 9 { [21, 22] } else { [152, 153] };
        assert_eq!(j["time_fields"], serde_json::json!(times));
    }
}
