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
//! exporters. An exporter gets state only when it sends a template (a data
//! set or garbage from a spoofed source creates nothing), and a template
//! from a new exporter past the cap is refused (`exporters_full`). Nothing
//! here ages out: a template lives until replaced or withdrawn (persistence
//! across restarts is the caller's: [`TemplateCache::templates`] lists what
//! to save, [`TemplateCache::restore`] takes it back).

use std::collections::HashMap;
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
}

/// Templates and sampling of every exporter, within [`Limits`].
#[derive(Debug)]
pub struct TemplateCache {
    limits: Limits,
    exporters: HashMap<IpAddr, Exporter, RandomState>,
    templates: usize,
    /// Grows whenever the set of templates changes (see [`TemplateCache::generation`]).
    generation: u64,
}

impl TemplateCache {
    pub fn new(limits: Limits) -> Self {
        TemplateCache { limits, exporters: HashMap::default(), templates: 0, generation: 0 }
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
        let (total, generation) = (&mut self.templates, &mut self.generation);
        Some(Slot { exporter, total, generation, limits: self.limits })
    }

    /// The exporter's state, created if the exporter cap allows.
    pub(super) fn create(&mut self, addr: IpAddr) -> Result<Slot<'_>, DecodeError> {
        let full = self.exporters.len() >= self.limits.max_exporters;
        if full && !self.exporters.contains_key(&addr) {
            return Err(DecodeError::ExportersFull);
        }
        let exporter = self.exporters.entry(addr).or_default();
        let (total, generation) = (&mut self.templates, &mut self.generation);
        Ok(Slot { exporter, total, generation, limits: self.limits })
    }
}

/// One exporter's state, borrowed with the cache-wide template count.
#[derive(Debug)]
pub(super) struct Slot<'a> {
    pub exporter: &'a mut Exporter,
    total: &'a mut usize,
    generation: &'a mut u64,
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
        match templates.get_mut(&(domain, id)) {
            // A resend of what is held: nothing changes, nothing to save.
            Some(old) if *old == plan => return Ok(()),
            Some(old) => *old = plan,
            None => {
                templates.insert((domain, id), plan);
                *self.total += 1;
            }
        }
        *self.generation += 1;
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
        if removed > 0 {
            *self.generation += 1;
        }
        removed
    }
}
