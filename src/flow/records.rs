//! [`Records`]: how a shard reads the batch of records it merges, by index.
//!
//! Owns the split of a record into what every merge needs ([`Merge`]: the
//! counters, times and flags a record adds to its flow; its key, packed by
//! [`KeyPacker`]) and what only a new flow needs (the whole [`FlowRecord`]).
//! A batch is either a slice of [`FlowRecord`]s (replay, records routed from
//! other workers) or a receive batch read in place from the wire
//! (`ingest::WireView`): the collector's own records are never copied into
//! an intermediate form, and a record that merges into an existing flow (the
//! common case) is never built in full.

use super::key::{KeyPacker, PackedKey};
use super::FlowRecord;

/// TCP FIN and RST: a record carrying either starts (or extends) the linger.
pub const FIN_OR_RST: u8 = 0x01 | 0x04;

/// What one record adds to its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merge {
    pub packets: u64,
    pub octets: u64,
    /// First and last packet, ns since the Unix epoch (router clock).
    pub first_ns: u64,
    pub last_ns: u64,
    pub tcp_flags: u8,
}

impl Merge {
    /// Does this record carry FIN or RST?
    #[inline]
    pub fn ends_connection(&self) -> bool {
        self.tcp_flags & FIN_OR_RST != 0
    }
}

impl From<&FlowRecord> for Merge {
    #[inline]
    fn from(r: &FlowRecord) -> Self {
        Merge {
            packets: r.packets,
            octets: r.octets,
            first_ns: r.first_ns,
            last_ns: r.last_ns,
            tcp_flags: r.tcp_flags,
        }
    }
}

/// A batch of records, read by index. For every `i < len()`,
/// `key(i, p) == p.pack(&record(i))` and `merge(i) == Merge::from(&record(i))`:
/// the shard's result never depends on which form it reads.
pub trait Records {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key of record `i`.
    fn key(&self, i: usize, packer: &KeyPacker) -> PackedKey;

    /// What record `i` adds to its flow.
    fn merge(&self, i: usize) -> Merge;

    /// Record `i` in full (read when it starts a flow).
    fn record(&self, i: usize) -> FlowRecord;
}

impl Records for [FlowRecord] {
    #[inline]
    fn len(&self) -> usize {
        <[FlowRecord]>::len(self)
    }

    #[inline]
    fn key(&self, i: usize, packer: &KeyPacker) -> PackedKey {
        packer.pack(&self[i])
    }

    #[inline]
    fn merge(&self, i: usize) -> Merge {
        Merge::from(&self[i])
    }

    #[inline]
    fn record(&self, i: usize) -> FlowRecord {
        self[i]
    }
}
