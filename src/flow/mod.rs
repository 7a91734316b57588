//! Flows: what a record adds to its flow, the normalized record, the flow
//! key, the batch view a shard reads, and the shard that restitches records
//! into flows.
//!
//! Owns: everything between "a decoded record" and "a finished flow". No
//! I/O and no clock: every operation takes `now` (collector time, ns since the
//! Unix epoch) as a parameter, so replays are deterministic and tests never sleep.
//! The only platform dependency is the cache prefetch hint
//! (`platform::cpu::prefetch`), which has no effect on program state.
//!
//! Files in dependency order: `merge.rs` (what one wire record adds) <-
//! `record.rs` (the whole record) <- `key.rs` (the key and its packer) <-
//! `batch.rs` (a batch read by index) <- `table.rs` (the index), `slab.rs`
//! (the slots), `context.rs` (interned key contexts) <- `shard.rs` (the
//! shard's state and what ends a flow), with its behaviour split by
//! concern into `apply.rs` (the record pipeline), `expiry.rs` (deadlines
//! and the timer wheel) and `evict.rs` (the eviction hand). The IPv6 slot
//! family: `slab6.rs` (its hot slot and key, beside `slab.rs`) and
//! `apply6.rs` (its record path, after `shard.rs`).

mod apply;
mod apply6;
mod batch;
mod context;
mod evict;
mod expiry;
mod key;
mod merge;
mod record;
mod shard;
mod slab;
mod slab6;
mod table;

pub use batch::Records;
pub use key::{exporter_words, FlowKey, KeyField, KeyHasher, KeyPacker, KeySpec, PackedKey};
pub use merge::{
    exporter_end_reason_name, sampling_scale, Merge, END_OF_FLOW, FIN_OR_RST, FORCED_END,
};
pub use record::{FlowRecord, V4_ZERO};
pub use shard::{EndReason, Flow, Shard, ShardConfig, ShardStats, MAX_TIMEOUT_NS, TICK_NS};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests6;
