//! `--version 9|10`: one exporter's NetFlow v9 or IPFIX export process, on
//! `nfstitch::wire::template::encode`, and the IPv6 face of the model.
//!
//! # Templates
//! An exporter announces its IPv4 and IPv6 flow templates (and, with
//! `--sampling N`, the sampling options template and one options record
//! saying 1 in N) in front of the data of its first datagram, and again in
//! front of the first datagram whose router time is `--template-interval`
//! (default 20 s) past the last announcement, or that is the
//! `--template-every`th since it: the two refresh rules of real exporters
//! (Cisco's template timeout and refresh-rate, Juniper's
//! `template-refresh-rate seconds`/`packets`). Templates ride in the same
//! datagram as data, as Cisco IOS, softflowd and nProbe send them, so the
//! datagram schedule (and `--count`) is the same in every version.
//! `--data-before-template N` holds them back for the first N datagrams:
//! those carry data a collector cannot read until the template comes, and
//! the truth counts them (`no_template_*`).
//!
//! # IPv6
//! A session is IPv6 with probability `--ipv6` (its own random stream, so
//! the IPv4 traffic of a seed does not change with the fraction). Its
//! addresses are the IPv4 model's, mapped one to one into 2001:db8::/32:
//! `a.b.c.d` becomes `2001:db8:ab:cd::1`, so an IPv4 /n is an IPv6 /(n+32)
//! (client /24s become /56s, each client its own /64); ICMP becomes ICMPv6
//! (echo 128/129, unreachable type 1 with the matching codes).
//!
//! # Records in a datagram
//! The records a datagram takes are the same as v5's; their IPv4 ones go
//! in one data set and their IPv6 ones in a second, in that order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nfstitch::wire::template::encode::{end_reason, Encoder, FlowRecord};
use nfstitch::wire::template::Version;

use crate::config::Config;
use crate::router::{DgStats, Rec};
use crate::truth::ExporterTruth;

/// ICMPv6.
pub const ICMP6: u8 = 58;

/// The v9/IPFIX `Version` of a `--version` number (None for 5).
pub fn wire_version(version: u16) -> Option<Version> {
    match version {
        9 => Some(Version::V9),
        10 => Some(Version::Ipfix),
        _ => None,
    }
}

/// The IPv6 address of an IPv4 model address: `2001:db8:ab:cd::1`; `::`
/// for 0.0.0.0 (no next hop).
pub fn v6_addr(a: u32) -> Ipv6Addr {
    if a == 0 {
        return Ipv6Addr::UNSPECIFIED;
    }
    Ipv6Addr::new(0x2001, 0xdb8, (a >> 16) as u16, a as u16, 0, 0, 0, 1)
}

/// The prefix length of an IPv6-mapped IPv4 prefix.
pub fn v6_mask(m: u8) -> u8 {
    if m == 0 {
        0
    } else {
        m + 32
    }
}

/// An address of the model in the session's family.
pub fn addr(a: u32, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(v6_addr(a))
    } else {
        IpAddr::V4(Ipv4Addr::from(a))
    }
}

/// ICMP `type << 8 | code` to its ICMPv6 counterpart.
pub fn icmp6(tc: u16) -> u16 {
    match tc >> 8 {
        8 => 128 << 8,
        0 => 129 << 8,
        3 => {
            let code = match tc & 0xff {
                3 => 4,  // port unreachable
                13 => 1, // administratively prohibited
                _ => 3,  // host (and others): address unreachable
            };
            1 << 8 | code
        }
        t => t << 8 | (tc & 0xff),
    }
}

/// One router record as the encoder takes it.
#[inline]
pub(crate) fn flow(r: &Rec) -> FlowRecord {
    let f = &r.fields;
    let (sm, dm) =
        if r.v6 { (v6_mask(f.src_mask), v6_mask(f.dst_mask)) } else { (f.src_mask, f.dst_mask) };
    FlowRecord {
        src: addr(f.src_addr, r.v6),
        dst: addr(f.dst_addr, r.v6),
        nexthop: addr(f.nexthop, r.v6),
        src_port: f.src_port,
        dst_port: f.dst_port,
        proto: f.proto,
        tos: f.tos,
        tcp_flags: f.tcp_flags,
        input: f.input as u32,
        output: f.output as u32,
        packets: f.packets as u64,
        octets: f.octets as u64,
        first_ms: r.first_ms,
        last_ms: r.last_ms,
        src_as: f.src_as as u32,
        dst_as: f.dst_as as u32,
        src_mask: sm,
        dst_mask: dm,
        end_reason: r.end,
    }
}

/// The template policy and encoder of one exporter.
#[derive(Debug)]
pub struct Templated {
    enc: Encoder,
    interval_ms: u64,
    every: Option<u64>,
    /// Datagrams still to send before the first templates.
    hold: u64,
    /// Router time of the last templates.
    last_ms: Option<u64>,
    /// Datagrams since the last templates.
    since: u64,
    /// `--sampling N` (0: none, no options).
    sampling: u32,
}

impl Templated {
    pub fn new(cfg_version: u16, domain: u32, seq0: u32, policy: &Policy) -> Option<Templated> {
        let v = wire_version(cfg_version)?;
        Some(Templated {
            enc: Encoder::new(v, domain, seq0),
            interval_ms: policy.interval_ms,
            every: policy.every,
            hold: policy.hold,
            last_ms: None,
            since: 0,
            sampling: policy.sampling,
        })
    }

    /// The sequence number of the next datagram.
    pub fn sequence(&self) -> u32 {
        self.enc.sequence()
    }

    fn templates_due(&self, now_ms: u64) -> bool {
        if self.hold > 0 {
            return false;
        }
        match self.last_ms {
            None => true,
            Some(t) => {
                now_ms.saturating_sub(t) >= self.interval_ms
                    || self.every.is_some_and(|n| self.since >= n)
            }
        }
    }

    /// Encode the datagram of `recs` exported at `now_ms` (uptime
    /// `sys_uptime`) into `out`, with the templates when they are due;
    /// count what only templated versions have in `truth`.
    pub(crate) fn encode(
        &mut self,
        now_ms: u64,
        sys_uptime: u32,
        recs: &[Rec],
        out: &mut Vec<u8>,
        truth: &mut ExporterTruth,
    ) -> DgStats {
        let due = self.templates_due(now_ms);
        let mut m = self.enc.message(out, now_ms, sys_uptime);
        if due {
            m.templates();
            if self.sampling > 0 {
                m.sampling_template();
                m.sampling_record(self.sampling);
            }
        }
        for v6 in [false, true] {
            for r in recs.iter().filter(|r| r.v6 == v6) {
                m.record(&flow(r));
            }
        }
        let st = m.finish();
        let v6 = recs.iter().filter(|r| r.v6).count() as u64;
        let d = DgStats { records: st.flow_records as u64, packets: st.packets, octets: st.octets };
        truth.template_records += st.template_records as u64;
        truth.options_records += st.options_records as u64;
        truth.ipv6_records += v6;
        if due {
            self.last_ms = Some(now_ms);
            self.since = 1;
            truth.template_datagrams += 1;
        } else {
            self.since += 1;
        }
        if self.hold > 0 {
            self.hold -= 1;
            truth.no_template_datagrams += 1;
            truth.no_template_sets += st.flow_sets as u64;
            truth.no_template_records += d.records;
            truth.no_template_packets += d.packets;
            truth.no_template_octets += d.octets;
        }
        d
    }
}

/// What [`Templated`] needs from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub interval_ms: u64,
    pub every: Option<u64>,
    pub hold: u64,
    pub sampling: u32,
}

impl Policy {
    pub fn of(cfg: &Config) -> Policy {
        Policy {
            interval_ms: cfg.template_interval_ms(),
            every: cfg.template_every,
            hold: cfg.data_before_template.unwrap_or(0),
            sampling: cfg.sampling as u32,
        }
    }
}

/// The longest datagram `--version 9|10` makes with `n` records: templates
/// and sampling options in front, every record of the longer family (IPv6
/// when `--ipv6` is above 0).
pub fn worst_datagram_len(cfg: &Config, n: usize) -> usize {
    let Some(v) = wire_version(cfg.version) else {
        return nfstitch::wire::HEADER_LEN + n * nfstitch::wire::RECORD_LEN;
    };
    let mut enc = Encoder::new(v, 0, 0);
    let mut out = Vec::new();
    let mut m = enc.message(&mut out, 0, 0);
    m.templates();
    if cfg.sampling > 0 {
        m.sampling_template();
        m.sampling_record(cfg.sampling as u32);
    }
    let r = FlowRecord {
        src: addr(1, cfg.ipv6 > 0.0),
        end_reason: end_reason::IDLE_TIMEOUT,
        ..FlowRecord::default()
    };
    for _ in 0..n {
        m.record(&r);
    }
    m.finish().len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_one_to_one_and_keeps_prefixes() {
        assert_eq!(v6_addr(0x0A01_0203).to_string(), "2001:db8:a01:203::1");
        assert_eq!(v6_addr(0), Ipv6Addr::UNSPECIFIED);
        assert_ne!(v6_addr(0x0A01_0203), v6_addr(0x0A01_0204));
        assert_eq!((v6_mask(24), v6_mask(0)), (56, 0));
        assert_eq!(icmp6(8 << 8), 128 << 8);
        assert_eq!(icmp6(0), 129 << 8);
        assert_eq!(icmp6(3 << 8 | 3), 1 << 8 | 4);
    }

    #[test]
    fn default_records_per_datagram_fit_the_mtu() {
        for (version, ipv6, want) in
            [(5, 0.0, 30), (9, 0.0, 21), (9, 0.3, 13), (10, 0.0, 18), (10, 0.3, 12)]
        {
            let cfg = Config { version, ipv6, ..Config::default() };
            let n = cfg.fitting_records_per_datagram();
            assert_eq!(n, want, "version {version} ipv6 {ipv6}");
            if version != 5 {
                assert!(worst_datagram_len(&cfg, n) <= crate::config::MTU_PAYLOAD);
                assert!(worst_datagram_len(&cfg, n + 1) > crate::config::MTU_PAYLOAD);
            }
        }
    }
}
