//! Tests of the pairing stage and of what a connection says: partner keys
//! and the symmetric hash (IPv4 and IPv6), `conn_state` and history from
//! flags, the originator rules, uid stability, and the stage's exactly-once
//! emission, accounting and memory bound under any order of ends.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::flow::{FlowRecord, KeySpec};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A direction src:sport -> dst:dport that ended at `end` (collector ns),
/// last record at `seen`, with `flags` ORed and `first_flags` on its first record.
#[allow(clippy::too_many_arguments)]
fn flow(
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    flags: u8,
    first_flags: u8,
    first: u64,
    seen: u64,
    end: u64,
    reason: EndReason,
) -> Flow {
    let rec = FlowRecord {
        exporter: ip("192.0.2.1"),
        src_addr: ip(src),
        dst_addr: ip(dst),
        src_port: sport,
        dst_port: dport,
        proto: 6,
        tcp_flags: first_flags,
        packets: 1,
        octets: 40,
        first_ns: first,
        last_ns: first,
        engine_type: 0,
        engine_id: 0,
        sampling: 0,
        nexthop: crate::flow::V4_ZERO,
        input: 0,
        output: 0,
        tos: 0,
        src_as: 0,
        dst_as: 0,
        src_mask: 0,
        dst_mask: 0,
        end_reason: 0,
    };
    let key: KeySpec = KeySpec::DEFAULT.parse().unwrap();
    Flow {
        key: key.key_of(&rec),
        rec,
        records: 1,
        packets: 3,
        octets: 120 + sport as u64,
        tcp_flags: flags,
        first_ns: first,
        last_ns: first + 5,
        start_ns: seen,
        seen_ns: seen,
        end_ns: end,
        end_reason: reason,
        exporter_end_reason: 0,
    }
}

#[test]
fn conn_states_from_flags() {
    use ConnState::*;
    const F: u8 = 0x01;
    const S: u8 = 0x02;
    const R: u8 = 0x04;
    const A: u8 = 0x10;
    for (o, op, r, rp, want) in [
        (S | A | F, 5, S | A | F, 4, SF),
        (S, 1, R | A, 1, REJ),
        (S, 2, 0, 0, S0),
        (S | A, 3, S | A, 3, S1),
        (S | A | R, 3, S | A, 2, RSTO),
        (S | A, 3, S | A | R, 2, RSTR),
        (S | R, 2, 0, 0, RSTOS0),
        (A, 2, S | A | R, 2, RSTRH),
        (S | F, 2, 0, 0, SH),
        (A, 2, S | A | F, 2, SHR),
        (S | A | F, 3, S | A, 2, S2),
        (S | A, 3, S | A | F, 2, S3),
        (A, 9, A, 9, OTH),
        (A | R, 1, 0, 0, OTH),
    ] {
        assert_eq!(ConnState::from_flags(6, o, op, r, rp), want, "o {o:#x} r {r:#x}");
    }
    assert_eq!(ConnState::from_flags(17, 0, 1, 0, 1), SF);
    assert_eq!(ConnState::from_flags(17, 0, 1, 0, 0), S0);
    assert_eq!(ConnState::from_flags(17, 0, 0, 0, 1), SHR);
    assert_eq!(ConnState::from_flags(1, 0, 1, 0, 1), OTH);
}

#[test]
fn history_letters() {
    assert_eq!(History::new(6, false, 0x1b, 0x13).as_str(), "SsFf");
    assert_eq!(History::new(6, true, 0x02, 0x14).as_str(), "^Sr");
    assert_eq!(History::new(6, true, 0xff, 0xff).as_str(), "^SsFfRr");
    assert_eq!(History::new(17, false, 0, 0).as_str(), "");
}

#[test]
fn originator_rules() {
    let c = flow("10.0.0.1", 5000, "10.0.0.2", 80, 0x1b, 0x02, 10, 0, 0, EndReason::Fin);
    let s = flow("10.0.0.2", 80, "10.0.0.1", 5000, 0x1b, 0x12, 10, 0, 0, EndReason::Fin);
    // Rule 1: the SYN side, whatever ended first; not flipped (same time).
    for (a, b) in [(c, s), (s, c)] {
        let k = Conn::paired(a, b);
        assert_eq!((k.orig.rec.src_port, k.flipped), (5000, false));
    }
    // Rule 1 against the times: the SYN side was seen later: flipped.
    let mut late = c;
    late.first_ns = 20;
    let k = Conn::paired(s, late);
    assert_eq!((k.orig.rec.src_port, k.flipped), (5000, true));
    assert_eq!(k.history().as_str(), "^SsFf");
    // Rule 2: seen first, when neither first record is a bare SYN.
    let (mut a, mut b) = (c, s);
    a.rec.tcp_flags = 0x10;
    b.first_ns = 9;
    let k = Conn::paired(a, b);
    assert_eq!((k.orig.rec.src_port, k.flipped), (80, false));
    // Rule 3: the same time: the higher port, flipped mark.
    b.first_ns = 10;
    let k = Conn::paired(b, a);
    assert_eq!((k.orig.rec.src_port, k.flipped), (5000, true));
    assert_eq!(k.end_reason, EndReason::Fin);
}

#[test]
fn uid_is_stable_and_specific() {
    let c = Conn::unpaired(flow(
        "10.0.0.1",
        5000,
        "10.0.0.2",
        80,
        0x02,
        0x02,
        10,
        0,
        0,
        EndReason::Idle,
    ));
    let u = c.uid();
    assert_eq!(u, c.clone().uid());
    assert_eq!(u.as_str().len(), 18);
    assert!(
        u.as_str().starts_with('C') && u.as_str()[1..].chars().all(|ch| ch.is_ascii_alphanumeric())
    );
    // Fixed: the same input gives this uid in every run and version.
    assert_eq!(
        u.as_str(),
        conn::uid(ip("192.0.2.1"), 6, ip("10.0.0.1"), 5000, ip("10.0.0.2"), 80, 10).as_str()
    );
    let mut later = c.clone();
    later.orig.first_ns = 11;
    assert_ne!(later.uid(), u, "another first, another connection");
    let v6 = conn::uid(ip("::"), 6, ip("2001:db8::1"), 5000, ip("2001:db8::2"), 80, 10);
    assert_ne!(v6, u);
}

fn any_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(a.into())),
        any::<u128>().prop_map(|a| IpAddr::V6(a.into())),
    ]
}

fn any_key() -> impl Strategy<Value = FlowKey> {
    (
        any_addr(),
        any_addr(),
        any_addr(),
        any::<(u16, u16, u16, u32, u32, u8)>(),
        prop_oneof![Just(6u8), Just(17), Just(1), Just(58)],
    )
        .prop_map(|(exporter, src, dst, (engine, sport, dport, input, output, tos), proto)| {
            FlowKey { exporter, engine, proto, src, sport, dst, dport, tos, input, output }
        })
}

proptest! {
    /// The partner of the partner is the key itself (when it has one), and
    /// both directions hash alike: they meet in one shard, IPv4 or IPv6.
    #[test]
    fn partners_hash_alike(k in any_key()) {
        let p = partner(&k);
        prop_assert_eq!(symmetric_hash(&k), symmetric_hash(&p));
        // (ICMP: requests and answers of code 0; others have no partner.)
        if !(k.proto == 1 || k.proto == 58) || (icmp_answer(k.proto, k.dport).is_some() && k.dport & 0xff == 0) {
            prop_assert_eq!(partner(&p), k);
        }
        if k.proto == 6 {
            prop_assert_eq!((p.src, p.sport, p.dst, p.dport), (k.dst, k.dport, k.src, k.sport));
            prop_assert_eq!((p.input, p.output), (k.output, k.input));
        }
    }

    /// Any mix of connections (both directions, or one), ending in any
    /// order and at any times, with partners live or not: every direction
    /// in exactly one connection, directions of one connection together,
    /// sums kept, and never more waiting than the bound.
    #[test]
    fn every_direction_in_exactly_one_conn(
        conns in prop::collection::vec((any::<bool>(), any::<bool>(), 0u64..400, 0u64..400), 1..40),
        order in any::<u64>(),
        cap in 1usize..8,
        batch in 1usize..5,
    ) {
        let mut flows = Vec::new();
        for (i, &(both, v6, t1, t2)) in conns.iter().enumerate() {
            let (a, b) = if v6 {
                (format!("2001:db8::{:x}", i + 1), "2001:db8::ffff".to_string())
            } else {
                (format!("10.0.{}.{}", i / 200, i % 200 + 1), "10.9.9.9".to_string())
            };
            let reason = if t1 % 3 == 0 { EndReason::Idle } else { EndReason::Fin };
            flows.push(flow(&a, 1000 + i as u16, &b, 80, 0x1b, 0x02, t1, t1, t1 + 5, reason));
            if both {
                flows.push(flow(&b, 80, &a, 1000 + i as u16, 0x1b, 0x12, t2, t2, t2 + 5, EndReason::Idle));
            }
        }
        // Directions end in order of their end time, ties shuffled by `order`.
        flows.sort_by_key(|f| (f.end_ns, (f.key.sport as u64).wrapping_mul(order | 1) % 97));
        let total: u64 = flows.iter().map(|f| f.packets).sum();
        let mut p = Pairer::new(100, cap);
        let mut live: HashSet<FlowKey> = flows.iter().map(|f| f.key).collect();
        let mut out = Vec::new();
        for chunk in flows.chunks(batch) {
            let now = chunk.iter().map(|f| f.end_ns).max().unwrap();
            for f in chunk {
                live.remove(&f.key);
            }
            p.advance(now, |k| live.contains(k), &mut out);
            let mut v = chunk.to_vec();
            p.push(now, &mut v, |k| live.contains(k), &mut out);
            // Waiting for a partner that is not live: at most the cap; the
            // others each have a live partner.
            prop_assert!(p.deadlines.len() <= cap);
            let live_partners = p.waiting.keys().filter(|k| live.contains(&partner(k))).count();
            prop_assert_eq!(p.waiting() - p.deadlines.len(), live_partners);
        }
        p.advance(u64::MAX / 2, |_| false, &mut out);
        p.flush(&mut out);
        prop_assert_eq!(p.waiting(), 0);
        let mut seen = BTreeSet::new();
        for c in &out {
            prop_assert!(seen.insert(c.orig.key));
            if let Some(r) = &c.resp {
                prop_assert!(seen.insert(r.key));
                prop_assert_eq!(partner(&c.orig.key), r.key);
            }
        }
        prop_assert_eq!(seen.len(), flows.len(), "every direction once");
        let packets: u64 = out.iter().map(|c| c.orig.packets + c.resp_packets()).sum();
        prop_assert_eq!(packets, total);
        let s = p.stats();
        prop_assert_eq!(s.packets, total);
        prop_assert_eq!(s.conns(), out.len() as u64);
        // With room for all, every two-sided connection is paired.
        if cap >= flows.len() {
            let two = conns.iter().filter(|c| c.0).count() as u64;
            prop_assert_eq!(s.paired, two);
        }
    }
}

/// Directions whose partner never comes wait at most `cap` at once: past
/// it the earliest deadline goes alone early, counted.
#[test]
fn waiting_without_partner_is_bounded() {
    let mut p = Pairer::new(1_000_000, 4);
    let mut out = Vec::new();
    for i in 0..10u16 {
        let mut v =
            vec![flow("10.0.0.1", 2000 + i, "10.0.0.2", 80, 0x03, 0x02, 1, 1, 2, EndReason::Fin)];
        p.push(2, &mut v, |_| false, &mut out);
        assert!(p.waiting() <= 4);
    }
    assert_eq!((out.len(), p.stats().overflow), (6, 6));
    assert!(out.iter().all(|c| c.resp.is_none()));
    // A direction that ended idle has waited long enough: it goes at once.
    let mut v =
        vec![flow("10.0.0.3", 1, "10.0.0.4", 2, 0x10, 0x10, 1, 1, 1_000_002, EndReason::Idle)];
    p.push(1_000_002, &mut v, |_| false, &mut out);
    assert_eq!(out.len(), 7);
    p.advance(1_000_000, |_| false, &mut out);
    assert_eq!(out.len(), 7, "their wait is not over");
    p.advance(1_000_002, |_| false, &mut out);
    assert_eq!(out.len(), 7 + 4, "now it is");
    assert_eq!(p.waiting(), 0);
}

/// A direction whose partner is live waits without a deadline, however
/// long, and pairs when the partner ends.
#[test]
fn a_live_partner_is_waited_for() {
    let mut p = Pairer::new(100, 4);
    let mut out = Vec::new();
    let a = flow("2001:db8::1", 4000, "2001:db8::2", 443, 0x1b, 0x02, 1, 1, 10, EndReason::Fin);
    let b =
        flow("2001:db8::2", 443, "2001:db8::1", 4000, 0x12, 0x12, 2, 5000, 5100, EndReason::Idle);
    let bk = b.key;
    p.push(10, &mut vec![a], |k| *k == bk, &mut out);
    p.advance(4000, |k| *k == bk, &mut out);
    assert!(out.is_empty() && p.waiting() == 1);
    p.push(5100, &mut vec![b], |_| false, &mut out);
    assert_eq!(out.len(), 1);
    let c = &out[0];
    assert_eq!(
        (c.orig.rec.src_port, c.end_reason, c.state()),
        (4000, EndReason::Idle, ConnState::S2)
    );
}

/// `Shard::contains` (what the stage asks of a partner) finds exactly the
/// live flows, under the default key and under one that leaves fields out,
/// and forgets a flow once it has ended.
#[test]
fn shard_contains_finds_live_flows_only() {
    use crate::flow::{Shard, ShardConfig};
    const S: u64 = 1_000_000_000;
    let specs = [KeySpec::DEFAULT, "proto,src,dst,sport,dport", "proto,src,dst,sport,dport,tos"];
    for (spec, (a, b)) in specs
        .iter()
        .flat_map(|s| [(*s, ("10.0.0.1", "10.0.0.2")), (*s, ("2001:db8::1", "10.0.0.2"))])
        .chain(specs.iter().map(|s| (*s, ("2001:db8::1", "2001:db8::2"))))
    {
        let key: KeySpec = spec.parse().unwrap();
        let cfg = ShardConfig { key, linger_ns: S, idle_ns: 60 * S, max_flows: 1000 };
        let mut shard = Shard::new(cfg, 0);
        let f = flow(a, 40000, b, 80, 0x02, 0x02, S, S, S, EndReason::Idle);
        let mut out = Vec::new();
        shard.apply(S, &f.rec, &mut out);
        let k = key.key_of(&f.rec);
        let at = format!("{spec} {a} {b}");
        assert!(shard.contains(&k), "{at}: the live flow");
        assert!(!shard.contains(&partner(&k)), "{at}: no reverse flow yet");
        let mut other = f.rec;
        other.dst_port = 81;
        assert!(!shard.contains(&key.key_of(&other)), "{at}: another port");
        let r = flow(b, 80, a, 40000, 0x12, 0x12, S, S, S, EndReason::Idle);
        shard.apply(2 * S, &r.rec, &mut out);
        assert!(shard.contains(&partner(&k)), "{at}: the reverse flow, live");
        shard.advance(100 * S, &mut out);
        assert_eq!(out.len(), 2, "{at}: both idle out");
        assert!(!shard.contains(&k) && !shard.contains(&partner(&k)), "{at}: ended flows");
    }
}
