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
    out.reserve(HEADER_LEN + RECORD_LEN * records.len());
    out.extend_from_slice(&5u16.to_be_bytes());
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&header.sys_uptime.to_be_bytes());
    out.extend_from_slice(&header.unix_secs.to_be_bytes());
    out.extend_from_slice(&header.unix_nsecs.to_be_bytes());
    out.extend_from_slice(&header.flow_sequence.to_be_bytes());
    out.push(header.engine_type);
    out.push(header.engine_id);
    out.extend_from_slice(&header.sampling.to_be_bytes());
    for r in records {
        out.extend_from_slice(&r.src_addr.to_be_bytes());
        out.extend_from_slice(&r.dst_addr.to_be_bytes());
        out.extend_from_slice(&r.nexthop.to_be_bytes());
        out.extend_from_slice(&r.input.to_be_bytes());
        out.extend_from_slice(&r.output.to_be_bytes());
        out.extend_from_slice(&r.packets.to_be_bytes());
        out.extend_from_slice(&r.octets.to_be_bytes());
        out.extend_from_slice(&r.first.to_be_bytes());
        out.extend_from_slice(&r.last.to_be_bytes());
        out.extend_from_slice(&r.src_port.to_be_bytes());
        out.extend_from_slice(&r.dst_port.to_be_bytes());
        out.push(r.pad1);
        out.push(r.tcp_flags);
        out.push(r.proto);
        out.push(r.tos);
        out.extend_from_slice(&r.src_as.to_be_bytes());
        out.extend_from_slice(&r.dst_as.to_be_bytes());
        out.push(r.src_mask);
        out.push(r.dst_mask);
        out.extend_from_slice(&r.pad2.to_be_bytes());
    }
    out.len() - start
}
