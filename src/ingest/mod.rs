//! The first stage after a socket or a capture: decode one datagram, count
//! it (accepted, or rejected by reason, per exporter), track its exporter's
//! sequence, and hand each record on: as a [`FlowRecord`] ([`Ingest::datagram`],
//! for replay), or in place in the receive buffer ([`Ingest::wire`], for the
//! collector: read by the shard through [`WireView`], dumped from there).
//! v9 and IPFIX ([`is_templated`]) go through [`Ingest::templated`] instead
//! ([`templated`]: the per-thread template cache, the hold for data before
//! its template, the IPv6 seam [`stitchable_now`]); their templates are
//! saved across restarts by [`state`].
//!
//! Every datagram that reaches [`Ingest::datagram`] or [`Ingest::wire`] is counted exactly once:
//! `seen = accepted + rejected`. Sums of records, packets and octets are
//! taken here, over exactly the records handed on, so a test can compare
//! them with the sums over emitted flows.
//!
//! Per-exporter counters are this thread's; sequence state is the
//! collector's, shared by every thread's `Ingest` ([`SeqTracker`], in
//! [`exporters`]: one tracker per exporter, whatever the worker). Both are
//! capped: a source past the table's caps is counted in the totals and in
//! [`Overflow`], never per exporter and never in a shared bucket.

pub mod exporters;
mod seq;
pub mod state;
pub mod templated;

use std::net::IpAddr;

use hashbrown::HashMap;

use crate::flow::{
    exporter_words, sampling_scale, FlowRecord, KeyPacker, Merge, PackedKey, Records,
};
pub use exporters::{Caps, SeqHandle, SeqTracker, StreamId, MAX_ENGINES, MAX_EXPORTERS};
pub use seq::{GapBudget, SeqEvent, SeqTotals, Stream, MAX_GAPS, REORDER_WINDOW, UPTIME_RESET_MS};

use crate::wire::template;
use crate::wire::{Datagram, DecodeError, Header, Record, HEADER_LEN, RECORD_LEN};
pub use templated::{
    is_templated, stitchable_now, HoldConfig, Templated, TemplatedCounters, SET_REASONS,
};

/// Reasons a datagram is rejected: the v5 decoder's four, `not_allowed`
/// (source outside `--allow`, dropped before decode), then the v9/IPFIX
/// framing reasons that v5 does not have (a v9/IPFIX datagram too short, or
/// whose IPFIX length is not its own, counts under `too_short` and
/// `length_mismatch`), and `truncated`: a datagram longer than the receive
/// buffer (the kernel kept only its first bytes; nothing of it is decoded).
pub const REJECT_REASONS: [&str; 8] = [
    DecodeError::REASONS[0],
    DecodeError::REASONS[1],
    DecodeError::REASONS[2],
    DecodeError::REASONS[3],
    "not_allowed",
    "set_too_short",
    "set_overrun",
    "truncated",
];
/// Index of `not_allowed` in [`REJECT_REASONS`].
pub const NOT_ALLOWED: usize = 4;
/// Index of `truncated` in [`REJECT_REASONS`].
pub const TRUNCATED: usize = 7;

/// Datagram and record totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Accepted datagrams.
    pub datagrams: u64,
    /// Rejected datagrams, by [`REJECT_REASONS`] index.
    pub rejected: [u64; REJECT_REASONS.len()],
    pub records: u64,
    pub packets: u64,
    pub octets: u64,
}

impl Counters {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// One accepted datagram of `records` records.
    #[inline]
    pub fn accept(&mut self, records: u64, packets: u64, octets: u64) {
        self.datagrams += 1;
        self.records += records;
        self.packets += packets;
        self.octets += octets;
    }

    pub fn add(&mut self, o: &Counters) {
        self.datagrams += o.datagrams;
        for (a, b) in self.rejected.iter_mut().zip(o.rejected) {
            *a += b;
        }
        self.records += o.records;
        self.packets += o.packets;
        self.octets += o.octets;
    }
}

/// Datagrams the caps kept out of per-exporter state (counted in the totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overflow {
    /// From sources past [`MAX_EXPORTERS`] (accepted or rejected): no
    /// per-exporter counters, no sequence tracking.
    pub exporters: u64,
    /// Accepted from a tracked exporter, of an (engine type, engine id) past
    /// [`MAX_ENGINES`] or the table's stream cap: not sequence-tracked.
    pub engines: u64,
}

impl Overflow {
    pub fn add(&mut self, o: &Overflow) {
        self.exporters += o.exporters;
        self.engines += o.engines;
    }
}

/// One exporter's entry in a thread's [`Ingest`]: its counters here, and
/// its sequence state in the shared table.
#[derive(Debug, Clone)]
pub struct Exporter {
    pub counters: Counters,
    seq: SeqHandle,
    /// v9/IPFIX counters, once the exporter sent one (kept out of line: v5
    /// exporters do not carry them).
    pub templated: Option<Box<TemplatedCounters>>,
}

/// Why a datagram was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Decode(DecodeError),
    /// A v9/IPFIX datagram whose header or set framing is broken.
    Templated(template::DecodeError),
    /// The source is outside `--allow`.
    NotAllowed,
    /// Longer than the receive buffer: only its first `kept` bytes arrived.
    Truncated {
        kept: usize,
    },
}

impl Rejection {
    pub fn index(&self) -> usize {
        match self {
            Rejection::Decode(e) => e.index(),
            Rejection::Templated(e) => match e {
                template::DecodeError::TooShort { .. } => 0,
                template::DecodeError::BadVersion { .. } => 1,
                template::DecodeError::LengthMismatch { .. } => 3,
                template::DecodeError::SetTooShort { .. } => 5,
                _ => 6, // SetOverrun: the only other datagram-level reason
            },
            Rejection::NotAllowed => NOT_ALLOWED,
            Rejection::Truncated { .. } => TRUNCATED,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Decode(e) => e.fmt(f),
            Rejection::Templated(e) => e.fmt(f),
            Rejection::NotAllowed => f.write_str("source not in --allow"),
            Rejection::Truncated { kept } => write!(
                f,
                "datagram longer than the {kept}-byte receive buffer (truncated, not decoded)"
            ),
        }
    }
}

/// Decode-and-count state of one thread.
#[derive(Debug, Default)]
pub struct Ingest {
    pub lenient: bool,
    pub scale_sampling: bool,
    /// Accepted sources (`--allow`); empty accepts every source.
    pub allow: Vec<ipnet::IpNet>,
    pub counters: Counters,
    pub exporters: HashMap<IpAddr, Exporter>,
    /// Sequence state: the collector's, shared (clones of one table).
    pub seq: SeqTracker,
    pub overflow: Overflow,
    /// The latest rejection and its source, for rate-limited logging.
    pub last_rejection: Option<(IpAddr, Rejection)>,
    /// The latest source the exporter cap kept out, and the latest
    /// (source, engine type, engine id) the engine caps did: for
    /// rate-limited warnings.
    pub last_exporter_overflow: Option<IpAddr>,
    pub last_engine_overflow: Option<(IpAddr, u8, u8)>,
    /// v9/IPFIX: this thread's decoder, held datagrams and counters.
    pub templated: Templated,
}

impl Ingest {
    pub fn new(lenient: bool, scale_sampling: bool) -> Self {
        Ingest { lenient, scale_sampling, ..Default::default() }
    }

    pub fn with_allow(mut self, allow: Vec<ipnet::IpNet>) -> Self {
        self.allow = allow;
        self
    }

    /// Bound the datagrams held for their template (`--hold-datagrams`, `--hold-for`).
    pub fn with_hold(mut self, hold: HoldConfig) -> Self {
        self.templated.hold_cfg = hold;
        self
    }

    /// Start with these templates (from the state directory), copied into
    /// this thread's cache (the same caps: nothing is refused).
    pub fn with_templates(mut self, from: &template::TemplateCache) -> Self {
        let cache = self.templated.decoder.cache_mut();
        for (ip, domain, id, plan) in from.templates() {
            // The source cache had the same caps: nothing is refused here.
            let _ = cache.restore(ip, domain, id, plan.clone());
        }
        self
    }

    /// Publish this thread's templates for saving while running (a
    /// collector's worker with `--state-dir`).
    pub fn with_publisher(mut self, p: state::Publisher) -> Self {
        self.templated.publisher = Some(p);
        self
    }

    /// Housekeeping at `now` (ns): publish the templates if they changed
    /// (at most once per [`state::SAVE_EVERY`]).
    #[inline]
    pub fn publish_templates(&mut self, now: u64) {
        if let Some(p) = &mut self.templated.publisher {
            p.tick(now, self.templated.decoder.cache());
        }
    }

    /// Share `seq` (every worker of a collector gets a clone of one).
    pub fn with_seq(mut self, seq: SeqTracker) -> Self {
        self.seq = seq;
        self
    }

    /// Per-exporter counters, sorted by exporter.
    pub fn exporter_counters(&self) -> Vec<(IpAddr, Counters)> {
        let mut v: Vec<_> = self.exporters.iter().map(|(k, e)| (*k, e.counters)).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// The two overflow counters: `[exporters, engines]`.
    pub fn overflow_totals(&self) -> [u64; 2] {
        [self.overflow.exporters, self.overflow.engines]
    }

    /// The warning for overflow counter `which` (as in
    /// [`Ingest::overflow_totals`]), naming its latest source; formatted
    /// only when asked, so a caller checks its rate limit first.
    pub fn overflow_note(&self, which: usize) -> Option<String> {
        match which {
            0 => self.last_exporter_overflow.map(|ip| {
                format!("from {ip} and others past the cap of {MAX_EXPORTERS} exporters (exporters_overflow)")
            }),
            _ => self.last_engine_overflow.map(|(ip, t, i)| {
                format!(
                    "from {ip} engine {t}/{i}: past the cap of {MAX_ENGINES} engines per \
                     exporter or of sequence streams in all, not sequence-tracked (engines_overflow)"
                )
            }),
        }
    }

    /// This exporter's entry, made if the table admits it; `None` (counted
    /// in `overflow.exporters`) when a cap refuses it.
    #[inline]
    fn exporter(&mut self, ip: IpAddr) -> Option<&mut Exporter> {
        match self.exporters.entry(ip) {
            hashbrown::hash_map::Entry::Occupied(o) => Some(o.into_mut()),
            hashbrown::hash_map::Entry::Vacant(v) => match self.seq.admit(ip) {
                Some(seq) => {
                    Some(v.insert(Exporter { counters: Counters::default(), seq, templated: None }))
                }
                None => {
                    self.overflow.exporters += 1;
                    self.last_exporter_overflow = Some(ip);
                    None
                }
            },
        }
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }

    /// Count a datagram the socket truncated (longer than the receive
    /// buffer, `kept` bytes kept): rejected whole as `truncated` (per
    /// exporter too), or `not_allowed` from a source outside `--allow`.
    /// Nothing of it is decoded: a cut v9/IPFIX message would teach a
    /// partial template set, a cut v5 one fail its count anyway.
    #[cold]
    pub fn truncated(&mut self, exporter: IpAddr, kept: usize) {
        let exporter = exporter.to_canonical();
        let why = if self.allowed(exporter) {
            Rejection::Truncated { kept }
        } else {
            Rejection::NotAllowed
        };
        self.counters.rejected[why.index()] += 1;
        if why != Rejection::NotAllowed {
            if let Some(per) = self.exporter(exporter) {
                per.counters.rejected[TRUNCATED] += 1;
            }
        }
        self.last_rejection = Some((exporter, why));
    }

    /// Decode and count one datagram from `exporter` (an IPv4-mapped IPv6
    /// source counts as its IPv4 address, as a dual-stack socket reports
    /// it). On success `each` is called for every record, in wire order,
    /// and the header is returned.
    #[inline]
    pub fn datagram(
        &mut self,
        exporter: IpAddr,
        bytes: &[u8],
        mut each: impl FnMut(&Header, u16, &Record<'_>, &FlowRecord),
    ) -> Result<Header, Rejection> {
        let exporter = exporter.to_canonical();
        let d = self.decode(exporter, bytes)?;
        let h = d.header();
        let (mut packets, mut octets) = (0u64, 0u64);
        for (i, r) in d.records().enumerate() {
            let fr = FlowRecord::from_wire(exporter, &h, &r, self.scale_sampling);
            packets += fr.packets;
            octets += fr.octets;
            each(&h, i as u16, &r, &fr);
        }
        self.count(exporter, &h, packets, octets);
        Ok(h)
    }

    /// [`Ingest::datagram`] that hands the records on in place: `bytes` lies
    /// at `offset` in a receive buffer, and `out` notes where each record is
    /// there and its datagram's context, to be read through
    /// [`WireRecords::view`] over that buffer (no record is copied).
    #[inline]
    pub fn wire(
        &mut self,
        exporter: IpAddr,
        bytes: &[u8],
        offset: usize,
        out: &mut WireRecords,
    ) -> Result<Header, Rejection> {
        let exporter = exporter.to_canonical();
        let d = self.decode(exporter, bytes)?;
        let h = d.header();
        let scale = sampling_scale(&h, self.scale_sampling);
        let (mut packets, mut octets) = (0u64, 0u64);
        for r in d.records() {
            packets += r.packets() as u64 * scale;
            octets += r.octets() as u64 * scale;
        }
        self.count(exporter, &h, packets, octets);
        let dg = u32::try_from(out.dgs.len()).expect("datagrams in a receive batch fit u32");
        let (ex, export_ns) = (exporter_words(exporter), h.export_ns());
        out.dgs.push(WireContext { exporter, ex, header: h, export_ns, scale });
        let first = offset + HEADER_LEN;
        out.locs.extend((0..d.count()).map(|k| {
            let at = u32::try_from(first + k * RECORD_LEN).expect("receive buffer under 4 GiB");
            (at, dg)
        }));
        Ok(h)
    }

    /// Per-exporter v9/IPFIX counters, sorted by exporter.
    pub fn exporter_templated(&self) -> Vec<(IpAddr, TemplatedCounters)> {
        let mut v: Vec<_> = self
            .exporters
            .iter()
            .filter_map(|(k, e)| e.templated.as_deref().map(|t| (*k, *t)))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// Check the source and decode; a rejection is counted here (per
    /// exporter too, when the table has room for the source).
    #[inline]
    fn decode<'a>(&mut self, exporter: IpAddr, bytes: &'a [u8]) -> Result<Datagram<'a>, Rejection> {
        if !self.allowed(exporter) {
            // Dropped before decode; not an exporter we track (a flood of
            // spoofed sources must not grow the per-exporter table).
            self.counters.rejected[NOT_ALLOWED] += 1;
            self.last_rejection = Some((exporter, Rejection::NotAllowed));
            return Err(Rejection::NotAllowed);
        }
        Datagram::parse_with(bytes, self.lenient).map_err(|e| {
            self.counters.rejected[e.index()] += 1;
            if let Some(per) = self.exporter(exporter) {
                per.counters.rejected[e.index()] += 1;
            }
            self.last_rejection = Some((exporter, Rejection::Decode(e)));
            Rejection::Decode(e)
        })
    }

    /// Count an accepted datagram (totals, per exporter, sequence).
    #[inline]
    fn count(&mut self, exporter: IpAddr, h: &Header, packets: u64, octets: u64) {
        let n = h.count as u64;
        self.counters.accept(n, packets, octets);
        let Some(per) = self.exporter(exporter) else { return };
        per.counters.accept(n, packets, octets);
        let ev = per.seq.observe(
            h.engine_type,
            h.engine_id,
            h.flow_sequence,
            h.count as u32,
            h.sys_uptime,
        );
        if ev == SeqEvent::Untracked {
            self.overflow.engines += 1;
            self.last_engine_overflow = Some((exporter, h.engine_type, h.engine_id));
        }
    }
}

/// The accepted records of a receive batch, by where they lie in its
/// buffer: per record its byte offset and its datagram, per datagram the
/// context its records need (exporter, header, sampling scale).
/// Filled by [`Ingest::wire`]; reused from batch to batch.
#[derive(Debug, Default)]
pub struct WireRecords {
    dgs: Vec<WireContext>,
    locs: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, Copy)]
struct WireContext {
    exporter: IpAddr,
    /// The exporter as a packed key's first two words (packed once per datagram).
    ex: [u64; 2],
    header: Header,
    /// `header.export_ns()`, computed once per datagram.
    export_ns: u64,
    scale: u64,
}

impl WireRecords {
    /// Room for `datagrams` datagrams of up to 30 records each.
    pub fn with_capacity(datagrams: usize) -> Self {
        WireRecords {
            dgs: Vec::with_capacity(datagrams),
            locs: Vec::with_capacity(datagrams * crate::wire::MAX_RECORDS),
        }
    }

    /// Records noted.
    pub fn len(&self) -> usize {
        self.locs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.locs.is_empty()
    }

    pub fn clear(&mut self) {
        self.dgs.clear();
        self.locs.clear();
    }

    /// Keep the records of `[..start]` and, of the later ones, those for
    /// which `keep(i)` is true (in order); the others are dropped.
    pub fn retain_from(&mut self, start: usize, mut keep: impl FnMut(usize) -> bool) {
        let mut to = start;
        for i in start..self.locs.len() {
            if keep(i) {
                self.locs[to] = self.locs[i];
                to += 1;
            }
        }
        self.locs.truncate(to);
    }

    /// The records, read from `buf`: the receive buffer the offsets given to
    /// [`Ingest::wire`] point into, unchanged since.
    pub fn view<'a>(&'a self, buf: &'a [u8]) -> WireView<'a> {
        WireView { buf, recs: self }
    }
}

/// [`WireRecords`] over their receive buffer: [`Records`] read in place.
#[derive(Debug, Clone, Copy)]
pub struct WireView<'a> {
    buf: &'a [u8],
    recs: &'a WireRecords,
}

impl<'a> WireView<'a> {
    /// Record `i` as it is on the wire.
    #[inline]
    pub fn wire(&self, i: usize) -> Record<'a> {
        self.at(i).0
    }

    /// The exporter of record `i`'s datagram, as [`Ingest::wire`] counted it
    /// (an IPv4-mapped source as IPv4).
    #[inline]
    pub fn exporter(&self, i: usize) -> IpAddr {
        self.at(i).1.exporter
    }

    #[inline(always)]
    fn at(&self, i: usize) -> (Record<'a>, &'a WireContext) {
        let (off, dg) = self.recs.locs[i];
        let off = off as usize;
        let bytes = self.buf[off..off + RECORD_LEN].try_into().expect("a RECORD_LEN range");
        (Record::new(bytes), &self.recs.dgs[dg as usize])
    }
}

impl Records for WireView<'_> {
    /// v5 records: IPv4 only.
    const V4_ONLY: bool = true;

    #[inline]
    fn len(&self) -> usize {
        self.recs.locs.len()
    }

    #[inline]
    fn is_v6(&self, _: usize) -> bool {
        false
    }

    #[inline]
    fn key(&self, i: usize, packer: &KeyPacker) -> PackedKey {
        let (r, c) = self.at(i);
        packer.pack_wire(c.ex, u16::from_be_bytes([c.header.engine_type, c.header.engine_id]), &r)
    }

    #[inline]
    fn merge(&self, i: usize) -> Merge {
        let (r, c) = self.at(i);
        Merge::from_wire_at(&c.header, c.export_ns, &r, c.scale)
    }

    #[inline]
    fn key_merge(&self, i: usize, packer: &KeyPacker) -> (PackedKey, Merge) {
        let (r, c) = self.at(i);
        let engine = u16::from_be_bytes([c.header.engine_type, c.header.engine_id]);
        let merge = Merge::from_wire_at(&c.header, c.export_ns, &r, c.scale);
        (packer.pack_wire(c.ex, engine, &r), merge)
    }

    #[inline]
    fn record(&self, i: usize) -> FlowRecord {
        let (r, c) = self.at(i);
        FlowRecord::from_wire_scaled(c.exporter, &c.header, &r, c.scale)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::flow::{KeySpec, Shard, ShardConfig};
    use crate::wire::tests::{arb_header, arb_record};
    use crate::wire::{encode, HeaderFields, RecordFields};

    #[test]
    fn ipv4_mapped_sources_count_as_ipv4_on_both_paths() {
        let mut bytes = Vec::new();
        encode(
            &HeaderFields::default(),
            &[RecordFields { packets: 3, octets: 300, ..Default::default() }],
            &mut bytes,
        );
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        let mut ing = Ingest::new(false, false);
        let mut seen = Vec::new();
        ing.datagram(mapped, &bytes, |_, _, _, fr| seen.push(fr.exporter)).unwrap();
        let mut wire = WireRecords::default();
        ing.wire(mapped, &bytes, 0, &mut wire).unwrap();
        ing.wire(v4, &bytes, 0, &mut wire).unwrap();
        assert_eq!(seen, [v4]);
        let view = wire.view(&bytes);
        assert!((0..view.len()).all(|i| view.record(i).exporter == v4));
        assert_eq!(ing.exporters.len(), 1, "{:?}", ing.exporters.keys());
        assert_eq!(ing.exporters[&v4].counters.datagrams, 3);
        // A real IPv6 source stays IPv6.
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        ing.wire(v6, &bytes, 0, &mut wire).unwrap();
        let view = wire.view(&bytes);
        assert_eq!(view.record(view.len() - 1).exporter, v6);
    }

    /// Datagrams from four exporters (one IPv6), laid out in one buffer with
    /// gaps, as a receive batch holds them.
    fn arb_batch() -> impl Strategy<Value = Vec<(IpAddr, HeaderFields, Vec<RecordFields>)>> {
        let exporters = [
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()),
        ];
        let dg = (0..4usize, arb_header(), prop::collection::vec(arb_record(), 1..=30));
        prop::collection::vec(dg, 1..8)
            .prop_map(move |v| v.into_iter().map(|(e, h, r)| (exporters[e], h, r)).collect())
    }

    proptest! {
        /// Reading a batch in place gives what decoding it into FlowRecords
        /// gives: every record, its key under any key spec, what it merges,
        /// the counters, and the flows a shard makes of it.
        #[test]
        fn wire_view_equals_decoded_records(
            batch in arb_batch(),
            spec in prop::sample::subsequence(crate::flow::KeyField::ALL.to_vec(), 1..=10),
            scale in any::<bool>(),
        ) {
            let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
            let spec: KeySpec = names.join(",").parse().unwrap();
            let packer = spec.packer();
            let (mut buf, mut offsets) = (Vec::new(), Vec::new());
            for (_, h, recs) in &batch {
                buf.extend_from_slice(&[0xee; 7]); // a gap: slots are not contiguous
                offsets.push(buf.len());
                encode(h, recs, &mut buf);
            }
            let (mut decoded, mut by_decode) = (Vec::new(), Ingest::new(false, scale));
            let (mut wire, mut by_wire) = (WireRecords::default(), Ingest::new(false, scale));
            for ((ex, _, recs), &off) in batch.iter().zip(&offsets) {
                let bytes = &buf[off..off + 24 + 48 * recs.len()];
                by_decode.datagram(*ex, bytes, |_, _, _, fr| decoded.push(*fr)).unwrap();
                by_wire.wire(*ex, bytes, off, &mut wire).unwrap();
            }
            let view = wire.view(&buf);
            prop_assert_eq!(view.len(), decoded.len());
            for (i, fr) in decoded.iter().enumerate() {
                prop_assert_eq!(view.record(i), *fr);
                prop_assert_eq!(view.exporter(i), fr.exporter);
                prop_assert_eq!(view.key(i, &packer), packer.pack(fr));
                prop_assert_eq!(view.merge(i), Merge::from(fr));
                prop_assert_eq!(view.key_merge(i, &packer), (packer.pack(fr), Merge::from(fr)));
            }
            prop_assert_eq!(by_wire.counters, by_decode.counters);
            prop_assert_eq!(by_wire.exporter_counters(), by_decode.exporter_counters());
            let cfg = ShardConfig {
                key: spec,
                linger_ns: 1_000_000_000,
                idle_ns: 5_000_000_000,
                max_flows: 8,
            };
            let segs = [(view.len(), 1_000)];
            let (mut a, mut b) = (Shard::new(cfg, 0), Shard::new(cfg, 0));
            let (mut fa, mut fb) = (Vec::new(), Vec::new());
            a.apply_segments(&view, &segs, &mut fa);
            b.apply_segments(decoded.as_slice(), &segs, &mut fb);
            a.flush(2_000, &mut fa);
            b.flush(2_000, &mut fb);
            prop_assert_eq!(fa, fb);
        }
    }
}
