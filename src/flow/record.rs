//! [`FlowRecord`]: one flow record with the context it needs from its
//! datagram (exporter, engine, sampling, absolute times), as a `Copy` value.
//! This is what crosses shards and what the shard merges. Its fields are
//! wide enough for every format: addresses of either family, 32-bit ifIndex
//! and AS (v9/IPFIX), and the exporter's flowEndReason; a v5 record fills
//! the IPv4, 16-bit part.

use std::net::{IpAddr, Ipv4Addr};

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
    /// Source and destination addresses: IPv4 for v5; v9/IPFIX records
    /// carry either family.
    pub src_addr: IpAddr,
    pub dst_addr: IpAddr,
    /// Next hop (IPv4 for v5; `0.0.0.0` when the record has none).
    pub nexthop: IpAddr,
    /// Input and output ifIndex: 16 bits in v5, 32 in v9/IPFIX.
    pub input: u32,
    pub output: u32,
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
    /// Source and destination AS: 16 bits in v5, 32 in v9/IPFIX.
    pub src_as: u32,
    pub dst_as: u32,
    pub src_mask: u8,
    pub dst_mask: u8,
    /// The exporter's reason the record ended (IPFIX flowEndReason, IE 136:
    /// 1 idle, 2 active, 3 end of flow, 4 forced end, 5 lack of resources);
    /// 0 when the record has none (always, for v5).
    pub end_reason: u8,
}

/// A record with every field zero (exporter `::`): a base for building one.
pub(crate) const ZERO: FlowRecord = FlowRecord {
    exporter: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    engine_type: 0,
    engine_id: 0,
    sampling: 0,
    src_addr: V4_ZERO,
    dst_addr: V4_ZERO,
    nexthop: V4_ZERO,
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
    end_reason: 0,
};

/// `0.0.0.0`, the address of a field a record does not have.
pub const V4_ZERO: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

impl From<&FlowRecord> for Merge {
    #[inline]
    fn from(r: &FlowRecord) -> Self {
        Merge {
            packets: r.packets,
            octets: r.octets,
            first_ns: r.first_ns,
            last_ns: r.last_ns,
            tcp_flags: r.tcp_flags,
            end_reason: r.end_reason,
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
            src_addr: IpAddr::V4(Ipv4Addr::from(r.src_addr())),
            dst_addr: IpAddr::V4(Ipv4Addr::from(r.dst_addr())),
            nexthop: IpAddr::V4(Ipv4Addr::from(r.nexthop())),
            input: r.input() as u32,
            output: r.output() as u32,
            packets: m.packets,
            octets: m.octets,
            first_ns: m.first_ns,
            last_ns: m.last_ns,
            src_port: r.src_port(),
            dst_port: r.dst_port(),
            tcp_flags: m.tcp_flags,
            proto: r.proto(),
            tos: r.tos(),
            src_as: r.src_as() as u32,
            dst_as: r.dst_as() as u32,
            src_mask: r.src_mask(),
            dst_mask: r.dst_mask(),
            end_reason: 0,
        }
    }
}
