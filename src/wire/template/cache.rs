//! The template cache: per exporter address, the compiled templates of each
//! (domain, template id) and the sampling its options records taught.
//!
//! Keyed by (exporter address, v9 source id / IPFIX observation domain,
//! template id), as RFC 3954 section 5 and RFC 7011 section 8 scope them. A
//! template record for a key already held replaces it (an exporter changes a
//! template by resending it); an IPFIX withdrawal removes one, or every data
//! or options template of the domain (template id 2 or 3). Caps, each
//! refusal counted as `cache_full` by the decoder: templates per exporter and
//! in total, samplers (and domains with options state) per exporter; and
//! exporters. **A byte budget** bounds what the count caps cannot (many
//! exporters x many templates x many fields): every template is charged
//! its compiled plan's heap, its table entry and the allocator's overhead
//! ([`template_bytes`]), every exporter its own entry ([`EXPORTER_BYTES`])
//! and each sampler or domain of its options state ([`OPTION_BYTES`]);
//! a template (or options entry) that would take an exporter past
//! [`Limits::max_template_bytes_per_exporter`] or the cache past
//! [`Limits::max_template_bytes`] is refused (`cache_full`). A changed
//! template refused for room also drops the old one it would replace: its
//! records no longer match the old layout, and are counted as data without
//! a template rather than misread. An exporter gets state only when it sends a template (a data
//! set or garbage from a spoofed source creates nothing), and a template
//! from a new exporter past the cap is refused (`exporters_full`). Nothing
//! here ages out: a template lives until replaced or withdrawn (persistence
//! across restarts is the caller's: [`TemplateCache::templates`] lists what
//! to save, [`TemplateCache::restore`] takes it back).

use std::collections::HashMap;
use std::mem::size_of;
use std::net::IpAddr;

use ahash::RandomState;

use super::ie::{Plan, TemplateKind};
use super::{DecodeError, Limits};

/// Options state of one domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct DomainOptions {
    /// A sampling interval stated without a sampler id.
    pub sampling: Option<u32>,
    /// systemInitTimeMilliseconds.
    pub init_ms: Option<u64>,
}

/// What the options records of one exporter taught.
#[derive(Debug, Default)]
pub(super) struct Options {
    /// (domain, sampler id) -> interval.
    samplers: HashMap<(u32, u64), u32, RandomState>,
    domains: HashMap<u32, DomainOptions, RandomState>,
}

impl Options {
    /// The interval for a record of `domain` naming `sampler` (if any).
    pub fn sampling(&self, domain: u32, sampler: Option<u64>) -> Option<u32> {
        sampler
            .and_then(|id| self.samplers.get(&(domain, id)).copied())
            .or_else(|| self.domains.get(&domain).and_then(|d| d.sampling))
    }

    pub fn domain(&self, domain: u32) -> DomainOptions {
        self.domains.get(&domain).copied().unwrap_or_default()
    }

    /// Record a sampler's interval, or the domain's when `sampler` is `None`.
    pub fn set_sampling(
        &mut self,
        cap: usize,
        domain: u32,
        sampler: Option<u64>,
        interval: u32,
    ) -> Result<(), DecodeError> {
        match sampler {
            Some(id) => {
                let full = self.samplers.len() >= cap;
                match self.samplers.get_mut(&(domain, id)) {
                    Some(v) => *v = interval,
                    None if full => return Err(DecodeError::CacheFull),
                    None => {
                        self.samplers.insert((domain, id), interval);
                    }
                }
                Ok(())
            }
            None => self.domain_mut(cap, domain).map(|d| d.sampling = Some(interval)),
        }
    }

    pub fn set_init_ms(&mut self, cap: usize, domain: u32, ms: u64) -> Result<(), DecodeError> {
        self.domain_mut(cap, domain).map(|d| d.init_ms = Some(ms))
    }

    fn domain_mut(&mut self, cap: usize, domain: u32) -> Result<&mut DomainOptions, DecodeError> {
        if self.domains.len() >= cap && !self.domains.contains_key(&domain) {
            return Err(DecodeError::CacheFull);
        }
        Ok(self.domains.entry(domain).or_default())
    }
}

/// Everything one exporter address has taught the decoder.
#[derive(Debug, Default)]
pub(super) struct Exporter {
    pub templates: HashMap<(u32, u16), Plan, RandomState>,
    pub options: Options,
    /// Bytes charged for its templates, its options state and its own entry.
    bytes: usize,
    /// Of which for its options state (see [`OPTION_BYTES`]).
    options_bytes: usize,
}

/// What one sampler or domain entry of the options state is charged: its
/// table slot, doubled for the table's slack.
pub const OPTION_BYTES: usize = 2
    * (1 + if size_of::<((u32, u64), u32)>() > size_of::<(u32, DomainOptions)>() {
        size_of::<((u32, u64), u32)>()
    } else {
        size_of::<(u32, DomainOptions)>()
    });

impl Options {
    /// Entries held (samplers and domains).
    fn entries(&self) -> usize {
        self.samplers.len() + self.domains.len()
    }
}

/// Allocator overhead charged per heap allocation (header and rounding).
const ALLOC_OVERHEAD: usize = 16;

/// What an exporter's entry is charged: its slot in the exporter table,
/// doubled for the table's slack (a hash table is at most 7/8 full and
/// grows by doubling), and its template table's first allocation.
pub const EXPORTER_BYTES: usize =
    2 * (size_of::<(IpAddr, Exporter)>() + 1) + 4 * (size_of::<((u32, u16), Plan)>() + 1);

/// What a template is charged: its compiled plan's heap (three boxed
/// slices, with the allocator's overhead) and its table entry, doubled for
/// the table's slack. A template of 256 unknown fields costs about 3.3 KB.
pub fn template_bytes(plan: &Plan) -> usize {
    2 * (size_of::<((u32, u16), Plan)>() + 1) + plan.heap_bytes() + 3 * ALLOC_OVERHEAD
}

/// Templates and sampling of every exporter, within [`Limits`].
#[derive(Debug)]
pub struct TemplateCache {
    limits: Limits,
    exporters: HashMap<IpAddr, Exporter, RandomState>,
    templates: usize,
    /// Bytes charged over all exporters (see the module doc).
    bytes: usize,
    /// Grows whenever the set of templates changes (see [`TemplateCache::generation`]).
    generation: u64,
}

impl TemplateCache {
    pub fn new(limits: Limits) -> Self {
        TemplateCache {
            limits,
            exporters: HashMap::default(),
            templates: 0,
            bytes: 0,
            generation: 0,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Templates held over all exporters.
    pub fn len(&self) -> usize {
        self.templates
    }

    pub fn is_empty(&self) -> bool {
        self.templates == 0
    }

    /// Bytes of template state charged against [`Limits::max_template_bytes`]
    /// (never above it).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes charged to one exporter (at most
    /// [`Limits::max_template_bytes_per_exporter`]); 0 without state.
    pub fn exporter_bytes(&self, exporter: IpAddr) -> usize {
        self.exporters.get(&exporter).map_or(0, |e| e.bytes)
    }

    /// A number that grows whenever a template is learnt, changed,
    /// restored or withdrawn, and only then (an exporter's periodic resend
    /// of a template it already has changes nothing): compare it with an
    /// earlier reading to know whether there is anything new to save.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Exporters with state.
    pub fn exporters(&self) -> usize {
        self.exporters.len()
    }

    /// The compiled template of (exporter, domain, template id).
    pub fn get(&self, exporter: IpAddr, domain: u32, template_id: u16) -> Option<&Plan> {
        self.exporters.get(&exporter)?.templates.get(&(domain, template_id))
    }

    /// Whether `exporter` has state (it sent a template that was learnt).
    pub fn knows(&self, exporter: IpAddr) -> bool {
        self.exporters.contains_key(&exporter)
    }

    /// Every template held: (exporter, domain, template id, plan), sorted,
    /// for saving them.
    pub fn templates(&self) -> Vec<(IpAddr, u32, u16, &Plan)> {
        let mut v: Vec<_> = self
            .exporters
            .iter()
            .flat_map(|(ip, e)| e.templates.iter().map(|(&(d, id), p)| (*ip, d, id, p)))
            .collect();
        v.sort_by_key(|&(ip, d, id, _)| (ip, d, id));
        v
    }

    /// Take back a saved template (as if it had arrived), within the caps.
    pub fn restore(
        &mut self,
        exporter: IpAddr,
        domain: u32,
        template_id: u16,
        plan: Plan,
    ) -> Result<(), DecodeError> {
        self.create(exporter)?.insert(domain, template_id, plan)
    }

    /// The sampling interval learnt for (exporter, domain, sampler id); with
    /// `sampler` `None`, or an unknown one, the domain's.
    pub fn sampling(&self, exporter: IpAddr, domain: u32, sampler: Option<u64>) -> Option<u32> {
        self.exporters.get(&exporter)?.options.sampling(domain, sampler)
    }

    /// The exporter's state if it has any.
    pub(super) fn existing(&mut self, addr: IpAddr) -> Option<Slot<'_>> {
        let exporter = self.exporters.get_mut(&addr)?;
        let (total, bytes, generation) =
            (&mut self.templates, &mut self.bytes, &mut self.generation);
        Some(Slot { exporter, total, bytes, generation, limits: self.limits })
    }

    /// The exporter's state, created if the exporter cap and the byte
    /// budget allow.
    pub(super) fn create(&mut self, addr: IpAddr) -> Result<Slot<'_>, DecodeError> {
        if !self.exporters.contains_key(&addr) {
            if self.exporters.len() >= self.limits.max_exporters {
                return Err(DecodeError::ExportersFull);
            }
            if self.bytes + EXPORTER_BYTES > self.limits.max_template_bytes {
                return Err(DecodeError::CacheFull);
            }
            self.bytes += EXPORTER_BYTES;
            let e = Exporter { bytes: EXPORTER_BYTES, ..Exporter::default() };
            self.exporters.insert(addr, e);
        }
        let exporter = self.exporters.get_mut(&addr).expect("just made");
        let (total, bytes, generation) =
            (&mut self.templates, &mut self.bytes, &mut self.generation);
        Ok(Slot { exporter, total, bytes, generation, limits: self.limits })
    }
}

impl Drop for Slot<'_> {
    /// What options records added while the slot was out is charged now.
    fn drop(&mut self) {
        self.charge_options();
    }
}

/// One exporter's state, borrowed with the cache-wide template count.
#[derive(Debug)]
pub(super) struct Slot<'a> {
    pub exporter: &'a mut Exporter,
    total: &'a mut usize,
    /// The cache's bytes charged.
    bytes: &'a mut usize,
    generation: &'a mut u64,
    pub limits: Limits,
}

impl Slot<'_> {
    /// Learn (or replace) a template, within the caps and the byte budget.
    /// A replacement refused for room removes the template it would replace.
    pub fn insert(&mut self, domain: u32, id: u16, plan: Plan) -> Result<(), DecodeError> {
        self.charge_options();
        let templates = &mut self.exporter.templates;
        let old = templates.get(&(domain, id));
        if old == Some(&plan) {
            return Ok(()); // a resend of what is held: nothing changes, nothing to save
        }
        if old.is_none()
            && (templates.len() >= self.limits.max_templates_per_exporter
                || *self.total >= self.limits.max_templates)
        {
            return Err(DecodeError::CacheFull);
        }
        let freed = old.map_or(0, template_bytes);
        let cost = template_bytes(&plan);
        let ex_after = self.exporter.bytes - freed + cost;
        let room = ex_after <= self.limits.max_template_bytes_per_exporter
            && *self.bytes - freed + cost <= self.limits.max_template_bytes;
        if !room {
            if old.is_some() {
                self.remove(domain, id);
            }
            return Err(DecodeError::CacheFull);
        }
        if templates.insert((domain, id), plan).is_none() {
            *self.total += 1;
        }
        self.exporter.bytes = ex_after;
        *self.bytes = *self.bytes - freed + cost;
        *self.generation += 1;
        Ok(())
    }

    /// Forget one template, uncharging it.
    fn remove(&mut self, domain: u32, id: u16) -> usize {
        let Some(p) = self.exporter.templates.remove(&(domain, id)) else { return 0 };
        self.uncharge(&p);
        1
    }

    /// The cap on sampler (and domain) entries to use for the options
    /// records of the set about to be read: the count cap, lowered so that
    /// both tables together can grow by no more than the byte budget has
    /// room for (the growth is charged when the slot is dropped).
    pub fn options_cap(&mut self) -> usize {
        self.charge_options();
        let ex_room =
            self.limits.max_template_bytes_per_exporter.saturating_sub(self.exporter.bytes);
        let room = ex_room.min(self.limits.max_template_bytes.saturating_sub(*self.bytes));
        let o = &self.exporter.options;
        let least = o.samplers.len().min(o.domains.len());
        self.limits.max_samplers_per_exporter.min(least + room / (2 * OPTION_BYTES))
    }

    /// Charge (or uncharge) what the options state grew by since last time.
    fn charge_options(&mut self) {
        let now = self.exporter.options.entries() * OPTION_BYTES;
        let was = std::mem::replace(&mut self.exporter.options_bytes, now);
        self.exporter.bytes = self.exporter.bytes - was + now;
        *self.bytes = *self.bytes - was + now;
    }

    fn uncharge(&mut self, p: &Plan) {
        let b = template_bytes(p);
        self.exporter.bytes -= b;
        *self.bytes -= b;
        *self.total -= 1;
        *self.generation += 1;
    }

    /// IPFIX withdrawal of one template, or with `all` of every template of
    /// `kind` in the domain. Returns how many were removed.
    pub fn withdraw(&mut self, domain: u32, id: u16, all: Option<TemplateKind>) -> usize {
        match all {
            Some(kind) => {
                let gone: Vec<(u32, u16)> = (self.exporter.templates.iter())
                    .filter(|(&(d, _), p)| d == domain && p.kind() == kind)
                    .map(|(k, _)| *k)
                    .collect();
                gone.iter().map(|&(d, t)| self.remove(d, t)).sum()
            }
            None => self.remove(domain, id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Decoder;
    use super::*;

    /// An IPFIX message from domain 1 with templates `ids` of `fields`
    /// unknown 4-byte fields each (a hostile exporter's maximal templates).
    fn templates(ids: std::ops::Range<u16>, fields: u16) -> Vec<u8> {
        let mut b = vec![0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(&[0, 2, 0, 0]);
        for id in ids {
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&fields.to_be_bytes());
            for f in 0..fields {
                b.extend_from_slice(&(1000 + f).to_be_bytes());
                b.extend_from_slice(&4u16.to_be_bytes());
            }
        }
        let set = (b.len() - 16) as u16;
        b[18..20].copy_from_slice(&set.to_be_bytes());
        let len = b.len() as u16;
        b[2..4].copy_from_slice(&len.to_be_bytes());
        b
    }

    /// A hostile stream of maximal templates (256 fields, every template id,
    /// from many exporters) never takes the cache past its byte budget, per
    /// exporter or in all; every template refused is counted `cache_full`;
    /// a withdrawal gives the room back.
    #[test]
    fn the_byte_budget_holds_under_maximal_templates() {
        let limits = Limits::default();
        let mut d = Decoder::new(limits);
        let maxed = limits.max_fields as u16;
        let per_msg = 60u16; // 60 x 1 KB of template records: one datagram
        let (mut sent, mut learnt, mut refused) = (0u64, 0u64, 0u64);
        for e in 0..72u32 {
            let ex = IpAddr::from((0xc000_0200 + e).to_be_bytes());
            for first in (256..256 + 360).step_by(per_msg as usize) {
                let msg = templates(first..first + per_msg, maxed);
                let s = d.decode(ex, &msg, &mut |_| {}).unwrap();
                sent += u64::from(per_msg);
                learnt += u64::from(s.templates);
                refused += u64::from(s.rejected("cache_full"));
                let c = d.cache();
                assert!(c.exporter_bytes(ex) <= limits.max_template_bytes_per_exporter);
                assert!(c.bytes() <= limits.max_template_bytes, "{}", c.bytes());
            }
        }
        let c = d.cache();
        assert_eq!(sent, learnt + refused, "every template learnt or counted");
        assert_eq!(c.len() as u64, learnt);
        assert!(refused > 0 && learnt > 0, "{sent} {learnt} {refused} {}", c.bytes());
        // The charge is what the plans own and more: the budget bounds the heap.
        let heap: usize = c.templates().iter().map(|(_, _, _, p)| p.heap_bytes()).sum();
        assert!(heap <= c.bytes() && c.bytes() <= limits.max_template_bytes);
        assert!(c.bytes() > limits.max_template_bytes - limits.max_template_bytes_per_exporter);
        let one = template_bytes(c.templates()[0].3);
        assert!((3_000..4_000).contains(&one), "a 256-field template costs {one} bytes");
        // Room per exporter runs out first: about 1 MiB / 3.3 KB templates each.
        let ex0 = IpAddr::from([192, 0, 2, 0]);
        assert!(c.exporter_bytes(ex0) > limits.max_template_bytes_per_exporter - one);

        // A withdrawal of all the domain's templates gives the room back, and
        // a template that changes past the budget drops the one it replaced.
        let before = d.cache().bytes();
        let mut w = vec![0, 10, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        w.extend_from_slice(&[0, 2, 0, 8, 0, 2, 0, 0]); // withdraw all data templates
        d.decode(ex0, &w, &mut |_| {}).unwrap();
        assert_eq!(d.cache().exporter_bytes(ex0), EXPORTER_BYTES);
        assert!(d.cache().bytes() < before);
        let mut small = Decoder::new(Limits { max_template_bytes_per_exporter: 2 << 10, ..limits });
        small.decode(ex0, &templates(300..301, 10), &mut |_| {}).unwrap();
        assert!(small.cache().get(ex0, 1, 300).is_some());
        let s = small.decode(ex0, &templates(300..301, maxed), &mut |_| {}).unwrap();
        assert_eq!(s.rejected("cache_full"), 1);
        assert!(small.cache().get(ex0, 1, 300).is_none(), "the old layout is not kept");
        assert_eq!(small.cache().bytes(), EXPORTER_BYTES);
    }

    /// Options records naming ever new samplers (and domains) fill the
    /// exporter's options state only up to the byte budget; the rest are
    /// counted `cache_full`, and the charge is what the state holds.
    #[test]
    fn options_state_stays_within_the_byte_budget() {
        let ex = IpAddr::from([192, 0, 2, 9]);
        // Options template 400: scope selectorId (302, 8 bytes), samplingInterval (34, 4).
        let mut t = vec![0, 10, 0, 34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        t.extend_from_slice(&[0, 3, 0, 18, 1, 144, 0, 2, 0, 1, 1, 46, 0, 8, 0, 34, 0, 4]);
        let mut d = Decoder::default();
        d.decode(ex, &t, &mut |_| {}).unwrap();
        // Room for 20 options entries beyond the exporter and its template.
        let budget = d.cache().exporter_bytes(ex) + 20 * OPTION_BYTES;
        let limits = Limits { max_template_bytes_per_exporter: budget, ..Limits::default() };
        let mut d = Decoder::new(limits);
        d.decode(ex, &t, &mut |_| {}).unwrap();
        let mut refused = 0;
        for round in 0..10u64 {
            // 30 records, each a new sampler id, in one data set.
            let mut m = vec![0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            m.extend_from_slice(&[1, 144]);
            m.extend_from_slice(&(4 + 30 * 12u16).to_be_bytes());
            for k in 0..30u64 {
                m.extend_from_slice(&(round * 30 + k + 1).to_be_bytes());
                m.extend_from_slice(&100u32.to_be_bytes());
            }
            let len = m.len() as u16;
            m[2..4].copy_from_slice(&len.to_be_bytes());
            refused += d.decode(ex, &m, &mut |_| {}).unwrap().rejected("cache_full");
            assert!(d.cache().exporter_bytes(ex) <= budget, "round {round}");
        }
        let held = d.cache().exporters.get(&ex).unwrap().options.entries();
        // Half the room at least: the other half may be kept for domains.
        assert!((10..=20).contains(&held), "{held} samplers held");
        assert_eq!(refused as usize, 300 - held);
        assert_eq!(d.cache().sampling(ex, 1, Some(1)), Some(100));
        assert_eq!(d.cache().sampling(ex, 1, Some(299)), None, "refused: not learnt");
    }
}
