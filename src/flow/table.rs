//! The flow index: an open-addressing hash table from a key's 64-bit hash to
//! a slot of the shard's slab (linear probing, backward-shift deletion, no
//! tombstones).
//!
//! Each bucket is one `u64`: the hash's high 32 bits (home position and a tag
//! that rules out nearly every other key without touching its slot) and the
//! slot index plus one (0 = empty). The high bits are used because records are
//! routed to shards by `hash mod workers`: within one shard the low bits are
//! not uniform.
//!
//! A lookup can be split in two so that the cache misses of a batch of
//! records overlap instead of queueing: [`FlowTable::prefetch`] the home
//! buckets of the whole batch, then [`FlowTable::peek`] (to prefetch the
//! slots), then [`FlowTable::find`].

use crate::platform::cpu::prefetch;

/// Fewest buckets a table has.
const MIN_BUCKETS: usize = 1024;

#[derive(Debug, Clone)]
pub struct FlowTable {
    buckets: Vec<u64>,
    mask: usize,
    len: usize,
}

/// Buckets for `n` keys: at most half full, so `n` keys never trigger growth.
fn buckets_for(n: usize) -> usize {
    n.saturating_mul(2).next_power_of_two().max(MIN_BUCKETS)
}

#[inline]
fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

#[inline]
fn bucket(hash: u64, idx: u32) -> u64 {
    (tag(hash) as u64) << 32 | (idx as u64 + 1)
}

impl Default for FlowTable {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl FlowTable {
    /// A table that holds `n` keys before it first grows.
    pub fn with_capacity(n: usize) -> Self {
        let buckets = buckets_for(n);
        FlowTable { buckets: vec![0; buckets], mask: buckets - 1, len: 0 }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[cfg(test)]
    /// Bytes held by the buckets.
    pub fn memory_bytes(&self) -> usize {
        self.buckets.len() * 8
    }

    #[inline]
    fn home(&self, t: u32) -> usize {
        t as usize & self.mask
    }

    /// Start loading the home bucket of `hash` into the cache.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        prefetch(&self.buckets[self.home(tag(hash))]);
    }

    /// The first slot in the home bucket's probe run whose tag matches, if
    /// any: a hint for prefetching the slot (it may be another key's).
    #[inline]
    pub fn peek(&self, hash: u64) -> Option<u32> {
        self.find(hash, |_| true)
    }

    /// The slot holding the key with `hash` for which `eq(slot)` is true.
    #[inline]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let t = tag(hash);
        let mut pos = self.home(t);
        loop {
            let b = self.buckets[pos];
            if b == 0 {
                return None;
            }
            if (b >> 32) as u32 == t && eq(b as u32 - 1) {
                return Some(b as u32 - 1);
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Add `idx` under `hash` (the caller knows the key is absent). Grows at
    /// a load of 5/8: a doubling rehashes tags only, never touches slots.
    pub fn insert(&mut self, hash: u64, idx: u32) {
        assert!(idx < u32::MAX, "slot index out of range");
        if (self.len + 1) * 8 > self.buckets.len() * 5 {
            self.grow();
        }
        self.place(bucket(hash, idx));
        self.len += 1;
    }

    fn place(&mut self, b: u64) {
        let mut pos = self.home((b >> 32) as u32);
        while self.buckets[pos] != 0 {
            pos = (pos + 1) & self.mask;
        }
        self.buckets[pos] = b;
    }

    /// Size the table for `n` keys and touch its memory now (written, not
    /// just allocated), so that neither growth nor a page fault comes later.
    pub fn reserve(&mut self, n: usize) {
        let want = buckets_for(n);
        if want > self.buckets.len() {
            self.rebuild(want);
        }
    }

    fn grow(&mut self) {
        self.rebuild(self.buckets.len() * 2);
    }

    /// Move every bucket into a new array of `size` buckets, written in full
    /// first: `vec!` (calloc) would leave its pages to fault in later, and
    /// the rehash touches nearly all of them anyway.
    fn rebuild(&mut self, size: usize) {
        #[allow(clippy::slow_vector_initialization)]
        let mut fresh = Vec::with_capacity(size);
        fresh.resize(size, 0);
        let old = std::mem::replace(&mut self.buckets, fresh);
        self.mask = self.buckets.len() - 1;
        for b in old.into_iter().filter(|&b| b != 0) {
            self.place(b);
        }
    }

    /// Remove `idx` (stored under `hash`). False if it was not there.
    pub fn remove(&mut self, hash: u64, idx: u32) -> bool {
        let want = bucket(hash, idx);
        let mut pos = self.home(tag(hash));
        loop {
            let b = self.buckets[pos];
            if b == 0 {
                return false;
            }
            if b == want {
                break;
            }
            pos = (pos + 1) & self.mask;
        }
        // Backward shift: pull later members of the run into the hole unless
        // their home lies cyclically after the hole (they would become unreachable).
        let mut hole = pos;
        let mut j = pos;
        loop {
            j = (j + 1) & self.mask;
            let b = self.buckets[j];
            if b == 0 {
                break;
            }
            let home = self.home((b >> 32) as u32);
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.buckets[hole] = b;
                hole = j;
            }
        }
        self.buckets[hole] = 0;
        self.len -= 1;
        true
    }

    /// Forget every key; keeps the buckets.
    pub fn clear(&mut self) {
        self.buckets.fill(0);
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Hashes that collide on purpose: few distinct homes, so runs are long
    /// and wrap around the end of the bucket array.
    fn colliding(k: u32) -> u64 {
        let home = (k % 7) as u64 * 1021 % 1024;
        (home << 32) | k as u64
    }

    proptest! {
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((0u8..3, 0u32..3000), 1..4000)) {
            // Key k is stored at slot k; its tag is shared with a seventh of the keys.
            let mut t = FlowTable::default();
            let mut m: HashMap<u32, ()> = HashMap::new();
            for (op, k) in ops {
                let h = colliding(k);
                match op {
                    0 => if let std::collections::hash_map::Entry::Vacant(e) = m.entry(k) {
                        e.insert(());
                        t.insert(h, k);
                    },
                    1 => prop_assert_eq!(t.remove(h, k), m.remove(&k).is_some()),
                    _ => prop_assert_eq!(t.find(h, |i| i == k), m.get(&k).map(|_| k)),
                }
                prop_assert_eq!(t.len(), m.len());
            }
            for &k in m.keys() {
                let h = colliding(k);
                prop_assert_eq!(t.find(h, |i| i == k), Some(k));
                prop_assert!(t.peek(h).is_some());
            }
        }
    }

    #[test]
    fn reserve_keeps_keys_and_avoids_growth() {
        let h = |k: u32| (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut t = FlowTable::with_capacity(0);
        for k in 0..100 {
            t.insert(h(k), k);
        }
        t.reserve(10_000);
        let sized = t.memory_bytes();
        assert!(sized >= 10_000 * 8 * 8 / 5);
        for k in 100..10_000 {
            t.insert(h(k), k);
        }
        assert_eq!(t.memory_bytes(), sized, "grew despite the reservation");
        for k in 0..10_000 {
            assert_eq!(t.find(h(k), |i| i == k), Some(k));
        }
        t.reserve(10); // never shrinks
        assert_eq!(t.memory_bytes(), sized);
    }

    #[test]
    fn grows_and_keeps_every_key() {
        let mut t = FlowTable::with_capacity(0);
        let h = |k: u32| (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for k in 0..100_000 {
            t.insert(h(k), k);
        }
        assert!(t.memory_bytes() >= 100_000 * 8 * 8 / 5);
        for k in 0..100_000 {
            assert_eq!(t.find(h(k), |i| i == k), Some(k));
        }
        for k in (0..100_000).step_by(2) {
            assert!(t.remove(h(k), k));
        }
        for k in 0..100_000 {
            assert_eq!(t.find(h(k), |i| i == k).is_some(), k % 2 == 1);
        }
        assert_eq!(t.len(), 50_000);
        t.clear();
        assert!(t.is_empty() && t.find(h(1), |_| true).is_none());
    }
}
