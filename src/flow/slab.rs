//! The slab of flow slots a shard's table points into.
//!
//! Owns: the slots' memory layout. A slot is split into a hot part (packed
//! key, counters, times, timer and eviction bookkeeping: two cache lines,
//! touched by every record) and a cold part (the first record, touched at
//! creation and emission). Both live in chunks of fixed size, so that
//! growing never moves a slot and a slot index is a shift and a mask away.
//! What the fields mean (deadlines, generations, the eviction mark) is the
//! shard's business.

use super::key::PackedKey;
use super::record::FlowRecord;
use super::record::ZERO;

/// The part of a flow every record touches, two cache lines: the key and the
/// counters in the first, times and bookkeeping in the second.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
pub(super) struct Hot {
    pub(super) key: PackedKey,
    pub(super) records: u64,
    pub(super) packets: u64,
    pub(super) octets: u64,
    pub(super) first_ns: u64,
    pub(super) last_ns: u64,
    /// Collector time of the latest record.
    pub(super) seen_ns: u64,
    /// Linger deadline (ns) from the latest FIN/RST record; `u64::MAX` if none.
    pub(super) fin_ns: u64,
    /// Tick of the slot's current wheel entry.
    pub(super) scheduled: u64,
    pub(super) hash: u64,
    pub(super) gen: u32,
    pub(super) tcp_flags: u8,
    pub(super) live: bool,
    /// Updated since the flow last joined the eviction queue: its second chance.
    pub(super) touched: bool,
    /// The last nonzero flowEndReason of its records (0 if none).
    pub(super) exp_reason: u8,
}

/// The part only creation and emission touch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cold {
    pub(super) rec: FlowRecord,
    pub(super) start_ns: u64,
}

impl Default for Cold {
    fn default() -> Self {
        Cold { rec: ZERO, start_ns: 0 }
    }
}

/// Slots in chunks of fixed size: growing never moves a slot (no copy stall
/// at millions of flows), and an index is a shift and a mask away. A chunk
/// is a fixed-size array (allocated whole, default slots), so indexing
/// inside it needs no bounds check.
#[derive(Debug, Default)]
pub(super) struct Slab {
    hot: Vec<Box<[Hot; CHUNK]>>,
    cold: Vec<Box<[Cold; CHUNK]>>,
    pub(super) len: usize,
}

pub(super) const CHUNK_BITS: u32 = 12;
pub(super) const CHUNK: usize = 1 << CHUNK_BITS;

/// Chunk and position within it of slot `i`.
#[inline]
fn at(i: u32) -> (usize, usize) {
    ((i >> CHUNK_BITS) as usize, i as usize & (CHUNK - 1))
}

impl Slab {
    #[inline]
    pub(super) fn hot(&self, i: u32) -> &Hot {
        let (c, k) = at(i);
        &self.hot[c][k]
    }

    #[inline]
    pub(super) fn hot_mut(&mut self, i: u32) -> &mut Hot {
        let (c, k) = at(i);
        &mut self.hot[c][k]
    }

    #[inline]
    pub(super) fn cold(&self, i: u32) -> &Cold {
        let (c, k) = at(i);
        &self.cold[c][k]
    }

    #[inline]
    pub(super) fn cold_mut(&mut self, i: u32) -> &mut Cold {
        let (c, k) = at(i);
        &mut self.cold[c][k]
    }

    #[inline]
    pub(super) fn prefetch(&self, i: u32) {
        let h = self.hot(i);
        crate::platform::cpu::prefetch(h);
        crate::platform::cpu::prefetch(&h.first_ns);
    }

    pub(super) fn push(&mut self, hot: Hot, cold: Cold) -> u32 {
        let i = u32::try_from(self.len).ok().filter(|&i| i < u32::MAX - 1);
        let i = i.expect("more than 2^32 flow slots");
        if self.hot.len() * CHUNK <= self.len {
            self.grow();
        }
        *self.hot_mut(i) = hot;
        *self.cold_mut(i) = cold;
        self.len += 1;
        i
    }

    /// One more chunk, written whole (default slots), so that its pages are
    /// faulted in now rather than one by one on the hot path.
    fn grow(&mut self) {
        self.hot.push(chunk());
        self.cold.push(chunk());
    }

    /// Allocate and touch chunks for `n` slots, so that the first `n` flows
    /// take no page fault.
    pub(super) fn reserve(&mut self, n: usize) {
        while self.hot.len() * CHUNK < n {
            self.grow();
        }
    }

    pub(super) fn clear(&mut self) {
        self.hot.clear();
        self.cold.clear();
        self.len = 0;
    }
}

/// A chunk of default slots.
fn chunk<T: Default + Clone>() -> Box<[T; CHUNK]> {
    let v = vec![T::default(); CHUNK].into_boxed_slice();
    v.try_into().unwrap_or_else(|_| unreachable!("a boxed slice of CHUNK slots"))
}
