//! Context interning: the key fields other than the 5-tuple, per shard, as
//! a `u32` id.
//!
//! Owns: the map from [`ContextWords`] (exporter, engine, tos, input,
//! output as the key packs them, each zero when not in the key spec; or a
//! flow's *origin*: the first record's exporter, engine and sampling,
//! unmasked, [`origin_words`](super::key::origin_words)) to a small id, and
//! each id's count of live flows that refer to it (as key context or as
//! origin: one map for both, so a flow whose origin equals its context
//! holds one id twice). A hot slot stores the id in 4 bytes where the
//! words take 32.
//!
//! Rules:
//! - [`Contexts::intern`] finds or adds an id without counting it; a flow
//!   counts the ids it holds with [`Contexts::acquire`] and gives them back
//!   with [`Contexts::release`] when it ends.
//! - An id whose count is zero (just added, or whose last flow ended) is
//!   kept until [`Contexts::sweep`], which the shard calls only at the end
//!   of a batch or of a public advance: never while the apply pipeline's
//!   lookahead holds keys computed with ids (a key interned in stage 1 for a
//!   record 16 records ahead must still name the same context when that
//!   record merges, whatever flows ended meanwhile). Every id with a zero
//!   count is on the `zero` list, so a sweep frees them all: between
//!   batches the ids held are at most two per live flow, plus those of the
//!   free list.
//! - The last lookup is memoized: the records of a datagram nearly always
//!   share one exporter, so the default key costs one compare of four words
//!   per record, not a hash lookup. A sweep that frees the memoized id
//!   forgets it.
//! - Free ids are chained through their count (`FREE | next`): no list of
//!   indices besides the map.

use super::key::{ContextWords, PackedKey};

/// A count with this bit set marks a free id; the rest is the next free id.
const FREE: u32 = 1 << 31;
const NIL: u32 = u32::MAX;

#[derive(Debug)]
pub(super) struct Contexts {
    map: hashbrown::HashMap<ContextWords, u32, ahash::RandomState>,
    /// Words of each id.
    words: Vec<ContextWords>,
    /// Live flows holding each id, or `FREE | next free id`.
    refs: Vec<u32>,
    /// Ids whose count dropped to (or started at) zero since the last sweep.
    zero: Vec<u32>,
    free: u32,
    /// The last lookup: its words and id.
    memo: (ContextWords, u32),
    /// The last lookup of [`Contexts::intern_exporter`] (its own: the
    /// other is also used for origins, which share the exporter words).
    memo_key: (ContextWords, u32),
}

/// Words no context has (an exporter of all ones with every field set).
const NO_WORDS: ContextWords = [u64::MAX; 4];

impl Default for Contexts {
    fn default() -> Self {
        Contexts {
            map: hashbrown::HashMap::with_hasher(ahash::RandomState::new()),
            words: Vec::new(),
            refs: Vec::new(),
            zero: Vec::new(),
            free: NIL,
            memo: (NO_WORDS, NIL),
            memo_key: (NO_WORDS, NIL),
        }
    }
}

impl Contexts {
    /// The id of `w`, added (uncounted) if new.
    #[inline(always)]
    pub(super) fn intern(&mut self, w: &ContextWords) -> u32 {
        let m = &self.memo.0;
        if ((m[0] ^ w[0]) | (m[1] ^ w[1]) | (m[2] ^ w[2]) | (m[3] ^ w[3])) == 0 {
            return self.memo.1;
        }
        self.intern_slow(w)
    }

    /// [`Contexts::intern`] of `k.context()` for a key spec whose context
    /// words differ only in the exporter's two (`KeyPacker::exporter_only`),
    /// the other two being `rest`: the memo compare looks at those two, and
    /// nothing reads the key's other context words.
    #[inline(always)]
    pub(super) fn intern_exporter(&mut self, k: &PackedKey, rest: [u64; 2]) -> u32 {
        let m = &self.memo_key.0;
        if ((m[0] ^ k.0[0]) | (m[1] ^ k.0[1])) == 0 {
            return self.memo_key.1;
        }
        self.intern_exporter_slow([k.0[0], k.0[1], rest[0], rest[1]])
    }

    #[inline(never)]
    fn intern_exporter_slow(&mut self, w: ContextWords) -> u32 {
        let id = self.intern(&w);
        self.memo_key = (w, id);
        id
    }

    #[inline(never)]
    fn intern_slow(&mut self, w: &ContextWords) -> u32 {
        let id = match self.map.get(w) {
            Some(&id) => id,
            None => {
                let id = if self.free != NIL {
                    let id = self.free;
                    let next = self.refs[id as usize] & !FREE;
                    self.free = if next == NIL & !FREE { NIL } else { next };
                    self.words[id as usize] = *w;
                    self.refs[id as usize] = 0;
                    id
                } else {
                    let id = u32::try_from(self.words.len()).ok().filter(|&i| i < NIL & !FREE);
                    let id = id.expect("more than 2^31 contexts");
                    self.words.push(*w);
                    self.refs.push(0);
                    id
                };
                self.map.insert(*w, id);
                self.zero.push(id);
                id
            }
        };
        self.memo = (*w, id);
        id
    }

    /// The id of `w` if the shard holds it (a lookup: nothing added).
    pub(super) fn find(&self, w: &ContextWords) -> Option<u32> {
        self.map.get(w).copied()
    }

    /// A flow holds `id`.
    #[inline(always)]
    pub(super) fn acquire(&mut self, id: u32) {
        debug_assert!(self.refs[id as usize] & FREE == 0, "acquiring free context {id}");
        self.refs[id as usize] += 1;
    }

    /// A flow that held `id` ended.
    #[inline]
    pub(super) fn release(&mut self, id: u32) {
        let r = &mut self.refs[id as usize];
        debug_assert!(*r > 0 && *r & FREE == 0, "releasing context {id} with count {r:#x}");
        *r -= 1;
        if *r == 0 {
            self.zero.push(id);
        }
    }

    /// The words of `id`.
    #[inline]
    pub(super) fn words(&self, id: u32) -> &ContextWords {
        &self.words[id as usize]
    }

    /// Free every id whose count is zero. Only where no key computed with
    /// an id is pending (module doc).
    #[inline]
    pub(super) fn sweep(&mut self) {
        if !self.zero.is_empty() {
            self.sweep_zero();
        }
    }

    #[inline(never)]
    fn sweep_zero(&mut self) {
        for id in std::mem::take(&mut self.zero) {
            let r = self.refs[id as usize];
            if r != 0 {
                continue; // counted again, or already freed (FREE) earlier in this sweep
            }
            let w = self.words[id as usize];
            let removed = self.map.remove(&w);
            debug_assert_eq!(removed, Some(id));
            self.refs[id as usize] = FREE | (self.free & !FREE);
            self.free = id;
            if self.memo.1 == id {
                self.memo = (NO_WORDS, NIL);
            }
            if self.memo_key.1 == id {
                self.memo_key = (NO_WORDS, NIL);
            }
        }
        if self.zero.capacity() > 4096 {
            self.zero = Vec::new();
        }
    }

    /// Ids in use (counted or awaiting a sweep).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn clear(&mut self) {
        *self = Contexts::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_live_while_counted_and_are_reused_after_a_sweep() {
        let mut c = Contexts::default();
        let (a, b) = ([1, 2, 3, 4], [5, 6, 7, 8]);
        let ia = c.intern(&a);
        assert_eq!(c.intern(&a), ia, "memoized");
        let ib = c.intern(&b);
        assert_ne!(ia, ib);
        assert_eq!(c.intern(&a), ia, "found in the map");
        c.acquire(ia);
        c.acquire(ia);
        c.sweep(); // b was never counted: freed
        assert_eq!(c.len(), 1);
        c.release(ia);
        c.sweep();
        assert_eq!(c.len(), 1, "still held once");
        c.release(ia);
        // Zero, but not swept: the id still names `a`.
        assert_eq!(c.intern(&a), ia);
        assert_eq!(c.words(ia), &a);
        c.sweep();
        assert_eq!(c.len(), 0);
        // Freed ids come back for new words, and the memo was forgotten.
        let ic = c.intern(&[9, 9, 9, 9]);
        assert!(ic == ia || ic == ib);
        assert_ne!(c.intern(&a), ic);
    }

    #[test]
    fn released_and_reacquired_in_one_batch_is_kept() {
        let mut c = Contexts::default();
        let id = c.intern(&[1, 1, 1, 1]);
        c.acquire(id);
        c.sweep();
        c.release(id); // on the zero list
        c.acquire(id); // a new flow of the same context, same batch
        c.release(id); // and gone again: on the list twice
        c.acquire(id);
        c.sweep();
        assert_eq!(c.len(), 1);
        assert_eq!(c.intern(&[1, 1, 1, 1]), id);
        c.release(id);
        c.release_check_twice();
    }

    impl Contexts {
        /// Sweep with the id on the zero list twice: freed once.
        fn release_check_twice(&mut self) {
            let id = self.zero[0];
            self.zero.push(id);
            self.sweep();
            assert_eq!(self.len(), 0);
            assert_eq!(self.free, id);
            assert_eq!(self.refs[id as usize], FREE | (NIL & !FREE));
        }
    }
}
