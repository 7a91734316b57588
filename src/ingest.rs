//! The first stage after a socket or a capture: decode one datagram, count
//! it (accepted, or rejected by reason, per exporter), track its exporter's
//! sequence, and hand each record on as a [`FlowRecord`].
//!
//! Every datagram that reaches [`Ingest::datagram`] is counted exactly once:
//! `seen = accepted + rejected`. Sums of records, packets and octets are
//! taken here, over exactly the records handed on, so a test can compare
//! them with the sums over emitted flows.

use std::net::IpAddr;

use hashbrown::HashMap;

use crate::flow::{FlowRecord, SeqTracker};
use crate::wire::{Datagram, DecodeError, Header, Record};

/// Reasons a datagram is rejected: the decoder's four, then `not_allowed`
/// (source outside `--allow`, dropped before decode).
pub const REJECT_REASONS: [&str; 5] = [
    DecodeError::REASONS[0],
    DecodeError::REASONS[1],
    DecodeError::REASONS[2],
    DecodeError::REASONS[3],
    "not_allowed",
];
/// Sources tracked one by one (counters, sequence state); beyond this many,
/// new sources are counted together under [`OTHER_EXPORTERS`].
pub const MAX_EXPORTERS: usize = 4096;
/// The bucket for sources past [`MAX_EXPORTERS`] (`255.255.255.255` in reports).
pub const OTHER_EXPORTERS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::BROADCAST);

/// Index of `not_allowed` in [`REJECT_REASONS`].
pub const NOT_ALLOWED: usize = 4;

/// Datagram and record totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Accepted datagrams.
    pub datagrams: u64,
    /// Rejected datagrams, by [`REJECT_REASONS`] index.
    pub rejected: [u64; 5],
    pub records: u64,
    pub packets: u64,
    pub octets: u64,
}

impl Counters {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
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

/// Why a datagram was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Decode(DecodeError),
    /// The source is outside `--allow`.
    NotAllowed,
}

impl Rejection {
    pub fn index(&self) -> usize {
        match self {
            Rejection::Decode(e) => e.index(),
            Rejection::NotAllowed => NOT_ALLOWED,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Decode(e) => e.fmt(f),
            Rejection::NotAllowed => f.write_str("source not in --allow"),
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
    pub exporters: HashMap<IpAddr, Counters>,
    pub seq: SeqTracker,
    /// The latest rejection and its source, for rate-limited logging.
    pub last_rejection: Option<(IpAddr, Rejection)>,
}

impl Ingest {
    pub fn new(lenient: bool, scale_sampling: bool) -> Self {
        Ingest { lenient, scale_sampling, ..Default::default() }
    }

    pub fn with_allow(mut self, allow: Vec<ipnet::IpNet>) -> Self {
        self.allow = allow;
        self
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
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
        let (d, tracked) = self.decode(exporter, bytes)?;
        let h = d.header();
        let (mut packets, mut octets) = (0u64, 0u64);
        for (i, r) in d.records().enumerate() {
            let fr = FlowRecord::from_wire(exporter, &h, &r, self.scale_sampling);
            packets += fr.packets;
            octets += fr.octets;
            each(&h, i as u16, &r, &fr);
        }
        self.count(exporter, tracked, &h, packets, octets);
        Ok(h)
    }

    /// [`Ingest::datagram`] that appends the records to `out` (built in
    /// place: the hot path of a collector that only stitches).
    #[inline]
    pub fn records(
        &mut self,
        exporter: IpAddr,
        bytes: &[u8],
        out: &mut Vec<FlowRecord>,
    ) -> Result<Header, Rejection> {
        let exporter = exporter.to_canonical();
        let (d, tracked) = self.decode(exporter, bytes)?;
        let h = d.header();
        let scale = self.scale_sampling;
        let (mut packets, mut octets) = (0u64, 0u64);
        out.extend(d.records().map(|r| {
            let fr = FlowRecord::from_wire(exporter, &h, &r, scale);
            packets += fr.packets;
            octets += fr.octets;
            fr
        }));
        self.count(exporter, tracked, &h, packets, octets);
        Ok(h)
    }

    /// Check the source and decode; a rejection is counted here. Also says
    /// whether the exporter has its own entry (else it shares OTHER_EXPORTERS).
    #[inline]
    fn decode<'a>(
        &mut self,
        exporter: IpAddr,
        bytes: &'a [u8],
    ) -> Result<(Datagram<'a>, bool), Rejection> {
        if !self.allowed(exporter) {
            // Dropped before decode; not an exporter we track (a flood of
            // spoofed sources must not grow the per-exporter table).
            self.counters.rejected[NOT_ALLOWED] += 1;
            self.last_rejection = Some((exporter, Rejection::NotAllowed));
            return Err(Rejection::NotAllowed);
        }
        // Per-exporter state is bounded: past MAX_EXPORTERS sources, new ones
        // share the OTHER_EXPORTERS bucket and are not sequence-tracked.
        let tracked =
            self.exporters.len() < MAX_EXPORTERS || self.exporters.contains_key(&exporter);
        match Datagram::parse_with(bytes, self.lenient) {
            Ok(d) => Ok((d, tracked)),
            Err(e) => {
                let per = self
                    .exporters
                    .entry(if tracked { exporter } else { OTHER_EXPORTERS })
                    .or_default();
                self.counters.rejected[e.index()] += 1;
                per.rejected[e.index()] += 1;
                self.last_rejection = Some((exporter, Rejection::Decode(e)));
                Err(Rejection::Decode(e))
            }
        }
    }

    /// Count an accepted datagram (totals, per exporter, sequence).
    #[inline]
    fn count(&mut self, exporter: IpAddr, tracked: bool, h: &Header, packets: u64, octets: u64) {
        let per =
            self.exporters.entry(if tracked { exporter } else { OTHER_EXPORTERS }).or_default();
        let n = h.count as u64;
        for c in [&mut self.counters, per] {
            c.datagrams += 1;
            c.records += n;
            c.packets += packets;
            c.octets += octets;
        }
        if tracked {
            self.seq.observe(
                exporter,
                h.engine_type,
                h.engine_id,
                h.flow_sequence,
                h.count as u32,
                h.sys_uptime,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;
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
        let mut recs = Vec::new();
        ing.records(mapped, &bytes, &mut recs).unwrap();
        ing.records(v4, &bytes, &mut recs).unwrap();
        assert_eq!(seen, [v4]);
        assert!(recs.iter().all(|r| r.exporter == v4));
        assert_eq!(ing.exporters.len(), 1, "{:?}", ing.exporters.keys());
        assert_eq!(ing.exporters[&v4].datagrams, 3);
        // A real IPv6 source stays IPv6.
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        ing.records(v6, &bytes, &mut recs).unwrap();
        assert_eq!(recs.last().unwrap().exporter, v6);
    }
}
