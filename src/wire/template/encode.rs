//! The v9 (RFC 3954) and IPFIX (RFC 7011) encoder: the inverse of
//! [`Decoder`](super::Decoder), used by tests and `loadgen`.
//!
//! Owns: the templates an exporter built on this encoder announces (one for
//! IPv4 and one for IPv6 flows, and an options template for packet
//! sampling), the message headers with their counts and sequence numbers,
//! and the set framing and padding. Like the v5 encoder it only writes valid
//! messages; malformed ones are made by editing the bytes.
//!
//! # What it writes, and whose layout that is
//! The templates follow what routers send, not what the decoder happens to
//! accept:
//! - v9 ([`V9_IPV4`], [`V9_IPV6`]): the field types and lengths of Cisco
//!   IOS-XR and Juniper MX v9 templates: 8-byte IN_PKTS/IN_BYTES, 4-byte
//!   INPUT_SNMP/OUTPUT_SNMP and SRC_AS/DST_AS, FIRST_SWITCHED/LAST_SWITCHED
//!   as sysUptime milliseconds (RFC 3954 section 8), 1-byte TCP_FLAGS.
//! - IPFIX ([`IPFIX_IPV4`], [`IPFIX_IPV6`]): the same elements by their IANA
//!   names, flowStartMilliseconds/flowEndMilliseconds (152/153, as OpenBSD
//!   pflow and nProbe send), tcpControlBits in its IANA 2 bytes, and
//!   flowEndReason (136).
//! - Sampling options: v9 scope System (4 bytes) with SAMPLING_INTERVAL and
//!   SAMPLING_ALGORITHM (34/35, Juniper and Cisco's global sampler); IPFIX
//!   scope observationDomainId with selectorAlgorithm,
//!   samplingPacketInterval and samplingPacketSpace (304/305/306, RFC 5477,
//!   as softflowd sends them): 1 packet in N is interval 1, space N - 1.
//!
//! # Headers and sequence numbers
//! v9: `count` is every record in the message, templates and options
//! records included (RFC 3954 section 5.1); `sequence` counts export packets
//! of the source id, so it grows by one per message. IPFIX: `length` is the
//! message's; `sequence` is the number of data records (flow and options
//! data records, not template records) sent in the observation domain
//! before this message (RFC 7011 section 3.1).
//!
//! # Sets and padding
//! Consecutive records of one template share a data set; a record of the
//! other family, a template or an options record closes it. v9 pads every
//! flowset to a multiple of 4 bytes (RFC 3954 section 5.3: SHOULD, and what
//! Cisco and softflowd do); IPFIX sends unpadded sets by default (padding is
//! optional in RFC 7011 section 3.3.1 and most exporters omit it);
//! [`Encoder::padded`] turns it on or off.

use std::net::{IpAddr, Ipv4Addr};

use super::header::{Version, IPFIX_HEADER_LEN, V9_HEADER_LEN};

/// Template id of IPv4 flow records.
pub const TEMPLATE_IPV4: u16 = 256;
/// Template id of IPv6 flow records.
pub const TEMPLATE_IPV6: u16 = 257;
/// Template id of the sampling options.
pub const TEMPLATE_SAMPLING: u16 = 258;

/// One field specifier: element id (v9 field type) and length in bytes.
pub type Field = (u16, u16);

/// v9 IPv4 flow template (Cisco IOS-XR / Juniper layout).
pub const V9_IPV4: &[Field] = &[
    (8, 4),  // IPV4_SRC_ADDR
    (12, 4), // IPV4_DST_ADDR
    (15, 4), // IPV4_NEXT_HOP
    (10, 4), // INPUT_SNMP
    (14, 4), // OUTPUT_SNMP
    (2, 8),  // IN_PKTS
    (1, 8),  // IN_BYTES
    (22, 4), // FIRST_SWITCHED
    (21, 4), // LAST_SWITCHED
    (7, 2),  // L4_SRC_PORT
    (11, 2), // L4_DST_PORT
    (6, 1),  // TCP_FLAGS
    (4, 1),  // PROTOCOL
    (5, 1),  // SRC_TOS
    (16, 4), // SRC_AS
    (17, 4), // DST_AS
    (9, 1),  // SRC_MASK
    (13, 1), // DST_MASK
];

/// v9 IPv6 flow template.
pub const V9_IPV6: &[Field] = &[
    (27, 16), // IPV6_SRC_ADDR
    (28, 16), // IPV6_DST_ADDR
    (62, 16), // IPV6_NEXT_HOP
    (10, 4),
    (14, 4),
    (2, 8),
    (1, 8),
    (22, 4),
    (21, 4),
    (7, 2),
    (11, 2),
    (6, 1),
    (4, 1),
    (5, 1),
    (16, 4),
    (17, 4),
    (29, 1), // IPV6_SRC_MASK
    (30, 1), // IPV6_DST_MASK
];

/// IPFIX IPv4 flow template.
pub const IPFIX_IPV4: &[Field] = &[
    (8, 4),   // sourceIPv4Address
    (12, 4),  // destinationIPv4Address
    (15, 4),  // ipNextHopIPv4Address
    (10, 4),  // ingressInterface
    (14, 4),  // egressInterface
    (2, 8),   // packetDeltaCount
    (1, 8),   // octetDeltaCount
    (152, 8), // flowStartMilliseconds
    (153, 8), // flowEndMilliseconds
    (7, 2),   // sourceTransportPort
    (11, 2),  // destinationTransportPort
    (6, 2),   // tcpControlBits
    (4, 1),   // protocolIdentifier
    (5, 1),   // ipClassOfService
    (16, 4),  // bgpSourceAsNumber
    (17, 4),  // bgpDestinationAsNumber
    (9, 1),   // sourceIPv4PrefixLength
    (13, 1),  // destinationIPv4PrefixLength
    (136, 1), // flowEndReason
];

/// IPFIX IPv6 flow template.
pub const IPFIX_IPV6: &[Field] = &[
    (27, 16), // sourceIPv6Address
    (28, 16), // destinationIPv6Address
    (62, 16), // ipNextHopIPv6Address
    (10, 4),
    (14, 4),
    (2, 8),
    (1, 8),
    (152, 8),
    (153, 8),
    (7, 2),
    (11, 2),
    (6, 2),
    (4, 1),
    (5, 1),
    (16, 4),
    (17, 4),
    (29, 1), // sourceIPv6PrefixLength
    (30, 1), // destinationIPv6PrefixLength
    (136, 1),
];

/// v9 sampling options: the scope (System, 4 bytes) and the options.
pub const V9_SAMPLING_SCOPE: &[Field] = &[(1, 4)];
/// SAMPLING_INTERVAL, SAMPLING_ALGORITHM.
pub const V9_SAMPLING_OPTIONS: &[Field] = &[(34, 4), (35, 1)];
/// IPFIX sampling options: the scope (observationDomainId).
pub const IPFIX_SAMPLING_SCOPE: &[Field] = &[(149, 4)];
/// selectorAlgorithm, samplingPacketInterval, samplingPacketSpace.
pub const IPFIX_SAMPLING_OPTIONS: &[Field] = &[(304, 2), (305, 4), (306, 4)];

/// IPFIX flowEndReason values (RFC 7011 / IANA).
pub mod end_reason {
    /// The flow was idle for the inactive timeout.
    pub const IDLE_TIMEOUT: u8 = 1;
    /// The flow lasted the active timeout; more records follow.
    pub const ACTIVE_TIMEOUT: u8 = 2;
    /// FIN or RST seen.
    pub const END_OF_FLOW: u8 = 3;
    /// The exporter ended it (shutdown, cache flush).
    pub const FORCED_END: u8 = 4;
    /// The cache was full.
    pub const LACK_OF_RESOURCES: u8 = 5;
}

/// Address family of a flow record, and so its template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

/// One flow record to encode. Times are absolute (ms since the Unix epoch):
/// v9 writes them relative to the message's sysUptime, IPFIX as they are.
/// `dst` and `nexthop` of the other family than `src` are written as the
/// unspecified address of `src`'s family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// `0.0.0.0` / `::` when there is none.
    pub nexthop: IpAddr,
    pub src_port: u16,
    /// For ICMP, `type << 8 | code`, as routers put it.
    pub dst_port: u16,
    pub proto: u8,
    pub tos: u8,
    pub tcp_flags: u8,
    pub input: u32,
    pub output: u32,
    pub packets: u64,
    pub octets: u64,
    pub first_ms: u64,
    pub last_ms: u64,
    pub src_as: u32,
    pub dst_as: u32,
    pub src_mask: u8,
    pub dst_mask: u8,
    /// IPFIX flowEndReason ([`end_reason`]); not in the v9 templates.
    pub end_reason: u8,
}

impl Default for FlowRecord {
    fn default() -> Self {
        let z = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        FlowRecord {
            src: z,
            dst: z,
            nexthop: z,
            src_port: 0,
            dst_port: 0,
            proto: 0,
            tos: 0,
            tcp_flags: 0,
            input: 0,
            output: 0,
            packets: 0,
            octets: 0,
            first_ms: 0,
            last_ms: 0,
            src_as: 0,
            dst_as: 0,
            src_mask: 0,
            dst_mask: 0,
            end_reason: 0,
        }
    }
}

impl FlowRecord {
    pub fn family(&self) -> Family {
        match self.src {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// The flow template of `family` in `version`.
pub fn template(version: Version, family: Family) -> &'static [Field] {
    match (version, family) {
        (Version::V9, Family::V4) => V9_IPV4,
        (Version::V9, Family::V6) => V9_IPV6,
        (Version::Ipfix, Family::V4) => IPFIX_IPV4,
        (Version::Ipfix, Family::V6) => IPFIX_IPV6,
    }
}

/// The template id of `family`'s flow records.
pub fn template_id(family: Family) -> u16 {
    match family {
        Family::V4 => TEMPLATE_IPV4,
        Family::V6 => TEMPLATE_IPV6,
    }
}

/// Bytes of one flow record of `family` in `version`.
pub fn record_len(version: Version, family: Family) -> usize {
    template(version, family).iter().map(|f| f.1 as usize).sum()
}

/// Offsets of the start and end time fields in a flow record.
fn time_offsets(version: Version, family: Family) -> (usize, usize) {
    let (start, end) = match version {
        Version::V9 => (22, 21),
        Version::Ipfix => (152, 153),
    };
    let mut at = 0;
    let (mut s, mut e) = (0, 0);
    for &(id, len) in template(version, family) {
        if id == start {
            s = at;
        } else if id == end {
            e = at;
        }
        at += len as usize;
    }
    (s, e)
}

/// What one finished message held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageStats {
    /// Bytes of the message.
    pub len: usize,
    /// Template and options-template records.
    pub template_records: u32,
    /// Flow records (data records of the flow templates).
    pub flow_records: u32,
    /// Data records of the options template.
    pub options_records: u32,
    /// Data sets of the flow templates.
    pub flow_sets: u32,
    /// Packets and octets of the flow records.
    pub packets: u64,
    pub octets: u64,
}

/// One exporting process's state for one v9 source id or IPFIX observation
/// domain: the version, the domain and the running sequence number.
#[derive(Debug, Clone)]
pub struct Encoder {
    version: Version,
    domain: u32,
    /// v9: the next message's sequence. IPFIX: data records sent so far.
    sequence: u32,
    pad: bool,
}

impl Encoder {
    /// An exporter of `version` for `domain` whose first message carries
    /// sequence `first_sequence`.
    pub fn new(version: Version, domain: u32, first_sequence: u32) -> Self {
        Encoder { version, domain, sequence: first_sequence, pad: version == Version::V9 }
    }

    /// Pad every set to a multiple of 4 bytes (v9's default) or not (IPFIX's).
    pub fn padded(mut self, pad: bool) -> Self {
        self.pad = pad;
        self
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn domain(&self) -> u32 {
        self.domain
    }

    /// The sequence number the next message carries.
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    /// Start a message exported at `export_ms` (absolute ms; the header
    /// keeps whole seconds) at router uptime `sys_uptime` (v9 only), appended
    /// to `out`. Nothing is final until [`Message::finish`].
    pub fn message<'a>(
        &'a mut self,
        out: &'a mut Vec<u8>,
        export_ms: u64,
        sys_uptime: u32,
    ) -> Message<'a> {
        let start = out.len();
        let hl = match self.version {
            Version::V9 => V9_HEADER_LEN,
            Version::Ipfix => IPFIX_HEADER_LEN,
        };
        out.resize(start + hl, 0);
        Message {
            enc: self,
            out,
            start,
            export_ms,
            sys_uptime,
            set: None,
            stats: MessageStats::default(),
        }
    }
}

/// Sequential writes into a record's room.
struct Writer<'a> {
    b: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    #[inline(always)]
    fn put(&mut self, v: &[u8]) {
        self.b[self.at..self.at + v.len()].copy_from_slice(v);
        self.at += v.len();
    }
}

/// A message being written. Add sets in wire order, then [`Message::finish`].
#[derive(Debug)]
pub struct Message<'a> {
    enc: &'a mut Encoder,
    out: &'a mut Vec<u8>,
    start: usize,
    export_ms: u64,
    sys_uptime: u32,
    /// The open set: where it starts and its id.
    set: Option<(usize, u16)>,
    stats: MessageStats,
}

impl Message<'_> {
    fn open(&mut self, id: u16) {
        if let Some((_, open)) = self.set {
            if open == id {
                return;
            }
        }
        self.close();
        self.set = Some((self.out.len(), id));
        self.out.extend_from_slice(&id.to_be_bytes());
        self.out.extend_from_slice(&[0, 0]);
    }

    fn close(&mut self) {
        let Some((at, _)) = self.set.take() else {
            return;
        };
        if self.enc.pad {
            while (self.out.len() - at) % 4 != 0 {
                self.out.push(0);
            }
        }
        let len = (self.out.len() - at) as u16;
        self.out[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn fields(&mut self, fields: &[Field]) {
        for &(id, len) in fields {
            self.out.extend_from_slice(&id.to_be_bytes());
            self.out.extend_from_slice(&len.to_be_bytes());
        }
    }

    /// A template set with the IPv4 and the IPv6 flow templates.
    pub fn templates(&mut self) {
        let v = self.enc.version;
        self.close();
        self.open(v.template_set());
        for family in [Family::V4, Family::V6] {
            let t = template(v, family);
            self.out.extend_from_slice(&template_id(family).to_be_bytes());
            self.out.extend_from_slice(&(t.len() as u16).to_be_bytes());
            self.fields(t);
            self.stats.template_records += 1;
        }
        self.close();
    }

    /// An options-template set with the sampling options template.
    pub fn sampling_template(&mut self) {
        let v = self.enc.version;
        self.close();
        self.open(v.options_set());
        self.out.extend_from_slice(&TEMPLATE_SAMPLING.to_be_bytes());
        match v {
            Version::V9 => {
                // Scope and option lengths in bytes (RFC 3954 section 6.1).
                let scope = (V9_SAMPLING_SCOPE.len() * 4) as u16;
                let opts = (V9_SAMPLING_OPTIONS.len() * 4) as u16;
                self.out.extend_from_slice(&scope.to_be_bytes());
                self.out.extend_from_slice(&opts.to_be_bytes());
                self.fields(V9_SAMPLING_SCOPE);
                self.fields(V9_SAMPLING_OPTIONS);
            }
            Version::Ipfix => {
                let n = (IPFIX_SAMPLING_SCOPE.len() + IPFIX_SAMPLING_OPTIONS.len()) as u16;
                self.out.extend_from_slice(&n.to_be_bytes());
                self.out.extend_from_slice(&(IPFIX_SAMPLING_SCOPE.len() as u16).to_be_bytes());
                self.fields(IPFIX_SAMPLING_SCOPE);
                self.fields(IPFIX_SAMPLING_OPTIONS);
            }
        }
        self.stats.template_records += 1;
        self.close();
    }

    /// A data set with one sampling options record: 1 packet in `interval`
    /// (at least 1), deterministic (v9 algorithm 1; IPFIX systematic
    /// count-based selection, selectorAlgorithm 1).
    pub fn sampling_record(&mut self, interval: u32) {
        let interval = interval.max(1);
        self.close();
        self.open(TEMPLATE_SAMPLING);
        self.out.extend_from_slice(&self.enc.domain.to_be_bytes());
        match self.enc.version {
            Version::V9 => {
                self.out.extend_from_slice(&interval.to_be_bytes());
                self.out.push(1);
            }
            Version::Ipfix => {
                self.out.extend_from_slice(&1u16.to_be_bytes());
                self.out.extend_from_slice(&1u32.to_be_bytes());
                self.out.extend_from_slice(&(interval - 1).to_be_bytes());
            }
        }
        self.stats.options_records += 1;
        self.close();
    }

    /// Append one flow record to the data set of its family (opening one
    /// when the set before is of another template).
    pub fn record(&mut self, r: &FlowRecord) {
        let family = r.family();
        let tid = template_id(family);
        if self.set.map(|(_, id)| id) != Some(tid) {
            self.open(tid);
            self.stats.flow_sets += 1;
        }
        // Every template has the same order (addresses, interfaces,
        // counters, times, ports, flags, protocol, tos, AS, masks, then
        // IPFIX's end reason): one straight write into the record's room.
        // `encode_tests` checks it against a field-by-field reading of the
        // templates.
        let v9 = self.enc.version == Version::V9;
        let rl = record_len(self.enc.version, family);
        let at = self.out.len();
        self.out.resize(at + rl, 0);
        let (up, export_ms) = (self.sys_uptime, self.export_ms);
        let uptime = |t: u64| up.wrapping_sub(export_ms.wrapping_sub(t) as u32);
        let mut w = Writer { b: &mut self.out[at..], at: 0 };
        for a in [r.src, r.dst, r.nexthop] {
            match (family, a) {
                (Family::V4, IpAddr::V4(a)) => w.put(&a.octets()),
                (Family::V6, IpAddr::V6(a)) => w.put(&a.octets()),
                (Family::V4, _) => w.put(&[0; 4]),
                (Family::V6, _) => w.put(&[0; 16]),
            }
        }
        w.put(&r.input.to_be_bytes());
        w.put(&r.output.to_be_bytes());
        w.put(&r.packets.to_be_bytes());
        w.put(&r.octets.to_be_bytes());
        if v9 {
            w.put(&uptime(r.first_ms).to_be_bytes());
            w.put(&uptime(r.last_ms).to_be_bytes());
        } else {
            w.put(&r.first_ms.to_be_bytes());
            w.put(&r.last_ms.to_be_bytes());
        }
        w.put(&r.src_port.to_be_bytes());
        w.put(&r.dst_port.to_be_bytes());
        if v9 {
            w.put(&[r.tcp_flags]);
        } else {
            w.put(&(r.tcp_flags as u16).to_be_bytes());
        }
        w.put(&[r.proto, r.tos]);
        w.put(&r.src_as.to_be_bytes());
        w.put(&r.dst_as.to_be_bytes());
        w.put(&[r.src_mask, r.dst_mask]);
        if !v9 {
            w.put(&[r.end_reason]);
        }
        debug_assert_eq!(w.at, rl, "the writer follows the template");
        self.stats.flow_records += 1;
        self.stats.packets += r.packets;
        self.stats.octets += r.octets;
    }

    /// Close the last set and write the header: counts, lengths, times and
    /// the sequence number (which then advances).
    pub fn finish(mut self) -> MessageStats {
        self.close();
        let enc = &mut *self.enc;
        let b = &mut self.out[self.start..];
        let len = b.len();
        let s = &mut self.stats;
        s.len = len;
        let secs = (self.export_ms / 1000) as u32;
        match enc.version {
            Version::V9 => {
                let count = s.template_records + s.flow_records + s.options_records;
                b[0..2].copy_from_slice(&9u16.to_be_bytes());
                b[2..4].copy_from_slice(&(count as u16).to_be_bytes());
                b[4..8].copy_from_slice(&self.sys_uptime.to_be_bytes());
                b[8..12].copy_from_slice(&secs.to_be_bytes());
                b[12..16].copy_from_slice(&enc.sequence.to_be_bytes());
                b[16..20].copy_from_slice(&enc.domain.to_be_bytes());
                enc.sequence = enc.sequence.wrapping_add(1);
            }
            Version::Ipfix => {
                assert!(len <= u16::MAX as usize, "an IPFIX message is at most 65535 bytes");
                b[0..2].copy_from_slice(&10u16.to_be_bytes());
                b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                b[4..8].copy_from_slice(&secs.to_be_bytes());
                b[8..12].copy_from_slice(&enc.sequence.to_be_bytes());
                b[12..16].copy_from_slice(&enc.domain.to_be_bytes());
                enc.sequence = enc.sequence.wrapping_add(s.flow_records + s.options_records);
            }
        }
        self.stats
    }
}

/// Move a message this encoder wrote to a new export: header export time
/// (`new_export_ms`, whole seconds on the wire), v9 sysUptime, the sequence
/// number, and every flow record's start and end time by the same amount
/// (v9: the sysUptime delta, mod 2^32; IPFIX: `new_export_ms -
/// old_export_ms`), so each record keeps its age at export. Returns the data
/// records (flow and options) it holds, what an IPFIX sequence advances by.
/// A message not written by [`Encoder`] is left as it is past its header.
pub fn move_message(
    d: &mut [u8],
    old_export_ms: u64,
    new_export_ms: u64,
    sys_uptime: u32,
    sequence: u32,
) -> u32 {
    let be16 = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let secs = ((new_export_ms / 1000) as u32).to_be_bytes();
    let (version, start, shift) = match be16(d, 0) {
        9 => {
            let delta = sys_uptime.wrapping_sub(be32(d, 4)) as u64;
            d[4..8].copy_from_slice(&sys_uptime.to_be_bytes());
            d[8..12].copy_from_slice(&secs);
            d[12..16].copy_from_slice(&sequence.to_be_bytes());
            (Version::V9, V9_HEADER_LEN, delta)
        }
        _ => {
            d[4..8].copy_from_slice(&secs);
            d[8..12].copy_from_slice(&sequence.to_be_bytes());
            (Version::Ipfix, IPFIX_HEADER_LEN, new_export_ms.wrapping_sub(old_export_ms))
        }
    };
    let mut records = 0;
    let mut at = start;
    while d.len() - at >= 4 {
        let (id, len) = (be16(d, at), be16(d, at + 2) as usize);
        if len < 4 || len > d.len() - at {
            break;
        }
        let family = match id {
            TEMPLATE_IPV4 => Some(Family::V4),
            TEMPLATE_IPV6 => Some(Family::V6),
            _ => None,
        };
        if let Some(f) = family {
            let rl = record_len(version, f);
            let (s, e) = time_offsets(version, f);
            let mut r = at + 4;
            while at + len - r >= rl {
                for off in [r + s, r + e] {
                    match version {
                        Version::V9 => {
                            let t = be32(d, off).wrapping_add(shift as u32);
                            d[off..off + 4].copy_from_slice(&t.to_be_bytes());
                        }
                        Version::Ipfix => {
                            let mut a = [0u8; 8];
                            a.copy_from_slice(&d[off..off + 8]);
                            let t = u64::from_be_bytes(a).wrapping_add(shift);
                            d[off..off + 8].copy_from_slice(&t.to_be_bytes());
                        }
                    }
                }
                records += 1;
                r += rl;
            }
        } else if id == TEMPLATE_SAMPLING {
            let rl = 4 + match version {
                Version::V9 => 5,
                Version::Ipfix => 10,
            };
            records += ((len - 4) / rl) as u32;
        }
        at += len;
    }
    records
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
