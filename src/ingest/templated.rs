//! NetFlow v9 and IPFIX in ingest: one [`Decoder`] per thread, the datagrams
//! held for a template that has not arrived yet, the counters of the
//! templated path, and **the IPv6 seam** ([`stitchable_now`]).
//!
//! What a templated datagram goes through ([`super::Ingest::templated`]):
//! decoded against this thread's template cache; each flow record (both
//! halves of a biflow) becomes a [`FlowRecord`] once, in the decoder, and is
//! scaled here with `--scale-sampling`; [`stitchable_now`] then says whether
//! the flow table takes it. It takes every record now, IPv6 ones included
//! (the shard's IPv6 slot family, `flow/slab6.rs`); records it would refuse
//! are counted in `ipv6_records_pending` (with their packets and octets),
//! still dumped, never stitched: so `records = sum of records over flows +
//! ipv6_records_pending`, and likewise packets and octets, the pending
//! counters staying 0 (kept: they are `--stats-json` and metrics keys).
//!
//! **One decoder per thread.** A collector worker keeps its own template
//! cache: SO_REUSEPORT sends all datagrams of one (source address, source
//! port) to one worker, and an exporter sends its templates and its data
//! from one socket. An exporter that changes its source port (a restart, or
//! several export processes) may land on another worker, which has not seen
//! its templates: its data sets are held there ([`Hold`]) until the
//! exporter's next template refresh reaches that worker, and expire
//! (counted) if none comes in time. Templates loaded from the state
//! directory at start are given to every worker.
//!
//! **Data before its template** ([`Hold`]): a datagram with data sets whose
//! template is unknown is copied and held, at most `per_exporter` datagrams
//! per exporter (the oldest goes first), [`HOLD_MAX_BYTES`] in all, for at
//! most `max_age_ns`; when a template of its exporter arrives, the sets
//! whose template is now known are decoded (`held_sets_decoded`, their
//! records `no_template_records`). Sets pushed out by the caps are
//! `held_sets_dropped`; those too old (or still held at the end) are
//! `held_sets_expired`. So `no_template_sets = held_sets_decoded +
//! held_sets_dropped + held_sets_expired + held now`.
//!
//! **Sequence numbers**: v9 counts export packets per source id (each
//! datagram is 1); IPFIX counts data records per observation domain (each
//! datagram covers its data records, options records included). Both feed
//! the exporter's [`SeqHandle`](super::SeqHandle) under their own stream.
//! IPFIX has no uptime: the export time in ms stands for it (a restart is
//! the sequence going back while the export time goes on). An IPFIX
//! datagram with held sets is observed once they are all resolved (its
//! record count is unknown before): decoded, it is exact; expired, its
//! undecoded records show as sequence loss.

use std::collections::VecDeque;
use std::net::IpAddr;

use hashbrown::HashMap;

use super::{Ingest, Rejection, NOT_ALLOWED};
use crate::flow::FlowRecord;
use crate::wire::template::{
    DatagramSummary, DecodeError, Decoder, MessageHeader, TemplatedRecord, Version,
};

/// Bytes of held datagrams per thread, over every exporter.
pub const HOLD_MAX_BYTES: usize = 16 << 20;
/// Packets and octets of one record are capped here (2^48 - 1, far above
/// any real record): 8-byte counters of hostile input must not overflow the
/// sums (`counters_clamped` counts it).
pub const MAX_COUNTER: u64 = (1 << 48) - 1;

/// In-datagram rejection reasons of the template decoder (sets, templates,
/// records skipped, the datagram still accepted), as reported.
pub const SET_REASONS: &[&str] = DecodeError::REASONS.split_at(DecodeError::DATAGRAM_REASONS).1;
const N_SET: usize = DecodeError::REASONS.len() - DecodeError::DATAGRAM_REASONS;

/// **The IPv6 seam.** Whether the flow table can take `r` now: always,
/// since a shard keeps IPv6 flows in a slot family of their own
/// (`flow/slab6.rs`; issue 18 item 4). Every record of the templated path
/// passes here; any refused would be counted in `ipv6_records_pending`
/// (never silently lost), which therefore stays 0.
#[inline]
pub fn stitchable_now(_r: &FlowRecord) -> bool {
    true
}

/// Whether a datagram is v9 or IPFIX by its version word (9 or 10).
#[inline]
pub fn is_templated(bytes: &[u8]) -> bool {
    matches!(bytes, [0, 9 | 10, ..])
}

/// Counters of the templated path (totals, and per exporter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TemplatedCounters {
    /// Accepted v9 datagrams.
    pub datagrams_v9: u64,
    /// Accepted IPFIX messages.
    pub datagrams_ipfix: u64,
    pub templates: u64,
    pub options_templates: u64,
    pub withdrawals: u64,
    pub templates_withdrawn: u64,
    /// Data records of data templates (a biflow counts once here).
    pub flow_records: u64,
    /// Reverse halves of biflows (each also a record handed on).
    pub reverse_records: u64,
    /// Data records of options templates (read for sampling, not flows).
    pub options_records: u64,
    /// Flow records with only total counters (IE 85/86): their packets and
    /// octets are 0 here, never the totals summed (see README).
    pub total_only_records: u64,
    /// v9 datagrams whose header count is not the records found.
    pub count_mismatches: u64,
    /// Known fields skipped because their length cannot hold them.
    pub field_length_ignored: u64,
    /// Records whose packets or octets were capped at [`MAX_COUNTER`].
    pub counters_clamped: u64,
    pub no_template_sets: u64,
    pub no_template_bytes: u64,
    pub held_sets_decoded: u64,
    /// Records decoded from held sets (they arrived before their template).
    pub no_template_records: u64,
    pub held_sets_dropped: u64,
    pub held_sets_expired: u64,
    /// Records (and their packets, octets) the flow table cannot take: 0
    /// since the IPv6 slot family (kept as `--stats-json` keys).
    pub ipv6_records_pending: u64,
    pub ipv6_packets_pending: u64,
    pub ipv6_octets_pending: u64,
    /// Skipped inside accepted datagrams, by [`SET_REASONS`] index.
    pub rejects: [u64; N_SET],
}

impl TemplatedCounters {
    pub fn add(&mut self, o: &TemplatedCounters) {
        for (a, b) in self.fields_mut().into_iter().zip(o.fields()) {
            *a += b;
        }
        for (a, b) in self.rejects.iter_mut().zip(o.rejects) {
            *a += b;
        }
    }

    /// Names and values, in report order (the rejects not included).
    pub fn named(&self) -> Vec<(&'static str, u64)> {
        Self::NAMES.iter().copied().zip(self.fields()).collect()
    }

    pub const NAMES: [&'static str; 22] = [
        "datagrams_v9",
        "datagrams_ipfix",
        "templates",
        "options_templates",
        "withdrawals",
        "templates_withdrawn",
        "flow_records",
        "reverse_records",
        "options_records",
        "total_only_records",
        "count_mismatches",
        "field_length_ignored",
        "counters_clamped",
        "no_template_sets",
        "no_template_bytes",
        "held_sets_decoded",
        "no_template_records",
        "held_sets_dropped",
        "held_sets_expired",
        "ipv6_records_pending",
        "ipv6_packets_pending",
        "ipv6_octets_pending",
    ];

    fn fields(&self) -> [u64; 22] {
        [
            self.datagrams_v9,
            self.datagrams_ipfix,
            self.templates,
            self.options_templates,
            self.withdrawals,
            self.templates_withdrawn,
            self.flow_records,
            self.reverse_records,
            self.options_records,
            self.total_only_records,
            self.count_mismatches,
            self.field_length_ignored,
            self.counters_clamped,
            self.no_template_sets,
            self.no_template_bytes,
            self.held_sets_decoded,
            self.no_template_records,
            self.held_sets_dropped,
            self.held_sets_expired,
            self.ipv6_records_pending,
            self.ipv6_packets_pending,
            self.ipv6_octets_pending,
        ]
    }

    fn fields_mut(&mut self) -> [&mut u64; 22] {
        [
            &mut self.datagrams_v9,
            &mut self.datagrams_ipfix,
            &mut self.templates,
            &mut self.options_templates,
            &mut self.withdrawals,
            &mut self.templates_withdrawn,
            &mut self.flow_records,
            &mut self.reverse_records,
            &mut self.options_records,
            &mut self.total_only_records,
            &mut self.count_mismatches,
            &mut self.field_length_ignored,
            &mut self.counters_clamped,
            &mut self.no_template_sets,
            &mut self.no_template_bytes,
            &mut self.held_sets_decoded,
            &mut self.no_template_records,
            &mut self.held_sets_dropped,
            &mut self.held_sets_expired,
            &mut self.ipv6_records_pending,
            &mut self.ipv6_packets_pending,
            &mut self.ipv6_octets_pending,
        ]
    }

    /// Count what a decoded datagram (or held sets decoded later) held.
    pub(super) fn summary(&mut self, s: &DatagramSummary) {
        self.templates += s.templates as u64;
        self.options_templates += s.options_templates as u64;
        self.withdrawals += s.withdrawals as u64;
        self.templates_withdrawn += s.templates_withdrawn as u64;
        self.flow_records += s.flow_records as u64;
        self.reverse_records += s.reverse_records as u64;
        self.options_records += s.options_records as u64;
        self.total_only_records += s.total_only_records as u64;
        self.field_length_ignored += s.field_length_ignored as u64;
        for (a, b) in self.rejects.iter_mut().zip(&s.rejects[DecodeError::DATAGRAM_REASONS..]) {
            *a += *b as u64;
        }
    }
}

/// Bounds of the hold (`--hold-datagrams`, `--hold-for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldConfig {
    /// Datagrams held per exporter (0: hold nothing, count the sets dropped).
    pub per_exporter: usize,
    /// How long a datagram is held, ns.
    pub max_age_ns: u64,
}

impl Default for HoldConfig {
    fn default() -> Self {
        HoldConfig { per_exporter: 64, max_age_ns: 60_000_000_000 }
    }
}

/// A datagram held for its templates.
#[derive(Debug)]
pub(super) struct Held {
    pub at_ns: u64,
    pub exporter: IpAddr,
    pub bytes: Box<[u8]>,
    /// Offsets of its data sets still without template.
    pub pending: Vec<u16>,
    /// IPFIX: (sequence, data records decoded so far), observed once resolved.
    pub seq: Option<(u32, u32)>,
}

/// The datagrams held, oldest first (arrival order is age order: the
/// clock given never goes back).
#[derive(Debug, Default)]
pub struct Hold {
    pub(super) queue: VecDeque<Held>,
    per_exporter: HashMap<IpAddr, usize>,
    bytes: usize,
}

impl Hold {
    /// Datagrams held now.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Sets held now.
    pub fn sets(&self) -> u64 {
        self.queue.iter().map(|h| h.pending.len() as u64).sum()
    }

    pub(super) fn holds(&self, exporter: IpAddr) -> bool {
        self.per_exporter.contains_key(&exporter)
    }

    /// Hold `h`; returns the datagrams pushed out to make room (oldest of
    /// its exporter past the per-exporter cap, then oldest of all past
    /// [`HOLD_MAX_BYTES`]).
    pub(super) fn push(&mut self, cfg: &HoldConfig, h: Held, out: &mut Vec<Held>) {
        if cfg.per_exporter == 0 {
            out.push(h);
            return;
        }
        let ex = h.exporter;
        if self.per_exporter.get(&ex).is_some_and(|&n| n >= cfg.per_exporter) {
            if let Some(i) = self.queue.iter().position(|q| q.exporter == ex) {
                out.extend(self.remove(i));
            }
        }
        self.bytes += h.bytes.len();
        *self.per_exporter.entry(ex).or_default() += 1;
        self.queue.push_back(h);
        while self.bytes > HOLD_MAX_BYTES {
            let Some(old) = self.remove(0) else { break };
            out.push(old);
        }
    }

    pub(super) fn remove(&mut self, i: usize) -> Option<Held> {
        let h = self.queue.remove(i)?;
        self.bytes -= h.bytes.len();
        if let hashbrown::hash_map::Entry::Occupied(mut o) = self.per_exporter.entry(h.exporter) {
            *o.get_mut() -= 1;
            if *o.get() == 0 {
                o.remove();
            }
        }
        Some(h)
    }

    /// Remove what is older than `max_age_ns` at `now` (everything with
    /// `now` = `u64::MAX`).
    pub(super) fn expire(&mut self, cfg: &HoldConfig, now: u64, out: &mut Vec<Held>) {
        while self.queue.front().is_some_and(|h| now.saturating_sub(h.at_ns) > cfg.max_age_ns) {
            out.extend(self.remove(0));
        }
    }
}

/// The templated path's state of one thread.
#[derive(Debug, Default)]
pub struct Templated {
    pub decoder: Decoder,
    pub hold: Hold,
    pub hold_cfg: HoldConfig,
    pub counters: TemplatedCounters,
    /// Scratch: held datagrams leaving.
    pub(super) leaving: Vec<Held>,
    /// A collector's worker with `--state-dir`: publishes the templates to
    /// save while running ([`super::state::Board`]).
    pub publisher: Option<super::state::Publisher>,
}

/// The sequence stream and "uptime" of a templated header, and the count a
/// datagram covers (v9: 1 export packet; IPFIX: its data records).
pub(super) fn seq_args(h: &MessageHeader, data_records: u32) -> (super::StreamId, u32, u32) {
    match h.version {
        Version::V9 => (super::StreamId::V9Source(h.domain), 1, h.sys_uptime.unwrap_or(0)),
        Version::Ipfix => (
            super::StreamId::IpfixDomain(h.domain),
            data_records,
            (h.export_secs as u64 * 1000) as u32,
        ),
    }
}

impl Ingest {
    /// Decode and count one v9 or IPFIX datagram ([`is_templated`]) from
    /// `exporter`, received at `now` (the hold's clock). `each` gets every
    /// record handed on (held records decoded now included), with its
    /// message header and whether [`stitchable_now`] lets it into the flow
    /// table; the others are counted in `ipv6_records_pending`.
    pub fn templated(
        &mut self,
        exporter: IpAddr,
        now: u64,
        bytes: &[u8],
        each: &mut impl FnMut(&MessageHeader, &FlowRecord, bool),
    ) -> Result<MessageHeader, Rejection> {
        let exporter = exporter.to_canonical();
        if !self.allowed(exporter) {
            self.counters.rejected[NOT_ALLOWED] += 1;
            self.last_rejection = Some((exporter, Rejection::NotAllowed));
            return Err(Rejection::NotAllowed);
        }
        // What waited too long expires before this datagram can resolve it.
        self.expire_held(now);
        let scale = self.scale_sampling;
        let mut d = TemplatedCounters::default();
        let mut sums = [0u64; 3];
        let res = MessageHeader::parse(bytes).and_then(|(h, _)| {
            self.templated.decoder.decode(exporter, bytes, &mut |r| {
                let (fr, stitch) = hand_on(r, scale, &mut d, &mut sums);
                each(&h, &fr, stitch);
            })
        });
        let s = match res {
            Ok(s) => s,
            Err(e) => {
                let why = Rejection::Templated(e);
                self.counters.rejected[why.index()] += 1;
                if let Some(per) = self.exporter(exporter) {
                    per.counters.rejected[why.index()] += 1;
                }
                self.last_rejection = Some((exporter, why));
                return Err(why);
            }
        };
        let h = s.header;
        d.summary(&s);
        match h.version {
            Version::V9 => d.datagrams_v9 += 1,
            Version::Ipfix => d.datagrams_ipfix += 1,
        }
        d.count_mismatches += s.count_mismatch() as u64;
        d.no_template_sets += s.data_sets_no_template as u64;
        d.no_template_bytes += s.no_template_bytes as u64;
        let missing = self.templated.decoder.missing_sets().to_vec();
        // IPFIX covers its data records: unknown while sets are held.
        let defer = h.version == Version::Ipfix && !missing.is_empty();
        self.counters.accept(sums[0], sums[1], sums[2]);
        if let Some(per) = self.exporter(exporter) {
            per.counters.accept(sums[0], sums[1], sums[2]);
            per.templated.get_or_insert_with(Default::default).add(&d);
            if !defer {
                let (stream, count, up) = seq_args(&h, s.data_records());
                per.seq.observe_stream(stream, h.sequence, count, up);
            }
        }
        self.templated.counters.add(&d);
        if !missing.is_empty() {
            let held = Held {
                at_ns: now,
                exporter,
                bytes: bytes.into(),
                pending: missing,
                seq: defer.then_some((h.sequence, s.data_records())),
            };
            let t = &mut self.templated;
            let mut out = std::mem::take(&mut t.leaving);
            t.hold.push(&t.hold_cfg, held, &mut out);
            self.settle(&mut out, false);
            self.templated.leaving = out;
        }
        if s.templates + s.options_templates > 0 && self.templated.hold.holds(exporter) {
            self.resolve(exporter, each);
        }
        Ok(h)
    }

    /// Decode the held datagrams of `exporter` whose templates are known now.
    fn resolve(
        &mut self,
        exporter: IpAddr,
        each: &mut impl FnMut(&MessageHeader, &FlowRecord, bool),
    ) {
        let scale = self.scale_sampling;
        let mut i = 0;
        while i < self.templated.hold.queue.len() {
            let t = &mut self.templated;
            let held = &mut t.hold.queue[i];
            if held.exporter != exporter {
                i += 1;
                continue;
            }
            let before = held.pending.len();
            let mut d = TemplatedCounters::default();
            let mut sums = [0u64; 3];
            let Ok((h, _)) = MessageHeader::parse(&held.bytes) else {
                i += 1;
                continue; // accepted before: cannot happen
            };
            let res = t.decoder.decode_sets(exporter, &held.bytes, &mut held.pending, &mut |r| {
                let (fr, stitch) = hand_on(r, scale, &mut d, &mut sums);
                each(&h, &fr, stitch);
            });
            let Ok(s) = res else {
                i += 1;
                continue;
            };
            d.summary(&s);
            let decoded = (before - held.pending.len()) as u64;
            d.held_sets_decoded += decoded;
            d.no_template_records += (s.flow_records + s.reverse_records) as u64;
            if let Some((_, n)) = &mut held.seq {
                *n += s.data_records();
            }
            let done = held.pending.is_empty();
            self.counters.records += sums[0];
            self.counters.packets += sums[1];
            self.counters.octets += sums[2];
            self.templated.counters.add(&d);
            if let Some(per) = self.exporter(exporter) {
                per.counters.records += sums[0];
                per.counters.packets += sums[1];
                per.counters.octets += sums[2];
                per.templated.get_or_insert_with(Default::default).add(&d);
            }
            if done {
                let h = self.templated.hold.remove(i).expect("index in range");
                self.settle(&mut vec![h], true);
            } else {
                i += 1;
            }
        }
    }

    /// Expire held datagrams older than the hold's age at `now` (counted
    /// `held_sets_expired`). `u64::MAX` expires everything (end of input).
    pub fn expire_held(&mut self, now: u64) {
        if self.templated.hold.is_empty() {
            return;
        }
        let t = &mut self.templated;
        let mut out = std::mem::take(&mut t.leaving);
        t.hold.expire(&t.hold_cfg, now, &mut out);
        self.settle(&mut out, true);
        self.templated.leaving = out;
    }

    /// Count held datagrams leaving unresolved (`expired`, else dropped
    /// for room) or resolved, and observe the deferred IPFIX sequence.
    fn settle(&mut self, out: &mut Vec<Held>, expired: bool) {
        for h in out.drain(..) {
            let n = h.pending.len() as u64;
            let mut d = TemplatedCounters::default();
            if expired {
                d.held_sets_expired = n;
            } else {
                d.held_sets_dropped = n;
            }
            self.templated.counters.add(&d);
            let Some(per) = self.exporter(h.exporter) else { continue };
            per.templated.get_or_insert_with(Default::default).add(&d);
            if let (Some((seq, count)), Ok((mh, _))) = (h.seq, MessageHeader::parse(&h.bytes)) {
                let (stream, _, up) = seq_args(&mh, count);
                per.seq.observe_stream(stream, seq, count, up);
            }
        }
    }
}

/// A decoded templated record, handed on: scaled with `--scale-sampling`,
/// counters capped at [`MAX_COUNTER`], counted in `sums`
/// (records, packets, octets) and, when the flow table cannot take it
/// ([`stitchable_now`]), in the `ipv6_*_pending` counters of `d`.
#[inline]
fn hand_on(
    r: TemplatedRecord,
    scale_sampling: bool,
    d: &mut TemplatedCounters,
    sums: &mut [u64; 3],
) -> (FlowRecord, bool) {
    let mut fr = r.record;
    let scale = match r.sampling_interval {
        Some(n) if scale_sampling && n > 1 => n as u64,
        _ => 1,
    };
    let (p, o) = (fr.packets.saturating_mul(scale), fr.octets.saturating_mul(scale));
    fr.packets = p.min(MAX_COUNTER);
    fr.octets = o.min(MAX_COUNTER);
    d.counters_clamped += (fr.packets != p || fr.octets != o) as u64;
    sums[0] += 1;
    sums[1] += fr.packets;
    sums[2] += fr.octets;
    let stitch = stitchable_now(&fr);
    if !stitch {
        d.ipv6_records_pending += 1;
        d.ipv6_packets_pending += fr.packets;
        d.ipv6_octets_pending += fr.octets;
    }
    (fr, stitch)
}
