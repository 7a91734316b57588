//! Unit tests of the v9/IPFIX decoder: one per rule, over datagrams built
//! here field by field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

const SECS: u32 = 1_700_000_000;
const UPTIME: u32 = 10_000;
const DOMAIN: u32 = 7;
const EXP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn be(v: u64, n: usize) -> Vec<u8> {
    v.to_be_bytes()[8 - n..].to_vec()
}

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    [&id.to_be_bytes()[..], &(4 + body.len() as u16).to_be_bytes(), body].concat()
}

/// A template record of plain (enterprise 0) fields.
fn tpl(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let f: Vec<_> = fields.iter().map(|&(ie, len)| (0, ie, len)).collect();
    tpl_e(id, &f)
}

/// An IPFIX template record; a non-zero enterprise sets the enterprise bit.
fn tpl_e(id: u16, fields: &[(u32, u16, u16)]) -> Vec<u8> {
    let mut b = [id.to_be_bytes(), (fields.len() as u16).to_be_bytes()].concat();
    for &(pen, ie, len) in fields {
        let ie = if pen != 0 { ie | 0x8000 } else { ie };
        b.extend([ie.to_be_bytes(), len.to_be_bytes()].concat());
        if pen != 0 {
            b.extend(pen.to_be_bytes());
        }
    }
    b
}

fn v9(count: u16, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut b = [9u16.to_be_bytes(), count.to_be_bytes()].concat();
    for w in [UPTIME, SECS, 1, DOMAIN] {
        b.extend(w.to_be_bytes());
    }
    b.extend(sets.concat());
    b
}

fn ipfix(sets: &[Vec<u8>]) -> Vec<u8> {
    let body = sets.concat();
    let mut b = [10u16.to_be_bytes(), (16 + body.len() as u16).to_be_bytes()].concat();
    for w in [SECS, 1, DOMAIN] {
        b.extend(w.to_be_bytes());
    }
    b.extend(body);
    b
}

fn decode(d: &mut Decoder, bytes: &[u8]) -> (DatagramSummary, Vec<TemplatedRecord>) {
    let mut recs = Vec::new();
    let s = d.decode(EXP, bytes, &mut |r| recs.push(r)).expect("accepted");
    (s, recs)
}

/// src addr, dst addr, src port, dst port, proto, packets, octets: the v4 basics.
const BASIC: [(u16, u16); 7] = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4)];

fn basic(src: u8, packets: u32, octets: u32) -> Vec<u8> {
    [&[10, 0, 0, src][..], &[10, 0, 0, 99], &1000u16.to_be_bytes(), &80u16.to_be_bytes(), &[6]]
        .concat()
        .into_iter()
        .chain(packets.to_be_bytes())
        .chain(octets.to_be_bytes())
        .collect()
}

#[test]
fn v9_template_then_data_in_one_datagram_with_padding() {
    let mut d = Decoder::default();
    let mut data = [basic(1, 3, 300), basic(2, 4, 400)].concat();
    data.extend([0, 0, 0]); // flowset padding to a multiple of 4
    let dg = v9(3, &[set(0, &tpl(256, &BASIC)), set(256, &data)]);
    let (s, recs) = decode(&mut d, &dg);
    assert_eq!((s.templates, s.flow_records, s.padding_bytes), (1, 2, 3));
    assert!(!s.count_mismatch());
    assert_eq!(s.header.sequence, 1);
    assert_eq!(s.header.domain, DOMAIN);
    let r = recs[1];
    assert_eq!(r.src_addr, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!((r.src_port, r.dst_port, r.proto, r.packets, r.octets), (1000, 80, 6, 4, 400));
    assert_eq!((r.time_source, r.first_ns), (TimeSource::Export, SECS as u64 * 1_000_000_000));
    assert_eq!(d.cache().get(EXP, DOMAIN, 256).and_then(Plan::record_len), Some(21));

    // A datagram whose tail is zeros (PAN-OS) is padding, not a bad set.
    let mut dg = v9(1, &[set(256, &basic(3, 1, 1))]);
    dg.extend([0; 40]);
    let (s, recs) = decode(&mut d, &dg);
    assert_eq!((s.flow_records, s.padding_bytes, recs.len()), (1, 40, 1));

    // Zeros after the last template of a set are padding too (IPFIX, where
    // a zero id and count could otherwise read as a withdrawal).
    let t = [tpl(256, &[(2, 4)]), vec![0; 4]].concat();
    let (s, _) = decode(&mut d, &ipfix(&[set(2, &t)]));
    assert_eq!((s.templates, s.withdrawals, s.rejected_total(), s.padding_bytes), (1, 0, 0, 4));
}

#[test]
fn a_too_small_v9_count_does_not_stop_the_walk() {
    let mut d = Decoder::default();
    let dg = v9(1, &[set(0, &tpl(256, &BASIC)), set(256, &basic(1, 1, 1))]);
    let (s, recs) = decode(&mut d, &dg);
    assert_eq!((s.flow_records, recs.len()), (1, 1));
    assert!(s.count_mismatch());
}

#[test]
fn variable_length_fields_with_one_and_three_byte_prefixes() {
    let mut d = Decoder::default();
    // octets, a variable-length enterprise string, then the source port.
    let t = tpl_e(300, &[(0, 1, 4), (5951, 1, 0xffff), (0, 7, 2)]);
    let short = [&7u32.to_be_bytes()[..], &[3, b'a', b'b', b'c'], &53u16.to_be_bytes()].concat();
    let long_val = vec![b'x'; 300];
    let long =
        [&9u32.to_be_bytes()[..], &[255], &300u16.to_be_bytes(), &long_val, &54u16.to_be_bytes()]
            .concat();
    let dg = ipfix(&[set(2, &t), set(300, &[short, long].concat())]);
    let (s, recs) = decode(&mut d, &dg);
    assert_eq!(
        d.cache().get(EXP, DOMAIN, 300).map(|p| (p.record_len(), p.min_len())),
        Some((None, 7))
    );
    assert_eq!(s.flow_records, 2);
    assert_eq!((recs[0].octets, recs[0].src_port), (7, 53));
    assert_eq!((recs[1].octets, recs[1].src_port), (9, 54));

    // A value whose length runs past the set is a counted reject, not a panic.
    let bad = [&1u32.to_be_bytes()[..], &[255, 0x10, 0], &[0; 8]].concat();
    let (s, recs) = decode(&mut d, &ipfix(&[set(300, &bad)]));
    assert_eq!((s.flow_records, s.rejected("record_overrun"), recs.len()), (0, 1, 0));
}

#[test]
fn enterprise_elements_are_skipped_unless_reverse() {
    let mut d = Decoder::default();
    // Enterprise 9 element 1 is not octetDeltaCount; 29305 element 1 is its reverse.
    let t = tpl_e(
        256,
        &[(0, 8, 4), (0, 12, 4), (0, 2, 4), (9, 1, 4), (0, 1, 4), (29305, 1, 4), (29305, 2, 2)],
    );
    let rec = [
        &[10, 0, 0, 1][..],
        &[10, 0, 0, 2],
        &5u32.to_be_bytes(),
        &999u32.to_be_bytes(),
        &500u32.to_be_bytes(),
        &70u32.to_be_bytes(),
        &2u16.to_be_bytes(),
    ]
    .concat();
    let (s, recs) = decode(&mut d, &ipfix(&[set(2, &t), set(256, &rec)]));
    assert!(d.cache().get(EXP, DOMAIN, 256).unwrap().is_biflow());
    assert_eq!((s.flow_records, s.reverse_records), (1, 1));
    let (f, r) = (recs[0], recs[1]);
    assert_eq!((f.direction, f.packets, f.octets), (Direction::Forward, 5, 500));
    assert_eq!((r.direction, r.packets, r.octets), (Direction::Reverse, 2, 70));
    assert_eq!((r.src_addr, r.dst_addr), (f.dst_addr, f.src_addr));

    // A biflow without reverse traffic stays one record.
    let none = [&rec[..20], &[0; 6]].concat();
    let (s, recs) = decode(&mut d, &ipfix(&[set(256, &none)]));
    assert_eq!((s.flow_records, s.reverse_records, recs.len()), (1, 0, 1));
}

#[test]
fn templates_are_replaced_and_withdrawn() {
    let mut d = Decoder::default();
    decode(&mut d, &ipfix(&[set(2, &tpl(256, &[(2, 4)]))]));
    // Same id, new layout: one byte of packets then four of octets.
    let (s, _) = decode(&mut d, &ipfix(&[set(2, &tpl(256, &[(2, 1), (1, 4)]))]));
    assert_eq!(s.templates, 1);
    assert_eq!(d.cache().len(), 1);
    let (_, recs) = decode(&mut d, &ipfix(&[set(256, &[9, 0, 0, 1, 0])]));
    assert_eq!((recs[0].packets, recs[0].octets), (9, 256));

    // Withdraw it: its data is now without template.
    let (s, _) = decode(&mut d, &ipfix(&[set(2, &[1, 0, 0, 0])]));
    assert_eq!((s.withdrawals, d.cache().len()), (1, 0));
    let (s, recs) = decode(&mut d, &ipfix(&[set(256, &[9, 0, 0, 1, 0])]));
    assert_eq!((s.data_sets_no_template, s.no_template_bytes, recs.len()), (1, 5, 0));
    assert_eq!(d.missing_sets(), [16], "the set's offset, for holding it");

    // Withdraw all data templates of the domain (template id 2), keeping options ones.
    let opt = [&260u16.to_be_bytes()[..], &[0, 2, 0, 1], &[1, 46, 0, 4, 0, 34, 0, 4]].concat();
    decode(
        &mut d,
        &ipfix(&[set(2, &[tpl(257, &[(2, 4)]), tpl(258, &[(1, 4)])].concat()), set(3, &opt)]),
    );
    assert_eq!(d.cache().len(), 3);
    // Template id 3 in a template set is neither a template nor the set's
    // withdraw-all id: refused, nothing removed (the kind is the set's).
    let (s, _) = decode(&mut d, &ipfix(&[set(2, &[0, 3, 0, 0])]));
    assert_eq!((s.rejected("template_reserved_id"), d.cache().len()), (1, 3));
    let (s, _) = decode(&mut d, &ipfix(&[set(2, &[0, 2, 0, 0])]));
    assert_eq!((s.withdrawals, s.templates_withdrawn, d.cache().len()), (1, 2, 1));
    assert_eq!(d.cache().get(EXP, DOMAIN, 260).map(Plan::kind), Some(TemplateKind::Options));
    // And id 3 in an options template set withdraws the options templates.
    decode(&mut d, &ipfix(&[set(3, &[0, 3, 0, 0])]));
    assert!(d.cache().is_empty());
}

#[test]
fn templates_belong_to_their_exporter_and_domain() {
    let mut d = Decoder::default();
    decode(&mut d, &v9(1, &[set(0, &tpl(256, &BASIC))]));
    let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let data = v9(1, &[set(256, &basic(1, 1, 1))]);
    let s = d.decode(other, &data, &mut |_| panic!("no template for this exporter")).unwrap();
    assert_eq!(s.data_sets_no_template, 1);
    let mut other_domain = data.clone();
    other_domain[19] = 8;
    let (s, _) = decode(&mut d, &other_domain);
    assert_eq!(s.data_sets_no_template, 1);
    assert_eq!(decode(&mut d, &data).0.flow_records, 1);
}

#[test]
fn caps_refuse_and_count() {
    let limits = Limits {
        max_exporters: 1,
        max_templates_per_exporter: 2,
        max_fields: 3,
        ..Limits::default()
    };
    let mut d = Decoder::new(limits);
    let four = tpl(256, &[(1, 4), (2, 4), (4, 1), (5, 1)]);
    let tpls = [four, tpl(257, &[(1, 4)]), tpl(258, &[(1, 4)]), tpl(259, &[(1, 4)])].concat();
    let (s, _) = decode(&mut d, &v9(4, &[set(0, &tpls)]));
    assert_eq!(s.templates, 2);
    assert_eq!(s.rejected("template_too_many_fields"), 1);
    assert_eq!(s.rejected("cache_full"), 1);
    assert_eq!(d.cache().len(), 2);
    // Replacing a held template is not refused by the cap.
    assert_eq!(decode(&mut d, &v9(1, &[set(0, &tpl(257, &[(2, 4)]))])).0.templates, 1);
    // A second exporter's data and garbage create no state; its template is
    // refused by the exporter cap (counted), the datagram still accepted.
    let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let s = d.decode(other, &v9(1, &[set(300, &[0; 8])]), &mut |_| {}).unwrap();
    assert_eq!((s.data_sets_no_template, d.cache().exporters()), (1, 1));
    let s = d.decode(other, &v9(1, &[set(0, &tpl(256, &[(1, 4)]))]), &mut |_| {}).unwrap();
    assert_eq!((s.templates, s.rejected("exporters_full")), (0, 1));
    assert!(!DecodeError::ExportersFull.rejects_datagram());
    assert_eq!(d.cache().exporters(), 1);
    assert!(!d.cache().knows(other));
}

#[test]
fn data_without_template_creates_no_exporter_state() {
    let mut d = Decoder::new(Limits { max_exporters: 2, ..Limits::default() });
    for n in 0..50u8 {
        let spoofed = IpAddr::V4(Ipv4Addr::new(198, 51, 100, n));
        d.decode(spoofed, &v9(1, &[set(256, &[0; 12])]), &mut |_| {}).unwrap();
    }
    assert_eq!(d.cache().exporters(), 0, "data from 50 sources filled nothing");
    let (s, _) = decode(&mut d, &v9(1, &[set(0, &tpl(256, &BASIC))]));
    assert_eq!((s.templates, d.cache().exporters()), (1, 1));
}

#[test]
fn held_sets_decode_once_their_template_arrives() {
    let mut d = Decoder::default();
    let data = v9(2, &[set(256, &basic(1, 7, 70)), set(257, &basic(1, 8, 80))]);
    let (s, recs) = decode(&mut d, &data);
    assert_eq!((s.data_sets_no_template, recs.len()), (2, 0));
    let mut pending = d.missing_sets().to_vec();
    decode(&mut d, &v9(1, &[set(0, &tpl(256, &BASIC))]));
    let mut got = Vec::new();
    let s = d.decode_sets(EXP, &data, &mut pending, &mut |r| got.push(r)).unwrap();
    assert_eq!((s.flow_records, got.len(), pending.len()), (1, 1, 1));
    assert_eq!((got[0].packets, got[0].octets), (7, 70));
    decode(&mut d, &v9(1, &[set(0, &tpl(257, &BASIC))]));
    let s = d.decode_sets(EXP, &data, &mut pending, &mut |r| got.push(r)).unwrap();
    assert_eq!((s.flow_records, pending.len(), got[1].packets), (1, 0, 8));
}

#[test]
fn field_lengths_that_cannot_hold_an_element_are_counted() {
    let mut d = Decoder::default();
    // An IPv4 source of 2 bytes (ignored) then packets of 4.
    let (s, _) = decode(&mut d, &ipfix(&[set(2, &tpl(256, &[(8, 2), (2, 4)]))]));
    assert_eq!((s.templates, s.field_length_ignored), (1, 1));
    // A variable-length IPv6 source of 3 bytes in each record.
    let (s, _) = decode(&mut d, &ipfix(&[set(2, &tpl(257, &[(27, 0xffff), (2, 4)]))]));
    assert_eq!(s.field_length_ignored, 0);
    let rec = [&[3, 1, 2, 3][..], &[0, 0, 0, 5]].concat();
    let (s, recs) = decode(&mut d, &ipfix(&[set(257, &[rec.clone(), rec].concat())]));
    assert_eq!((s.flow_records, s.field_length_ignored, recs[0].packets), (2, 2, 5));
}

#[test]
fn broken_framing_rejects_the_datagram_and_changes_nothing() {
    let mut d = Decoder::default();
    let good = set(0, &tpl(256, &BASIC));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0, 9, 0], "too_short"),
        (vec![0], "too_short"),
        (ipfix(&[])[..12].to_vec(), "too_short"),
        (v9(0, &[])[..19].to_vec(), "too_short"),
        ([&[0, 5][..], &[0; 30]].concat(), "bad_version"),
        ([ipfix(std::slice::from_ref(&good)), vec![0]].concat(), "length_mismatch"),
        (v9(1, &[good.clone(), vec![1, 0, 0, 2, 0, 0]]), "set_too_short"),
        (v9(1, &[good.clone(), vec![1, 0, 0, 9, 0, 0, 0, 0]]), "set_overrun"),
    ];
    for (bytes, reason) in cases {
        let e = d.decode(EXP, &bytes, &mut |_| panic!("no record")).unwrap_err();
        assert_eq!(e.reason(), reason, "{e}");
        assert!(e.rejects_datagram());
        assert!(!e.to_string().is_empty());
    }
    assert!(d.cache().is_empty(), "a rejected datagram taught a template");
    assert_eq!(d.cache().exporters(), 0);
}

#[test]
fn bad_templates_and_sets_are_skipped_and_counted() {
    let mut d = Decoder::default();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (v9(1, &[set(7, &[0; 4])]), "reserved_set"),
        (v9(1, &[set(0, &[0, 9, 0, 1, 0, 1, 0, 4])]), "template_reserved_id"),
        (ipfix(&[set(2, &[0, 9, 0, 0])]), "template_reserved_id"),
        (v9(1, &[set(0, &tpl(256, &[]))]), "template_no_fields"),
        (v9(1, &[set(0, &tpl(256, &[(1, 4), (2, 4)])[..10])]), "template_overrun"),
        (v9(1, &[set(1, &[1, 0, 0, 3, 0, 4, 0, 1, 0, 4])]), "template_bad_scope"),
        (ipfix(&[set(3, &[1, 0, 0, 1, 0, 0, 0, 1, 0, 4])]), "template_bad_scope"),
        (v9(1, &[set(0, &tpl(256, &[(1, 0), (2, 0)]))]), "template_empty_record"),
        (v9(1, &[set(0, &tpl(300, &[(1, 8)])), set(300, &[0; 5])]), "record_overrun"),
    ];
    for (bytes, reason) in cases {
        let (s, recs) = decode(&mut d, &bytes);
        assert_eq!((s.rejected(reason), s.rejected_total()), (1, 1), "{reason}: {s:?}");
        assert!(recs.is_empty());
    }
    // One bad template does not hide a good one after it.
    let (s, _) = decode(&mut d, &v9(2, &[set(0, &[tpl(301, &[]), tpl(302, &[(1, 4)])].concat())]));
    assert_eq!((s.templates, s.rejected("template_no_fields")), (1, 1));
    // Nor does a reserved id or too many fields, whose length is known; a
    // broken record (fields past the set) ends the set.
    let bad = [0u8, 9, 0, 1, 0, 1, 0, 4];
    let many = tpl(303, &[(1, 4); 300]);
    let good = tpl(304, &[(1, 4)]);
    let (s, _) = decode(&mut d, &v9(3, &[set(0, &[&bad[..], &many, &good].concat())]));
    assert_eq!((s.templates, s.rejected_total()), (1, 2), "{s:?}");
    let cut = tpl(305, &[(1, 4), (2, 4)]);
    let (s, _) = decode(&mut d, &v9(2, &[set(0, &[&good[..], &cut[..10]].concat())]));
    assert_eq!((s.templates, s.rejected("template_overrun")), (1, 1));
}

#[test]
fn counters_of_one_to_eight_bytes_and_totals_kept_apart() {
    let mut d = Decoder::default();
    for n in 1..=8u16 {
        let t = tpl(256 + n, &[(2, n), (1, n)]);
        let v = (1u64 << (8 * n - 1)) | 5;
        let rec = [be(v, n as usize), be(v - 1, n as usize)].concat();
        let (_, recs) = decode(&mut d, &ipfix(&[set(2, &t), set(256 + n, &rec)]));
        assert_eq!((recs[0].packets, recs[0].octets), (v, v - 1), "{n} bytes");
    }
    // Totals only (Cisco ASA): deltas stay 0, the totals are kept and counted.
    let t = tpl(300, &[(8, 4), (85, 8)]);
    let rec = [vec![10, 0, 0, 1], be(888, 8)].concat();
    let (s, recs) = decode(&mut d, &v9(2, &[set(0, &t), set(300, &rec)]));
    let r = recs[0];
    assert_eq!((r.packets, r.octets, r.octets_total, r.packets_total), (0, 0, Some(888), None));
    assert!(r.counters_are_totals());
    assert_eq!(s.total_only_records, 1);
    // Both (vIPtela): not total-only.
    let t = tpl(301, &[(1, 4), (85, 4)]);
    let (s, recs) = decode(&mut d, &ipfix(&[set(2, &t), set(301, &[0, 0, 0, 7, 0, 0, 0, 7])]));
    assert_eq!((recs[0].octets, recs[0].octets_total, s.total_only_records), (7, Some(7), 0));
}

#[test]
fn v9_uptime_times_wrap_like_v5() {
    let mut d = Decoder::default();
    let t = tpl(256, &[(22, 4), (21, 4)]);
    // First just before the 32-bit uptime wrapped, last 1 s before export.
    let rec = [0xffff_ff00u32.to_be_bytes(), (UPTIME - 1000).to_be_bytes()].concat();
    let (_, recs) = decode(&mut d, &v9(2, &[set(0, &t), set(256, &rec)]));
    let export = SECS as u64 * 1_000_000_000;
    let r = recs[0];
    assert_eq!(r.time_source, TimeSource::Uptime);
    assert_eq!(r.last_ns, export - 1_000_000_000);
    assert_eq!(r.first_ns, export - (UPTIME as u64 + 0x100) * 1_000_000);
}

#[test]
fn ipfix_times_in_every_unit() {
    let mut d = Decoder::default();
    let unix = 1_700_000_000u64;
    let ntp = (unix + 2_208_988_800) << 32;
    let half = 1u64 << 31; // 0.5 s as an NTP fraction
                           // (element, length, value), the time it means, and its source.
    type Case = ((u16, u16, Vec<u8>), u64, TimeSource);
    let cases: Vec<Case> = vec![
        ((150, 4, be(unix, 4)), unix * 1_000_000_000, TimeSource::Absolute),
        (
            (152, 8, be(unix * 1000 + 250, 8)),
            unix * 1_000_000_000 + 250_000_000,
            TimeSource::Absolute,
        ),
        (
            (154, 8, be(ntp | half | 0x7ff, 8)),
            unix * 1_000_000_000 + 500_000_000,
            TimeSource::Absolute,
        ),
        (
            (156, 8, be(ntp | half | 0x7ff, 8)),
            unix * 1_000_000_000 + 500_000_476,
            TimeSource::Absolute,
        ),
        (
            (158, 4, be(2_000_000, 4)),
            SECS as u64 * 1_000_000_000 - 2_000_000_000,
            TimeSource::Delta,
        ),
    ];
    for (i, ((ie, len, value), want, source)) in cases.into_iter().enumerate() {
        let id = 256 + i as u16;
        let (_, recs) = decode(&mut d, &ipfix(&[set(2, &tpl(id, &[(ie, len)])), set(id, &value)]));
        assert_eq!(
            (recs[0].first_ns, recs[0].last_ns, recs[0].time_source),
            (want, want, source),
            "IE {ie}"
        );
    }
    // sysUptime-relative in IPFIX: from systemInitTimeMilliseconds, in the
    // record or in an options record of the domain; without it, export time.
    let init = unix * 1000;
    let t = tpl(300, &[(22, 4), (21, 4)]);
    let rec = [be(1000, 4), be(3000, 4)].concat();
    let (_, recs) = decode(&mut d, &ipfix(&[set(2, &t), set(300, &rec)]));
    assert_eq!(recs[0].time_source, TimeSource::Export);
    let opt = [&301u16.to_be_bytes()[..], &[0, 2, 0, 1], &[0, 149, 0, 4, 0, 160, 0, 8]].concat();
    let opt_rec = [be(DOMAIN as u64, 4), be(init, 8)].concat();
    let (s, recs) = decode(&mut d, &ipfix(&[set(3, &opt), set(301, &opt_rec), set(300, &rec)]));
    assert_eq!((s.options_templates, s.options_records), (1, 1));
    let r = recs[0];
    assert_eq!((r.first_ns, r.last_ns), ((init + 1000) * 1_000_000, (init + 3000) * 1_000_000));
    assert_eq!(r.time_source, TimeSource::Uptime);
}

#[test]
fn v9_sampler_options_set_each_flows_interval() {
    let mut d = Decoder::default();
    // Options template: scope System (4 bytes), FLOW_SAMPLER_ID (1), RANDOM_INTERVAL (4).
    let opt = [&257u16.to_be_bytes()[..], &[0, 4, 0, 8], &[0, 1, 0, 4, 0, 48, 0, 1, 0, 50, 0, 4]]
        .concat();
    let samplers = [vec![0, 0, 0, 0, 1], be(2000, 4), vec![0, 0, 0, 0, 2], be(4000, 4)].concat();
    let t = tpl(260, &[(8, 4), (48, 1)]);
    let flows = [10, 0, 0, 1, 1, 10, 0, 0, 2, 2, 10, 0, 0, 3, 9];
    let dg = v9(7, &[set(1, &opt), set(257, &samplers), set(0, &t), set(260, &flows)]);
    let (s, recs) = decode(&mut d, &dg);
    assert_eq!((s.options_templates, s.options_records, s.flow_records), (1, 2, 3));
    let got: Vec<_> = recs.iter().map(|r| r.sampling_interval).collect();
    assert_eq!(got, [Some(2000), Some(4000), None]);
    assert_eq!(d.cache().sampling(EXP, DOMAIN, Some(2)), Some(4000));
    // v9 scope types are not elements: scope type 1 (System) is not octets.
    assert_eq!(d.cache().get(EXP, DOMAIN, 257).map(Plan::ignored), Some(0));
}

#[test]
fn ipfix_packet_interval_and_space_set_the_domain_interval() {
    let mut d = Decoder::default();
    // Scope observationDomainId; samplingPacketInterval 1, samplingPacketSpace 99.
    let opt = [&256u16.to_be_bytes()[..], &[0, 3, 0, 1], &[0, 149, 0, 4, 1, 49, 0, 4, 1, 50, 0, 4]]
        .concat();
    let rec = [be(DOMAIN as u64, 4), be(1, 4), be(99, 4)].concat();
    let flows = set(257, &basic(1, 1, 1));
    let dg = ipfix(&[set(3, &opt), set(256, &rec), set(2, &tpl(257, &BASIC)), flows]);
    let (_, recs) = decode(&mut d, &dg);
    assert_eq!(recs[0].sampling_interval, Some(100));
    // A record stating its own interval wins.
    let t = tpl(258, &[(8, 4), (34, 4)]);
    let (_, recs) = decode(&mut d, &ipfix(&[set(2, &t), set(258, &[10, 0, 0, 1, 0, 0, 0, 10])]));
    assert_eq!(recs[0].sampling_interval, Some(10));
}

#[test]
fn address_family_icmp_and_end_reason() {
    let mut d = Decoder::default();
    // Both families present (Procera): the non-zero one wins.
    let t = tpl(256, &[(8, 4), (27, 16), (28, 16), (4, 1), (139, 2), (136, 1), (62, 16)]);
    let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let rec = [
        &[0; 4][..],
        &v6.octets(),
        &Ipv6Addr::LOCALHOST.octets(),
        &[58],
        &0x8000u16.to_be_bytes(),
        &[2],
        &v6.octets(),
    ]
    .concat();
    let (_, recs) = decode(&mut d, &ipfix(&[set(2, &t), set(256, &rec)]));
    let r = recs[0];
    assert_eq!((r.src_addr, r.dst_addr), (IpAddr::V6(v6), IpAddr::V6(Ipv6Addr::LOCALHOST)));
    assert_eq!((r.proto, r.dst_port, r.end_reason), (58, 0x8000, 2));
    assert_eq!(r.nexthop, IpAddr::V6(v6));
    // A known element with a length it cannot have is skipped (H3C's 2-byte address).
    let t = tpl(257, &[(8, 2), (2, 4)]);
    let (_, recs) = decode(&mut d, &v9(2, &[set(0, &t), set(257, &[1, 2, 0, 0, 0, 5])]));
    assert_eq!((recs[0].src_addr, recs[0].packets), (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5));
    assert_eq!(d.cache().get(EXP, DOMAIN, 257).map(Plan::ignored), Some(1));
}

#[test]
fn every_reason_has_a_distinct_name() {
    let mut names = DecodeError::REASONS.to_vec();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), DecodeError::REASONS.len());
    assert_eq!(DecodeError::CacheFull.reason(), "cache_full");
    assert!(!DecodeError::CacheFull.rejects_datagram());
    assert_eq!(DecodeError::RecordOverrun { template_id: 1 }.reason(), "record_overrun");
}
