//! NetFlow v5 on the wire: a zero-copy, strictly validating decoder and an
//! encoder, over plain byte slices.
//!
//! Owns: the v5 layout (SEMANTICS section 2), the typed [`DecodeError`] with
//! one variant per rejection reason, and the conversion of router uptime
//! timestamps to absolute nanoseconds (with the 32-bit uptime wrap).
//! No I/O, no clock: everything here is a pure function of its input.
//!
//! NetFlow v9 and IPFIX live in [`template`]: templated, stateful, and
//! decoded apart from this v5 path.
//!
//! Invariant: a [`Datagram`] returned by [`Datagram::parse`] holds exactly
//! `count` whole records, `1 <= count <= 30`; record accessors never index
//! out of bounds.

mod encode;
pub mod template;

pub use encode::{encode, HeaderFields, RecordFields};

use std::fmt;

/// Bytes in a v5 header.
pub const HEADER_LEN: usize = 24;
/// Bytes in a v5 record.
pub const RECORD_LEN: usize = 48;
/// The most records a v5 datagram may carry.
pub const MAX_RECORDS: usize = 30;
/// The largest valid v5 datagram.
pub const MAX_DATAGRAM_LEN: usize = HEADER_LEN + RECORD_LEN * MAX_RECORDS;

/// Why a datagram was rejected. Each variant is counted under [`DecodeError::reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// Fewer than 24 bytes: not even a header.
    TooShort { len: usize },
    /// The version field is not 5 (v9 and IPFIX land here too).
    BadVersion { version: u16 },
    /// `count` is 0 or above 30.
    BadCount { count: u16 },
    /// The length is not `24 + 48 * count` (strict), or is shorter than that (lenient).
    LengthMismatch { len: usize, count: u16 },
}

impl DecodeError {
    /// Every reason, in the order reports list them.
    pub const REASONS: [&'static str; 4] =
        ["too_short", "bad_version", "bad_count", "length_mismatch"];

    /// The stable counter name of this rejection (a key of `rejected` in `--stats-json`).
    pub fn reason(&self) -> &'static str {
        Self::REASONS[self.index()]
    }

    /// Index of [`Self::reason`] in [`Self::REASONS`].
    pub fn index(&self) -> usize {
        match self {
            DecodeError::TooShort { .. } => 0,
            DecodeError::BadVersion { .. } => 1,
            DecodeError::BadCount { .. } => 2,
            DecodeError::LengthMismatch { .. } => 3,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::TooShort { len } => {
                write!(f, "datagram too short: {len} bytes, a v5 header needs {HEADER_LEN}")
            }
            DecodeError::BadVersion { version } => {
                write!(f, "not NetFlow v5: version field is {version}")
            }
            DecodeError::BadCount { count } => {
                write!(f, "bad record count {count}: v5 allows 1..={MAX_RECORDS}")
            }
            DecodeError::LengthMismatch { len, count } => write!(
                f,
                "length mismatch: {len} bytes but count {count} needs {}",
                HEADER_LEN + RECORD_LEN * count as usize
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Absolute time in ns of router uptime `t` (ms), given the export time and
/// the exporter's uptime at export: `export - ((sys_uptime - t) mod 2^32) ms`,
/// so the 32-bit uptime wrap is handled; saturates at 0. The one uptime
/// conversion, for v5 records and v9 FIRST/LAST_SWITCHED alike.
#[inline(always)]
pub fn uptime_to_ns(export_ns: u64, sys_uptime: u32, t: u32) -> u64 {
    let back_ms = sys_uptime.wrapping_sub(t) as u64;
    export_ns.saturating_sub(back_ms * 1_000_000)
}

/// A validated v5 datagram: a view over the caller's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> Datagram<'a> {
    /// Validate strictly: exactly `24 + 48 * count` bytes, `1 <= count <= 30`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        Self::parse_with(bytes, false)
    }

    /// Validate; with `lenient`, bytes after the last record are ignored.
    pub fn parse_with(bytes: &'a [u8], lenient: bool) -> Result<Self, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::TooShort { len: bytes.len() });
        }
        let version = be16(bytes, 0);
        if version != 5 {
            return Err(DecodeError::BadVersion { version });
        }
        let count = be16(bytes, 2);
        if count == 0 || count as usize > MAX_RECORDS {
            return Err(DecodeError::BadCount { count });
        }
        let need = HEADER_LEN + RECORD_LEN * count as usize;
        if bytes.len() < need || (!lenient && bytes.len() != need) {
            return Err(DecodeError::LengthMismatch { len: bytes.len(), count });
        }
        Ok(Datagram { bytes: &bytes[..need], count: count as usize })
    }

    /// The header fields.
    #[inline]
    pub fn header(&self) -> Header {
        Header::from_bytes(&self.bytes[..HEADER_LEN])
    }

    /// Number of records (1..=30).
    #[inline]
    pub fn count(&self) -> usize {
        self.count
    }

    /// The bytes this datagram covers (trailing bytes excluded).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The records, in wire order.
    #[inline]
    pub fn records(&self) -> impl ExactSizeIterator<Item = Record<'a>> + 'a {
        self.bytes[HEADER_LEN..]
            .chunks_exact(RECORD_LEN)
            .map(|c| Record(c.try_into().expect("chunks_exact yields RECORD_LEN bytes")))
    }
}

/// Sampling mode, from bits 15-14 of the header's sampling field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SamplingMode {
    None,
    Deterministic,
    Random,
    /// Mode 3 is reserved; kept so nothing is lost.
    Reserved,
}

impl SamplingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SamplingMode::None => "none",
            SamplingMode::Deterministic => "deterministic",
            SamplingMode::Random => "random",
            SamplingMode::Reserved => "reserved",
        }
    }
}

/// A decoded v5 header (24 bytes, copied out: it is small).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub count: u16,
    /// Milliseconds since the exporter booted.
    pub sys_uptime: u32,
    pub unix_secs: u32,
    pub unix_nsecs: u32,
    pub flow_sequence: u32,
    pub engine_type: u8,
    pub engine_id: u8,
    /// The raw 16-bit field: mode in bits 15-14, interval in bits 13-0.
    pub sampling: u16,
}

impl Header {
    fn from_bytes(b: &[u8]) -> Self {
        Header {
            version: be16(b, 0),
            count: be16(b, 2),
            sys_uptime: be32(b, 4),
            unix_secs: be32(b, 8),
            unix_nsecs: be32(b, 12),
            flow_sequence: be32(b, 16),
            engine_type: b[20],
            engine_id: b[21],
            sampling: be16(b, 22),
        }
    }

    /// Export time in nanoseconds since the Unix epoch.
    #[inline]
    pub fn export_ns(&self) -> u64 {
        self.unix_secs as u64 * 1_000_000_000 + self.unix_nsecs as u64
    }

    /// Absolute time in ns of an uptime timestamp (a record's First or Last),
    /// with the 32-bit wrap: `export - (sys_uptime - t mod 2^32) ms`.
    /// Saturates at 0 for nonsense that would precede the epoch.
    #[inline]
    pub fn uptime_to_ns(&self, t: u32) -> u64 {
        self.uptime_to_ns_from(self.export_ns(), t)
    }

    /// [`Header::uptime_to_ns`] given `export_ns` (= [`Header::export_ns`],
    /// computed once for all the records of a datagram).
    #[inline]
    pub fn uptime_to_ns_from(&self, export_ns: u64, t: u32) -> u64 {
        uptime_to_ns(export_ns, self.sys_uptime, t)
    }

    pub fn sampling_mode(&self) -> SamplingMode {
        match self.sampling >> 14 {
            0 => SamplingMode::None,
            1 => SamplingMode::Deterministic,
            2 => SamplingMode::Random,
            _ => SamplingMode::Reserved,
        }
    }

    /// Sampling interval (bits 13-0); 0 or 1 means every packet.
    pub fn sampling_interval(&self) -> u16 {
        self.sampling & 0x3fff
    }
}

/// A zero-copy view of one 48-byte record (a fixed-size array: field reads
/// need no bounds checks).
#[derive(Clone, Copy)]
pub struct Record<'a>(&'a [u8; RECORD_LEN]);

impl fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record").field("fields", &self.fields()).finish()
    }
}

impl<'a> Record<'a> {
    #[inline]
    pub fn new(bytes: &'a [u8; RECORD_LEN]) -> Self {
        Record(bytes)
    }

    #[inline]
    pub fn src_addr(&self) -> u32 {
        be32(self.0, 0)
    }
    #[inline]
    pub fn dst_addr(&self) -> u32 {
        be32(self.0, 4)
    }
    #[inline]
    pub fn nexthop(&self) -> u32 {
        be32(self.0, 8)
    }
    #[inline]
    pub fn input(&self) -> u16 {
        be16(self.0, 12)
    }
    #[inline]
    pub fn output(&self) -> u16 {
        be16(self.0, 14)
    }
    #[inline]
    pub fn packets(&self) -> u32 {
        be32(self.0, 16)
    }
    #[inline]
    pub fn octets(&self) -> u32 {
        be32(self.0, 20)
    }
    /// First packet, exporter uptime in ms.
    #[inline]
    pub fn first(&self) -> u32 {
        be32(self.0, 24)
    }
    /// Last packet, exporter uptime in ms.
    #[inline]
    pub fn last(&self) -> u32 {
        be32(self.0, 28)
    }
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.0, 32)
    }
    /// Destination port; for ICMP, `type << 8 | code`.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.0, 34)
    }
    /// Both ports in one read: `src_port << 16 | dst_port`.
    #[inline]
    pub fn ports(&self) -> u32 {
        be32(self.0, 32)
    }
    /// Protocol and ToS in one read: `proto << 8 | tos`.
    #[inline]
    pub fn proto_tos(&self) -> u16 {
        be16(self.0, 38)
    }
    #[inline]
    pub fn pad1(&self) -> u8 {
        self.0[36]
    }
    #[inline]
    pub fn tcp_flags(&self) -> u8 {
        self.0[37]
    }
    #[inline]
    pub fn proto(&self) -> u8 {
        self.0[38]
    }
    #[inline]
    pub fn tos(&self) -> u8 {
        self.0[39]
    }
    #[inline]
    pub fn src_as(&self) -> u16 {
        be16(self.0, 40)
    }
    #[inline]
    pub fn dst_as(&self) -> u16 {
        be16(self.0, 42)
    }
    #[inline]
    pub fn src_mask(&self) -> u8 {
        self.0[44]
    }
    #[inline]
    pub fn dst_mask(&self) -> u8 {
        self.0[45]
    }
    #[inline]
    pub fn pad2(&self) -> u16 {
        be16(self.0, 46)
    }

    /// All fields copied out (for tests, the encoder and dump output).
    pub fn fields(&self) -> RecordFields {
        RecordFields {
            src_addr: self.src_addr(),
            dst_addr: self.dst_addr(),
            nexthop: self.nexthop(),
            input: self.input(),
            output: self.output(),
            packets: self.packets(),
            octets: self.octets(),
            first: self.first(),
            last: self.last(),
            src_port: self.src_port(),
            dst_port: self.dst_port(),
            pad1: self.pad1(),
            tcp_flags: self.tcp_flags(),
            proto: self.proto(),
            tos: self.tos(),
            src_as: self.src_as(),
            dst_as: self.dst_as(),
            src_mask: self.src_mask(),
            dst_mask: self.dst_mask(),
            pad2: self.pad2(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
