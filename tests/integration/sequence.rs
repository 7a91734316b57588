//! Sequence accounting on the live collector (README "Counters"): one
//! tracker per exporter whatever the worker, duplicates, restarts, and the
//! caps on exporters and engines.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use nfstitch::ingest::{MAX_ENGINES, MAX_EXPORTERS};
use nfstitch::wire::{encode, HeaderFields};
use serde_json::Value;

use crate::collect::start;
use crate::util::tcp;

/// A datagram of `n` records with this sequence, uptime and engine id.
fn dgram(seq: u32, n: u32, uptime: u32, engine_id: u8) -> Vec<u8> {
    let h = HeaderFields {
        sys_uptime: uptime,
        unix_secs: 1_700_000_000,
        flow_sequence: seq,
        engine_id,
        ..Default::default()
    };
    let recs: Vec<_> = (0..n).map(|k| tcp(1024 + (seq + k) as u16, 0x10, 1)).collect();
    let mut b = Vec::new();
    encode(&h, &recs, &mut b);
    b
}

/// Send from `socks` in turn, a pause every 10 datagrams (no kernel drops).
fn send_paced(socks: &[UdpSocket], dgs: &[Vec<u8>], to: SocketAddr) {
    for (i, d) in dgs.iter().enumerate() {
        socks[i % socks.len()].send_to(d, to).unwrap();
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(3));
        }
    }
}

fn bind(ip: Ipv4Addr, n: usize) -> Vec<UdpSocket> {
    (0..n).map(|_| UdpSocket::bind((ip, 0)).expect("bind a loopback address")).collect()
}

fn exporter<'a>(st: &'a Value, ip: &str) -> &'a Value {
    st["exporters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["exporter"] == ip)
        .unwrap_or_else(|| panic!("{ip} not in the report: {st}"))
}

/// An exporter's seq_lost_records, seq_restarts, seq_late_datagrams,
/// seq_duplicate_datagrams.
type Totals = [u64; 4];

fn seq_of(e: &Value) -> Totals {
    ["seq_lost_records", "seq_restarts", "seq_late_datagrams", "seq_duplicate_datagrams"]
        .map(|k| e[k].as_u64().unwrap_or_else(|| panic!("{k} in {e}")))
}

/// One exporter sending from 16 source ports (SO_REUSEPORT spreads them
/// over both workers): nothing lost shows 0 lost; another, the same way with
/// every 25th datagram withheld, shows exactly the withheld records lost.
#[test]
fn an_exporter_spread_over_two_workers_is_one_tracker() {
    let c = start(&["--workers", "2"]);
    let (clean, lossy) = (Ipv4Addr::new(127, 0, 2, 1), Ipv4Addr::new(127, 0, 2, 2));
    let all: Vec<_> = (0..400u32).map(|i| dgram(i * 30, 30, 3_600_000 + i, 0)).collect();
    send_paced(&bind(clean, 16), &all, c.addr);
    // Withhold 16 datagrams (12, 37, ..., 387: each has later ones that show it).
    let kept: Vec<_> =
        all.iter().enumerate().filter(|(i, _)| i % 25 != 12).map(|(_, d)| d.clone()).collect();
    send_paced(&bind(lossy, 16), &kept, c.addr);
    let (_, st, _) = c.stop();
    assert_eq!(st["kernel_drops"], 0, "the test paces its sends: {st}");
    let per_worker: Vec<u64> = st["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["datagrams"].as_u64().unwrap())
        .collect();
    assert!(per_worker.iter().all(|&n| n > 0), "both workers got datagrams: {per_worker:?}");
    assert_eq!(seq_of(exporter(&st, "127.0.2.1"))[..2], [0, 0], "{st}");
    assert_eq!(seq_of(exporter(&st, "127.0.2.1"))[3], 0, "{st}");
    let lossy = seq_of(exporter(&st, "127.0.2.2"));
    assert_eq!((lossy[0], lossy[1], lossy[3]), (16 * 30, 0, 0), "{st}");
    assert_eq!(st["seq_lost_records"], 16 * 30);
    assert_eq!(st["seq_duplicate_datagrams"], 0);
}

/// The cases, one exporter each, in order from one socket:
/// a duplicate never fills a gap; a sequence back to 0 while the uptime goes
/// on is a restart; so is an uptime going back (a reboot).
#[test]
fn duplicates_and_restarts_are_not_loss() {
    let c = start(&["--workers", "2"]);
    let up = 3_600_000;
    // (exporter, datagrams, [lost, restarts, late, duplicates] expected)
    let cases: [(&str, Vec<Vec<u8>>, Totals); 3] = [
        // 0, 1, 5, then 1 again (one record each): 3 lost, 1 duplicate.
        (
            "127.0.3.1",
            vec![
                dgram(0, 1, up, 0),
                dgram(1, 1, up + 1, 0),
                dgram(5, 1, up + 5, 0),
                dgram(1, 1, up + 1, 0),
            ],
            [3, 0, 0, 1],
        ),
        // 300 records, then the export process restarts: sequence from 0.
        (
            "127.0.3.2",
            (0..10)
                .map(|i| dgram(i * 30, 30, up + i, 0))
                .chain((0..3).map(|i| dgram(i * 30, 30, up + 100 + i, 0)))
                .collect(),
            [0, 1, 0, 0],
        ),
        // A reboot: uptime back to 5 s, sequence from 0.
        (
            "127.0.3.3",
            (0..10)
                .map(|i| dgram(i * 30, 30, up + i, 0))
                .chain((0..3).map(|i| dgram(i * 30, 30, 5_000 + i, 0)))
                .collect(),
            [0, 1, 0, 0],
        ),
    ];
    for (ip, dgs, _) in &cases {
        send_paced(&bind(ip.parse().unwrap(), 1), dgs, c.addr);
    }
    let (_, st, _) = c.stop();
    for (ip, _, want) in &cases {
        assert_eq!(seq_of(exporter(&st, ip)), *want, "{ip}: lost, restarts, late, duplicates");
    }
    assert_eq!(st["seq_duplicate_datagrams"], 1);
    assert_eq!(st["seq_restarts"], 2);
}

/// Past the caps nothing is merged into a shared bucket: engines past
/// MAX_ENGINES of one exporter and sources past MAX_EXPORTERS are counted
/// (`engines_overflow`, `exporters_overflow`), still in the totals, and a
/// warning names the source.
#[test]
fn exporters_and_engines_past_the_caps_are_counted_and_named() {
    let c = start(&["--workers", "2"]);
    // One exporter with MAX_ENGINES + 8 engines, one datagram each.
    let engines: Vec<_> = (0..MAX_ENGINES as u8 + 8).map(|e| dgram(0, 1, 1000, e)).collect();
    send_paced(&bind(Ipv4Addr::new(127, 0, 4, 1), 1), &engines, c.addr);
    // Then MAX_EXPORTERS + 5 sources in all (127.1.x.y), one datagram each.
    let one = dgram(0, 1, 1000, 0);
    for k in 0..MAX_EXPORTERS as u32 + 4 {
        let ip = Ipv4Addr::from(0x7f01_0000 + k);
        UdpSocket::bind((ip, 0)).unwrap().send_to(&one, c.addr).unwrap();
        if k % 10 == 9 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let (_, st, stderr) = c.stop();
    let sent = MAX_ENGINES as u64 + 8 + MAX_EXPORTERS as u64 + 4;
    assert_eq!(st["kernel_drops"], 0, "{st}");
    assert_eq!(st["datagrams"], sent, "every datagram still counted in the totals");
    assert_eq!(st["engines_overflow"], 8, "{st}");
    assert_eq!(st["exporters_overflow"], 5, "{st}");
    let exporters = st["exporters"].as_array().unwrap();
    assert_eq!(exporters.len(), MAX_EXPORTERS, "no bucket for the rest");
    assert!(exporters.iter().all(|e| e["exporter"] != "255.255.255.255"));
    assert_eq!(exporter(&st, "127.0.4.1")["datagrams"], MAX_ENGINES as u64 + 8);
    assert!(
        stderr.contains("warning") && stderr.contains("past the cap of"),
        "a warning names the source:\n{stderr}"
    );
    assert!(stderr.contains("from 127.1."), "{stderr}");
}
