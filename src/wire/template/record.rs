//! The decoded record of a data template, [`TemplatedRecord`], and how the
//! values a [`Plan`](super::Plan) read become one: address family, times,
//! counters, and the split of an RFC 5103 biflow into two uniflows.
//!
//! Decisions:
//! - Address family: IPv4 when sourceIPv4Address (8) is present and non-zero,
//!   else IPv6 when sourceIPv6Address (27) is, else whichever is present
//!   (Procera sends both, one of them zero). The destination and next hop
//!   come from the same family.
//! - ICMP: when the destination port is absent or 0 and icmpTypeCode (32 for
//!   IPv4, 139 for IPv6) is present, it becomes the destination port
//!   (`type << 8 | code`, as v5 does).
//! - Counters: `packets`/`octets` are the *delta* elements (2/1), 0 when
//!   absent. The total elements (86/85, Cisco ASA, YAF) are kept apart in
//!   `packets_total`/`octets_total`, never folded into the deltas: a total
//!   repeated in every record of a long flow would be summed many times.
//!   [`TemplatedRecord::counters_are_totals`] says when a record has only
//!   totals; the decoder counts them (`total_only_records`).
//! - Times, most precise first: ns, µs (NTP, RFC 7011 section 6.1.9/6.1.10),
//!   ms, s, delta µs before export, then uptime-relative (v9: the header's
//!   sysUptime with the 32-bit wrap, as v5; IPFIX: systemInitTimeMilliseconds
//!   from the record or from an options record of its domain). With none,
//!   the export time, and [`TimeSource::Export`] says so.
//! - Biflows: a record of a template with reverse elements is emitted as its
//!   forward record and, when any reverse counter is non-zero, a reverse
//!   record: addresses, ports, interfaces, AS and masks swapped, the reverse
//!   counters, tos and tcp flags, the forward times and end reason.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::be_uint;
use super::ie::{Known, Sink, NUM_SLOTS};
use crate::flow::FlowRecord;
use crate::wire::uptime_to_ns;

/// Which half of the wire record a [`TemplatedRecord`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The record as sent (or the forward half of a biflow).
    Forward,
    /// The reverse half of an RFC 5103 biflow.
    Reverse,
}

/// Where `first_ns`/`last_ns` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeSource {
    /// Absolute timestamps (s, ms, µs or ns elements).
    Absolute,
    /// flowStart/EndDeltaMicroseconds, before the export time.
    Delta,
    /// Uptime-relative: v9 sysUptime, or IPFIX with systemInitTimeMilliseconds.
    Uptime,
    /// No usable time element: both are the export time.
    Export,
}

/// One flow record of a v9 or IPFIX data template: the [`FlowRecord`] the
/// flow table takes (built once, here), and what only the wire knows.
///
/// In `record`: `engine_type`/`engine_id` are bits 15-8 and 7-0 of the v9
/// source id / IPFIX observation domain (where Cisco puts its engine type
/// and id); `sampling` holds the interval (capped at 14 bits, mode bits 0:
/// the decoder does not read the sampling algorithm); `nexthop` is the
/// unspecified address of the record's family when absent; `end_reason` is
/// flowEndReason (0 when absent); `packets`/`octets` are the delta counters
/// as sent (not scaled: the caller scales with `--scale-sampling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplatedRecord {
    pub record: FlowRecord,
    /// v9 source id or IPFIX observation domain.
    pub domain: u32,
    pub template_id: u16,
    pub direction: Direction,
    /// packetTotalCount, kept apart from the delta.
    pub packets_total: Option<u64>,
    /// octetTotalCount, kept apart from the delta.
    pub octets_total: Option<u64>,
    pub time_source: TimeSource,
    /// The sampling interval that applies (1 in N packets): from the record's
    /// own sampling elements, else its sampler id's options record, else its
    /// domain's options record. `None`: unknown (treat as unsampled).
    pub sampling_interval: Option<u32>,
}

impl std::ops::Deref for TemplatedRecord {
    type Target = FlowRecord;

    fn deref(&self) -> &FlowRecord {
        &self.record
    }
}

impl TemplatedRecord {
    /// Whether the exporter sent only total counters (no delta): `packets`
    /// and `octets` are then 0 and the totals must not be summed per record.
    pub fn counters_are_totals(&self) -> bool {
        self.record.packets == 0
            && self.record.octets == 0
            && (self.packets_total.is_some() || self.octets_total.is_some())
    }
}

/// What the decoder knows when it turns values into records.
#[derive(Debug, Clone, Copy)]
pub(super) struct Context {
    pub exporter: IpAddr,
    pub domain: u32,
    pub template_id: u16,
    pub export_ns: u64,
    /// v9 header sysUptime.
    pub sys_uptime: Option<u32>,
    /// systemInitTimeMilliseconds learnt from an options record of the domain.
    pub init_ms: Option<u64>,
}

/// The values of one record, by [`Known`] slot. Reset per record by
/// clearing `present` only.
#[derive(Debug, Clone)]
pub(super) struct Values {
    present: u64,
    /// By [`Known`] index (64 slots: an index masked to 6 bits needs no
    /// bounds check; those from `Src6` on are unused here).
    num: [u64; 64],
    wide: [u128; 3],
}

impl Default for Values {
    fn default() -> Self {
        Values { present: 0, num: [0; 64], wide: [0; 3] }
    }
}

const NTP_TO_UNIX_SECS: u64 = 2_208_988_800;

impl Sink for Values {
    #[inline(always)]
    fn num(&mut self, k: Known, v: u64) {
        let i = k as usize & 63;
        self.num[i] = v;
        self.present |= 1 << i;
    }

    #[inline]
    fn bytes(&mut self, k: Known, v: &[u8]) {
        let i = k as usize;
        if i >= NUM_SLOTS {
            let mut a = [0u8; 16];
            a.copy_from_slice(v);
            self.wide[i - NUM_SLOTS] = u128::from_be_bytes(a);
        } else {
            self.num[i] = be_uint(v);
        }
        self.present |= 1 << i;
    }
}

impl Values {
    #[inline]
    pub fn clear(&mut self) {
        self.present = 0;
    }

    #[inline]
    pub fn get(&self, k: Known) -> Option<u64> {
        let i = k as usize & 63;
        (self.present & 1 << i != 0).then(|| self.num[i])
    }

    fn get6(&self, k: Known) -> Option<Ipv6Addr> {
        (self.present & 1 << k as usize != 0).then(|| self.wide[k as usize - NUM_SLOTS].into())
    }

    fn get4(&self, k: Known) -> Option<Ipv4Addr> {
        self.get(k).map(|v| Ipv4Addr::from(v as u32))
    }

    /// The sampling interval this record states itself: samplingInterval,
    /// samplerRandomInterval, or (packetInterval + packetSpace) / packetInterval.
    pub fn sampling(&self) -> Option<u32> {
        let direct = self.get(Known::SamplingInterval).or(self.get(Known::SamplerRandomInterval));
        let packets = self.get(Known::PacketInterval).filter(|&n| n > 0).map(|n| {
            let space = self.get(Known::PacketSpace).unwrap_or(0);
            ((n + space) / n) as u32
        });
        direct.map(|v| v as u32).or(packets).filter(|&n| n > 0)
    }

    /// The sampler this record names (samplerId, else selectorId).
    pub fn sampler_id(&self) -> Option<u64> {
        self.get(Known::SamplerId).or(self.get(Known::SelectorId))
    }

    /// systemInitTimeMilliseconds, when present.
    pub fn init_ms(&self) -> Option<u64> {
        self.get(Known::SysInitMs)
    }

    /// Whether any reverse counter (delta or total) is non-zero.
    pub fn has_reverse_counts(&self) -> bool {
        [Known::RevOctets, Known::RevPackets, Known::RevOctetsTotal, Known::RevPacketsTotal]
            .into_iter()
            .any(|k| self.get(k).is_some_and(|v| v > 0))
    }

    /// One absolute time: `ns`, `us`, `ms`, `s`, delta-µs, uptime elements,
    /// in that order of preference.
    fn time(
        &self,
        ctx: &Context,
        which: [Known; 6],
        init_ms: Option<u64>,
    ) -> Option<(u64, TimeSource)> {
        let [ns, us, ms, s, delta, uptime] = which;
        if let Some(v) = self.get(ns).or(self.get(us)) {
            let secs = ntp_secs(v >> 32);
            let mut frac = v & 0xffff_ffff;
            if self.get(ns).is_none() {
                frac &= !0x7ff; // µs: the low 11 bits are not significant
            }
            return Some((
                secs * 1_000_000_000 + ((frac * 1_000_000_000) >> 32),
                TimeSource::Absolute,
            ));
        }
        if let Some(v) = self.get(ms) {
            return Some((v.saturating_mul(1_000_000), TimeSource::Absolute));
        }
        if let Some(v) = self.get(s) {
            return Some((v * 1_000_000_000, TimeSource::Absolute));
        }
        if let Some(v) = self.get(delta) {
            return Some((ctx.export_ns.saturating_sub(v * 1000), TimeSource::Delta));
        }
        let t = self.get(uptime)?;
        if let Some(up) = ctx.sys_uptime {
            return Some((uptime_to_ns(ctx.export_ns, up, t as u32), TimeSource::Uptime));
        }
        init_ms.map(|i| (i.saturating_add(t).saturating_mul(1_000_000), TimeSource::Uptime))
    }

    /// Hand on the forward record, and the reverse one for a biflow with
    /// reverse counts (built in place: no pair of records returned by
    /// value). Returns whether a reverse record was handed on, and whether
    /// the forward one has only total counters.
    #[inline]
    pub fn records(
        &self,
        ctx: &Context,
        sampling: Option<u32>,
        biflow: bool,
        out: &mut impl FnMut(TemplatedRecord),
    ) -> (bool, bool) {
        use Known::*;
        let v4 = self.get4(Src4);
        let v6 = self.get6(Src6);
        let is4 = match (v4, v6) {
            (Some(a), _) if !a.is_unspecified() => true,
            (_, Some(a)) if !a.is_unspecified() => false,
            (None, Some(_)) => false,
            _ => true, // IPv4 present, or neither (then 0.0.0.0)
        };
        let (src, dst, nexthop) = if is4 {
            (
                IpAddr::V4(v4.unwrap_or(Ipv4Addr::UNSPECIFIED)),
                IpAddr::V4(self.get4(Dst4).unwrap_or(Ipv4Addr::UNSPECIFIED)),
                self.get4(Next4).map(IpAddr::V4),
            )
        } else {
            (
                IpAddr::V6(v6.unwrap_or(Ipv6Addr::UNSPECIFIED)),
                IpAddr::V6(self.get6(Dst6).unwrap_or(Ipv6Addr::UNSPECIFIED)),
                self.get6(Next6).map(IpAddr::V6),
            )
        };
        let icmp = if is4 { self.get(IcmpType4) } else { self.get(IcmpType6) };
        let dst_port = match self.get(DstPort) {
            Some(p) if p != 0 => p as u16,
            p => icmp.or(p).unwrap_or(0) as u16,
        };
        let init_ms = self.init_ms().or(ctx.init_ms);
        let first = self.time(
            ctx,
            [StartNs, StartUs, StartMs, StartSecs, StartDeltaUs, FirstUptime],
            init_ms,
        );
        let last = self.time(ctx, [EndNs, EndUs, EndMs, EndSecs, EndDeltaUs, LastUptime], init_ms);
        let (first_ns, last_ns, time_source) = match (first, last) {
            (Some((f, s)), Some((l, _))) => (f, l, s),
            (Some((t, s)), None) | (None, Some((t, s))) => (t, t, s),
            (None, None) => (ctx.export_ns, ctx.export_ns, TimeSource::Export),
        };
        let byte = |k| self.get(k).unwrap_or(0) as u8;
        let word = |k| self.get(k).unwrap_or(0) as u32;
        let unspecified =
            if is4 { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
        let record = FlowRecord {
            exporter: ctx.exporter,
            engine_type: (ctx.domain >> 8) as u8,
            engine_id: ctx.domain as u8,
            sampling: sampling.map_or(0, |n| n.min(0x3fff) as u16),
            src_addr: src,
            dst_addr: dst,
            nexthop: nexthop.unwrap_or(unspecified),
            input: word(Input),
            output: word(Output),
            packets: self.get(Packets).unwrap_or(0),
            octets: self.get(Octets).unwrap_or(0),
            first_ns,
            last_ns,
            src_port: self.get(SrcPort).unwrap_or(0) as u16,
            dst_port,
            tcp_flags: byte(TcpFlags),
            proto: byte(Proto),
            tos: byte(Tos),
            src_as: word(SrcAs),
            dst_as: word(DstAs),
            src_mask: self.get(SrcMask).or(self.get(SrcMask6)).unwrap_or(0) as u8,
            dst_mask: self.get(DstMask).or(self.get(DstMask6)).unwrap_or(0) as u8,
            end_reason: byte(EndReason),
        };
        let fwd = TemplatedRecord {
            record,
            domain: ctx.domain,
            template_id: ctx.template_id,
            direction: Direction::Forward,
            packets_total: self.get(PacketsTotal),
            octets_total: self.get(OctetsTotal),
            time_source,
            sampling_interval: sampling,
        };
        let totals = fwd.counters_are_totals();
        out(fwd);
        if !(biflow && self.has_reverse_counts()) {
            return (false, totals);
        }
        out(TemplatedRecord {
            record: FlowRecord {
                src_addr: record.dst_addr,
                dst_addr: record.src_addr,
                src_port: record.dst_port,
                dst_port: record.src_port,
                tcp_flags: byte(RevTcpFlags),
                tos: self.get(RevTos).map_or(record.tos, |v| v as u8),
                packets: self.get(RevPackets).unwrap_or(0),
                octets: self.get(RevOctets).unwrap_or(0),
                input: record.output,
                output: record.input,
                src_as: record.dst_as,
                dst_as: record.src_as,
                src_mask: record.dst_mask,
                dst_mask: record.src_mask,
                nexthop: unspecified,
                ..record
            },
            direction: Direction::Reverse,
            packets_total: self.get(RevPacketsTotal),
            octets_total: self.get(RevOctetsTotal),
            ..fwd
        });
        (true, totals)
    }
}

/// Seconds of an NTP timestamp since the Unix epoch. NTP era 0 ends in
/// 2036: a seconds field below 1970's (2 208 988 800) is read as era 1.
fn ntp_secs(ntp: u64) -> u64 {
    if ntp >= NTP_TO_UNIX_SECS {
        ntp - NTP_TO_UNIX_SECS
    } else {
        ntp + (1 << 32) - NTP_TO_UNIX_SECS
    }
}
