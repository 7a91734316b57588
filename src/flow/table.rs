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
//!
//! # Growth without stalls: incremental doubling
//! At a load of 5/8 the table doubles, but not at once: a rehash of millions
//! of buckets would stop the worker for milliseconds. The new array is
//! allocated zeroed (its pages are faulted in as they are first written,
//! spread over the inserts that follow) and becomes the one inserts go to;
//! the old one is *drained* [`DRAIN_STEP`] buckets per insert, in order,
//! starting from a bucket that was empty. Until it is empty a lookup and a
//! removal look in the new array and then in the old; a prefetch and a peek
//! (hints) look in the new one only, so that the hit path carries nothing
//! of the doubling but the one test on a miss ([`FlowTable::find_new`], then
//! [`FlowTable::find_old`] out of line).
//!
//! Why the old array stays searchable while half drained: draining starts at
//! an empty bucket `start`, and nothing is ever added to the old array, so no
//! probe run crosses `start`; the drained buckets are the cyclic range
//! `start .. start + moved`, zeroed. A key still in the old array lies in the
//! undrained range, and every bucket between its home and it is occupied or
//! drained; so a probe whose home was drained begins at `start + moved`, any
//! other at its home, and either stops at the first empty bucket as usual
//! (backward-shift removal in the old array keeps this: it only moves keys
//! toward their homes, and stops at the drained range as at any empty bucket).
//!
//! Why draining always ends before the next doubling: a doubling to `2N`
//! starts when the keys exceed `5N/8`, and the next one needs more than
//! `5·2N/8`, i.e. at least `5N/8` more inserts, which drain `2·5N/8 > N`
//! buckets. (Should removals and inserts ever outrun this, the rest is drained
//! at once before the next doubling starts: correct, just not incremental.)
//! So an insert does at most `DRAIN_STEP` bucket moves and a lookup at most
//! two probe runs; the memory held peaks at 3/2 of the new array.

use crate::platform::cpu::prefetch_addr;

/// Fewest buckets a table has.
const MIN_BUCKETS: usize = 1024;

/// Old buckets drained per insert during a doubling: enough to finish before
/// the next one (see the module doc: more than 1.6 are needed).
const DRAIN_STEP: usize = 2;

#[derive(Debug, Clone)]
pub struct FlowTable {
    /// The array inserts go to.
    buckets: Vec<u64>,
    mask: usize,
    /// Keys in both arrays.
    len: usize,
    /// The array being drained into `buckets` during a doubling; `None` otherwise.
    /// Boxed: the table stays three words, as the hit path sees it.
    old: Option<Box<Draining>>,
}

/// The array being drained during a doubling.
#[derive(Debug, Clone)]
struct Draining {
    buckets: Vec<u64>,
    mask: usize,
    /// Where draining began: a bucket that was empty, so no probe run crosses it.
    start: usize,
    /// Buckets drained so far, from `start` on, cyclically.
    moved: usize,
}

impl Draining {
    /// Where a probe for tag `t` begins: its home, or the first undrained
    /// bucket when its home was drained.
    #[inline]
    fn probe_start(&self, t: u32) -> usize {
        let home = t as usize & self.mask;
        if (home.wrapping_sub(self.start) & self.mask) < self.moved {
            (self.start + self.moved) & self.mask
        } else {
            home
        }
    }
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

/// The first bucket of `buckets` (mask `mask`) from `pos` on holding tag `t`
/// for which `eq` is true, as (position, slot); None at an empty bucket.
#[inline]
fn probe(
    buckets: &[u64],
    mask: usize,
    mut pos: usize,
    t: u32,
    mut eq: impl FnMut(u32) -> bool,
) -> Option<(usize, u32)> {
    loop {
        let b = buckets[pos];
        if b == 0 {
            return None;
        }
        if (b >> 32) as u32 == t && eq(b as u32 - 1) {
            return Some((pos, b as u32 - 1));
        }
        pos = (pos + 1) & mask;
    }
}

/// Put bucket `b` at the end of its probe run.
fn place(buckets: &mut [u64], mask: usize, b: u64) {
    let mut pos = (b >> 32) as usize & mask;
    while buckets[pos] != 0 {
        pos = (pos + 1) & mask;
    }
    buckets[pos] = b;
}

/// Remove the bucket at `pos` by backward shift: pull later members of the
/// run into the hole unless their home lies cyclically after the hole (they
/// would become unreachable).
fn unplace(buckets: &mut [u64], mask: usize, pos: usize) {
    let mut hole = pos;
    let mut j = pos;
    loop {
        j = (j + 1) & mask;
        let b = buckets[j];
        if b == 0 {
            break;
        }
        let home = (b >> 32) as usize & mask;
        if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
            buckets[hole] = b;
            hole = j;
        }
    }
    buckets[hole] = 0;
}

/// [`FlowTable::find`] in the array being drained (out of line: only
/// during a doubling, and only for keys not found in the new array).
#[cold]
#[inline(never)]
fn probe_old(old: &Draining, t: u32, eq: impl FnMut(u32) -> bool) -> Option<u32> {
    probe(&old.buckets, old.mask, old.probe_start(t), t, eq).map(|(_, i)| i)
}

impl Default for FlowTable {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl FlowTable {
    /// A table that holds `n` keys before it first grows.
    pub fn with_capacity(n: usize) -> Self {
        Self::with_buckets(buckets_for(n))
    }

    /// A table of `buckets` (a power of two) buckets, written in full first:
    /// `vec!` (calloc) would leave its pages to fault in later.
    fn with_buckets(buckets: usize) -> Self {
        debug_assert!(buckets.is_power_of_two());
        #[allow(clippy::slow_vector_initialization)]
        let mut fresh = Vec::with_capacity(buckets);
        fresh.resize(buckets, 0);
        FlowTable { buckets: fresh, mask: buckets - 1, len: 0, old: None }
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
    /// Bytes held by the buckets (both arrays during a doubling).
    pub fn memory_bytes(&self) -> usize {
        (self.buckets.len() + self.old.as_ref().map_or(0, |d| d.buckets.len())) * 8
    }

    #[cfg(test)]
    /// Whether a doubling is under way (an old array still being drained).
    pub fn draining(&self) -> bool {
        self.old.is_some()
    }

    #[inline]
    fn home(&self, t: u32) -> usize {
        t as usize & self.mask
    }

    /// Start loading the home bucket of `hash` into the cache. During a
    /// doubling only the new array's: a key still in the old one takes its
    /// bucket's miss unoverlapped, at the lookup (the hit path carries no
    /// check for the old array; a doubling is transient).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        // An address, not a reference: no bounds check (the home is in range anyway).
        prefetch_addr(self.buckets.as_ptr().wrapping_add(self.home(tag(hash))));
    }

    /// The first slot in the home bucket's probe run whose tag matches, if
    /// any: a hint for prefetching the slot (it may be another key's). Looks
    /// in the array inserts go to only: during a doubling a key still in the
    /// one being drained gets no hint.
    #[inline]
    pub fn peek(&self, hash: u64) -> Option<u32> {
        self.find_new(hash, |_| true)
    }

    /// The slot holding the key with `hash` for which `eq(slot)` is true
    /// (the shard calls its two halves, [`FlowTable::find_new`] and
    /// [`FlowTable::find_old`], itself; the IPv6 family calls this).
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.find_new(hash, &mut eq).or_else(|| self.find_old(hash, eq))
    }

    /// [`FlowTable::find`] in two steps, for a hot path that wants the
    /// common case (a hit in the array inserts go to) apart from the rest:
    /// this one looks there only, ...
    #[inline]
    pub fn find_new(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
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

    /// ... and this one in the array being drained, if a doubling is under
    /// way (out of line).
    #[inline]
    pub fn find_old(&self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        match &self.old {
            None => None,
            Some(old) => probe_old(old, tag(hash), eq),
        }
    }

    /// Add `idx` under `hash` (the caller knows the key is absent). Doubles
    /// at a load of 5/8, incrementally (module doc); never touches slots.
    pub fn insert(&mut self, hash: u64, idx: u32) {
        assert!(idx < u32::MAX, "slot index out of range");
        if self.old.is_some() {
            self.drain(DRAIN_STEP);
        }
        if (self.len + 1) * 8 > self.buckets.len() * 5 {
            self.start_doubling();
        }
        place(&mut self.buckets, self.mask, bucket(hash, idx));
        self.len += 1;
    }

    /// Make the array twice as large the one inserts go to, and the current
    /// one the array being drained.
    #[cold]
    #[inline(never)]
    fn start_doubling(&mut self) {
        if self.old.is_some() {
            self.drain(usize::MAX); // not reached with DRAIN_STEP >= 2 (module doc)
        }
        let size = self.buckets.len() * 2;
        let buckets = std::mem::replace(&mut self.buckets, vec![0; size]);
        // Load is 5/8: an empty bucket is found after a few steps on average.
        let start = buckets.iter().position(|&b| b == 0).expect("a table is never full");
        self.old = Some(Box::new(Draining { buckets, mask: self.mask, start, moved: 0 }));
        self.mask = size - 1;
    }

    /// Move up to `n` buckets of the old array into the new one; drop the old
    /// array when it is empty.
    #[inline(never)]
    fn drain(&mut self, n: usize) {
        let Some(old) = self.old.as_mut() else { return };
        let left = old.buckets.len() - old.moved;
        for _ in 0..n.min(left) {
            let pos = (old.start + old.moved) & old.mask;
            let b = std::mem::take(&mut old.buckets[pos]);
            if b != 0 {
                place(&mut self.buckets, self.mask, b);
            }
            old.moved += 1;
        }
        if old.moved == old.buckets.len() {
            self.old = None;
        }
    }

    /// Size the table for `n` keys and touch its memory now (written, not
    /// just allocated), so that neither growth nor a page fault comes later.
    pub fn reserve(&mut self, n: usize) {
        let want = buckets_for(n);
        if want > self.buckets.len() {
            self.drain(usize::MAX);
            let old = std::mem::replace(self, Self::with_buckets(want));
            for b in old.buckets.into_iter().filter(|&b| b != 0) {
                place(&mut self.buckets, self.mask, b);
            }
            self.len = old.len;
        }
    }

    /// Remove `idx` (stored under `hash`). False if it was not there.
    pub fn remove(&mut self, hash: u64, idx: u32) -> bool {
        let (t, want) = (tag(hash), idx);
        if let Some((pos, _)) = probe(&self.buckets, self.mask, self.home(t), t, |i| i == want) {
            unplace(&mut self.buckets, self.mask, pos);
        } else if let Some(old) = self.old.as_mut() {
            let Some((pos, _)) =
                probe(&old.buckets, old.mask, old.probe_start(t), t, |i| i == want)
            else {
                return false;
            };
            unplace(&mut old.buckets, old.mask, pos);
        } else {
            return false;
        }
        self.len -= 1;
        true
    }

    /// Forget every key; keeps the buckets.
    pub fn clear(&mut self) {
        self.buckets.fill(0);
        self.old = None;
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
                prop_assert!(t.peek(h).is_some() || t.draining());
            }
        }
    }

    proptest! {
        /// From 8 buckets to 8192 (ten doublings) with inserts, removals and
        /// lookups interleaved, so most operations meet a half-drained old
        /// array: every key stays findable, against a `HashMap` model.
        #[test]
        fn every_key_findable_while_doubling(
            ops in proptest::collection::vec((0u8..4, 0u32..4000), 1..5000),
            collide in any::<bool>(),
        ) {
            let h = |k: u32| if collide { colliding(k) } else { (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) };
            let mut t = FlowTable::with_buckets(8);
            let mut m: HashMap<u32, ()> = HashMap::new();
            let mut doublings = 0;
            for (n, (op, k)) in ops.into_iter().enumerate() {
                match op {
                    0 | 1 => if let std::collections::hash_map::Entry::Vacant(e) = m.entry(k) {
                        e.insert(());
                        let was = t.draining();
                        t.insert(h(k), k);
                        doublings += (!was && t.draining()) as u32;
                    },
                    2 => prop_assert_eq!(t.remove(h(k), k), m.remove(&k).is_some()),
                    _ => prop_assert_eq!(t.find(h(k), |i| i == k), m.get(&k).map(|_| k)),
                }
                prop_assert_eq!(t.len(), m.len());
                if n % 64 == 0 {
                    for &k in m.keys() {
                        prop_assert_eq!(t.find(h(k), |i| i == k), Some(k), "lost {} (draining: {})", k, t.draining());
                        prop_assert!(t.peek(h(k)).is_some() || t.draining());
                    }
                }
            }
            for &k in m.keys() {
                prop_assert_eq!(t.find(h(k), |i| i == k), Some(k));
            }
            prop_assert!(m.len() < 40 || doublings > 0);
        }
    }

    #[test]
    fn doubling_is_incremental() {
        // 0 to 300k keys: no insert moves more than DRAIN_STEP old buckets,
        // and every doubling has finished draining before the next begins.
        let h = |k: u32| (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut t = FlowTable::with_capacity(0);
        let (mut doublings, mut draining_inserts) = (0, 0);
        for k in 0..300_000 {
            let state =
                |t: &FlowTable| t.old.as_ref().map_or((0, 0), |d| (d.moved, d.buckets.len()));
            let (was, (moved, old)) = (t.draining(), state(&t));
            t.insert(h(k), k);
            if !was && t.draining() {
                doublings += 1;
                assert_eq!(state(&t).0, 0, "insert {k} started a doubling and drained at once");
            } else if was {
                assert!(
                    !t.draining() || state(&t).1 == old,
                    "a doubling began before draining ended"
                );
                let now = if t.draining() { state(&t).0 } else { old };
                assert!(now - moved <= DRAIN_STEP, "insert {k} moved {} buckets", now - moved);
            }
            draining_inserts += t.draining() as usize;
        }
        assert_eq!(doublings, 9, "1024 buckets to 512k");
        assert!(draining_inserts > 100_000, "drained over {draining_inserts} inserts");
        for k in 0..300_000 {
            assert_eq!(t.find(h(k), |i| i == k), Some(k));
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
