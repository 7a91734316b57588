//! The per-datagram walk: header, set framing, template and options-template
//! records, data records through their [`Plan`], and the
//! [`DatagramSummary`] of what the datagram held.
//!
//! The walk is two passes over the set headers: the first checks the
//! framing only (every set at least 4 bytes and inside the datagram; a
//! zero-filled tail, as PAN-OS sends, is padding), so a datagram rejected for
//! its framing changes nothing; the second applies sets in wire order, so a
//! template takes effect for the data sets after it in the same datagram
//! (and a data set before its template is counted as without template, as
//! any single-pass collector sees it).

use std::net::IpAddr;

use super::cache::{Slot, TemplateCache};
use super::header::{MessageHeader, Version};
use super::ie::{FieldSpec, Plan, TemplateKind};
use super::record::{Context, TemplatedRecord, Values};
use super::{DecodeError, Limits};
use crate::wire::{be16, be32};

/// What one accepted datagram held. Record counts are wire records: a split
/// biflow is one `flow_records` and one `reverse_records`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramSummary {
    pub header: MessageHeader,
    /// Template records learnt (new or replacing).
    pub templates: u32,
    /// Options-template records learnt.
    pub options_templates: u32,
    /// IPFIX withdrawal records (one may remove every template of a domain).
    pub withdrawals: u32,
    /// Templates those withdrawals removed.
    pub templates_withdrawn: u32,
    /// Data records of data templates (each emitted as a forward record).
    pub flow_records: u32,
    /// Data records of options templates (read for sampling, not emitted).
    pub options_records: u32,
    /// Reverse records emitted for biflows.
    pub reverse_records: u32,
    /// Flow records with total counters and no delta (Cisco ASA, YAF).
    pub total_only_records: u32,
    /// Data sets skipped because their template was unknown (their offsets:
    /// [`Decoder::missing_sets`]).
    pub data_sets_no_template: u32,
    /// Bytes of those sets (set headers excluded).
    pub no_template_bytes: u32,
    /// Known elements skipped because their length cannot hold them: the
    /// fields of templates learnt here, and variable-length values of records.
    pub field_length_ignored: u32,
    /// Padding: set tails shorter than a record, and a datagram's zero tail.
    pub padding_bytes: u32,
    /// Sets, templates and records skipped, by [`DecodeError::index`] (the
    /// datagram-level reasons stay 0 here: they are returned as `Err`).
    pub rejects: [u32; DecodeError::REASONS.len()],
}

impl DatagramSummary {
    fn new(header: MessageHeader) -> Self {
        DatagramSummary {
            header,
            templates: 0,
            options_templates: 0,
            withdrawals: 0,
            templates_withdrawn: 0,
            flow_records: 0,
            options_records: 0,
            reverse_records: 0,
            total_only_records: 0,
            data_sets_no_template: 0,
            no_template_bytes: 0,
            field_length_ignored: 0,
            padding_bytes: 0,
            rejects: [0; DecodeError::REASONS.len()],
        }
    }

    fn reject(&mut self, e: DecodeError) {
        self.rejects[e.index()] += 1;
    }

    /// How many times `reason` (a [`DecodeError::REASONS`] name) was counted.
    pub fn rejected(&self, reason: &str) -> u32 {
        DecodeError::REASONS.iter().position(|r| *r == reason).map_or(0, |i| self.rejects[i])
    }

    /// Everything skipped inside the datagram.
    pub fn rejected_total(&self) -> u32 {
        self.rejects.iter().sum()
    }

    /// Data records of every kind: what IPFIX's sequence number counts.
    pub fn data_records(&self) -> u32 {
        self.flow_records + self.options_records
    }

    /// v9: the header's count is not the number of records found (RFC 3954:
    /// templates, options templates and data records all count).
    pub fn count_mismatch(&self) -> bool {
        let found = self.templates + self.options_templates + self.data_records();
        self.header.count.is_some_and(|c| c as u32 != found)
    }
}

/// A v9/IPFIX decoder: the template cache and the scratch space of one
/// decoding thread. Time is not read: record times come from the datagram.
#[derive(Debug)]
pub struct Decoder {
    cache: TemplateCache,
    values: Values,
    specs: Vec<FieldSpec>,
    /// Offsets of the data sets of the last datagram whose template was unknown.
    missing: Vec<u16>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(Limits::default())
    }
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Decoder {
            cache: TemplateCache::new(limits),
            values: Values::default(),
            specs: Vec::new(),
            missing: Vec::new(),
        }
    }

    pub fn cache(&self) -> &TemplateCache {
        &self.cache
    }

    pub fn cache_mut(&mut self) -> &mut TemplateCache {
        &mut self.cache
    }

    /// The byte offsets (in the datagram) of the data sets the last
    /// [`Decoder::decode`] skipped for want of a template: what to hand to
    /// [`Decoder::decode_sets`] once the template may have arrived.
    pub fn missing_sets(&self) -> &[u16] {
        &self.missing
    }

    /// Decode one datagram from `exporter`, learning its templates and
    /// handing every flow record (both halves of a biflow) to `out`.
    pub fn decode(
        &mut self,
        exporter: IpAddr,
        bytes: &[u8],
        out: &mut impl FnMut(TemplatedRecord),
    ) -> Result<DatagramSummary, DecodeError> {
        let (header, start) = MessageHeader::parse(bytes)?;
        let end = frame_sets(bytes, start)?;
        self.missing.clear();
        let mut s = DatagramSummary::new(header);
        s.padding_bytes = (bytes.len() - end) as u32;
        let v = header.version;
        let mut at = start;
        while at < end {
            let id = be16(bytes, at);
            let set_at = at;
            let body = &bytes[at + 4..at + be16(bytes, at + 2) as usize];
            at += 4 + body.len();
            if id == v.template_set() || id == v.options_set() {
                let kind =
                    if id == v.template_set() { TemplateKind::Data } else { TemplateKind::Options };
                let specs = &mut self.specs;
                templates(&mut self.cache, exporter, &header, id, body, kind, specs, &mut s);
            } else if id >= 256 {
                if !self.data_set(exporter, &header, id, body, &mut s, out) {
                    // A datagram is at most 65535 bytes: offsets fit u16.
                    self.missing.push(set_at as u16);
                }
            } else {
                s.reject(DecodeError::ReservedSet { set_id: id });
            }
        }
        Ok(s)
    }

    /// Decode the data sets at `pending` (offsets from
    /// [`Decoder::missing_sets`]) of a datagram [`Decoder::decode`] accepted
    /// earlier, whose templates may have arrived since; the sets decoded
    /// are removed from `pending`. Templates in the datagram are not read
    /// again. The summary counts only what was decoded now.
    pub fn decode_sets(
        &mut self,
        exporter: IpAddr,
        bytes: &[u8],
        pending: &mut Vec<u16>,
        out: &mut impl FnMut(TemplatedRecord),
    ) -> Result<DatagramSummary, DecodeError> {
        let (header, _) = MessageHeader::parse(bytes)?;
        let mut s = DatagramSummary::new(header);
        let mut keep = Vec::new();
        for &at in pending.iter() {
            let at = at as usize;
            let Some(h) = bytes.get(at..at + 4) else { continue };
            let (id, len) = (be16(h, 0), be16(h, 2) as usize);
            let Some(body) = bytes.get(at + 4..at + len.max(4)) else { continue };
            if self.cache.get(exporter, header.domain, id).is_none() {
                keep.push(at as u16);
                continue;
            }
            self.data_set(exporter, &header, id, body, &mut s, out);
        }
        *pending = keep;
        Ok(s)
    }

    /// One data set; false when its template is unknown (counted in `s`).
    fn data_set(
        &mut self,
        exporter: IpAddr,
        header: &MessageHeader,
        id: u16,
        body: &[u8],
        s: &mut DatagramSummary,
        out: &mut impl FnMut(TemplatedRecord),
    ) -> bool {
        let ctx = Context {
            exporter,
            domain: header.domain,
            template_id: id,
            export_ns: header.export_ns(),
            sys_uptime: header.sys_uptime,
            init_ms: None,
        };
        let known = match self.cache.existing(exporter) {
            Some(mut slot) => data(&mut slot, ctx, body, &mut self.values, s, out),
            None => false,
        };
        if !known {
            s.data_sets_no_template += 1;
            s.no_template_bytes += body.len() as u32;
        }
        known
    }
}

/// Check the set framing from `start`; returns where the sets end (the rest
/// is padding: under 4 bytes, or zeros).
fn frame_sets(bytes: &[u8], start: usize) -> Result<usize, DecodeError> {
    let mut at = start;
    while bytes.len() - at >= 4 {
        let set_len = be16(bytes, at + 2);
        if set_len < 4 {
            if bytes[at..].iter().all(|&b| b == 0) {
                return Ok(at);
            }
            return Err(DecodeError::SetTooShort { offset: at, set_len });
        }
        let left = bytes.len() - at;
        if set_len as usize > left {
            return Err(DecodeError::SetOverrun { offset: at, set_len, left });
        }
        at += set_len as usize;
    }
    Ok(at)
}

/// Read `n` field specifiers from `body[q..]` into `specs`; returns the
/// offset after them, or `None` if they run past the set.
fn field_specs(
    body: &[u8],
    mut q: usize,
    n: usize,
    ipfix: bool,
    specs: &mut Vec<FieldSpec>,
) -> Option<usize> {
    specs.clear();
    for _ in 0..n {
        let raw = body.get(q..q + 4)?;
        let (id, len) = (be16(raw, 0), be16(raw, 2));
        q += 4;
        let spec = if ipfix && id & 0x8000 != 0 {
            let pen = be32(body.get(q..q + 4)?, 0);
            q += 4;
            FieldSpec { pen, id: id & 0x7fff, len }
        } else {
            FieldSpec { pen: 0, id, len }
        };
        specs.push(spec);
    }
    Some(q)
}

/// A template or options-template set (`set_id` 0/1 in v9, 2/3 in IPFIX).
///
/// A bad template record is skipped alone when its length is still known
/// (a reserved id, no fields, too many fields, a bad IPFIX scope count, a
/// refused insert): the walk goes on with the next record. When the record's
/// own framing is broken (its field specifiers run past the set, a v9
/// options template whose scope or option length is not a multiple of 4, an
/// options header cut short), nothing after it can be found, so the rest of
/// the set is dropped; both are counted by reason.
#[allow(clippy::too_many_arguments)]
fn templates(
    cache: &mut TemplateCache,
    exporter: IpAddr,
    header: &MessageHeader,
    set_id: u16,
    body: &[u8],
    kind: TemplateKind,
    specs: &mut Vec<FieldSpec>,
    s: &mut DatagramSummary,
) {
    let ipfix = header.version == Version::Ipfix;
    let mut q = 0;
    // Every template record starts with 4 bytes: the id and a count or length.
    while body.len() - q >= 4 {
        let template_id = be16(body, q);
        let word = be16(body, q + 2) as usize;
        if template_id < 256 && body[q..].iter().all(|&b| b == 0) {
            s.padding_bytes += (body.len() - q) as u32;
            return;
        }
        if ipfix && word == 0 {
            // RFC 7011 section 8.1: a withdrawal (4 bytes). The template id
            // of the set itself (2 in a template set, 3 in an options
            // template set) withdraws every template of that kind in the
            // domain; the kind is the set's, and another id below 256 is
            // refused.
            q += 4;
            let all = (template_id == set_id).then_some(kind);
            if template_id < 256 && all.is_none() {
                s.reject(DecodeError::TemplateReservedId { template_id });
                continue;
            }
            if let Some(mut slot) = cache.existing(exporter) {
                s.templates_withdrawn += slot.withdraw(header.domain, template_id, all) as u32;
            }
            s.withdrawals += 1;
            continue;
        }
        let (n, scopes, first) = match (kind, ipfix) {
            (TemplateKind::Data, _) => (word, 0, q + 4),
            (TemplateKind::Options, _) if body.len() - q < 6 => {
                s.reject(DecodeError::TemplateOverrun { template_id });
                return;
            }
            (TemplateKind::Options, true) => (word, be16(body, q + 4) as usize, q + 6),
            (TemplateKind::Options, false) => {
                let option_len = be16(body, q + 4) as usize;
                if word % 4 != 0 || option_len % 4 != 0 {
                    s.reject(DecodeError::TemplateBadScope { template_id });
                    return;
                }
                ((word + option_len) / 4, word / 4, q + 6)
            }
        };
        let Some(next) = field_specs(body, first, n, ipfix, specs) else {
            s.reject(DecodeError::TemplateOverrun { template_id });
            return;
        };
        q = next;
        let refusal = if template_id < 256 {
            Some(DecodeError::TemplateReservedId { template_id })
        } else if n == 0 {
            Some(DecodeError::TemplateNoFields { template_id })
        } else if n > cache.limits().max_fields {
            Some(DecodeError::TemplateTooManyFields { template_id, fields: n })
        } else if kind == TemplateKind::Options && ipfix && (scopes == 0 || scopes > n) {
            Some(DecodeError::TemplateBadScope { template_id })
        } else {
            None
        };
        if let Some(e) = refusal {
            s.reject(e);
            continue;
        }
        let plan = Plan::compile(kind, specs, scopes, !ipfix);
        if plan.min_len() == 0 {
            s.reject(DecodeError::TemplateEmptyRecord { template_id });
            continue;
        }
        let ignored = plan.ignored() as u32;
        match cache
            .create(exporter)
            .and_then(|mut slot| slot.insert(header.domain, template_id, plan))
        {
            Err(e) => s.reject(e),
            Ok(()) => {
                s.field_length_ignored += ignored;
                if kind == TemplateKind::Data {
                    s.templates += 1;
                } else {
                    s.options_templates += 1;
                }
            }
        }
    }
}

/// A data set: records of a data template are emitted, those of an options
/// template teach sampling and the domain's init time. False when the
/// template is unknown (nothing read).
fn data(
    slot: &mut Slot<'_>,
    mut ctx: Context,
    body: &[u8],
    values: &mut Values,
    s: &mut DatagramSummary,
    out: &mut impl FnMut(TemplatedRecord),
) -> bool {
    let cap = slot.options_cap(); // the count cap, lowered to the byte budget's room
    let ex = &mut *slot.exporter;
    let Some(plan) = ex.templates.get(&(ctx.domain, ctx.template_id)) else {
        return false;
    };
    ctx.init_ms = ex.options.domain(ctx.domain).init_ms;
    let mut q = 0;
    while body.len() - q >= plan.min_len() {
        values.clear();
        let Some(n) = plan.read(&body[q..], &mut s.field_length_ignored, values) else {
            s.reject(DecodeError::RecordOverrun { template_id: ctx.template_id });
            return true;
        };
        q += n;
        if plan.kind() == TemplateKind::Options {
            s.options_records += 1;
            let sampler = values.sampler_id();
            if let Some(Err(e)) =
                values.sampling().map(|i| ex.options.set_sampling(cap, ctx.domain, sampler, i))
            {
                s.reject(e);
            }
            if let Some(Err(e)) =
                values.init_ms().map(|ms| ex.options.set_init_ms(cap, ctx.domain, ms))
            {
                s.reject(e);
            }
            if let Some(ms) = values.init_ms() {
                ctx.init_ms = Some(ms);
            }
            continue;
        }
        let sampling =
            values.sampling().or_else(|| ex.options.sampling(ctx.domain, values.sampler_id()));
        let (rev, totals) = values.records(&ctx, sampling, plan.is_biflow(), out);
        s.flow_records += 1;
        s.total_only_records += totals as u32;
        s.reverse_records += rev as u32;
    }
    if q == 0 && body.len() >= 4 {
        s.reject(DecodeError::RecordOverrun { template_id: ctx.template_id });
    }
    s.padding_bytes += (body.len() - q) as u32;
    true
}
