//! NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) on the wire: one templated
//! decoder for both, with the template cache it needs.
//!
//! Owns: the two message headers (told apart by the version word), walking
//! sets/flowsets with their padding, template and options-template records,
//! IPFIX withdrawals, the [`TemplateCache`] and its caps, the compiled
//! [`Plan`] of each template, sampling learnt from options records, and the
//! decoded [`TemplatedRecord`] (the flow table's `FlowRecord`, built once,
//! with what only the wire knows). No I/O and no clock, like the v5 decoder
//! next door: everything is a function of the cache and the bytes handed in.
//!
//! Why one room and not `v9/` + `ipfix/`: the two formats differ only in the
//! header, the set ids, the options-template layout and the enterprise bit.
//! Templates, plans, the record and the cache are the same code; `header`
//! holds what differs and `decode` branches on [`Version`] in the three
//! places it must.
//!
//! The files, in data-flow order:
//! - `header`: the 20-byte v9 and 16-byte IPFIX headers ([`MessageHeader`]).
//! - `ie`: the information elements the decoder knows and the [`Plan`] a
//!   template compiles to.
//! - `cache`: [`TemplateCache`], per exporter: templates and samplers.
//! - `record`: [`TemplatedRecord`], times, counters, biflow splitting.
//! - `decode`: [`Decoder`], the per-datagram walk and [`DatagramSummary`].
//!
//! # Strictness: what is rejected, and how it is counted
//! A datagram whose *framing* is broken (short header, unknown version, IPFIX
//! length not the datagram's, a set shorter than its 4-byte header or running
//! past the end) is rejected whole with a [`DecodeError`], checked before
//! anything is applied: no template is learnt and no record emitted from it.
//! Inside well-framed sets, a bad template or record (zero or too many
//! fields, a template or variable-length value running past its set, a
//! reserved set id, a full cache, a template from a new exporter past the
//! exporter cap) is skipped and counted in [`DatagramSummary::rejects`]
//! under the same stable reason names, and the rest of the datagram is still
//! decoded: one vendor template the decoder cannot take must not blind it to
//! the others. A template record whose length is known is skipped alone; one
//! whose own framing is broken ends its set. A known element whose length
//! cannot hold it is skipped and counted
//! ([`DatagramSummary::field_length_ignored`]).
//!
//! An exporter gets state only when one of its templates is learnt: data
//! sets and garbage from sources that never sent a template create nothing,
//! so spoofed sources cannot fill the exporter cap.
//!
//! The v9 header `count` is *not* used to stop the walk: RFC 3954 defines it
//! as the number of records, but softflowd-style exporters put too small a
//! number there (the shared test data's S3 and S17), so every flowset is
//! walked and a disagreement is reported by [`DatagramSummary::count_mismatch`].
//!
//! # Data before its template
//! A data set whose template is unknown is skipped whole (its records cannot
//! be counted without the template) and counted
//! ([`DatagramSummary::data_sets_no_template`], `no_template_bytes`); its
//! offset is in [`Decoder::missing_sets`]. The caller may keep the datagram
//! and hand those offsets to [`Decoder::decode_sets`] once the template may
//! have arrived (`ingest::templated` holds them, bounded).

mod cache;
mod decode;
pub mod encode;
mod header;
mod ie;
mod record;

pub use cache::TemplateCache;
pub use decode::{DatagramSummary, Decoder};
pub use header::{MessageHeader, Version};
pub use ie::{FieldSpec, Plan, TemplateKind};
pub use record::{Direction, TemplatedRecord, TimeSource};

use std::fmt;

/// Bounds on the state one decoder keeps. Every refusal is counted
/// (`cache_full`, `exporters_full`, `template_too_many_fields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Distinct exporter addresses with state.
    pub max_exporters: usize,
    /// Templates (data and options) one exporter may hold over all its domains.
    pub max_templates_per_exporter: usize,
    /// Templates over all exporters.
    pub max_templates: usize,
    /// Fields in one template (RFC 7011 allows 65535; real ones use < 100).
    pub max_fields: usize,
    /// Sampler ids (v9 FLOW_SAMPLER_ID, IPFIX selectorId) per exporter, and
    /// domains with options state per exporter.
    pub max_samplers_per_exporter: usize,
    /// Bytes of template state over all exporters: every template's
    /// compiled plan and table entry, and every exporter's entry, as
    /// [`TemplateCache::bytes`] charges them. Without it the count caps
    /// alone allow 65536 templates of 256 fields: about 220 MB per decoder.
    pub max_template_bytes: usize,
    /// The same for one exporter's templates.
    pub max_template_bytes_per_exporter: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_exporters: 4096,
            max_templates_per_exporter: 1024,
            max_templates: 65_536,
            max_fields: 256,
            max_samplers_per_exporter: 256,
            max_template_bytes: 64 << 20,
            max_template_bytes_per_exporter: 1 << 20,
        }
    }
}

/// Why a datagram, a set, a template or a record was rejected. The first
/// five reject the whole datagram ([`DecodeError::rejects_datagram`]); the
/// others are counted in [`DatagramSummary::rejects`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// Shorter than the header of its version (or than 2 bytes).
    TooShort { len: usize },
    /// Neither 9 nor 10.
    BadVersion { version: u16 },
    /// IPFIX: the header's length is not the datagram's.
    LengthMismatch { len: usize, header_len: u16 },
    /// A set header whose length is below 4, and not zero padding.
    SetTooShort { offset: usize, set_len: u16 },
    /// A set whose length runs past the end of the datagram.
    SetOverrun { offset: usize, set_len: u16, left: usize },
    /// A template from a new exporter while [`Limits::max_exporters`]
    /// already have state (the template is not learnt).
    ExportersFull,
    /// A set id that is neither a template, options template nor data set.
    ReservedSet { set_id: u16 },
    /// A template id below 256 that is not padding.
    TemplateReservedId { template_id: u16 },
    /// A template (or options template) with no fields, or v9 options with
    /// no fields at all.
    TemplateNoFields { template_id: u16 },
    /// More fields than [`Limits::max_fields`].
    TemplateTooManyFields { template_id: u16, fields: usize },
    /// A template record running past the end of its set.
    TemplateOverrun { template_id: u16 },
    /// An options template with no scope, more scopes than fields, or a v9
    /// scope/option length not a multiple of 4.
    TemplateBadScope { template_id: u16 },
    /// A template whose records would be zero bytes long (all fields of length 0).
    TemplateEmptyRecord { template_id: u16 },
    /// A template or sampler refused by a cap in [`Limits`] (a count, or
    /// the byte budget).
    CacheFull,
    /// A data record whose (variable-length) fields run past its set, or a
    /// data set of 4 bytes or more in which no record fits.
    RecordOverrun { template_id: u16 },
}

impl DecodeError {
    /// The first this many [`Self::REASONS`] reject a whole datagram.
    pub const DATAGRAM_REASONS: usize = 5;

    /// Every reason, in the order reports list them.
    pub const REASONS: [&'static str; 15] = [
        "too_short",
        "bad_version",
        "length_mismatch",
        "set_too_short",
        "set_overrun",
        "exporters_full",
        "reserved_set",
        "template_reserved_id",
        "template_no_fields",
        "template_too_many_fields",
        "template_overrun",
        "template_bad_scope",
        "template_empty_record",
        "cache_full",
        "record_overrun",
    ];

    /// The stable counter name of this rejection.
    pub fn reason(&self) -> &'static str {
        Self::REASONS[self.index()]
    }

    /// Index of [`Self::reason`] in [`Self::REASONS`].
    pub fn index(&self) -> usize {
        use DecodeError::*;
        match self {
            TooShort { .. } => 0,
            BadVersion { .. } => 1,
            LengthMismatch { .. } => 2,
            SetTooShort { .. } => 3,
            SetOverrun { .. } => 4,
            ExportersFull => 5,
            ReservedSet { .. } => 6,
            TemplateReservedId { .. } => 7,
            TemplateNoFields { .. } => 8,
            TemplateTooManyFields { .. } => 9,
            TemplateOverrun { .. } => 10,
            TemplateBadScope { .. } => 11,
            TemplateEmptyRecord { .. } => 12,
            CacheFull => 13,
            RecordOverrun { .. } => 14,
        }
    }

    /// Whether this reason rejects the whole datagram (returned as `Err`)
    /// rather than one set, template or record inside it (counted).
    pub fn rejects_datagram(&self) -> bool {
        self.index() < Self::DATAGRAM_REASONS
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeError::*;
        match *self {
            TooShort { len } => write!(f, "datagram too short for a v9/IPFIX header: {len} bytes"),
            BadVersion { version } => write!(f, "not NetFlow v9 or IPFIX: version {version}"),
            LengthMismatch { len, header_len } => {
                write!(f, "IPFIX length field says {header_len} bytes, the datagram has {len}")
            }
            SetTooShort { offset, set_len } => {
                write!(f, "set at byte {offset} has length {set_len}, below its 4-byte header")
            }
            SetOverrun { offset, set_len, left } => write!(
                f,
                "set at byte {offset} has length {set_len}, only {left} bytes left in the datagram"
            ),
            ExportersFull => {
                write!(f, "exporter cap reached: no template state for a new exporter")
            }
            ReservedSet { set_id } => write!(f, "reserved set id {set_id}"),
            TemplateReservedId { template_id } => write!(
                f,
                "template id {template_id} is reserved (below 256, or a withdraw-all id \
                 that is not its set's)"
            ),
            TemplateNoFields { template_id } => write!(f, "template {template_id} has no fields"),
            TemplateTooManyFields { template_id, fields } => {
                write!(f, "template {template_id} has {fields} fields, above the cap")
            }
            TemplateOverrun { template_id } => {
                write!(f, "template {template_id} runs past the end of its set")
            }
            TemplateBadScope { template_id } => {
                write!(f, "options template {template_id} has an impossible scope")
            }
            TemplateEmptyRecord { template_id } => {
                write!(f, "template {template_id} describes zero-length records")
            }
            CacheFull => write!(f, "template or sampler cache full"),
            RecordOverrun { template_id } => {
                write!(f, "a record of template {template_id} runs past the end of its set")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Big-endian unsigned integer of 1 to 8 bytes (RFC 7011 reduced-size
/// encoding); callers check the length.
#[inline(always)]
fn be_uint(b: &[u8]) -> u64 {
    // The common widths in one load each (a per-record hot spot).
    match *b {
        [a] => a as u64,
        [a, c] => u16::from_be_bytes([a, c]) as u64,
        [a, c, d, e] => u32::from_be_bytes([a, c, d, e]) as u64,
        [a, c, d, e, f, g, h, i] => u64::from_be_bytes([a, c, d, e, f, g, h, i]),
        _ => b.iter().fold(0u64, |acc, &x| acc << 8 | x as u64),
    }
}

#[cfg(test)]
mod tests;
