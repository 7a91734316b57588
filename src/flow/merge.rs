//! [`Merge`]: what one record adds to its flow (counters, times, flags), and
//! the one conversion from a wire record to it. Depends only on the wire
//! format: the record, the key and the batch view all build on it.

use crate::wire::{Header, Record};

/// TCP FIN and RST: a record carrying either starts (or extends) the linger.
pub const FIN_OR_RST: u8 = 0x01 | 0x04;

/// What one record adds to its flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Merge {
    pub packets: u64,
    pub octets: u64,
    /// First and last packet, ns since the Unix epoch (router clock).
    pub first_ns: u64,
    pub last_ns: u64,
    pub tcp_flags: u8,
    /// The exporter's reason the record ended (IPFIX flowEndReason, IE 136;
    /// 0 = none, always for v5).
    pub end_reason: u8,
}

/// IPFIX flowEndReason (RFC 7011 IE 136) values that say the flow is over:
/// end of flow detected (3) and forced end (4). They close the flow like a
/// FIN/RST (the linger starts); idle timeout (1), active timeout (2: more
/// records follow) and lack of resources (5) are only recorded.
pub const END_OF_FLOW: u8 = 3;
pub const FORCED_END: u8 = 4;

/// The name of a flowEndReason value as outputs write it: "" for none.
pub fn exporter_end_reason_name(code: u8) -> &'static str {
    match code {
        0 => "",
        1 => "idle",
        2 => "active",
        3 => "end_of_flow",
        4 => "forced_end",
        5 => "lack_of_resources",
        _ => "reserved",
    }
}

impl Merge {
    /// Does this record need more than the counters and times: a FIN/RST
    /// or any flowEndReason ([`Merge::ends_connection`] or a reason to
    /// record)? One test on the merge path for both.
    #[inline]
    pub fn is_special(&self) -> bool {
        (self.tcp_flags & FIN_OR_RST) | self.end_reason != 0
    }

    /// Does this record end its connection: FIN or RST, or an exporter's
    /// end of flow / forced end?
    #[inline]
    pub fn ends_connection(&self) -> bool {
        self.tcp_flags & FIN_OR_RST != 0 || matches!(self.end_reason, END_OF_FLOW | FORCED_END)
    }
}

/// What packets and octets of a datagram's records are multiplied by: its
/// sampling interval with `scale_sampling` (when above 1), else 1.
#[inline]
pub fn sampling_scale(h: &Header, scale_sampling: bool) -> u64 {
    if scale_sampling {
        h.sampling_interval().max(1) as u64
    } else {
        1
    }
}

impl Merge {
    /// What wire record `r` of a datagram with header `h` adds to its flow,
    /// packets and octets multiplied by `scale` ([`sampling_scale`]). The
    /// one conversion from the wire: [`FlowRecord::from_wire`](super::FlowRecord::from_wire) uses it too.
    #[inline(always)]
    pub fn from_wire(h: &Header, r: &Record<'_>, scale: u64) -> Self {
        Self::from_wire_at(h, h.export_ns(), r, scale)
    }

    /// [`Merge::from_wire`] given `export_ns` = `h.export_ns()` (computed
    /// once per datagram).
    #[inline(always)]
    pub fn from_wire_at(h: &Header, export_ns: u64, r: &Record<'_>, scale: u64) -> Self {
        debug_assert_eq!(export_ns, h.export_ns());
        Merge {
            packets: r.packets() as u64 * scale,
            octets: r.octets() as u64 * scale,
            first_ns: h.uptime_to_ns_from(export_ns, r.first()),
            last_ns: h.uptime_to_ns_from(export_ns, r.last()),
            tcp_flags: r.tcp_flags(),
            end_reason: 0,
        }
    }
}
