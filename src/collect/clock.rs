//! The collector's one wall clock. Decode, shard and wheel take time as a
//! parameter; the threads that drive them (workers, writer, startup) read
//! it here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall clock in ns since the epoch.
pub fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
