//! A hierarchical timer wheel over `u32` entry ids, modelled on tokio's
//! `runtime/time/wheel`.
//!
//! Owns: the placement of [`Entry`]s in [`LEVELS`] levels of 64 slots, the
//! `occupied` bitfield of each level, and the wheel's notion of time,
//! [`Wheel::elapsed`]. Time is an abstract `u64` tick (the flow shard uses
//! milliseconds); the wheel never reads a clock, it only moves when told to
//! by [`Wheel::advance`]. It knows nothing of what ids mean: stale entries
//! (ids whose deadline moved) are the caller's business; the caller
//! recognizes them by `gen`/`at` when they fire, or drops them in bulk with
//! [`Wheel::retain`].
//!
//! Level `L` has 64 slots of `64^L` ticks each, so one turn of it covers
//! `64^(L+1)` ticks and the whole wheel `64^6 = 2^36` ticks ([`MAX_SPAN`]).
//! A slot is a plain `Vec<Entry>`; when it fires it is taken whole, drained,
//! and its (empty) allocation is given back to the slot, so a wheel in a
//! steady state does not allocate.
//!
//! Ground rules:
//! - Every held entry is in the future: `at > elapsed`. [`Wheel::insert`]
//!   hands back entries already due instead of holding them.
//! - An entry is at level `L` and slot `slot_for(at, L) = (at >> 6L) & 63`,
//!   where `L = level_for(elapsed, at)` is the level of the highest bit in
//!   which `at` and `elapsed` differ (`(63 - lzcnt(at ^ elapsed)) / 6`),
//!   computed against `elapsed` as it was when the entry was (re-)inserted.
//!   Entries in level `L < 5` share every bit from `6 * (L + 1)` up with
//!   `elapsed`, and they are never in `elapsed`'s own slot of their level:
//!   `elapsed` only moves up to the start of the earliest occupied slot
//!   (processing it), or to a `now` that is before it. So `elapsed` moving on
//!   can only make an entry's "right" level lower than the one it is in,
//!   never higher; it is moved down when its slot starts (cascade).
//! - Entries whose `at` differs from `elapsed` at bit 36 or above (everything
//!   more than [`MAX_SPAN`] ahead, and nearer ones that cross a `2^36`
//!   boundary) are *clamped* into the top level, slot `(at >> 30) & 63`. The
//!   top level is read as a ring: a slot at or before `elapsed`'s own slot
//!   stands for the next turn. Clamped entries come back out when their slot
//!   starts and are re-inserted; their `at` is never changed.
//! - Every occupied slot starts at or before each `at` in it and after
//!   `elapsed`, and a lower level's occupied slots all start before a higher
//!   level's. So the earliest occupied slot of the lowest occupied level is
//!   the next thing to fire, and its start is a lower bound of every `at`
//!   ([`Wheel::next_deadline`]); at level 0 a slot is one tick, so it is exact.
//! - Bit `s` of a level's `occupied` is set iff its slot `s` is non-empty, and
//!   [`Wheel::len`] is the number of entries in all slots.
//!
//! Costs: [`Wheel::insert`] is O(1). [`Wheel::advance`] costs O(levels) per
//! occupied slot it reaches plus O(1) per entry it fires or cascades: empty
//! slots are skipped with `rotate_right` + `trailing_zeros` on the bitfield,
//! so the cost of a jump depends on the occupied slots it crosses, not on
//! its length (a jump of hours over an empty wheel is as cheap as one tick).
//! An entry cascades (is re-inserted one level lower or more) at most once
//! per level, plus once per `2^36` ticks advanced while clamped (with
//! millisecond ticks, once per ~795 days).

mod level;
#[cfg(test)]
mod tests;

pub use level::{Entry, LEVELS, MAX_SPAN};

use level::{level_for, slot_range, Expiration, Level};

const _: () = assert!(level::LEVEL_BITS as usize * LEVELS == MAX_SPAN.trailing_zeros() as usize);

/// A hierarchical timer wheel; see the module docs for its ground rules.
#[derive(Debug)]
pub struct Wheel {
    /// The tick the wheel has been advanced to.
    elapsed: u64,
    /// Entries held, in all slots.
    len: usize,
    levels: Box<[Level; LEVELS]>,
    /// Slots taken by `advance` so far (tests check that jumps are cheap).
    #[cfg(test)]
    slots_taken: u64,
}

impl Wheel {
    /// An empty wheel standing at `now`.
    pub fn new(now: u64) -> Self {
        Wheel {
            elapsed: now,
            len: 0,
            levels: Box::new(std::array::from_fn(Level::new)),
            #[cfg(test)]
            slots_taken: 0,
        }
    }

    /// The tick the wheel has been advanced to.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedule `e`. An entry already due (`at <= elapsed`) is handed back as
    /// `Err(e)`, untouched, like tokio's insert; the caller expires it itself.
    pub fn insert(&mut self, e: Entry) -> Result<(), Entry> {
        if e.at <= self.elapsed {
            return Err(e);
        }
        self.place(e);
        Ok(())
    }

    /// Put a future entry into its level and slot.
    fn place(&mut self, e: Entry) {
        debug_assert!(e.at > self.elapsed, "placing {e:?} at elapsed={}", self.elapsed);
        let level = level_for(self.elapsed, e.at);
        self.levels[level].add(e);
        self.len += 1;
    }

    /// Advance to `now` and push every entry with `at <= now` onto `out`.
    ///
    /// A `now` before `elapsed` does nothing (it is not an error). Entries
    /// come out slot by slot, earliest slot first; within a slot in the order
    /// they were put into it. A slot above level 0 covers several ticks, so
    /// entries from one such slot are not sorted by `at` among themselves,
    /// but every entry of a later slot has a later `at`. Entries of a fired
    /// slot that are not yet due (`at > now`) are re-inserted lower (cascade),
    /// and so are clamped entries whose `at` lies in a later turn of the top
    /// level.
    ///
    /// Afterwards `elapsed() == max(old elapsed, now)` and no entry with
    /// `at <= now` remains.
    pub fn advance(&mut self, now: u64, out: &mut Vec<Entry>) {
        if now <= self.elapsed {
            return;
        }
        while let Some(exp) = self.next_expiration() {
            if exp.deadline > now {
                break;
            }
            self.process(exp, now, out);
        }
        self.elapsed = now;
    }

    /// Fire or cascade every entry of the slot `exp` names, moving `elapsed`
    /// to the slot's start.
    fn process(&mut self, exp: Expiration, now: u64, out: &mut Vec<Entry>) {
        debug_assert!(
            exp.deadline > self.elapsed && exp.deadline <= now,
            "{exp:?} outside (elapsed={}, now={now}]",
            self.elapsed
        );
        #[cfg(test)]
        {
            self.slots_taken += 1;
        }
        let mut taken = self.levels[exp.level].take(exp.slot);
        self.len -= taken.len();
        // Every remaining entry is at or after this slot's start, so moving
        // `elapsed` here keeps the ground rules; cascaded entries are placed
        // relative to it.
        self.elapsed = exp.deadline;
        for e in taken.drain(..) {
            debug_assert!(
                e.at >= exp.deadline,
                "{e:?} in a slot starting later ({exp:?}); wheel: {self:?}"
            );
            debug_assert!(
                exp.level > 0 || e.at == exp.deadline,
                "{e:?} in level-0 slot of tick {}",
                exp.deadline
            );
            // A clamped entry only shares the slot's bits, its `at` lies in
            // a later turn: it goes back in even when due, so that it comes
            // out in the order of the slots it really belongs to.
            let in_slot = e.at - exp.deadline < slot_range(exp.level);
            if e.at <= now && in_slot {
                out.push(e);
            } else {
                self.place(e);
            }
        }
        self.levels[exp.level].restore(exp.slot, taken);
    }

    /// The earliest tick at which [`Wheel::advance`] would yield something:
    /// the start tick of the earliest occupied slot, a lower bound of the
    /// earliest `at` (exact when that slot is at level 0). `None` when empty.
    /// Always after [`Wheel::elapsed`].
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_expiration().map(|exp| exp.deadline)
    }

    /// The earliest occupied slot: the first one of the lowest occupied level.
    fn next_expiration(&self) -> Option<Expiration> {
        if self.len == 0 {
            debug_assert!(
                self.levels.iter().all(|l| l.occupied == 0),
                "len 0 with occupied slots: {self:?}"
            );
            return None;
        }
        let found = self.levels.iter().find_map(|l| l.next_expiration(self.elapsed));
        debug_assert!(found.is_some(), "len {} but no occupied slot: {self:?}", self.len);
        #[cfg(debug_assertions)]
        if let Some(exp) = found {
            for l in &self.levels[exp.level + 1..] {
                if let Some(later) = l.next_expiration(self.elapsed) {
                    debug_assert!(
                        later.deadline > exp.deadline,
                        "{later:?} of a higher level before {exp:?}: {self:?}"
                    );
                }
            }
        }
        found
    }

    /// Keep only the entries for which `keep` returns true (the flow shard
    /// uses this to drop stale entries in bulk). O(entries + slots).
    /// `elapsed` does not move and the kept entries do not move.
    pub fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        for l in self.levels.iter_mut() {
            self.len -= l.retain(&mut keep);
        }
    }
}
