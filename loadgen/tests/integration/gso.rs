//! UDP GSO (the default) against plain `sendmmsg` (`--no-gso`): what a real
//! UDP socket on 127.0.0.1 (no `UDP_GRO`, so the kernel hands it every
//! segment as its own datagram) receives, decoded by the library's decoder and
//! checked against the truth. Paced and bounded (a few seconds each); the
//! receive buffer holds the whole run.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use loadgen::{Config, CorruptCounts, Truth};
use nfstitch::wire::{HEADER_LEN, RECORD_LEN};

use crate::util::{check_stream, send_and_receive, truth_sums, unpatched};

/// Whether this kernel takes `UDP_SEGMENT` at all (Linux 4.18+).
fn kernel_has_gso() -> bool {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let yes = nfstitch::platform::enable_udp_gso(&s).is_ok();
    if !yes {
        crate::skip::skip("the kernel has no UDP GSO (UDP_SEGMENT): the GSO checks do not run");
    }
    yes
}

/// Each exporter's datagrams in order, by source address (the ports differ between runs).
fn by_ip(got: &[(SocketAddr, Vec<u8>)]) -> BTreeMap<IpAddr, Vec<&[u8]>> {
    let mut m: BTreeMap<IpAddr, Vec<&[u8]>> = BTreeMap::new();
    for (from, d) in got {
        m.entry(from.ip()).or_default().push(d);
    }
    m
}

#[test]
fn pool_with_gso_delivers_every_datagram_like_plain_sendmmsg() {
    let count = 20_000;
    // 2 exporters at 100k/s: batches of 10 datagrams per exporter, one GSO send each.
    let cfg = Config {
        pool: Some(200),
        count: Some(count),
        pps: 100_000,
        exporters: 2,
        seed: 5,
        ..Config::default()
    };
    let (truth, report, got) = send_and_receive(cfg.clone());
    assert_eq!(truth.datagrams, count);
    assert_eq!(truth.records, count * 30);
    assert_eq!(got.len() as u64, count, "every segment arrives as its own datagram");
    assert!(got.iter().all(|(_, d)| d.len() == HEADER_LEN + 30 * RECORD_LEN));
    let (per, corrupt) = check_stream(&got);
    assert_eq!(per, truth_sums(&truth));
    assert_eq!(corrupt, CorruptCounts::default());
    let g = report.gso;
    assert!(g.wanted);
    assert_eq!(g.exporters, 2);
    if kernel_has_gso() {
        assert_eq!(g.sockets, 2, "{g:?}");
        assert_eq!(g.datagrams, count, "all through GSO: {g:?}");
        assert!(g.sends * 5 <= g.datagrams, "several datagrams per send: {g:?}");
    }

    // --no-gso: the same totals, and the same pool content in the same order.
    let (plain_truth, plain_report, plain_got) = send_and_receive(Config { gso: false, ..cfg });
    assert!(!plain_report.gso.wanted);
    assert_eq!((plain_report.gso.sends, plain_report.gso.datagrams), (0, 0));
    assert_eq!(plain_got.len() as u64, count);
    let (plain_per, _) = check_stream(&plain_got);
    assert_eq!(plain_per, truth_sums(&plain_truth));
    let totals = |t: &Truth| (t.datagrams, t.records, t.packets, t.octets);
    assert_eq!(totals(&plain_truth), totals(&truth));
    let (a, b) = (by_ip(&got), by_ip(&plain_got));
    assert_eq!(a.len(), 2);
    for (ip, dgs) in &a {
        let other = &b[ip];
        assert_eq!(dgs.len(), other.len(), "{ip}");
        for (x, y) in dgs.iter().zip(other) {
            assert_eq!(unpatched(x), unpatched(y), "{ip}: same datagrams in the same order");
        }
    }
}

#[test]
fn model_with_malformed_datagrams_mixes_lengths_correctly() {
    // Live model with --corrupt-ratio: runs of full datagrams broken by
    // malformed ones of other lengths (each its own send). A fixed start
    // makes both runs byte-identical per exporter.
    let cfg = Config {
        count: Some(4_000),
        pps: 40_000,
        exporters: 2,
        corrupt_ratio: 0.15,
        time_scale: Some(50.0),
        flows: 2000,
        seed: 9,
        start_ns: Some(1_700_000_000_000_000_000),
        ..Config::default()
    };
    let (truth, report, got) = send_and_receive(cfg.clone());
    let malformed = truth.corrupt.total();
    assert!(malformed > 300, "{:?}", truth.corrupt);
    assert_eq!(got.len() as u64, truth.datagrams + malformed, "nothing lost");
    let (per, corrupt) = check_stream(&got);
    assert_eq!(per, truth_sums(&truth));
    assert_eq!(corrupt, truth.corrupt, "malformed ones arrive whole, counted by reason");
    assert_eq!(report.corrupt_sent, malformed);
    let lengths: std::collections::BTreeSet<usize> = got.iter().map(|(_, d)| d.len()).collect();
    assert!(lengths.len() > 20, "many lengths: {lengths:?}");
    if kernel_has_gso() {
        let g = report.gso;
        assert_eq!(g.sockets, 2, "{g:?}");
        assert_eq!(g.datagrams, truth.datagrams + malformed, "{g:?}");
        assert!(g.sends < g.datagrams, "some sends carried several datagrams: {g:?}");
    }

    let (plain_truth, _, plain_got) = send_and_receive(Config { gso: false, ..cfg });
    assert_eq!(plain_truth.datagrams, truth.datagrams);
    assert_eq!(plain_truth.corrupt, truth.corrupt);
    let (a, b) = (by_ip(&got), by_ip(&plain_got));
    assert_eq!(a, b, "GSO and plain sends: the same bytes per exporter, in order");
}
