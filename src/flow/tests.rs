//! Shard semantics (SEMANTICS D3, D4, D5, D10) with records applied at
//! chosen times, and a randomized conservation / exactly-once check.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;

const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;

fn cfg(linger_s: u64, idle_s: u64, max_flows: usize) -> ShardConfig {
    ShardConfig { key: KeySpec::default(), linger_ns: linger_s * S, idle_ns: idle_s * S, max_flows }
}

fn rec(sport: u16, flags: u8, packets: u64) -> FlowRecord {
    FlowRecord {
        exporter: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        engine_type: 0,
        engine_id: 0,
        sampling: 0,
        src_addr: Ipv4Addr::from(0x0a00_0001).into(),
        dst_addr: Ipv4Addr::from(0x0a00_0002).into(),
        nexthop: Ipv4Addr::from(0).into(),
        input: 1,
        output: 2,
        packets,
        octets: packets * 100,
        first_ns: T0,
        last_ns: T0,
        src_port: sport,
        dst_port: 80,
        tcp_flags: flags,
        proto: 6,
        tos: 0,
        src_as: 0,
        dst_as: 0,
        src_mask: 0,
        dst_mask: 0,
        end_reason: 0,
    }
}

/// Apply `r` at `t`, advancing first, as the pipeline does.
fn at(shard: &mut Shard, t: u64, r: Option<&FlowRecord>, out: &mut Vec<Flow>) {
    shard.advance(t, out);
    if let Some(r) = r {
        shard.apply(t, r, out);
    }
}

const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

#[test]
fn fin_lingers_then_ends() {
    let mut sh = Shard::new(cfg(310, 1860, 100), T0);
    let mut out = vec![];
    at(&mut sh, T0, Some(&rec(1, ACK, 1)), &mut out);
    at(&mut sh, T0 + 10 * S, Some(&rec(1, FIN | ACK, 1)), &mut out);
    at(&mut sh, T0 + 319 * S, None, &mut out);
    assert!(out.is_empty(), "ended before the linger: {out:?}");
    at(&mut sh, T0 + 320 * S, None, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].end_reason, EndReason::Fin);
    assert_eq!(out[0].end_ns, T0 + 320 * S);
    assert_eq!((out[0].records, out[0].packets, out[0].tcp_flags), (2, 2, FIN | ACK));
}

#[test]
fn d3_later_fin_extends_linger() {
    let mut sh = Shard::new(cfg(310, 1860, 100), T0);
    let mut out = vec![];
    at(&mut sh, T0, Some(&rec(1, FIN, 1)), &mut out);
    at(&mut sh, T0 + 300 * S, Some(&rec(1, RST, 1)), &mut out);
    at(&mut sh, T0 + 311 * S, None, &mut out);
    assert!(out.is_empty(), "the first FIN's deadline cut the flow: {out:?}");
    at(&mut sh, T0 + 610 * S, None, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].records, 2);
    assert_eq!(out[0].end_ns, T0 + 610 * S);
    assert_eq!(out[0].tcp_flags, FIN | RST);
}

#[test]
fn d3_new_flow_after_emission_has_its_own_deadline() {
    let mut sh = Shard::new(cfg(310, 1860, 100), T0);
    let mut out = vec![];
    at(&mut sh, T0, Some(&rec(1, FIN, 1)), &mut out);
    at(&mut sh, T0 + 310 * S, None, &mut out);
    assert_eq!(out.len(), 1);
    // Same key again, 1 s later: a new flow; the old deadline must not cut it.
    at(&mut sh, T0 + 311 * S, Some(&rec(1, ACK, 5)), &mut out);
    at(&mut sh, T0 + 311 * S + 1860 * S - 1, None, &mut out);
    assert_eq!(out.len(), 1, "new flow cut early: {out:?}");
    at(&mut sh, T0 + 311 * S + 1860 * S, None, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!((out[1].records, out[1].packets, out[1].end_reason), (1, 5, EndReason::Idle));
}

#[test]
fn d4_idle_counts_from_last_record() {
    let mut sh = Shard::new(cfg(310, 1860, 100), T0);
    let mut out = vec![];
    // A long flow: a record every 20 minutes for 2 hours must stay one flow.
    for i in 0..7 {
        at(&mut sh, T0 + i * 1200 * S, Some(&rec(7, ACK, 1)), &mut out);
    }
    assert!(out.is_empty(), "long flow cut: {out:?}");
    let last = T0 + 6 * 1200 * S;
    at(&mut sh, last + 1860 * S - S / 1000, None, &mut out);
    assert!(out.is_empty());
    at(&mut sh, last + 1860 * S, None, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].records, out[0].end_reason), (7, EndReason::Idle));
    assert_eq!(out[0].end_ns, last + 1860 * S);
}

#[test]
fn d5_flush_emits_each_flow_once_in_order() {
    let mut sh = Shard::new(cfg(310, 1860, 100), T0);
    let mut out = vec![];
    for p in [3u16, 1, 2] {
        let mut r = rec(p, FIN, 1);
        r.first_ns = T0 - p as u64 * S;
        at(&mut sh, T0, Some(&r), &mut out);
    }
    sh.flush(T0 + S, &mut out);
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|f| f.end_reason == EndReason::Shutdown));
    let ports: Vec<u16> = out.iter().map(|f| f.rec.src_port).collect();
    assert_eq!(ports, [3, 2, 1], "sorted by first");
    // Their pending FIN timers must not emit them again.
    at(&mut sh, T0 + 10_000 * S, None, &mut out);
    assert_eq!(out.len(), 3);
    assert_eq!(sh.stats().flows_total(), 3);
}

#[test]
fn d10_eviction_least_recently_updated_and_conserved() {
    let mut sh = Shard::new(cfg(310, 1860, 2), T0);
    let mut out = vec![];
    at(&mut sh, T0, Some(&rec(1, ACK, 1)), &mut out);
    at(&mut sh, T0 + S, Some(&rec(2, ACK, 2)), &mut out);
    at(&mut sh, T0 + 2 * S, Some(&rec(1, ACK, 4)), &mut out);
    at(&mut sh, T0 + 3 * S, Some(&rec(3, ACK, 8)), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rec.src_port, 2, "the least recently updated flow goes, not the oldest");
    assert_eq!((out[0].packets, out[0].end_reason), (2, EndReason::Evicted));
    assert_eq!(sh.len(), 2);
    sh.flush(T0 + 4 * S, &mut out);
    assert_eq!(out.iter().map(|f| f.packets).sum::<u64>(), 15);
    assert_eq!(sh.stats().flows[EndReason::Evicted as usize], 1);
}

/// A record of a random 5-tuple (xorshift64 state `x`).
fn random_rec(x: &mut u64) -> FlowRecord {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    let mut r = rec(*x as u16, ACK, 1);
    r.src_addr = Ipv4Addr::from((*x >> 16) as u32).into();
    r.dst_addr = Ipv4Addr::from((*x >> 48) as u32 | 0x0b00_0000).into();
    r
}

#[test]
fn d10_busy_flow_survives_a_flood_of_new_flows() {
    // A long-lived flow updated every 50 records among 100k one-record flows
    // of random 5-tuples, at a capacity of 1000: the flood churns the table
    // a hundred times over; creation order evicted the busy flow after 1000.
    let mut sh = Shard::new(cfg(310, 1860, 1000), T0);
    let mut out = vec![];
    let busy = rec(1, ACK, 1); // src 10.0.0.1: no random record has it with port 1 and dst 10.0.0.2
    at(&mut sh, T0, Some(&busy), &mut out);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut busy_records = 1;
    for i in 1..=100_000u64 {
        let t = T0 + i * 1_000_000;
        if i % 50 == 0 {
            at(&mut sh, t, Some(&busy), &mut out);
            busy_records += 1;
        } else {
            at(&mut sh, t, Some(&random_rec(&mut x)), &mut out);
        }
    }
    assert!(out.len() > 90_000, "the flood evicted {} flows", out.len());
    assert!(
        out.iter().all(|f| f.key != KeySpec::default().key_of(&busy)),
        "the busy flow was evicted"
    );
    sh.flush(T0 + 200 * S, &mut out);
    let f = out.iter().find(|f| f.key == KeySpec::default().key_of(&busy)).unwrap();
    assert_eq!((f.records, f.start_ns), (busy_records, T0), "one flow from start to end");
}

#[test]
fn d10_one_eviction_gives_at_most_32_second_chances() {
    // Every flow busy: the eviction re-queues the first 32 and evicts the 33rd.
    let mut sh = Shard::new(cfg(310, 1860, 100), T0);
    let mut out = vec![];
    for round in 0..2 {
        for p in 0..100u16 {
            at(&mut sh, T0 + round * S, Some(&rec(p, ACK, 1)), &mut out);
        }
    }
    at(&mut sh, T0 + 2 * S, Some(&rec(1000, ACK, 1)), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rec.src_port, 32);
    // The 32 re-queued ones lost their mark and joined the tail; the rest kept
    // theirs: the next evictions take 33..=64 (second chances again), then 65.
    at(&mut sh, T0 + 3 * S, Some(&rec(1001, ACK, 1)), &mut out);
    assert_eq!(out[1].rec.src_port, 65);
}

#[test]
fn key_fields_select_identity() {
    let origin: KeySpec = KeySpec::ORIGIN.parse().unwrap();
    let mut sh = Shard::new(ShardConfig { key: origin, ..cfg(310, 1860, 100) }, T0);
    let mut out = vec![];
    let a = rec(1, ACK, 1);
    let mut b = rec(1, ACK, 1);
    b.exporter = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    at(&mut sh, T0, Some(&a), &mut out);
    at(&mut sh, T0, Some(&b), &mut out);
    assert_eq!(sh.len(), 1, "origin key ignores the exporter");
    let mut sh = Shard::new(cfg(310, 1860, 100), T0);
    at(&mut sh, T0, Some(&a), &mut out);
    at(&mut sh, T0, Some(&b), &mut out);
    assert_eq!(sh.len(), 2, "default key separates exporters (D2)");
    assert!("proto,bogus".parse::<KeySpec>().is_err());
    assert!("src,src".parse::<KeySpec>().is_err());
    assert_eq!(KeySpec::default().to_string(), KeySpec::DEFAULT);
}

proptest! {
    /// Random records over a few keys at increasing times, with a small
    /// capacity: every record lands in exactly one emitted flow, sums are
    /// conserved, and no key has two flows alive at once.
    #[test]
    fn conservation_and_exactly_once(
        ops in proptest::collection::vec((0u16..12, any::<bool>(), 0u64..400_000, 1u64..1000), 1..400),
        max_flows in 1usize..16,
        linger in 0u64..400,
        idle in 1u64..2000,
    ) {
        let mut sh = Shard::new(cfg(linger, idle, max_flows), T0);
        let mut out = vec![];
        let mut t = T0;
        let (mut recs, mut pkts) = (0u64, 0u64);
        for (port, fin, dt_ms, p) in ops {
            t += dt_ms * 1_000_000;
            let r = rec(port, if fin { FIN } else { ACK }, p);
            at(&mut sh, t, Some(&r), &mut out);
            recs += 1;
            pkts += p;
            prop_assert!(sh.len() <= max_flows);
        }
        sh.flush(t, &mut out);
        prop_assert_eq!(out.iter().map(|f| f.records).sum::<u64>(), recs);
        prop_assert_eq!(out.iter().map(|f| f.packets).sum::<u64>(), pkts);
        prop_assert_eq!(sh.stats().flows_total(), out.len() as u64);
        prop_assert_eq!(sh.stats().records, recs);
        // Flows of one key never overlap in collector time.
        let mut by_key: HashMap<u16, Vec<(u64, u64)>> = HashMap::new();
        for f in &out {
            prop_assert!(f.start_ns <= f.seen_ns && f.seen_ns <= f.end_ns);
            by_key.entry(f.rec.src_port).or_default().push((f.start_ns, f.end_ns));
        }
        for spans in by_key.values_mut() {
            spans.sort();
            for w in spans.windows(2) {
                prop_assert!(w[0].1 <= w[1].0, "overlapping flows {:?}", w);
            }
        }
    }
}

proptest! {
    /// Emitting due flows in bounded chunks (the collector hands them to the
    /// writer FLOW_BATCH at a time) gives exactly what one unbounded
    /// `advance` gives, in the same order.
    #[test]
    fn bounded_advance_equals_advance(
        ops in proptest::collection::vec((0u16..3000, any::<bool>(), 0u64..3_000, 1u64..100), 1..600),
        chunk in 1usize..40,
    ) {
        let (mut a, mut b) = (Shard::new(cfg(1, 2, 100_000), T0), Shard::new(cfg(1, 2, 100_000), T0));
        let (mut out_a, mut out_b) = (vec![], vec![]);
        let mut t = T0;
        for (port, fin, dt_ms, p) in ops {
            t += dt_ms * 1_000_000;
            a.advance(t, &mut out_a);
            loop {
                let before = out_b.len();
                let more = b.advance_bounded(t, &mut out_b, chunk);
                prop_assert!(out_b.len() - before <= chunk);
                if !more {
                    break;
                }
                prop_assert!(b.next_deadline() == Some(b.now()));
            }
            let r = rec(port, if fin { FIN } else { ACK }, p);
            a.apply(t, &r, &mut out_a);
            b.apply_batch(t, std::slice::from_ref(&r), &mut out_b);
        }
        t += 10_000_000_000;
        a.advance(t, &mut out_a);
        while b.advance_bounded(t, &mut out_b, chunk) {}
        prop_assert_eq!(&out_a, &out_b);
        prop_assert!(a.is_empty() && b.is_empty());
    }
}

proptest! {
    /// A receive batch merged in one pipelined call, one segment per
    /// datagram, gives exactly what advance + apply record by record gives
    /// (evictions and timer expiries between datagrams included).
    #[test]
    fn segments_equal_record_by_record(
        dgs in proptest::collection::vec(
            (0u64..1_500, proptest::collection::vec((0u16..200, any::<bool>(), 1u64..50, 0u8..6), 0..40)),
            1..60),
        max_flows in 1usize..300,
        reserve in 0usize..400,
        origin_key in any::<bool>(),
    ) {
        // Records of several exporters and engines, so that context ids are
        // interned, released by evictions and expiries, and reused while the
        // pipeline's lookahead holds keys computed with them; with the
        // origin key (no exporter) records of several exporters share a flow.
        let key = if origin_key { KeySpec::ORIGIN.parse().unwrap() } else { KeySpec::default() };
        let c = ShardConfig { key, ..cfg(1, 2, max_flows) };
        let (mut a, mut b) = (Shard::new(c, T0), Shard::new(c, T0));
        b.reserve(reserve); // room made up front changes nothing
        let (mut out_a, mut out_b) = (vec![], vec![]);
        let (mut recs, mut segs) = (vec![], vec![]);
        let mut t = T0;
        for (dt_ms, rs) in dgs {
            t += dt_ms * 1_000_000;
            // A datagram without records moves the clock with the next one
            // (or at the end), as in the pipeline: the timer then empties
            // slots in the same order, and a full shard's eviction hand
            // (which runs over slot positions) meets the same flows.
            if !rs.is_empty() {
                a.advance(t, &mut out_a);
            }
            for (port, fin, p, e) in rs {
                let mut r = rec(port, if fin { FIN } else { ACK }, p);
                r.exporter = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + e % 3));
                r.engine_id = e / 3;
                a.apply(t, &r, &mut out_a);
                recs.push(r);
            }
            segs.push((recs.len(), t));
            prop_assert!(a.contexts_len() <= 2 * a.len() + 2, "contexts {} flows {}", a.contexts_len(), a.len());
        }
        a.advance(t, &mut out_a);
        b.apply_segments(recs.as_slice(), &segs, &mut out_b);
        let sums = |s: &Shard| (s.stats().records, s.stats().packets, s.stats().octets);
        prop_assert_eq!(sums(&a), sums(&b));
        prop_assert!(b.contexts_len() <= 2 * b.len(), "contexts {} flows {}", b.contexts_len(), b.len());
        a.flush(t, &mut out_a);
        b.flush(t, &mut out_b);
        // Flows due in the same tick may leave in another order when the
        // wheel is advanced in other steps (not a contract); nothing else differs.
        let key = |f: &Flow| (f.end_ns, f.key);
        out_a.sort_by_key(key);
        out_b.sort_by_key(key);
        prop_assert_eq!(out_a, out_b);
    }
}

#[test]
fn reserved_and_grown_slots_hold_every_flow() {
    // 9000 flows into room for 5000: the reserved chunks fill first, then the
    // shard grows past them; every flow comes back once with its sums.
    let mut sh = Shard::new(cfg(310, 1860, 1 << 20), T0);
    sh.reserve(5000);
    let mut out = vec![];
    for round in 1..=2u64 {
        for i in 0..9000u32 {
            let mut r = rec((i % 60_000) as u16, ACK, round);
            r.src_addr = Ipv4Addr::from(i).into();
            sh.apply(T0, &r, &mut out);
        }
    }
    assert_eq!(sh.len(), 9000);
    sh.flush(T0 + S, &mut out);
    assert_eq!(out.len(), 9000);
    assert!(out.iter().all(|f| f.records == 2 && f.packets == 3 && f.octets == 300));
    let mut srcs: Vec<u32> = out.iter().map(|f| ip4_bits(f.key.src)).collect();
    srcs.sort_unstable();
    assert!(srcs.iter().copied().eq(0..9000));
}

#[test]
fn wheel_holds_exactly_the_live_flows_under_eviction_flood() {
    // Evictions, FIN re-links and expiries: the wheel links every live flow
    // once and nothing else (no stale entries, so never a compaction).
    let mut sh = Shard::new(cfg(1, 3, 1000), T0);
    let mut out = vec![];
    for i in 0..200_000u32 {
        let mut r = rec((i % 65536) as u16, if i % 7 == 0 { FIN } else { ACK }, 1);
        r.src_addr = Ipv4Addr::from(i % 150_000).into();
        at(&mut sh, T0 + i as u64 * 100_000, Some(&r), &mut out);
        if i % 997 == 0 {
            assert_eq!(sh.wheel_len(), sh.len());
            assert!(sh.contexts_len() <= 2 * sh.len() + 2, "contexts {}", sh.contexts_len());
        }
    }
    assert_eq!(sh.len(), 1000);
    assert_eq!(sh.wheel_len(), 1000);
    assert_eq!(sh.stats().wheel_compactions, 0);
    sh.flush(T0 + 100 * S, &mut out);
    assert_eq!(out.iter().map(|f| f.records).sum::<u64>(), 200_000);
    assert_eq!(sh.wheel_len(), 0);
}

/// The bits of an IPv4 address (the tests' records are all IPv4).
fn ip4_bits(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(a) => a.to_bits(),
        IpAddr::V6(a) => panic!("IPv6 address {a} in an IPv4 test"),
    }
}

#[test]
fn a_key_without_some_fields_reports_the_first_records() {
    // Ports not in the key: records of two ports are one flow, its key has
    // no ports, and its record keeps the first one's ports, exporter and
    // attributes (the hot slot keeps the 5-tuple unmasked).
    let key: KeySpec = "exporter,proto,src,dst".parse().unwrap();
    let mut sh = Shard::new(ShardConfig { key, ..cfg(310, 1860, 100) }, T0);
    let mut out = vec![];
    let mut a = rec(1111, ACK, 1);
    (a.nexthop, a.src_as, a.dst_as, a.src_mask, a.tos) =
        (IpAddr::V4(Ipv4Addr::new(9, 9, 9, 9)), 70_000, 80_000, 24, 7);
    (a.input, a.output) = (100_000, 200_000);
    let b = rec(2222, ACK, 2);
    at(&mut sh, T0, Some(&a), &mut out);
    at(&mut sh, T0 + S, Some(&b), &mut out);
    assert_eq!(sh.len(), 1);
    sh.flush(T0 + 2 * S, &mut out);
    let f = &out[0];
    assert_eq!((f.key.sport, f.key.dport, f.records, f.packets), (0, 0, 2, 3));
    assert_eq!((f.rec.src_port, f.rec.dst_port), (1111, 80));
    assert_eq!((f.rec.src_addr, f.rec.dst_addr), (a.src_addr, a.dst_addr));
    assert_eq!((f.rec.nexthop, f.rec.src_as, f.rec.dst_as), (a.nexthop, 70_000, 80_000));
    assert_eq!((f.rec.input, f.rec.output, f.rec.tos, f.rec.src_mask), (100_000, 200_000, 7, 24));
    assert_eq!(f.key, key.key_of(&a));
}

#[test]
fn the_origin_is_the_first_records_exporter_engine_and_sampling() {
    // The origin key has no exporter: records of two exporters are one
    // flow; its record names the first exporter, engine and sampling.
    let key: KeySpec = KeySpec::ORIGIN.parse().unwrap();
    let mut sh = Shard::new(ShardConfig { key, ..cfg(310, 1860, 100) }, T0);
    let mut out = vec![];
    let mut a = rec(1, ACK, 1);
    (a.engine_type, a.engine_id, a.sampling) = (1, 2, 0x4064);
    let mut b = rec(1, ACK, 1);
    b.exporter = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    (b.engine_type, b.engine_id) = (3, 4);
    at(&mut sh, T0, Some(&a), &mut out);
    at(&mut sh, T0, Some(&b), &mut out);
    // A flow of the second exporter only, for contrast.
    let c = FlowRecord { src_port: 2, ..b };
    at(&mut sh, T0, Some(&c), &mut out);
    sh.flush(T0 + S, &mut out);
    assert_eq!(out.len(), 2);
    let f = out.iter().find(|f| f.rec.src_port == 1).unwrap();
    assert_eq!(f.records, 2);
    assert_eq!(f.key.exporter, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!((f.rec.exporter, f.rec.engine_type, f.rec.engine_id), (a.exporter, 1, 2));
    assert_eq!(f.rec.sampling, 0x4064);
    let g = out.iter().find(|f| f.rec.src_port == 2).unwrap();
    assert_eq!((g.rec.exporter, g.rec.engine_type, g.rec.engine_id), (b.exporter, 3, 4));
}

#[test]
fn seen_is_the_latest_record_to_the_millisecond() {
    let mut sh = Shard::new(cfg(310, 1860, 100), T0);
    let mut out = vec![];
    let t = T0 + 5 * S + 123_456; // not on a millisecond
    at(&mut sh, T0 + 1, Some(&rec(1, ACK, 1)), &mut out);
    at(&mut sh, t, Some(&rec(1, ACK, 1)), &mut out);
    at(&mut sh, t + 1860 * S + S, None, &mut out);
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(f.start_ns, T0 + 1);
    assert!(f.seen_ns >= t && f.seen_ns < t + 1_000_000, "seen {} for {t}", f.seen_ns);
    // The idle deadline is exactly D4's: seen + idle, rounded up to the ms.
    assert_eq!(f.end_ns, (t + 1860 * S).div_ceil(TICK_NS) * TICK_NS);
    // Evicted within the same millisecond as its record: seen <= end.
    let mut sh = Shard::new(cfg(310, 1860, 1), T0);
    at(&mut sh, t, Some(&rec(1, ACK, 1)), &mut out);
    at(&mut sh, t + 5, Some(&rec(2, ACK, 1)), &mut out);
    let e = out.last().unwrap();
    assert_eq!(e.end_reason, EndReason::Evicted);
    assert!(e.start_ns <= e.seen_ns && e.seen_ns <= e.end_ns, "{e:?}");
}

#[test]
fn deadlines_survive_clock_jumps_of_months() {
    // Deadlines are 32-bit ms ticks read back against the wheel's clock: a
    // jump of 100 days (over 2^32 ms is 49.7 days) must still end every
    // flow at its own deadline, in order, and a flow with the longest idle
    // timeout (just under 2^31 ms) too.
    const DAY: u64 = 86_400 * S;
    for idle in [1860 * S, MAX_TIMEOUT_NS] {
        let mut sh = Shard::new(ShardConfig { idle_ns: idle, ..cfg(310, 1860, 100) }, T0);
        let mut out = vec![];
        at(&mut sh, T0, Some(&rec(1, ACK, 1)), &mut out);
        at(&mut sh, T0 + S, Some(&rec(2, FIN, 1)), &mut out);
        at(&mut sh, T0 + 2 * S, Some(&rec(3, ACK, 1)), &mut out);
        at(&mut sh, T0 + 100 * DAY, None, &mut out);
        assert_eq!(out.len(), 3, "idle {idle}");
        let ends: Vec<(u16, u64, EndReason)> =
            out.iter().map(|f| (f.rec.src_port, f.end_ns, f.end_reason)).collect();
        assert_eq!(
            ends,
            [
                (2, T0 + S + 310 * S, EndReason::Fin),
                (1, T0 + idle.div_ceil(TICK_NS) * TICK_NS, EndReason::Idle),
                (3, T0 + 2 * S + idle.div_ceil(TICK_NS) * TICK_NS, EndReason::Idle),
            ]
        );
        // A new flow after the jump lives on the new clock.
        at(&mut sh, T0 + 100 * DAY, Some(&rec(4, ACK, 1)), &mut out);
        at(&mut sh, T0 + 100 * DAY + idle - S, None, &mut out);
        assert_eq!(out.len(), 3);
        at(&mut sh, T0 + 200 * DAY, None, &mut out);
        assert_eq!(out[3].end_ns, T0 + 100 * DAY + idle.div_ceil(TICK_NS) * TICK_NS);
    }
}

#[test]
#[should_panic(expected = "below 2^31 ms")]
fn an_idle_timeout_of_2_31_ms_is_refused() {
    let _ = Shard::new(ShardConfig { idle_ns: (1 << 31) * TICK_NS, ..cfg(310, 1860, 100) }, T0);
}
