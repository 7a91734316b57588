//! Round trips of the v9/IPFIX encoder through nfstitch's own decoder:
//! headers, counts, sequence numbers, padding, every field of both
//! families, sampling options, and moving a message in time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::wire::template::{DatagramSummary, Decoder, TemplatedRecord, TimeSource};

const EXP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
/// An export time with a sub-second part, and one on a whole second.
const T: u64 = 1_700_000_123_456;
const T_WHOLE: u64 = 1_700_000_123_000;

fn v4(i: u32) -> FlowRecord {
    FlowRecord {
        src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
        dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)),
        nexthop: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1)),
        src_port: 40_000 + i as u16,
        dst_port: 443,
        proto: 6,
        tos: 0x28,
        tcp_flags: 0x1b,
        input: 70_000 + i,
        output: 3,
        packets: 5_000_000_000 + i as u64,
        octets: 7_000_000_000_000 + i as u64,
        first_ms: T - 60_000 - i as u64,
        last_ms: T - 1_000,
        src_as: 4_200_000_000,
        dst_as: 15169,
        src_mask: 24,
        dst_mask: 16,
        end_reason: end_reason::ACTIVE_TIMEOUT,
    }
}

fn v6(i: u16) -> FlowRecord {
    FlowRecord {
        src: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, i, 0, 0, 0, 1)),
        dst: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x35)),
        nexthop: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
        proto: 58,
        dst_port: 128 << 8,
        src_port: 0,
        tcp_flags: 0,
        src_mask: 56,
        dst_mask: 48,
        end_reason: end_reason::IDLE_TIMEOUT,
        ..v4(i as u32)
    }
}

fn decode(d: &mut Decoder, bytes: &[u8]) -> (DatagramSummary, Vec<TemplatedRecord>) {
    let mut recs = Vec::new();
    let s = d.decode(EXP, bytes, &mut |r| recs.push(r)).expect("accepted");
    assert_eq!(s.rejected_total(), 0, "{s:?}");
    (s, recs)
}

/// The fields both templates carry, as the decoder reports them.
fn check(r: &TemplatedRecord, want: &FlowRecord, v: Version, export_ms: u64) {
    assert_eq!((r.src_addr, r.dst_addr), (want.src, want.dst));
    assert_eq!(r.nexthop, want.nexthop);
    assert_eq!((r.src_port, r.dst_port, r.proto), (want.src_port, want.dst_port, want.proto));
    assert_eq!((r.tos, r.tcp_flags), (want.tos, want.tcp_flags));
    assert_eq!((r.packets, r.octets), (want.packets, want.octets));
    assert_eq!((r.input, r.output), (want.input, want.output));
    assert_eq!((r.src_as, r.dst_as), (want.src_as, want.dst_as));
    assert_eq!((r.src_mask, r.dst_mask), (want.src_mask, want.dst_mask));
    match v {
        Version::V9 => {
            // The v9 header carries whole export seconds: a decoder places
            // uptime-relative times against them, up to 999 ms early.
            let early = (export_ms % 1000) * 1_000_000;
            assert_eq!(r.time_source, TimeSource::Uptime);
            assert_eq!(r.first_ns, want.first_ms * 1_000_000 - early);
            assert_eq!(r.last_ns, want.last_ms * 1_000_000 - early);
            assert_eq!(r.end_reason, 0, "not in the v9 templates");
        }
        Version::Ipfix => {
            assert_eq!(r.time_source, TimeSource::Absolute);
            assert_eq!(
                (r.first_ns, r.last_ns),
                (want.first_ms * 1_000_000, want.last_ms * 1_000_000)
            );
            assert_eq!(r.end_reason, want.end_reason);
        }
    }
}

/// Walk the sets of a message: (id, length) of each.
fn sets(b: &[u8], hl: usize) -> Vec<(u16, usize)> {
    let mut v = Vec::new();
    let mut at = hl;
    while at < b.len() {
        let len = u16::from_be_bytes([b[at + 2], b[at + 3]]) as usize;
        v.push((u16::from_be_bytes([b[at], b[at + 1]]), len));
        at += len;
    }
    assert_eq!(at, b.len(), "sets tile the message");
    v
}

#[test]
fn both_versions_round_trip_every_field_of_both_families() {
    for v in [Version::V9, Version::Ipfix] {
        for export_ms in [T, T_WHOLE] {
            let recs = [v4(1), v4(2), v6(3), v6(4), v6(5), v4(6)];
            let mut enc = Encoder::new(v, 77, 1000);
            let mut out = Vec::new();
            let mut m = enc.message(&mut out, export_ms, 123_456_789);
            m.templates();
            m.sampling_template();
            m.sampling_record(512);
            for r in &recs {
                m.record(r);
            }
            let st = m.finish();
            assert_eq!(st.len, out.len());
            assert_eq!((st.template_records, st.options_records, st.flow_records), (3, 1, 6));
            assert_eq!(st.flow_sets, 3, "v4, v6, v4: a set per run of one family");
            assert_eq!(st.packets, recs.iter().map(|r| r.packets).sum::<u64>());
            let mut d = Decoder::default();
            let (s, got) = decode(&mut d, &out);
            assert_eq!((s.templates, s.options_templates, s.options_records), (2, 1, 1), "{v:?}");
            assert_eq!(s.flow_records, 6);
            assert!(!s.count_mismatch(), "v9 count = every record: {s:?}");
            assert_eq!(s.header.domain, 77);
            assert_eq!(s.header.sequence, 1000);
            assert_eq!(s.header.export_secs as u64, export_ms / 1000);
            assert_eq!(got.len(), recs.len());
            for (g, w) in got.iter().zip(&recs) {
                check(g, w, v, export_ms);
                assert_eq!(g.sampling_interval, Some(512), "learnt from the options record");
                assert_eq!(g.domain, 77);
            }
            let hl = if v == Version::V9 { V9_HEADER_LEN } else { IPFIX_HEADER_LEN };
            for (id, len) in sets(&out, hl) {
                if v == Version::V9 {
                    assert_eq!(len % 4, 0, "v9 flowsets are padded to 4 bytes: set {id}");
                } else if id >= 256 && id != TEMPLATE_SAMPLING {
                    let fam = if id == TEMPLATE_IPV4 { Family::V4 } else { Family::V6 };
                    assert_eq!((len - 4) % record_len(v, fam), 0, "IPFIX sets are unpadded");
                }
            }
            if v == Version::V9 {
                assert_eq!(
                    u16::from_be_bytes([out[2], out[3]]),
                    10,
                    "3 templates, 1 options, 6 flows"
                );
            } else {
                assert_eq!(u16::from_be_bytes([out[2], out[3]]) as usize, out.len());
            }
        }
    }
}

#[test]
fn record_lengths_are_the_vendors() {
    // Cisco IOS-XR/Juniper-shaped: 61 and 97 bytes in v9; IPFIX adds 8 for
    // the ms times, 1 for tcpControlBits and 1 for flowEndReason.
    assert_eq!(record_len(Version::V9, Family::V4), 61);
    assert_eq!(record_len(Version::V9, Family::V6), 97);
    assert_eq!(record_len(Version::Ipfix, Family::V4), 71);
    assert_eq!(record_len(Version::Ipfix, Family::V6), 107);
    // The templates announce exactly these layouts.
    for v in [Version::V9, Version::Ipfix] {
        let mut out = Vec::new();
        let mut enc = Encoder::new(v, 0, 0);
        let mut m = enc.message(&mut out, T, 0);
        m.templates();
        m.finish();
        let mut d = Decoder::default();
        decode(&mut d, &out);
        for f in [Family::V4, Family::V6] {
            let plan = d.cache().get(EXP, 0, template_id(f)).expect("learnt");
            assert_eq!(plan.record_len(), Some(record_len(v, f)));
            assert_eq!(plan.ignored(), 0, "every known element has a length it can hold");
        }
    }
}

#[test]
fn sequence_numbers_follow_each_rfc() {
    for v in [Version::V9, Version::Ipfix] {
        let mut enc = Encoder::new(v, 1, u32::MAX - 1);
        let mut d = Decoder::default();
        let mut seqs = Vec::new();
        // Template-only, 3 records, options record + 2 records, 1 record.
        for (i, n) in [0u32, 3, 2, 1].into_iter().enumerate() {
            let mut out = Vec::new();
            let mut m = enc.message(&mut out, T + i as u64 * 1000, 5000 + i as u32 * 1000);
            if i == 0 {
                m.templates();
                m.sampling_template();
            }
            if i == 2 {
                m.sampling_record(10);
            }
            for k in 0..n {
                m.record(&v4(k));
            }
            m.finish();
            seqs.push(decode(&mut d, &out).0.header.sequence);
        }
        let want = match v {
            // One per export packet, wrapping.
            Version::V9 => vec![u32::MAX - 1, u32::MAX, 0, 1],
            // Data records (flow and options) before the message.
            Version::Ipfix => vec![u32::MAX - 1, u32::MAX - 1, 1, 4],
        };
        assert_eq!(seqs, want, "{v:?}");
    }
}

#[test]
fn data_before_its_template_is_counted_by_the_decoder() {
    for v in [Version::V9, Version::Ipfix] {
        let mut enc = Encoder::new(v, 9, 0);
        let mut d = Decoder::default();
        let mut out = Vec::new();
        let mut m = enc.message(&mut out, T, 1);
        m.record(&v4(1));
        m.record(&v6(2));
        m.finish();
        let (s, recs) = decode(&mut d, &out);
        assert_eq!((s.data_sets_no_template, recs.len()), (2, 0));
        out.clear();
        let mut m = enc.message(&mut out, T + 10, 11);
        m.templates();
        m.record(&v6(2));
        m.finish();
        let (s, recs) = decode(&mut d, &out);
        assert_eq!((s.data_sets_no_template, s.templates, recs.len()), (0, 2, 1));
    }
}

#[test]
fn v9_times_cross_the_uptime_wrap() {
    let mut enc = Encoder::new(Version::V9, 0, 0);
    let mut out = Vec::new();
    // Booted 2^32 - 500 ms before the first packet: the record started
    // before the wrap, the export came after it.
    let mut m = enc.message(&mut out, T_WHOLE, 2_000);
    m.templates();
    let r = FlowRecord { first_ms: T_WHOLE - 3_000, last_ms: T_WHOLE - 10, ..v4(1) };
    m.record(&r);
    m.finish();
    let (_, got) = decode(&mut Decoder::default(), &out);
    check(&got[0], &r, Version::V9, T_WHOLE);
}

#[test]
fn padding_can_be_switched() {
    let mut out = Vec::new();
    let mut enc = Encoder::new(Version::Ipfix, 0, 0).padded(true);
    let mut m = enc.message(&mut out, T, 0);
    m.templates();
    m.sampling_template();
    m.record(&v4(1));
    m.finish();
    for (id, len) in sets(&out, IPFIX_HEADER_LEN) {
        assert_eq!(len % 4, 0, "set {id}");
    }
    let (s, recs) = decode(&mut Decoder::default(), &out);
    assert_eq!((recs.len(), s.padding_bytes), (1, 1));
    out.clear();
    let mut enc = Encoder::new(Version::V9, 0, 0).padded(false);
    let mut m = enc.message(&mut out, T, 0);
    m.templates();
    m.record(&v4(1));
    m.finish();
    assert_eq!(out.len(), V9_HEADER_LEN + 4 + 2 * (4 + 4 * 18) + 4 + 61, "no padding");
}

#[test]
fn moving_a_message_keeps_every_records_age() {
    for v in [Version::V9, Version::Ipfix] {
        let recs = [v4(1), v6(2), v4(3)];
        let mut enc = Encoder::new(v, 4, 50);
        let mut out = Vec::new();
        let mut m = enc.message(&mut out, T_WHOLE, u32::MAX - 1_000);
        m.templates();
        m.sampling_template();
        m.sampling_record(100);
        for r in &recs {
            m.record(r);
        }
        m.finish();
        let later = T_WHOLE + 3_600_000;
        // 1 h later the uptime has wrapped.
        let up = (u32::MAX - 1_000).wrapping_add(3_600_000);
        let n = move_message(&mut out, T_WHOLE, later, up, 12345);
        assert_eq!(n, 4, "3 flow records and 1 options record");
        let (s, got) = decode(&mut Decoder::default(), &out);
        assert_eq!(s.header.sequence, 12345);
        assert_eq!(s.header.export_secs as u64, later / 1000);
        if v == Version::V9 {
            assert_eq!(s.header.sys_uptime, Some(up));
        }
        for (g, w) in got.iter().zip(&recs) {
            let moved = FlowRecord {
                first_ms: w.first_ms + 3_600_000,
                last_ms: w.last_ms + 3_600_000,
                ..*w
            };
            check(g, &moved, v, later);
        }
    }
}

/// A record written field by field from the template lists: what the
/// encoder's straight writer must produce.
fn reference(v: Version, r: &FlowRecord, up: u32, export_ms: u64) -> Vec<u8> {
    let uptime = |t: u64| up.wrapping_sub(export_ms.wrapping_sub(t) as u32) as u64;
    let mut out = Vec::new();
    for &(id, len) in template(v, r.family()) {
        let addr = |a: IpAddr| match a {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let x: u64 = match id {
            8 | 27 => {
                out.extend(addr(r.src));
                continue;
            }
            12 | 28 => {
                out.extend(addr(r.dst));
                continue;
            }
            15 | 62 => {
                out.extend(addr(r.nexthop));
                continue;
            }
            1 => r.octets,
            2 => r.packets,
            4 => r.proto as u64,
            5 => r.tos as u64,
            6 => r.tcp_flags as u64,
            7 => r.src_port as u64,
            11 => r.dst_port as u64,
            9 | 29 => r.src_mask as u64,
            13 | 30 => r.dst_mask as u64,
            10 => r.input as u64,
            14 => r.output as u64,
            16 => r.src_as as u64,
            17 => r.dst_as as u64,
            22 => uptime(r.first_ms),
            21 => uptime(r.last_ms),
            152 => r.first_ms,
            153 => r.last_ms,
            136 => r.end_reason as u64,
            other => panic!("element {other} in a template the reference does not know"),
        };
        out.extend(&x.to_be_bytes()[8 - len as usize..]);
    }
    out
}

#[test]
fn the_straight_writer_follows_the_templates() {
    for v in [Version::V9, Version::Ipfix] {
        for r in [v4(3), v6(4)] {
            let mut enc = Encoder::new(v, 0, 0);
            let mut out = Vec::new();
            let mut m = enc.message(&mut out, T, 777);
            m.record(&r);
            m.finish();
            let hl = if v == Version::V9 { V9_HEADER_LEN } else { IPFIX_HEADER_LEN };
            let rl = record_len(v, r.family());
            assert_eq!(out[hl + 4..hl + 4 + rl], reference(v, &r, 777, T)[..], "{v:?} {r:?}");
        }
    }
}
