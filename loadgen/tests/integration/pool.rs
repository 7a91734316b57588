//! `--pool`: what a real UDP socket on 127.0.0.1 receives from a cycled pool,
//! decoded by the library's decoder and checked against the truth. Paced and
//! bounded (a few seconds at most); the receive buffer holds the whole run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use loadgen::{Config, Sums};
use nfstitch::wire::Datagram;

use crate::util::{check_stream, send_and_receive, truth_sums, unpatched};

const POOL: u64 = 300;
const EXPORTERS: usize = 3;

#[test]
fn pool_stream_decodes_matches_the_truth_and_advances() {
    let count = 20_000;
    let cfg = Config {
        pool: Some(POOL),
        count: Some(count),
        pps: 50_000,
        exporters: EXPORTERS,
        seed: 11,
        ..Config::default()
    };
    let wall0 = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let (truth, report, got) = send_and_receive(cfg);
    let wall1 = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;

    // The truth counts what was sent: every pass and the partial one.
    assert_eq!(truth.datagrams, count);
    assert_eq!(report.valid_sent, count);
    assert_eq!(truth.records, count * 30, "full datagrams");
    assert!(truth.connections.is_none(), "keys recur: no connection list");
    let p = truth.pool.expect("pool mode says so in the truth");
    assert_eq!((p.datagrams, p.records), (POOL, POOL * 30));
    assert!(p.flows.unwrap() > POOL * 20, "distinct flows in the pool: {:?}", p.flows);
    assert_eq!(got.len() as u64, count, "nothing lost (paced, large receive buffer)");

    // Everything decodes; sums per exporter address equal the truth.
    let mut per: BTreeMap<SocketAddr, Sums> = BTreeMap::new();
    let mut by_exporter: BTreeMap<SocketAddr, Vec<&[u8]>> = BTreeMap::new();
    for (from, d) in &got {
        let dg = Datagram::parse(d).expect("every pool datagram decodes");
        per.entry(*from).or_default().add(&dg);
        by_exporter.entry(*from).or_default().push(d);
    }
    assert_eq!(per, truth_sums(&truth));
    assert_eq!(per.len(), EXPORTERS);

    for (from, dgs) in &by_exporter {
        let share = (POOL / EXPORTERS as u64) as usize;
        assert!(dgs.len() > 3 * share, "several passes from {from}");
        let mut seq: Option<u32> = None;
        let mut last_export = 0;
        for (i, d) in dgs.iter().enumerate() {
            let dg = Datagram::parse(d).unwrap();
            let h = dg.header();
            // Sequence continuous across passes: no loss for a collector.
            if let Some(s) = seq {
                assert_eq!(h.flow_sequence, s, "{from} datagram {i}");
            }
            seq = Some(h.flow_sequence.wrapping_add(dg.count() as u32));
            // Export time: the wall clock, never going back.
            let export = h.export_ns();
            assert!(export >= last_export, "{from} datagram {i}: time goes back");
            assert!(export + 2_000_000 >= wall0 && export <= wall1 + 2_000_000, "wall clock");
            last_export = export;
            for r in dg.records() {
                let (first, last) = (h.uptime_to_ns(r.first()), h.uptime_to_ns(r.last()));
                assert!(first <= last && last <= export, "{r:?} in {h:?}");
            }
            // The same pool datagram one pass later: same content, later
            // times, header and records moved by the same uptime delta.
            if let Some(next) = dgs.get(i + share) {
                assert_eq!(unpatched(d), unpatched(next), "{from}: the pool recurs");
                let n = Datagram::parse(next).unwrap();
                let nh = n.header();
                assert!(nh.export_ns() > export, "later pass, later export");
                let delta = nh.sys_uptime.wrapping_sub(h.sys_uptime);
                assert_eq!(
                    delta as u64,
                    (nh.export_ns() - export) / 1_000_000,
                    "uptime follows the export time"
                );
                for (a, b) in dg.records().zip(n.records()) {
                    assert_eq!(b.first().wrapping_sub(a.first()), delta);
                    assert_eq!(b.last().wrapping_sub(a.last()), delta);
                }
            }
        }
    }
}

#[test]
fn pool_with_threads_and_malformed_datagrams() {
    let count = 4_000;
    let cfg = Config {
        pool: Some(40),
        count: Some(count),
        pps: 20_000,
        exporters: 4,
        threads: 2,
        corrupt_ratio: 0.2,
        records_per_datagram: 10,
        seed: 3,
        ..Config::default()
    };
    let (truth, report, got) = send_and_receive(cfg);
    assert_eq!(truth.datagrams, count);
    assert_eq!(truth.records, count * 10);
    // Malformed datagrams take no sequence numbers (checked per stream).
    let (per, corrupt) = check_stream(&got);
    assert_eq!(per, truth_sums(&truth));
    assert!(corrupt.total() > 300, "{corrupt:?}");
    assert_eq!(corrupt, truth.corrupt, "malformed ones counted by reason, every pass");
    assert_eq!(report.corrupt_sent, corrupt.total());
    assert_eq!(truth.exporters.iter().map(|e| e.corrupt).sum::<u64>(), corrupt.total());
}

#[test]
fn pool_refusals_name_the_flag() {
    let run = |cfg: Config| loadgen::run_live(&cfg).map(|_| ()).unwrap_err().to_string();
    let base = Config { count: Some(10), ..Config::default() };
    let e = run(Config { pool: Some(0), ..base.clone() });
    assert!(e.starts_with("--pool") && e.contains("1..="), "{e}");
    let e = run(Config { pool: Some(3), exporters: 4, ..base.clone() });
    assert!(e.starts_with("--pool") && e.contains("--exporters"), "{e}");
    let e = run(Config { pool: Some(10), truth_connections: true, ..base.clone() });
    assert!(e.starts_with("--pool") && e.contains("--truth-connections"), "{e}");
    let e = run(Config { pool: Some(2_000_000), ..base.clone() });
    assert!(e.starts_with("--pool"), "{e}");
    let e = run(Config { pool: Some(10), count: Some(0), ..base });
    assert!(e.starts_with("--count"), "the run's own bounds are checked too: {e}");
}
