//! The information elements the decoder knows, and the [`Plan`] a template
//! compiles to.
//!
//! Known (enterprise 0, IANA numbers; v9 field types share them): counters
//! 1/2 (delta) and 85/86 (total), 4 protocol, 5 tos, 6 tcp flags, 7/11 ports,
//! 8/12 and 27/28 addresses, 9/13 and 29/30 masks, 10/14 interfaces, 15/62
//! next hop, 16/17 AS, 21/22 uptime times, 150..=157 absolute times (s, ms,
//! NTP µs, NTP ns), 158/159 delta µs, 160 systemInitTimeMilliseconds, 32/139
//! ICMP type and code, 136 flowEndReason, and the sampling elements 34
//! samplingInterval, 48 samplerId, 50 samplerRandomInterval, 302 selectorId,
//! 305/306 samplingPacketInterval/Space. Of enterprise 29305 (RFC 5103
//! reverse elements): 1, 2, 85, 86, 5 and 6. Everything else (other
//! enterprises, v9 vendor types above 32767, post-NAT fields, strings) is
//! skipped by its length. A known element with a length it cannot have (an
//! IPv4 address of 2 bytes) is skipped too and counted: per template in
//! [`Plan::ignored`], per value for a variable-length field (the decoder
//! sums both into `field_length_ignored`); a repeated element keeps its
//! first occurrence.
//!
//! A plan is compiled once per template: when every field has a fixed
//! length, the known fields' offsets are computed here and a record is read
//! by visiting only them (the per-record cost of v5 plus one loop). A
//! variable-length field (length 65535, RFC 7011 section 7; H3C sends it in
//! v9 too) makes every later offset depend on the data, so such records are
//! walked field by field.

/// The IANA private enterprise number of RFC 5103 reverse elements.
pub const REVERSE_PEN: u32 = 29305;
/// The field length that means "variable length" (RFC 7011 section 7).
pub(super) const VARLEN: u16 = 0xffff;

/// One known element, and the slot its value goes to while a record is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Known {
    Octets,
    Packets,
    OctetsTotal,
    PacketsTotal,
    Proto,
    Tos,
    TcpFlags,
    SrcPort,
    DstPort,
    Src4,
    Dst4,
    SrcMask,
    DstMask,
    Input,
    Output,
    Next4,
    SrcAs,
    DstAs,
    LastUptime,
    FirstUptime,
    IcmpType4,
    SamplingInterval,
    SamplerId,
    SamplerRandomInterval,
    SrcMask6,
    DstMask6,
    IcmpType6,
    EndReason,
    StartSecs,
    EndSecs,
    StartMs,
    EndMs,
    StartUs,
    EndUs,
    StartNs,
    EndNs,
    StartDeltaUs,
    EndDeltaUs,
    SysInitMs,
    SelectorId,
    PacketInterval,
    PacketSpace,
    RevOctets,
    RevPackets,
    RevOctetsTotal,
    RevPacketsTotal,
    RevTos,
    RevTcpFlags,
    // 128-bit values: their own slots (see `record`).
    Src6,
    Dst6,
    Next6,
}

/// Slots for values up to 64 bits (every variant before `Src6`).
pub(super) const NUM_SLOTS: usize = Known::Src6 as usize;
const _: () = assert!((Known::Next6 as usize) < 64, "presence is a u64 bitmask");

/// How a known element's length is checked.
enum Width {
    /// An unsigned integer of 1 to this many bytes (reduced-size encoding).
    Upto(u16),
    /// Exactly this many bytes (addresses, NTP timestamps).
    Exactly(u16),
}

impl Known {
    /// The element `(enterprise, id)`, if the decoder knows it. v9 passes 0.
    pub(super) fn lookup(pen: u32, id: u16) -> Option<Known> {
        use Known::*;
        if pen == REVERSE_PEN {
            return Some(match id {
                1 => RevOctets,
                2 => RevPackets,
                5 => RevTos,
                6 => RevTcpFlags,
                85 => RevOctetsTotal,
                86 => RevPacketsTotal,
                _ => return None,
            });
        }
        if pen != 0 {
            return None;
        }
        Some(match id {
            1 => Octets,
            2 => Packets,
            4 => Proto,
            5 => Tos,
            6 => TcpFlags,
            7 => SrcPort,
            8 => Src4,
            9 => SrcMask,
            10 => Input,
            11 => DstPort,
            12 => Dst4,
            13 => DstMask,
            14 => Output,
            15 => Next4,
            16 => SrcAs,
            17 => DstAs,
            21 => LastUptime,
            22 => FirstUptime,
            27 => Src6,
            28 => Dst6,
            29 => SrcMask6,
            30 => DstMask6,
            32 => IcmpType4,
            34 => SamplingInterval,
            48 => SamplerId,
            50 => SamplerRandomInterval,
            62 => Next6,
            85 => OctetsTotal,
            86 => PacketsTotal,
            136 => EndReason,
            139 => IcmpType6,
            150 => StartSecs,
            151 => EndSecs,
            152 => StartMs,
            153 => EndMs,
            154 => StartUs,
            155 => EndUs,
            156 => StartNs,
            157 => EndNs,
            158 => StartDeltaUs,
            159 => EndDeltaUs,
            160 => SysInitMs,
            302 => SelectorId,
            305 => PacketInterval,
            306 => PacketSpace,
            _ => return None,
        })
    }

    fn width(self) -> Width {
        use Known::*;
        match self {
            Src4 | Dst4 | Next4 => Width::Exactly(4),
            Src6 | Dst6 | Next6 => Width::Exactly(16),
            StartUs | EndUs | StartNs | EndNs => Width::Exactly(8),
            Proto | Tos | RevTos | SrcMask | DstMask | SrcMask6 | DstMask6 | EndReason => {
                Width::Upto(1)
            }
            // tcpControlBits is 2 bytes in IPFIX (the low 8 are the v5 flags).
            TcpFlags | RevTcpFlags | SrcPort | DstPort | IcmpType4 | IcmpType6 => Width::Upto(2),
            Input
            | Output
            | SrcAs
            | DstAs
            | LastUptime
            | FirstUptime
            | StartSecs
            | EndSecs
            | SamplingInterval
            | SamplerRandomInterval
            | StartDeltaUs
            | EndDeltaUs
            | PacketInterval
            | PacketSpace => Width::Upto(4),
            _ => Width::Upto(8),
        }
    }

    /// Whether a field of `len` bytes can hold this element (`len` is the
    /// wire length of a fixed field, or the value's length for a
    /// variable-length one).
    #[inline]
    pub(super) fn fits(self, len: usize) -> bool {
        match self.width() {
            Width::Upto(n) => (1..=n as usize).contains(&len),
            Width::Exactly(n) => len == n as usize,
        }
    }

    /// Whether this is a reverse (RFC 5103) element.
    pub(super) fn is_reverse(self) -> bool {
        (self as u8) >= Known::RevOctets as u8 && (self as u8) <= Known::RevTcpFlags as u8
    }
}

/// Where [`Plan::read`] puts the values of a record's known fields.
pub(super) trait Sink {
    /// An unsigned value already read (1 to 8 bytes on the wire).
    fn num(&mut self, k: Known, v: u64);
    /// A value as its bytes (of a length `k` fits).
    fn bytes(&mut self, k: Known, v: &[u8]);
}

/// One field specifier of a template, as read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// Enterprise number (IPFIX enterprise bit set); 0 otherwise and in v9.
    pub pen: u32,
    /// Element id (enterprise bit cleared) or v9 field type.
    pub id: u16,
    /// Length in bytes, or 65535: variable length.
    pub len: u16,
}

/// Data template or options template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateKind {
    Data,
    Options,
}

/// A template compiled for decoding its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    kind: TemplateKind,
    /// Every field in wire order: its length ([`VARLEN`] for variable) and
    /// what it is when known (a variable-length known field is checked per record).
    fields: Box<[(u16, Option<Known>)]>,
    /// When no field is variable: the known fields with their offsets.
    fixed: Option<Box<[(Known, u32, u16)]>>,
    /// The record length when fixed; the shortest record otherwise (each
    /// variable field at least its 1-byte length prefix).
    min_len: usize,
    biflow: bool,
    ignored: u16,
    /// The template as it came (with `scopes` and `v9`): what is saved
    /// across restarts and compiled again when loaded.
    specs: Box<[FieldSpec]>,
    scopes: u16,
    v9: bool,
}

impl Plan {
    /// Compile `fields`. `scopes` leading fields are options scopes: in v9
    /// their types are scope kinds (1 System, 2 Interface, ...), not
    /// elements, so they are never known there.
    pub fn compile(kind: TemplateKind, fields: &[FieldSpec], scopes: usize, v9: bool) -> Plan {
        let mut seen = 0u64;
        let mut ignored = 0u16;
        let mut out = Vec::with_capacity(fields.len());
        for (i, f) in fields.iter().enumerate() {
            let known =
                (!(v9 && i < scopes)).then(|| Known::lookup(f.pen, f.id)).flatten().filter(|k| {
                    let fresh = seen & 1 << *k as u8 == 0;
                    let fits = f.len == VARLEN || k.fits(f.len as usize);
                    if fresh && !fits {
                        ignored += 1;
                    }
                    fresh && fits
                });
            if let Some(k) = known {
                seen |= 1 << k as u8;
            }
            out.push((f.len, known));
        }
        let var = fields.iter().any(|f| f.len == VARLEN);
        let min_len = fields.iter().map(|f| if f.len == VARLEN { 1 } else { f.len as usize }).sum();
        let fixed = (!var).then(|| {
            let mut at = 0u32;
            let mut v = Vec::new();
            for &(len, known) in &out {
                if let Some(k) = known {
                    v.push((k, at, len));
                }
                at += len as u32; // at most 65535 fields of 65534 bytes: no overflow
            }
            v.into_boxed_slice()
        });
        let biflow = out.iter().any(|(_, k)| k.is_some_and(Known::is_reverse));
        Plan {
            kind,
            fields: out.into_boxed_slice(),
            fixed,
            min_len,
            biflow,
            ignored,
            specs: fields.into(),
            scopes: scopes as u16,
            v9,
        }
    }

    pub fn kind(&self) -> TemplateKind {
        self.kind
    }

    /// Record length when every field is fixed; `None` with variable-length fields.
    pub fn record_len(&self) -> Option<usize> {
        self.fixed.as_ref().map(|_| self.min_len)
    }

    /// The shortest record this template can describe.
    pub fn min_len(&self) -> usize {
        self.min_len
    }

    /// Whether it carries RFC 5103 reverse elements the decoder knows.
    pub fn is_biflow(&self) -> bool {
        self.biflow
    }

    /// Known elements skipped because their (fixed) length cannot hold them.
    pub fn ignored(&self) -> u16 {
        self.ignored
    }

    /// The field specifiers it was compiled from, its options scope count,
    /// and whether it is v9 (to save it and [`Plan::compile`] it again).
    pub fn source(&self) -> (&[FieldSpec], usize, bool) {
        (&self.specs, self.scopes as usize, self.v9)
    }

    /// Read the record at the start of `body`, handing every known field's
    /// value to `put`. Returns the record's length, or `None` when a
    /// variable-length field runs past `body` (the caller checked that at
    /// least [`Self::min_len`] bytes are left). A known variable-length
    /// value whose length cannot hold it is skipped and counted in `misfit`.
    ///
    /// Fixed fields of up to 8 bytes are read with one 8-byte load where
    /// `body` has 8 bytes from the field on (the bytes after it shifted out).
    #[inline]
    pub(super) fn read(&self, body: &[u8], misfit: &mut u32, put: &mut impl Sink) -> Option<usize> {
        if let Some(fixed) = &self.fixed {
            let rec = body.get(..self.min_len)?;
            for &(k, at, len) in fixed.iter() {
                let (at, len) = (at as usize, len as usize);
                match body.get(at..at + 8) {
                    // A known fixed field is 1 byte at least (`Known::fits`).
                    Some(w) if len <= 8 => {
                        let w = u64::from_be_bytes(w.try_into().expect("8 bytes"));
                        put.num(k, w >> (64 - 8 * len));
                    }
                    _ => put.bytes(k, &rec[at..at + len]),
                }
            }
            return Some(self.min_len);
        }
        let mut at = 0usize;
        for &(len, known) in self.fields.iter() {
            let len = if len == VARLEN {
                let first = *body.get(at)? as usize;
                at += 1;
                if first == 255 {
                    let long = body.get(at..at + 2)?;
                    at += 2;
                    u16::from_be_bytes([long[0], long[1]]) as usize
                } else {
                    first
                }
            } else {
                len as usize
            };
            let value = body.get(at..at + len)?;
            at += len;
            match known {
                Some(k) if k.fits(len) => put.bytes(k, value),
                Some(_) => *misfit += 1,
                None => {}
            }
        }
        Some(at)
    }
}

impl Plan {
    /// Heap bytes this plan owns (its boxed slices), for the template
    /// cache's byte budget ([`super::Limits::max_template_bytes`]).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of_val;
        size_of_val(&*self.fields)
            + self.fixed.as_deref().map_or(0, size_of_val)
            + size_of_val(&*self.specs)
    }
}
