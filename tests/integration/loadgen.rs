//! The load generator against the real decoder and the real `nfstitch`
//! binary: its datagrams decode, its truth is what a collector counts, and
//! restitching its pcap gives back its true connections.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use loadgen::{Config, Sums};
use nfstitch::capture::{read_path, SkipCounters};
use nfstitch::platform::ReuseportSocket;
use nfstitch::wire::Datagram;
use serde_json::Value;

use crate::util::*;

/// A run where router timeouts happen within seconds of router time: 1 min
/// active, 5 s inactive, router time 200x the schedule's.
fn model(count: u64) -> Config {
    Config {
        count: Some(count),
        pps: 1000,
        time_scale: Some(200.0),
        flows: 3000,
        active_timeout: Duration::from_secs(60),
        inactive_timeout: Duration::from_secs(5),
        exporters: 3,
        seed: 7,
        ..Config::default()
    }
}

/// Replay with the given args; (flows, stats).
fn replay(pcap: &Path, args: &[&str]) -> (Vec<Value>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("stats.json");
    let r = run_ok(
        nfstitch().arg("replay").args(args).arg("-q").arg("--stats-json").arg(&st).arg(pcap),
    );
    (flows(&r.stdout), stats(&st))
}

/// A flow as compared: key, sums, flags, times.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    exporter: String,
    src: String,
    sport: u64,
    dst: String,
    dport: u64,
    proto: u64,
    packets: u64,
    octets: u64,
    records: u64,
    tcp_flags: u64,
    first_ms: u64,
    last_ms: u64,
}

/// Epoch seconds with 9 decimals (a JSON number) to whole ms.
fn ms(v: &Value) -> u64 {
    (v.as_f64().unwrap() * 1000.0).round() as u64
}

#[test]
fn loadgen_pcap_decodes_and_sums_to_its_truth() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("lg.pcap");
    let cfg = model(900);
    let (truth, _plan) = loadgen::write_pcap(&cfg, &pcap).unwrap();
    let mut per: BTreeMap<IpAddr, Sums> = BTreeMap::new();
    let mut total = Sums::default();
    let mut skips = SkipCounters::default();
    let mut frames = 0;
    let damage = read_path(&pcap, None, &mut skips, |f| {
        frames += 1;
        let dg = Datagram::parse(f.payload).expect("every loadgen datagram decodes");
        assert_eq!(
            dg.header().export_ns() / 1_000_000,
            f.ts_ns.unwrap() / 1_000_000,
            "capture time = export time"
        );
        per.entry(f.src).or_default().add(&dg);
        total.add(&dg);
    })
    .unwrap();
    assert_eq!(damage, None);
    assert_eq!(frames, 900);
    assert_eq!(total, Sums::from(&truth));
    assert_eq!(per, truth.sums_by(|ip, _| ip), "per exporter (frame source = exporter address)");
    assert_eq!(per.len(), 3);
}

#[test]
fn replay_restitches_the_true_connections() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("lg.pcap");
    let (truth, plan) = loadgen::write_pcap(&model(1500), &pcap).unwrap();
    // Idle far above the router's timeouts (60 s active + gaps of up to 3
    // inactive timeouts between a connection's records), so nothing is split.
    let (flows, st) = replay(&pcap, &["--idle", "10m", "--linger", "5m", "--time-format", "epoch"]);
    assert_conserved(&flows, &st);
    assert_eq!(st["datagrams"], truth.datagrams);
    assert_eq!(st["records"], truth.records);
    assert_eq!(st["packets"], truth.packets);
    assert_eq!(st["octets"], truth.octets);
    assert_eq!(st["seq_lost_records"], 0, "sequence numbers are per exporter and gapless");
    assert_eq!(st["seq_restarts"], 0, "the uptime wrap of the last exporter is no restart");

    let conns = truth.connections.as_ref().expect("pcap runs list connections");
    assert!(
        conns.iter().filter(|c| c.records > 1).count() > 50,
        "timeouts cut connections: {plan:?}"
    );
    let mut want: Vec<Row> = conns
        .iter()
        .map(|c| Row {
            exporter: c.exporter.to_string(),
            src: c.src_addr.to_string(),
            sport: c.src_port as u64,
            dst: c.dst_addr.to_string(),
            dport: c.dst_port as u64,
            proto: c.proto as u64,
            packets: c.packets,
            octets: c.octets,
            records: c.records,
            tcp_flags: c.tcp_flags as u64,
            first_ms: c.first / 1_000_000,
            last_ms: c.last / 1_000_000,
        })
        .collect();
    let mut got: Vec<Row> = flows
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            let n = |k: &str| f[k].as_u64().unwrap();
            Row {
                exporter: s("exporter"),
                src: s("src_addr"),
                sport: n("src_port"),
                dst: s("dst_addr"),
                dport: n("dst_port"),
                proto: n("proto"),
                packets: n("packets"),
                octets: n("octets"),
                records: n("records"),
                tcp_flags: n("tcp_flags"),
                first_ms: ms(&f["first"]),
                last_ms: ms(&f["last"]),
            }
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got.len(), want.len(), "one flow per true connection");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

#[test]
fn corrupt_datagrams_are_rejected_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("bad.pcap");
    let cfg = Config { corrupt_ratio: 0.1, ..model(800) };
    let (truth, _) = loadgen::write_pcap(&cfg, &pcap).unwrap();
    let c = &truth.corrupt;
    assert!(
        c.too_short > 0 && c.bad_version > 0 && c.bad_count > 0 && c.length_mismatch > 0,
        "{c:?}"
    );
    let (flows, st) = replay(&pcap, &[]);
    assert_eq!(st["rejected"]["too_short"], c.too_short);
    assert_eq!(st["rejected"]["bad_version"], c.bad_version);
    assert_eq!(st["rejected"]["bad_count"], c.bad_count);
    assert_eq!(st["rejected"]["length_mismatch"], c.length_mismatch);
    assert_eq!(st["datagrams"], truth.datagrams, "accepted = the valid ones");
    assert_eq!(st["records"], truth.records);
    assert_eq!(st["seq_lost_records"], 0, "malformed datagrams take no sequence numbers");
    assert_conserved(&flows, &st);
}

#[test]
fn live_loopback_send_matches_the_truth() {
    let rx =
        ReuseportSocket::bind("127.0.0.1:0".parse().unwrap(), Some(4 << 20)).unwrap().into_udp();
    let target = rx.local_addr().unwrap();
    let cfg = Config { pps: 2000, target, ..model(200) };
    let sender = std::thread::spawn(move || loadgen::run_live(&cfg).unwrap());
    let mut per: BTreeMap<SocketAddr, Sums> = BTreeMap::new();
    let mut total = Sums::default();
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    while total.datagrams < 200 && start.elapsed() < Duration::from_secs(10) {
        match rx.recv_from(&mut buf) {
            Ok((n, from)) => {
                let dg = Datagram::parse(&buf[..n]).expect("decodes");
                per.entry(from).or_default().add(&dg);
                total.add(&dg);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("recv: {e}"),
        }
    }
    let (truth, report, _) = sender.join().unwrap();
    assert_eq!(report.valid_sent, 200);
    assert!(report.lateness.count() > 0, "paced batches are measured");
    assert_eq!(total, Sums::from(&truth), "nothing lost at 2000 datagrams/s");
    let want = truth.sums_by(SocketAddr::new);
    assert_eq!(per, want, "each exporter from its own 127.0.1.x address");
}
