//! Flows: the normalized record, the flow key, the shard that restitches
//! records into flows, and per-exporter sequence tracking.
//!
//! Owns: everything between "a decoded record" and "a finished flow". No
//! I/O and no clock: every operation takes `now` (collector time, ns since the
//! Unix epoch) as a parameter, so replays are deterministic and tests never sleep.

mod key;
mod record;
mod records;
mod seq;
mod shard;
mod table;

pub use key::{exporter_words, FlowKey, KeyField, KeyHasher, KeyPacker, KeySpec, PackedKey};
pub use record::{sampling_scale, FlowRecord};
pub use records::{Merge, Records};
pub use seq::{SeqEvent, SeqTotals, SeqTracker};
pub use shard::{EndReason, Flow, Shard, ShardConfig, ShardStats, TICK_NS};

#[cfg(test)]
mod tests;
