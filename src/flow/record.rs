//! [`FlowRecord`]: one v5 record with the context it needs from its datagram
//! (exporter, engine, sampling, absolute times), as a small `Copy` value.
//! This is what crosses shards and what the shard merges.

use std::net::IpAddr;

use super::merge::{sampling_scale, Merge};
use crate::wire::{Header, Record};

/// One record, normalized: absolute times in ns, exporter attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    pub exporter: IpAddr,
    pub engine_type: u8,
    pub engine_id: u8,
    /// Raw sampling field of the header (mode << 14 | interval).
    pub sampling: u16,
    pub src_addr: u32,
    pub dst_addr: u32,
    pub nexthop: u32,
    pub input: u16,
    pub output: u16,
    pub packets: u64,
    pub octets: u64,
    /// First packet, ns since the Unix epoch (router clock).
    pub first_ns: u64,
    /// Last packet, ns since the Unix epoch (router clock).
    pub last_ns: u64,
    pub src_port: u16,
    pub dst_port: u16,
    pub tcp_flags: u8,
    pub proto: u8,
    pub tos: u8,
    pub src_as: u16,
    pub dst_as: u16,
    pub src_mask: u8,
    pub dst_mask: u8,
}

/// A record with every field zero (exporter `::`): a base for building one.
pub(crate) const ZERO: FlowRecord = FlowRecord {
    exporter: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    engine_type: 0,
    engine_id: 0,
    sampling: 0,
    src_addr: 0,
    dst_addr: 0,
    nexthop: 0,
    input: 0,
    output: 0,
    packets: 0,
    octets: 0,
    first_ns: 0,
    last_ns: 0,
    src_port: 0,
    dst_port: 0,
    tcp_flags: 0,
    proto: 0,
    tos: 0,
    src_as: 0,
    dst_as: 0,
    src_mask: 0,
    dst_mask: 0,
};

impl From<&FlowRecord> for Merge {
    #[inline]
    fn from(r: &FlowRecord) -> Self {
        Merge {
            packets: r.packets,
            octets: r.octets,
            first_ns: r.first_ns,
            last_ns: r.last_ns,
            tcp_flags: r.tcp_flags,
        }
    }
}

impl FlowRecord {
    /// Build from a wire record. With `scale_sampling`, packets and octets are
    /// multiplied by the sampling interval when it is above 1.
    #[inline(always)]
    pub fn from_wire(exporter: IpAddr, h: &Header, r: &Record<'_>, scale_sampling: bool) -> Self {
        Self::from_wire_scaled(exporter, h, r, sampling_scale(h, scale_sampling))
    }

    /// [`FlowRecord::from_wire`] with packets and octets multiplied by `scale`.
    #[inline(always)]
    pub fn from_wire_scaled(exporter: IpAddr, h: &Header, r: &Record<'_>, scale: u64) -> Self {
        let m = Merge::from_wire(h, r, scale);
        FlowRecord {
            exporter,
            engine_type: h.engine_type,
            engine_id: h.engine_id,
            sampling: h.sampling,
            src_addr: r.src_addr(),
            dst_addr: r.dst_addr(),
            nexthop: r.nexthop(),
            input: r.input(),
            output: r.output(),
            packets: m.packets,
            octets: m.octets,
            first_ns: m.first_ns,
            last_ns: m.last_ns,
            src_port: r.src_port(),
            dst_port: r.dst_port(),
            tcp_flags: m.tcp_flags,
            proto: r.proto(),
            tos: r.tos(),
            src_as: r.src_as(),
            dst_as: r.dst_as(),
            src_mask: r.src_mask(),
            dst_mask: r.dst_mask(),
        }
    }
}
