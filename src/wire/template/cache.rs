//! The template cache: per exporter address, the compiled templates of each
//! (domain, template id), the sampling its options records taught, and its
//! counters.
//!
//! Keyed by (exporter address, v9 source id / IPFIX observation domain,
//! template id), as RFC 3954 section 5 and RFC 7011 section 8 scope them. A
//! template record for a key already held replaces it (an exporter changes a
//! template by resending it); an IPFIX withdrawal removes one, or every data
//! or options template of the domain (template id 2 or 3). Caps, each
//! refusal counted as `cache_full` by the decoder: templates per exporter and
//! in total, samplers (and domains with options state) per exporter; and
//! exporters, past which a new exporter's datagrams are rejected
//! (`exporters_full`). Nothing here ages out yet: template lifetime (RFC 3954
//! section 9, and persistence across restarts) comes with the ingest work.

use std::collections::HashMap;
use std::net::IpAddr;

use ahash::RandomState;

use super::ie::{Plan, TemplateKind};
use super::{DecodeError, Limits};

/// Per-exporter counts that outlive a datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExporterCounters {
    /// Data sets skipped because their template was unknown on arrival (the
    /// issue's `no_template_records`: records cannot be counted without
    /// their template, so sets and bytes are).
    pub no_template_sets: u64,
    /// Bytes of those sets (set headers excluded).
    pub no_template_bytes: u64,
    /// Templates learnt (replacements included).
    pub templates_learnt: u64,
    /// Templates removed by IPFIX withdrawals.
    pub templates_withdrawn: u64,
}

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
    pub counters: ExporterCounters,
}

/// Templates, sampling and counters of every exporter, within [`Limits`].
#[derive(Debug)]
pub struct TemplateCache {
    limits: Limits,
    exporters: HashMap<IpAddr, Exporter, RandomState>,
    templates: usize,
}

impl TemplateCache {
    pub fn new(limits: Limits) -> Self {
        TemplateCache { limits, exporters: HashMap::default(), templates: 0 }
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

    /// Exporters with state.
    pub fn exporters(&self) -> usize {
        self.exporters.len()
    }

    /// The compiled template of (exporter, domain, template id).
    pub fn get(&self, exporter: IpAddr, domain: u32, template_id: u16) -> Option<&Plan> {
        self.exporters.get(&exporter)?.templates.get(&(domain, template_id))
    }

    /// The counters of one exporter (`None` if it never sent a well-framed datagram).
    pub fn counters(&self, exporter: IpAddr) -> Option<ExporterCounters> {
        self.exporters.get(&exporter).map(|e| e.counters)
    }

    /// The sampling interval learnt for (exporter, domain, sampler id); with
    /// `sampler` `None`, or an unknown one, the domain's.
    pub fn sampling(&self, exporter: IpAddr, domain: u32, sampler: Option<u64>) -> Option<u32> {
        self.exporters.get(&exporter)?.options.sampling(domain, sampler)
    }

    /// The exporter's state, created if the exporter cap allows.
    pub(super) fn exporter(&mut self, addr: IpAddr) -> Result<Slot<'_>, DecodeError> {
        let full = self.exporters.len() >= self.limits.max_exporters;
        if full && !self.exporters.contains_key(&addr) {
            return Err(DecodeError::ExportersFull);
        }
        let exporter = self.exporters.entry(addr).or_default();
        Ok(Slot { exporter, total: &mut self.templates, limits: self.limits })
    }
}

/// One exporter's state, borrowed with the cache-wide template count.
#[derive(Debug)]
pub(super) struct Slot<'a> {
    pub exporter: &'a mut Exporter,
    total: &'a mut usize,
    pub limits: Limits,
}

impl Slot<'_> {
    /// Learn (or replace) a template, within the caps.
    pub fn insert(&mut self, domain: u32, id: u16, plan: Plan) -> Result<(), DecodeError> {
        let templates = &mut self.exporter.templates;
        if !templates.contains_key(&(domain, id))
            && (templates.len() >= self.limits.max_templates_per_exporter
                || *self.total >= self.limits.max_templates)
        {
            return Err(DecodeError::CacheFull);
        }
        if templates.insert((domain, id), plan).is_none() {
            *self.total += 1;
        }
        self.exporter.counters.templates_learnt += 1;
        Ok(())
    }

    /// IPFIX withdrawal of one template, or with `all` of every template of
    /// `kind` in the domain. Returns how many were removed.
    pub fn withdraw(&mut self, domain: u32, id: u16, all: Option<TemplateKind>) -> usize {
        let templates = &mut self.exporter.templates;
        let before = templates.len();
        match all {
            Some(kind) => templates.retain(|&(d, _), p| d != domain || p.kind() != kind),
            None => {
                templates.remove(&(domain, id));
            }
        }
        let removed = before - templates.len();
        *self.total -= removed;
        self.exporter.counters.templates_withdrawn += removed as u64;
        removed
    }
}
