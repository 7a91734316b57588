//! Whole-run tests of the generator: every datagram through the library's
//! decoder, against the truth.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use nfstitch::wire::{Datagram, HEADER_LEN, RECORD_LEN};

use super::*;
use crate::router::ExporterGen;

const S: u64 = 1_000_000_000;

/// A small run where router timeouts happen: 1 min active, 5 s inactive,
/// router time x200.
fn small(count: u64) -> Config {
    Config {
        count: Some(count),
        pps: 1000,
        time_scale: Some(200.0),
        flows: 3000,
        active_timeout: Duration::from_secs(60),
        inactive_timeout: Duration::from_secs(5),
        exporters: 3,
        ..Config::default()
    }
}

/// Decode everything `generate` makes; check headers and records as it goes.
fn decode_all(cfg: &Config) -> (Truth, Plan, BTreeMap<usize, Sums>, CorruptCounts, Vec<u8>) {
    let mut per: BTreeMap<usize, Sums> = BTreeMap::new();
    let mut corrupt = CorruptCounts::default();
    let mut next_seq: BTreeMap<usize, u32> = BTreeMap::new();
    let mut last_ts = 0;
    let mut bytes = Vec::new();
    let (truth, plan) = generate(cfg, |d| {
        bytes.extend_from_slice(d.bytes);
        assert!(d.ts_ns >= last_ts, "time order");
        last_ts = d.ts_ns;
        match Datagram::parse(d.bytes) {
            Err(e) => {
                assert_eq!(Some(e.index()), d.corrupt, "only marked datagrams are malformed: {e}");
                corrupt.add(e.index());
            }
            Ok(dg) => {
                assert_eq!(d.corrupt, None);
                let h = dg.header();
                assert_eq!(h.engine_id as usize, d.exporter);
                assert_eq!(h.sampling, cfg.sampling_field());
                assert_eq!(h.unix_nsecs % 1_000_000, 0, "router clock in whole ms");
                assert_eq!(
                    h.export_ns() / 1_000_000,
                    d.ts_ns / 1_000_000,
                    "header time = capture time"
                );
                if let Some(seq) = next_seq.get(&d.exporter) {
                    assert_eq!(h.flow_sequence, *seq, "sequence = records exported before");
                }
                next_seq.insert(d.exporter, h.flow_sequence.wrapping_add(dg.count() as u32));
                per.entry(d.exporter).or_default().add(&dg);
                for r in dg.records() {
                    assert!(r.packets() >= 1 && r.octets() >= r.packets());
                    let first = h.uptime_to_ns(r.first());
                    let last = h.uptime_to_ns(r.last());
                    assert!(first <= last && last <= h.export_ns(), "{r:?} in {h:?}");
                    assert!(last - first < cfg.active_timeout.as_nanos() as u64, "active timeout");
                    if r.proto() == model::ICMP {
                        assert_eq!(r.src_port(), 0);
                    }
                }
            }
        }
    })
    .unwrap();
    (truth, plan, per, corrupt, bytes)
}

#[test]
fn every_datagram_decodes_and_matches_the_truth() {
    let cfg = small(600);
    let (truth, _plan, per, corrupt, _) = decode_all(&cfg);
    assert_eq!(truth.datagrams, 600);
    assert_eq!(truth.records, 600 * 30, "full datagrams, exactly the planned count");
    assert_eq!(corrupt, CorruptCounts::default());
    for (e, t) in truth.exporters.iter().enumerate() {
        assert_eq!(per[&e], Sums::from(t), "exporter {e}");
        assert_eq!(t.exporter, IpAddr::V4(exporter_ip(&cfg, e)));
    }
    assert_eq!(per.values().copied().sum::<Sums>(), Sums::from(&truth));
    // Connections: unique keys, and their sums are the totals.
    let conns = truth.connections.as_ref().expect("small runs list connections");
    let keys: HashSet<_> = conns
        .iter()
        .map(|c| (c.exporter, c.src_addr, c.src_port, c.dst_addr, c.dst_port, c.proto))
        .collect();
    assert_eq!(keys.len(), conns.len(), "keys are unique in a run");
    assert_eq!(conns.iter().map(|c| c.records).sum::<u64>(), truth.records);
    assert_eq!(conns.iter().map(|c| c.packets).sum::<u64>(), truth.packets);
    assert_eq!(conns.iter().map(|c| c.octets).sum::<u64>(), truth.octets);
    // Router timeouts happened: some connections span several records.
    let multi = conns.iter().filter(|c| c.records > 1).count();
    assert!(multi > 20, "{multi} multi-record connections");
    let longest = conns.iter().map(|c| c.last - c.first).max().unwrap();
    assert!(longest > 90 * S, "long connections");
    for p in [model::TCP, model::UDP, model::ICMP] {
        assert!(conns.iter().any(|c| c.proto == p), "proto {p}");
    }
    assert!(conns.iter().any(|c| c.tcp_flags & model::FIN != 0));
    assert!(conns.iter().any(|c| c.tcp_flags & model::RST != 0));
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let cfg = Config { corrupt_ratio: 0.05, ..small(200) };
    let a = decode_all(&cfg).4;
    let b = decode_all(&cfg).4;
    assert!(a == b, "deterministic");
    let c = decode_all(&Config { seed: 2, ..cfg.clone() }).4;
    assert!(a != c);
}

#[test]
fn corrupt_datagrams_are_extra_and_counted() {
    let cfg = Config { corrupt_ratio: 0.2, ..small(400) };
    let (truth, _, per, corrupt, _) = decode_all(&cfg);
    let plain = decode_all(&small(400)).0;
    assert_eq!(truth.corrupt, corrupt);
    assert!(
        corrupt.too_short > 0
            && corrupt.bad_version > 0
            && corrupt.bad_count > 0
            && corrupt.length_mismatch > 0
    );
    assert_eq!(per.values().map(|s| s.datagrams).sum::<u64>(), 400, "extra, not instead");
    // The valid traffic does not depend on the ratio.
    assert_eq!(
        (truth.records, truth.packets, truth.octets),
        (plain.records, plain.packets, plain.octets)
    );
    assert_eq!(truth.exporters.iter().map(|e| e.corrupt).sum::<u64>(), corrupt.total());
}

#[test]
fn uptime_wraps_on_the_last_exporter() {
    let cfg = small(300);
    let mut uptimes: Vec<u32> = Vec::new();
    generate(&cfg, |d| {
        if d.exporter == cfg.exporters - 1 {
            uptimes.push(Datagram::parse(d.bytes).unwrap().header().sys_uptime);
        }
    })
    .unwrap();
    assert!(uptimes.windows(2).any(|w| w[1] < w[0]), "the 32-bit uptime wraps during the run");
}

#[test]
fn records_per_datagram_and_sampling() {
    let cfg = Config { records_per_datagram: 7, sampling: 100, ..small(50) };
    let (truth, ..) = decode_all(&cfg);
    assert_eq!(truth.records, 350);
    generate(&cfg, |d| {
        let dg = Datagram::parse(d.bytes).unwrap();
        assert_eq!(dg.count(), 7);
        assert_eq!(d.bytes.len(), HEADER_LEN + 7 * RECORD_LEN);
        assert_eq!(dg.header().sampling_interval(), 100);
    })
    .unwrap();
}

#[test]
fn tiny_runs_and_one_exporter() {
    for count in [1, 2, 3, 7] {
        let cfg = Config { exporters: 1, ..small(count) };
        let (truth, ..) = decode_all(&cfg);
        assert_eq!(truth.datagrams, count);
        assert_eq!(truth.records, count * 30);
    }
}

#[test]
fn default_rates_and_high_rates_decode() {
    // Default model (router time = wall time) and a stress-like rate.
    for cfg in [
        Config { count: Some(300), ..Config::default() },
        Config { count: Some(300), pps: 2_000_000, ..Config::default() },
    ] {
        let (truth, plan, ..) = decode_all(&cfg);
        assert_eq!(truth.records, 300 * 30, "{plan:?}");
    }
}

/// Exporter 0 of an unplanned (duration-bound) run, with its plan.
fn unplanned_gen() -> (Plan, ExporterGen) {
    let cfg = small(10);
    // Unpaced: the router clock assumes 1M datagrams/s, so scale it back to
    // 1000 datagrams per router second.
    let unplanned = Config {
        count: None,
        duration: Some(Duration::from_secs(1)),
        pps: 0,
        time_scale: Some(200_000.0),
        ..cfg.clone()
    };
    let plan = Plan::new(&unplanned, Mode::Live, 1_700_000_000 * S).unwrap();
    let setup = exporter_setup(&cfg, &plan, 0, true, IpAddr::V4(exporter_ip(&cfg, 0)), 1);
    let gen = ExporterGen::new(&setup);
    (plan, gen)
}

#[test]
fn unplanned_runs_drain_what_the_router_holds() {
    let (plan, mut gen) = unplanned_gen();
    assert_eq!(plan.total, None);
    let mut buf = Vec::new();
    let mut made = 0;
    for g in 0..500 {
        gen.next_datagram(plan.tick_ns(g), &mut buf).unwrap();
        made += 1;
    }
    assert!(gen.pending() > 0, "long sessions wait in the router");
    gen.finish(plan.tick_ns(500));
    let mut g = 500;
    while let Some(st) = gen.next_datagram(plan.tick_ns(g), &mut buf) {
        assert!(st.records >= 1);
        made += 1;
        g += 1;
        assert!(g < 10_000, "bounded drain");
    }
    assert!(!gen.has_more());
    assert_eq!(gen.pending(), 0);
    assert_eq!(gen.truth.datagrams, made);
    let conns = gen.connections().unwrap();
    assert_eq!(conns.iter().map(|c| c.records).sum::<u64>(), gen.truth.records);
}

#[test]
fn cli_defaults_are_config_defaults() {
    use clap::Parser;
    let cli = cli::Cli::try_parse_from(["loadgen"]).unwrap();
    assert_eq!(cli.to_config(), Config::default());
}

#[test]
fn a_bounded_finish_drops_what_it_cannot_cut_and_the_truth_stays_exact() {
    let (plan, mut gen) = unplanned_gen();
    let mut buf = Vec::new();
    // What the datagrams really carry, decoded: (records, packets).
    let mut sent = (0u64, 0u64);
    let tally = |b: &[u8], sent: &mut (u64, u64)| {
        let d = nfstitch::wire::Datagram::parse(b).unwrap();
        sent.0 += d.records().len() as u64;
        sent.1 += d.records().map(|r| r.packets() as u64).sum::<u64>();
    };
    for g in 0..1000 {
        gen.next_datagram(plan.tick_ns(g), &mut buf).unwrap();
        tally(&buf, &mut sent);
    }
    let held = gen.pending();
    assert!(held > 4096, "the router holds many records: {held}");
    // Time is up at the first check (after 1024 records): the rest is dropped.
    let mut asked = 0;
    let dropped = gen.finish_until(plan.tick_ns(1000), || {
        asked += 1;
        true
    });
    assert_eq!(asked, 1);
    assert_eq!(dropped as usize, held - 1024, "all but the first 1024 waiting records");
    let mut g = 1000;
    while gen.next_datagram(plan.tick_ns(g), &mut buf).is_some() {
        tally(&buf, &mut sent);
        g += 1;
        assert!(g < 10_000, "bounded drain");
    }
    assert!(!gen.has_more());
    assert_eq!(gen.pending(), 0);
    // The truth counts what was sent (the dropped records are not in it)...
    assert_eq!(sent, (gen.truth.records, gen.truth.packets));
    // ...and what was made, connection by connection too.
    let conns = gen.connections().unwrap();
    assert_eq!(conns.iter().map(|c| c.records).sum::<u64>(), gen.truth.records);
    assert_eq!(conns.iter().map(|c| c.packets).sum::<u64>(), gen.truth.packets);
}
