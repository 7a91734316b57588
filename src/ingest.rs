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

/// Reasons a datagram is rejected: the decoder's, in report order.
pub const REJECT_REASONS: [&str; 4] = DecodeError::REASONS;

/// Datagram and record totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Accepted datagrams.
    pub datagrams: u64,
    /// Rejected datagrams, by [`REJECT_REASONS`] index.
    pub rejected: [u64; 4],
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

/// Decode-and-count state of one thread.
#[derive(Debug, Default)]
pub struct Ingest {
    pub lenient: bool,
    pub scale_sampling: bool,
    pub counters: Counters,
    pub exporters: HashMap<IpAddr, Counters>,
    pub seq: SeqTracker,
}

impl Ingest {
    pub fn new(lenient: bool, scale_sampling: bool) -> Self {
        Ingest {
            lenient,
            scale_sampling,
            ..Default::default()
        }
    }

    /// Decode and count one datagram from `exporter`. On success `each` is
    /// called for every record, in wire order, and the header is returned.
    #[inline]
    pub fn datagram(
        &mut self,
        exporter: IpAddr,
        bytes: &[u8],
        mut each: impl FnMut(&Header, u16, &Record<'_>, &FlowRecord),
    ) -> Result<Header, DecodeError> {
        let per = self.exporters.entry(exporter).or_default();
        let d = match Datagram::parse_with(bytes, self.lenient) {
            Ok(d) => d,
            Err(e) => {
                self.counters.rejected[e.index()] += 1;
                per.rejected[e.index()] += 1;
                return Err(e);
            }
        };
        let h = d.header();
        let (mut packets, mut octets) = (0u64, 0u64);
        for (i, r) in d.records().enumerate() {
            let fr = FlowRecord::from_wire(exporter, &h, &r, self.scale_sampling);
            packets += fr.packets;
            octets += fr.octets;
            each(&h, i as u16, &r, &fr);
        }
        let n = d.count() as u64;
        for c in [&mut self.counters, per] {
            c.datagrams += 1;
            c.records += n;
            c.packets += packets;
            c.octets += octets;
        }
        self.seq.observe(
            exporter,
            h.engine_type,
            h.engine_id,
            h.flow_sequence,
            h.count as u32,
            h.sys_uptime,
        );
        Ok(h)
    }
}
