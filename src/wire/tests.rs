//! Tests of v5 decode and encode: decode∘encode round trips, random bytes
//! that never panic, typed rejections, uptime wrap.

use super::*;
use proptest::prelude::*;

pub(crate) fn arb_header() -> impl Strategy<Value = HeaderFields> {
    (
        any::<u32>(),
        any::<u32>(),
        0u32..1_000_000_000,
        any::<u32>(),
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
    )
        .prop_map(|(up, s, ns, seq, et, ei, samp)| HeaderFields {
            sys_uptime: up,
            unix_secs: s,
            unix_nsecs: ns,
            flow_sequence: seq,
            engine_type: et,
            engine_id: ei,
            sampling: samp,
        })
}

pub(crate) fn arb_record() -> impl Strategy<Value = RecordFields> {
    (
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>()),
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
        (any::<u16>(), any::<u16>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()),
        (any::<u16>(), any::<u16>(), any::<u8>(), any::<u8>(), any::<u16>()),
    )
        .prop_map(|(a, b, c, d)| RecordFields {
            src_addr: a.0,
            dst_addr: a.1,
            nexthop: a.2,
            input: a.3,
            output: a.4,
            packets: b.0,
            octets: b.1,
            first: b.2,
            last: b.3,
            src_port: c.0,
            dst_port: c.1,
            pad1: c.2,
            tcp_flags: c.3,
            proto: c.4,
            tos: c.5,
            src_as: d.0,
            dst_as: d.1,
            src_mask: d.2,
            dst_mask: d.3,
            pad2: d.4,
        })
}

proptest! {
    #[test]
    fn decode_encode_roundtrip(h in arb_header(), recs in proptest::collection::vec(arb_record(), 1..=30)) {
        let mut buf = Vec::new();
        let n = encode(&h, &recs, &mut buf);
        prop_assert_eq!(n, HEADER_LEN + RECORD_LEN * recs.len());
        let d = Datagram::parse(&buf).unwrap();
        let hd = d.header();
        prop_assert_eq!(hd.version, 5);
        prop_assert_eq!(hd.count as usize, recs.len());
        prop_assert_eq!(hd.sys_uptime, h.sys_uptime);
        prop_assert_eq!(hd.unix_secs, h.unix_secs);
        prop_assert_eq!(hd.unix_nsecs, h.unix_nsecs);
        prop_assert_eq!(hd.flow_sequence, h.flow_sequence);
        prop_assert_eq!(hd.engine_type, h.engine_type);
        prop_assert_eq!(hd.engine_id, h.engine_id);
        prop_assert_eq!(hd.sampling, h.sampling);
        prop_assert_eq!(hd.sampling_interval(), h.sampling & 0x3fff);
        let got: Vec<RecordFields> = d.records().map(|r| r.fields()).collect();
        prop_assert_eq!(got, recs);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600), lenient in any::<bool>()) {
        match Datagram::parse_with(&bytes, lenient) {
            Ok(d) => {
                prop_assert!(d.count() >= 1 && d.count() <= 30);
                let sum: u64 = d.records().map(|r| r.packets() as u64 + r.first() as u64).sum();
                let _ = sum;
                let _ = d.header().uptime_to_ns(0);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn random_v5_prefixed_bytes_never_panic(count in any::<u16>(), tail in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let mut bytes = vec![0, 5];
        bytes.extend_from_slice(&count.to_be_bytes());
        bytes.extend_from_slice(&tail);
        if let Ok(d) = Datagram::parse_with(&bytes, true) {
            prop_assert_eq!(d.count(), count as usize);
            prop_assert_eq!(d.records().count(), count as usize);
        }
    }
}

fn one(count: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    encode(&HeaderFields::default(), &vec![RecordFields::default(); count], &mut buf);
    buf
}

#[test]
fn rejections_are_typed() {
    assert_eq!(Datagram::parse(&[0; 23]).unwrap_err(), DecodeError::TooShort { len: 23 });
    let mut v9 = one(1);
    v9[1] = 9;
    assert_eq!(Datagram::parse(&v9).unwrap_err(), DecodeError::BadVersion { version: 9 });
    let mut ipfix = one(1);
    ipfix[1] = 10;
    assert_eq!(Datagram::parse(&ipfix).unwrap_err().reason(), "bad_version");
    for bad in [0u16, 31, 65535] {
        let mut b = one(1);
        b[2..4].copy_from_slice(&bad.to_be_bytes());
        assert_eq!(Datagram::parse(&b).unwrap_err(), DecodeError::BadCount { count: bad });
    }
    let mut long = one(2);
    long.push(0);
    assert_eq!(Datagram::parse(&long).unwrap_err().reason(), "length_mismatch");
    assert_eq!(Datagram::parse_with(&long, true).unwrap().count(), 2);
    let short = &one(2)[..24 + 48 + 10];
    assert_eq!(Datagram::parse(short).unwrap_err().reason(), "length_mismatch");
    assert_eq!(Datagram::parse_with(short, true).unwrap_err().reason(), "length_mismatch");
    assert_eq!(Datagram::parse(&one(30)).unwrap().count(), 30);
}

#[test]
fn uptime_wrap() {
    let h = Header {
        version: 5,
        count: 1,
        sys_uptime: 3381,
        unix_secs: 1_430_591_888,
        unix_nsecs: 0,
        flow_sequence: 0,
        engine_type: 0,
        engine_id: 0,
        sampling: 0,
    };
    // First = 0xFFFFFFFF is 1 ms before uptime 0, i.e. 3382 ms before export.
    assert_eq!(h.uptime_to_ns(0xFFFF_FFFF), 1_430_591_888_000_000_000 - 3_382_000_000);
    assert_eq!(h.uptime_to_ns(3381), 1_430_591_888_000_000_000);
    assert_eq!(h.uptime_to_ns(381), 1_430_591_888_000_000_000 - 3_000_000_000);
}

#[test]
fn sampling_split() {
    let mut h = Datagram::parse(&one(1)).unwrap().header();
    h.sampling = 0x4064; // mode 1, interval 100 (graylog netflow5.pcap)
    assert_eq!(h.sampling_mode(), SamplingMode::Deterministic);
    assert_eq!(h.sampling_interval(), 100);
    h.sampling = 0x03e8; // mode 0, interval 1000 (Juniper MX80)
    assert_eq!(h.sampling_mode(), SamplingMode::None);
    assert_eq!(h.sampling_interval(), 1000);
}
