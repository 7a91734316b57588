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
use super::ie::{Known, NUM_SLOTS};

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

/// One flow record of a v9 or IPFIX data template, copied out (it is built
/// from many scattered fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplatedRecord {
    pub exporter: IpAddr,
    /// v9 source id or IPFIX observation domain.
    pub domain: u32,
    pub template_id: u16,
    pub direction: Direction,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    /// Destination port; for ICMP without one, `type << 8 | code`.
    pub dst_port: u16,
    pub proto: u8,
    /// The low 8 bits of tcpControlBits (FIN 0x01 ... CWR 0x80).
    pub tcp_flags: u8,
    pub tos: u8,
    /// packetDeltaCount (1 to 8 bytes on the wire); 0 when absent.
    pub packets: u64,
    /// octetDeltaCount; 0 when absent.
    pub octets: u64,
    /// packetTotalCount, kept apart from the delta.
    pub packets_total: Option<u64>,
    /// octetTotalCount, kept apart from the delta.
    pub octets_total: Option<u64>,
    /// First packet, ns since the Unix epoch.
    pub first_ns: u64,
    /// Last packet, ns since the Unix epoch.
    pub last_ns: u64,
    pub time_source: TimeSource,
    pub input: u32,
    pub output: u32,
    pub src_as: u32,
    pub dst_as: u32,
    pub src_mask: u8,
    pub dst_mask: u8,
    pub nexthop: Option<IpAddr>,
    /// IPFIX flowEndReason (IE 136; also sent in v9 by FortiOS).
    pub flow_end_reason: Option<u8>,
    /// The sampling interval that applies (1 in N packets): from the record's
    /// own sampling elements, else its sampler id's options record, else its
    /// domain's options record. `None`: unknown (treat as unsampled).
    pub sampling_interval: Option<u32>,
}

impl TemplatedRecord {
    /// Whether the exporter sent only total counters (no delta): `packets`
    /// and `octets` are then 0 and the totals must not be summed per record.
    pub fn counters_are_totals(&self) -> bool {
        self.packets == 0
            && self.octets == 0
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
    num: [u64; NUM_SLOTS],
    wide: [u128; 3],
}

impl Default for Values {
    fn default() -> Self {
        Values { present: 0, num: [0; NUM_SLOTS], wide: [0; 3] }
    }
}

const NTP_TO_UNIX_SECS: u64 = 2_208_988_800;

impl Values {
    #[inline]
    pub fn clear(&mut self) {
        self.present = 0;
    }

    #[inline]
    pub fn put(&mut self, k: Known, v: &[u8]) {
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

    #[inline]
    pub fn get(&self, k: Known) -> Option<u64> {
        (self.present & 1 << k as usize != 0).then(|| self.num[k as usize])
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
            let back_ms = up.wrapping_sub(t as u32) as u64;
            return Some((ctx.export_ns.saturating_sub(back_ms * 1_000_000), TimeSource::Uptime));
        }
        init_ms.map(|i| (i.saturating_add(t).saturating_mul(1_000_000), TimeSource::Uptime))
    }

    /// The forward record, and the reverse one for a biflow with reverse counts.
    pub fn records(
        &self,
        ctx: &Context,
        sampling: Option<u32>,
        biflow: bool,
    ) -> (TemplatedRecord, Option<TemplatedRecord>) {
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
        let fwd = TemplatedRecord {
            exporter: ctx.exporter,
            domain: ctx.domain,
            template_id: ctx.template_id,
            direction: Direction::Forward,
            src,
            dst,
            src_port: self.get(SrcPort).unwrap_or(0) as u16,
            dst_port,
            proto: byte(Proto),
            tcp_flags: byte(TcpFlags),
            tos: byte(Tos),
            packets: self.get(Packets).unwrap_or(0),
            octets: self.get(Octets).unwrap_or(0),
            packets_total: self.get(PacketsTotal),
            octets_total: self.get(OctetsTotal),
            first_ns,
            last_ns,
            time_source,
            input: word(Input),
            output: word(Output),
            src_as: word(SrcAs),
            dst_as: word(DstAs),
            src_mask: self.get(SrcMask).or(self.get(SrcMask6)).unwrap_or(0) as u8,
            dst_mask: self.get(DstMask).or(self.get(DstMask6)).unwrap_or(0) as u8,
            nexthop,
            flow_end_reason: self.get(EndReason).map(|v| v as u8),
            sampling_interval: sampling,
        };
        let rev = (biflow && self.has_reverse_counts()).then(|| TemplatedRecord {
            direction: Direction::Reverse,
            src: fwd.dst,
            dst: fwd.src,
            src_port: fwd.dst_port,
            dst_port: fwd.src_port,
            tcp_flags: byte(RevTcpFlags),
            tos: self.get(RevTos).map_or(fwd.tos, |v| v as u8),
            packets: self.get(RevPackets).unwrap_or(0),
            octets: self.get(RevOctets).unwrap_or(0),
            packets_total: self.get(RevPacketsTotal),
            octets_total: self.get(RevOctetsTotal),
            input: fwd.output,
            output: fwd.input,
            src_as: fwd.dst_as,
            dst_as: fwd.src_as,
            src_mask: fwd.dst_mask,
            dst_mask: fwd.src_mask,
            nexthop: None,
            ..fwd
        });
        (fwd, rev)
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
