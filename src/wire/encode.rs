//! The v5 encoder: the inverse of the decoder, used by tests and `loadgen`.

use super::{HEADER_LEN, MAX_RECORDS, RECORD_LEN};

/// Header fields to encode. `count` is taken from the record slice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderFields {
    pub sys_uptime: u32,
    pub unix_secs: u32,
    pub unix_nsecs: u32,
    pub flow_sequence: u32,
    pub engine_type: u8,
    pub engine_id: u8,
    /// Raw sampling field: mode << 14 | interval.
    pub sampling: u16,
}

/// Every field of a record, owned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RecordFields {
    pub src_addr: u32,
    pub dst_addr: u32,
    pub nexthop: u32,
    pub input: u16,
    pub output: u16,
    pub packets: u32,
    pub octets: u32,
    pub first: u32,
    pub last: u32,
    pub src_port: u16,
    pub dst_port: u16,
    pub pad1: u8,
    pub tcp_flags: u8,
    pub proto: u8,
    pub tos: u8,
    pub src_as: u16,
    pub dst_as: u16,
    pub src_mask: u8,
    pub dst_mask: u8,
    pub pad2: u16,
}

/// Append one datagram to `out` and return its length.
///
/// # Panics
/// If `records` is empty or holds more than 30 records: the encoder only
/// writes valid datagrams (malformed ones are made by editing the bytes).
pub fn encode(header: &HeaderFields, records: &[RecordFields], out: &mut Vec<u8>) -> usize {
    assert!(
        (1..=MAX_RECORDS).contains(&records.len()),
        "v5 datagrams carry 1..=30 records, got {}",
        records.len()
    );
    let start = out.len();
    let len = HEADER_LEN + RECORD_LEN * records.len();
    // Fixed offsets into zeroed space: a few stores per field, no growth checks.
    out.resize(start + len, 0);
    let b = &mut out[start..];
    put16(b, 0, 5);
    put16(b, 2, records.len() as u16);
    put32(b, 4, header.sys_uptime);
    put32(b, 8, header.unix_secs);
    put32(b, 12, header.unix_nsecs);
    put32(b, 16, header.flow_sequence);
    b[20] = header.engine_type;
    b[21] = header.engine_id;
    put16(b, 22, header.sampling);
    for (r, c) in records.iter().zip(b[HEADER_LEN..].chunks_exact_mut(RECORD_LEN)) {
        put32(c, 0, r.src_addr);
        put32(c, 4, r.dst_addr);
        put32(c, 8, r.nexthop);
        put16(c, 12, r.input);
        put16(c, 14, r.output);
        put32(c, 16, r.packets);
        put32(c, 20, r.octets);
        put32(c, 24, r.first);
        put32(c, 28, r.last);
        put16(c, 32, r.src_port);
        put16(c, 34, r.dst_port);
        c[36] = r.pad1;
        c[37] = r.tcp_flags;
        c[38] = r.proto;
        c[39] = r.tos;
        put16(c, 40, r.src_as);
        put16(c, 42, r.dst_as);
        c[44] = r.src_mask;
        c[45] = r.dst_mask;
        put16(c, 46, r.pad2);
    }
    len
}

#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
