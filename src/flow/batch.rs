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
use super::merge::Merge;
use super::record::FlowRecord;

/// A batch of records, read by index. For every `i < len()`,
/// `key(i, p) == p.pack(&record(i))`, `merge(i) == Merge::from(&record(i))`
/// and `key_merge(i, p) == (key(i, p), merge(i))`: the shard's result never
/// depends on which form it reads.
pub trait Records {
    /// Every record is IPv4 (a v5 receive batch): the shard's pipeline
    /// then never asks [`Records::is_v6`].
    const V4_ONLY: bool = false;

    fn len(&self) -> usize;

    /// Whether record `i` belongs to the IPv6 family (its source or
    /// destination address is IPv6).
    fn is_v6(&self, i: usize) -> bool;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key of record `i`.
    fn key(&self, i: usize, packer: &KeyPacker) -> PackedKey;

    /// What record `i` adds to its flow.
    fn merge(&self, i: usize) -> Merge;

    /// Both at once (the shard's hot path: a batch read in place locates
    /// the record once for both).
    #[inline]
    fn key_merge(&self, i: usize, packer: &KeyPacker) -> (PackedKey, Merge) {
        (self.key(i, packer), self.merge(i))
    }

    /// Record `i` in full (read when it starts a flow).
    fn record(&self, i: usize) -> FlowRecord;
}

impl Records for [FlowRecord] {
    #[inline]
    fn len(&self) -> usize {
        <[FlowRecord]>::len(self)
    }

    #[inline]
    fn is_v6(&self, i: usize) -> bool {
        super::slab6::is_v6(&self[i])
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
