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
}

impl Merge {
    /// Does this record carry FIN or RST?
    #[inline]
    pub fn ends_connection(&self) -> bool {
        self.tcp_flags & FIN_OR_RST != 0
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
        }
    }
}
