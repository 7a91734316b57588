//! IPv6 flows stitched end to end (issue 18 item 4): loadgen's v9 and IPFIX
//! runs with half their sessions IPv6, through `replay` and sent live to
//! `collect` with 1 and 2 workers: every true connection, IPv6 ones
//! included, comes back as one flow with exactly its records, packets,
//! octets and tcp flags, and its addresses as loadgen sent them; nothing
//! waits at the IPv6 seam (`ipv6_records_pending` is 0).

use std::collections::BTreeMap;
use std::time::Duration;

use loadgen::{Config, Truth};
use serde_json::Value;

use crate::collect::start;
use crate::util::*;

/// A templated run whose connections are listed, half of them IPv6, router
/// timeouts within seconds of router time (as `loadgen.rs`'s model).
fn model(version: u16, count: u64) -> Config {
    Config {
        count: Some(count),
        pps: 2000,
        time_scale: Some(200.0),
        flows: 3000,
        active_timeout: Duration::from_secs(60),
        inactive_timeout: Duration::from_secs(5),
        exporters: 3,
        seed: 11,
        corrupt_ratio: 0.0,
        truth_connections: true,
        ..Config::for_version(version, 0.5)
    }
}

/// (exporter, src, sport, dst, dport, proto) -> [records, packets, octets, tcp flags].
type Conns = BTreeMap<(String, String, u64, String, u64, u64), [u64; 4]>;

fn from_truth(truth: &Truth) -> Conns {
    let conns = truth.connections.as_ref().expect("connections listed");
    let mut m = Conns::new();
    for c in conns {
        let k = (
            c.exporter.to_string(),
            c.src_addr.to_string(),
            c.src_port as u64,
            c.dst_addr.to_string(),
            c.dst_port as u64,
            c.proto as u64,
        );
        let prev = m.insert(k, [c.records, c.packets, c.octets, c.tcp_flags as u64]);
        assert!(prev.is_none(), "a key twice in the truth: {c:?}");
    }
    m
}

fn from_flows(flows: &[Value]) -> Conns {
    let mut m = Conns::new();
    for f in flows {
        let s = |k: &str| f[k].as_str().unwrap().to_string();
        let n = |k: &str| f[k].as_u64().unwrap();
        let k =
            (s("exporter"), s("src_addr"), n("src_port"), s("dst_addr"), n("dst_port"), n("proto"));
        let prev = m.insert(k, [n("records"), n("packets"), n("octets"), n("tcp_flags")]);
        assert!(prev.is_none(), "two flows of one key: {f}");
    }
    m
}

/// The flows are the truth's connections, exactly, and the stats agree.
fn assert_truth(flows: &[Value], st: &Value, truth: &Truth, what: &str) {
    assert_eq!(st["ipv6_records_pending"], 0, "{what}: {st}");
    assert_eq!(st["records"], truth.records, "{what}");
    assert_eq!(st["packets"], truth.packets, "{what}");
    assert_eq!(st["octets"], truth.octets, "{what}");
    assert_eq!(sum(flows, "records"), truth.records, "{what}");
    assert_eq!(sum(flows, "packets"), truth.packets, "{what}");
    assert_eq!(sum(flows, "octets"), truth.octets, "{what}");
    let want = from_truth(truth);
    let got = from_flows(flows);
    let v6 = |m: &Conns| m.keys().filter(|k| k.1.contains(':')).count();
    assert!(
        v6(&want) * 4 > want.len(),
        "{what}: a third or more IPv6: {} of {}",
        v6(&want),
        want.len()
    );
    assert_eq!(v6(&got), v6(&want), "{what}: IPv6 flows");
    let v6_records: u64 = flows
        .iter()
        .filter(|f| f["src_addr"].as_str().unwrap().contains(':'))
        .map(|f| f["records"].as_u64().unwrap())
        .sum();
    assert_eq!(v6_records, truth.ipv6_records, "{what}: IPv6 records in flows");
    assert_eq!(got.len(), want.len(), "{what}: one flow per true connection");
    for (k, w) in &want {
        assert_eq!(got.get(k), Some(w), "{what}: connection {k:?}");
    }
}

/// Idle and linger far above the router's timeouts and the run's length,
/// so that no connection is split.
const HOLD: [&str; 4] = ["--idle", "10m", "--linger", "5m"];

#[test]
fn replay_stitches_ipv6_connections_exactly() {
    for version in [9, 10] {
        let dir = tempfile::tempdir().unwrap();
        let pcap = dir.path().join("lg.pcap");
        let (truth, _) = loadgen::write_pcap(&model(version, 600), &pcap).unwrap();
        let st = dir.path().join("stats.json");
        let r = run_ok(
            nfstitch()
                .arg("replay")
                .args(HOLD)
                .args(["-q", "--no-state", "--stats-json"])
                .arg(&st)
                .arg(&pcap),
        );
        assert_truth(&flows(&r.stdout), &stats(&st), &truth, &format!("replay v{version}"));
    }
}

#[test]
fn collect_stitches_ipv6_connections_exactly_with_1_and_2_workers() {
    for version in [9, 10] {
        for workers in ["1", "2"] {
            let mut args = vec!["--workers", workers, "--rcvbuf", "8000000", "--no-state"];
            args.extend(HOLD);
            let c = start(&args);
            let cfg = Config { target: c.addr, ..model(version, 600) };
            let (truth, report, _) = loadgen::run_live(&cfg).unwrap();
            assert_eq!(report.valid_sent, truth.datagrams);
            std::thread::sleep(Duration::from_millis(300));
            let (flows, st, _) = c.stop();
            let what = format!("collect v{version}, {workers} workers");
            assert_eq!(
                (st["kernel_drops"].as_u64(), st["unread_at_shutdown"].as_u64()),
                (Some(0), Some(0)),
                "{what}"
            );
            assert_eq!(st["datagrams"], truth.datagrams, "{what}");
            assert_truth(&flows, &st, &truth, &what);
        }
    }
}
