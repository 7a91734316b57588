//! The IPv6 slot family (issue 18 item 4): IPv6 flows merge, end by idle,
//! FIN + linger and eviction like IPv4 ones, keep their addresses exactly,
//! and never collide with IPv4 flows of the same ports; sums over emitted
//! flows equal sums over records with both families mixed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;
const FIN: u8 = 0x01;
const ACK: u8 = 0x10;

fn cfg(linger_s: u64, idle_s: u64, max_flows: usize) -> ShardConfig {
    ShardConfig { key: KeySpec::default(), linger_ns: linger_s * S, idle_ns: idle_s * S, max_flows }
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xdead, 0xbeef, 0, 0, 0xcafe, last))
}

/// An IPv6 record 2001:db8:dead:beef::cafe:1 -> ...:2, port `sport` -> 443.
fn rec6(sport: u16, flags: u8, packets: u64) -> FlowRecord {
    FlowRecord {
        exporter: IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        engine_type: 0,
        engine_id: 0,
        sampling: 0,
        src_addr: v6(1),
        dst_addr: v6(2),
        nexthop: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 9)),
        input: 3,
        output: 4,
        packets,
        octets: packets * 1000,
        first_ns: T0,
        last_ns: T0,
        src_port: sport,
        dst_port: 443,
        tcp_flags: flags,
        proto: 6,
        tos: 0,
        src_as: 64500,
        dst_as: 64501,
        src_mask: 48,
        dst_mask: 64,
        end_reason: 0,
    }
}

/// The same record as IPv4 (10.0.0.1 -> 10.0.0.2), same exporter and ports.
fn rec4(sport: u16, flags: u8, packets: u64) -> FlowRecord {
    FlowRecord {
        src_addr: Ipv4Addr::new(10, 0, 0, 1).into(),
        dst_addr: Ipv4Addr::new(10, 0, 0, 2).into(),
        nexthop: Ipv4Addr::new(10, 0, 0, 254).into(),
        ..rec6(sport, flags, packets)
    }
}

fn at(shard: &mut Shard, t: u64, r: Option<&FlowRecord>, out: &mut Vec<Flow>) {
    shard.advance(t, out);
    if let Some(r) = r {
        shard.apply(t, r, out);
    }
}

#[test]
fn ipv6_records_merge_into_one_flow_with_their_addresses() {
    let mut sh = Shard::new(cfg(310, 1860, 100), T0);
    let mut out = vec![];
    let mut r = rec6(1000, ACK, 3);
    at(&mut sh, T0, Some(&r), &mut out);
    r.first_ns = T0 - S;
    r.last_ns = T0 + 2 * S;
    r.tcp_flags = 0x02;
    at(&mut sh, T0 + S, Some(&r), &mut out);
    at(&mut sh, T0 + 2 * S, Some(&r), &mut out);
    assert_eq!((sh.len(), sh.len_v6(), sh.wheel_len()), (1, 1, 1));
    sh.flush(T0 + 3 * S, &mut out);
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!((f.records, f.packets, f.octets), (3, 9, 9000));
    assert_eq!((f.first_ns, f.last_ns, f.tcp_flags), (T0 - S, T0 + 2 * S, ACK | 0x02));
    assert_eq!(f.key, KeySpec::default().key_of(&rec6(1000, ACK, 3)));
    assert_eq!((f.key.src, f.key.dst), (v6(1), v6(2)));
    let want = rec6(1000, ACK, 3);
    assert_eq!(
        (f.rec.src_addr, f.rec.dst_addr, f.rec.nexthop),
        (want.src_addr, want.dst_addr, want.nexthop)
    );
    assert_eq!((f.rec.exporter, f.rec.input, f.rec.output), (want.exporter, 3, 4));
    assert_eq!(
        (f.rec.src_as, f.rec.dst_as, f.rec.src_mask, f.rec.dst_mask),
        (64500, 64501, 48, 64)
    );
    assert_eq!((f.rec.src_port, f.rec.dst_port, f.rec.proto), (1000, 443, 6));
    assert_eq!((f.start_ns, f.end_reason), (T0, EndReason::Shutdown));
    assert_eq!(sh.stats().records, 3);
}

#[test]
fn ipv6_flow_ends_idle() {
    let mut sh = Shard::new(cfg(310, 60, 100), T0);
    let mut out = vec![];
    at(&mut sh, T0, Some(&rec6(1, ACK, 1)), &mut out);
    at(&mut sh, T0 + 50 * S, Some(&rec6(1, ACK, 1)), &mut out);
    at(&mut sh, T0 + 110 * S - 1_000_000, None, &mut out);
    assert!(out.is_empty(), "ended before its idle deadline: {out:?}");
    assert_eq!(sh.next_deadline().map(|d| d <= T0 + 110 * S), Some(true));
    at(&mut sh, T0 + 110 * S, None, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].end_reason, out[0].end_ns, out[0].records),
        (EndReason::Idle, T0 + 110 * S, 2)
    );
    assert_eq!(out[0].seen_ns, T0 + 50 * S);
    assert!(sh.is_empty() && sh.wheel_len() == 0 && sh.len_v6() == 0);
}

#[test]
fn ipv6_fin_lingers_then_ends_and_keeps_the_exporters_reason() {
    let mut sh = Shard::new(cfg(10, 1860, 100), T0);
    let mut out = vec![];
    at(&mut sh, T0, Some(&rec6(1, ACK, 1)), &mut out);
    at(&mut sh, T0 + S, Some(&rec6(1, FIN | ACK, 1)), &mut out);
    let mut forced = rec6(2, 0, 1);
    forced.end_reason = FORCED_END;
    at(&mut sh, T0 + 2 * S, Some(&forced), &mut out);
    at(&mut sh, T0 + 11 * S - 1, None, &mut out);
    assert!(out.is_empty(), "ended before the linger: {out:?}");
    at(&mut sh, T0 + 11 * S, None, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].end_reason, out[0].end_ns, out[0].records),
        (EndReason::Fin, T0 + 11 * S, 2)
    );
    at(&mut sh, T0 + 12 * S, None, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!((out[1].end_reason, out[1].exporter_end_reason), (EndReason::Fin, FORCED_END));
}

#[test]
fn ipv4_and_ipv6_flows_with_the_same_ports_do_not_collide() {
    let mut sh = Shard::new(cfg(310, 1860, 100), T0);
    let mut out = vec![];
    // Also an IPv4-mapped IPv6 pair and the IPv4-compatible one: each its own key.
    let mut mapped = rec6(1, ACK, 100);
    mapped.src_addr = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
    mapped.dst_addr = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped());
    let mut compat = mapped;
    compat.src_addr = IpAddr::V6(Ipv6Addr::from_bits(0x0a00_0001));
    compat.dst_addr = IpAddr::V6(Ipv6Addr::from_bits(0x0a00_0002));
    for i in 0..3 {
        at(&mut sh, T0 + i * S, Some(&rec4(1, ACK, 1)), &mut out);
        at(&mut sh, T0 + i * S, Some(&rec6(1, ACK, 10)), &mut out);
        at(&mut sh, T0 + i * S, Some(&mapped), &mut out);
        at(&mut sh, T0 + i * S, Some(&compat), &mut out);
    }
    assert_eq!((sh.len(), sh.len_v6()), (4, 3));
    sh.flush(T0 + 5 * S, &mut out);
    let mut got: Vec<(IpAddr, u64, u64)> =
        out.iter().map(|f| (f.rec.src_addr, f.records, f.packets)).collect();
    got.sort();
    let mut want = vec![
        (rec4(1, 0, 0).src_addr, 3, 3),
        (v6(1), 3, 30),
        (mapped.src_addr, 3, 300),
        (compat.src_addr, 3, 300),
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(out.iter().all(|f| f.key == KeySpec::default().key_of(&f.rec)));
}

#[test]
fn ipv6_flows_are_evicted_under_the_memory_cap_with_ipv4_ones() {
    // Cap 4 over both families: 2 busy IPv4 flows and a stream of one-record
    // IPv6 flows; the cap holds for both together, the least recently updated
    // (the IPv6 one-record flows) go, and every record is in one flow.
    let mut sh = Shard::new(cfg(310, 1860, 4), T0);
    let mut out = vec![];
    let (mut records, mut packets) = (0, 0);
    for i in 0..200u16 {
        let t = T0 + i as u64 * 1_000_000;
        for r in [rec4(1, ACK, 1), rec4(2, ACK, 2), rec6(100 + i, ACK, 5)] {
            at(&mut sh, t, Some(&r), &mut out);
            records += 1;
            packets += r.packets;
            assert!(sh.len() <= 4, "{} flows held over a cap of 4", sh.len());
        }
    }
    assert!(out.len() >= 190, "evicted {}", out.len());
    assert!(out.iter().all(|f| f.end_reason == EndReason::Evicted));
    assert!(out.iter().all(|f| f.rec.src_addr.is_ipv6()), "a busy IPv4 flow was evicted");
    // An IPv4 flood now: the idle IPv6 flows go too.
    for i in 0..10u16 {
        at(&mut sh, T0 + S, Some(&rec4(1000 + i, ACK, 1)), &mut out);
        records += 1;
        packets += 1;
    }
    assert_eq!(sh.len_v6(), 0, "idle IPv6 flows outlived a flood of IPv4 ones");
    assert_eq!(sh.len(), 4);
    sh.flush(T0 + 2 * S, &mut out);
    assert_eq!(out.iter().map(|f| f.records).sum::<u64>(), records);
    assert_eq!(out.iter().map(|f| f.packets).sum::<u64>(), packets);
    assert_eq!(sh.stats().flows_total(), out.len() as u64);
}

#[test]
fn a_key_without_addresses_has_one_flow_over_both_families() {
    // `exporter,proto,sport,dport`: an IPv4 and an IPv6 record of the same
    // ports are one key (as FlowKey says), whichever family came first.
    let key: KeySpec = "exporter,proto,sport,dport".parse().unwrap();
    for v6_first in [false, true] {
        let mut sh = Shard::new(ShardConfig { key, ..cfg(310, 1860, 100) }, T0);
        let mut out = vec![];
        let (a, b) = if v6_first {
            (rec6(7, ACK, 1), rec4(7, ACK, 2))
        } else {
            (rec4(7, ACK, 1), rec6(7, ACK, 2))
        };
        at(&mut sh, T0, Some(&a), &mut out);
        at(&mut sh, T0 + S, Some(&b), &mut out);
        at(&mut sh, T0 + 2 * S, Some(&a), &mut out);
        assert_eq!(sh.len(), 1, "v6 first: {v6_first}");
        sh.flush(T0 + 3 * S, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].records, out[0].packets), (3, 4));
        assert_eq!(out[0].rec.src_addr, a.src_addr, "the first record's address");
        assert_eq!(out[0].key, key.key_of(&a));
        assert_eq!(out[0].key, key.key_of(&b));
    }
    // Keeping only the destination: an IPv6 record whose destination is
    // IPv4 (a mix no decoder makes) shares the IPv4 record's flow.
    let key: KeySpec = "proto,dst,dport".parse().unwrap();
    let mut sh = Shard::new(ShardConfig { key, ..cfg(310, 1860, 100) }, T0);
    let mut out = vec![];
    let mut mixed = rec6(9, ACK, 1);
    mixed.dst_addr = rec4(9, ACK, 1).dst_addr;
    at(&mut sh, T0, Some(&mixed), &mut out);
    at(&mut sh, T0, Some(&rec4(9, ACK, 2)), &mut out);
    at(&mut sh, T0, Some(&rec6(9, ACK, 4)), &mut out);
    assert_eq!((sh.len(), sh.len_v6()), (2, 2));
    sh.flush(T0 + S, &mut out);
    let mut got: Vec<(FlowKey, u64)> = out.iter().map(|f| (f.key, f.packets)).collect();
    got.sort();
    let mut want = vec![(key.key_of(&mixed), 3), (key.key_of(&rec6(9, ACK, 4)), 4)];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(out.iter().find(|f| f.packets == 3).unwrap().rec.src_addr, mixed.src_addr);
}

/// A record of family `fam` (0: IPv4, 1: IPv6, 2: IPv6 source and IPv4
/// destination) over a few addresses and ports.
fn mixed_rec(fam: u8, a: u8, port: u16, fin: bool, p: u64, e: u8) -> FlowRecord {
    let mut r = if fam == 0 { rec4(port, ACK, p) } else { rec6(port, ACK, p) };
    if fam == 0 {
        r.src_addr = Ipv4Addr::new(10, 0, 0, a).into();
    } else {
        r.src_addr = v6(a as u16);
    }
    if fam == 2 {
        r.dst_addr = Ipv4Addr::new(10, 0, 0, 2).into();
    }
    if fin {
        r.tcp_flags |= FIN;
    }
    r.exporter = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + e % 2));
    r
}

proptest! {
    /// Both families mixed, random times, a small cap, several key specs:
    /// every record lands in exactly one emitted flow (sums over flows equal
    /// sums over records), the cap holds, no key has two flows at once, and
    /// a batch applied in one call equals the records applied one by one.
    #[test]
    fn conservation_over_both_families(
        dgs in proptest::collection::vec(
            (0u64..400_000, proptest::collection::vec((0u8..3, 1u8..4, 0u16..4, any::<bool>(), 1u64..1000, 0u8..2), 0..12)),
            1..40),
        max_flows in 1usize..16,
        linger in 0u64..400,
        idle in 1u64..2000,
        spec in 0usize..4,
    ) {
        let key: KeySpec = ["exporter,proto,src,sport,dst,dport", "proto,src,sport,dst,dport", "exporter,sport,dport", "dst,dport"][spec].parse().unwrap();
        let c = ShardConfig { key, ..cfg(linger, idle, max_flows) };
        let (mut sh, mut b) = (Shard::new(c, T0), Shard::new(c, T0));
        let (mut out, mut out_b) = (vec![], vec![]);
        let (mut all, mut segs) = (vec![], vec![]);
        let mut t = T0;
        let (mut recs, mut pkts, mut octs) = (0u64, 0u64, 0u64);
        for (dt_ms, rs) in dgs {
            t += dt_ms * 1_000_000;
            if !rs.is_empty() {
                sh.advance(t, &mut out);
            }
            for (fam, a, port, fin, p, e) in rs {
                let r = mixed_rec(fam, a, port, fin, p, e);
                sh.apply(t, &r, &mut out);
                all.push(r);
                recs += 1;
                pkts += r.packets;
                octs += r.octets;
                prop_assert!(sh.len() <= max_flows);
                prop_assert_eq!(sh.wheel_len(), sh.len());
            }
            segs.push((all.len(), t));
        }
        sh.advance(t, &mut out);
        b.apply_segments(all.as_slice(), &segs, &mut out_b);
        sh.flush(t, &mut out);
        b.flush(t, &mut out_b);
        prop_assert_eq!(out.iter().map(|f| f.records).sum::<u64>(), recs);
        prop_assert_eq!(out.iter().map(|f| f.packets).sum::<u64>(), pkts);
        prop_assert_eq!(out.iter().map(|f| f.octets).sum::<u64>(), octs);
        prop_assert_eq!(sh.stats().flows_total(), out.len() as u64);
        prop_assert_eq!((sh.stats().records, sh.stats().packets, sh.stats().octets), (recs, pkts, octs));
        prop_assert_eq!(sh.contexts_len(), 0);
        let mut by_key: HashMap<FlowKey, Vec<(u64, u64)>> = HashMap::new();
        for f in &out {
            prop_assert!(f.start_ns <= f.seen_ns && f.seen_ns <= f.end_ns);
            prop_assert_eq!(f.key, key.key_of(&f.rec));
            by_key.entry(f.key).or_default().push((f.start_ns, f.end_ns));
        }
        for spans in by_key.values_mut() {
            spans.sort();
            for w in spans.windows(2) {
                prop_assert!(w[0].1 <= w[1].0, "overlapping flows {:?}", w);
            }
        }
        let k = |f: &Flow| (f.end_ns, f.key, f.start_ns);
        out.sort_by_key(k);
        out_b.sort_by_key(k);
        prop_assert_eq!(out, out_b);
    }
}
