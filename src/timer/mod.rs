//! A hierarchical timer wheel of intrusive lists over `u32` ids, modelled
//! on tokio's `runtime/time/wheel`.
//!
//! Owns: the placement of ids in [`LEVELS`] levels of 64 slots, the
//! `occupied` bitfield of each level, the list of ids that fired, and the
//! wheel's notion of time, [`Wheel::elapsed`]. Time is an abstract `u64`
//! tick (the flow shard uses milliseconds); the wheel never reads a clock, it
//! only moves when told to by [`Wheel::advance`].
//!
//! # Intrusive lists
//! Every slot of every level is a doubly linked list of ids, and the wheel
//! holds only each list's head and tail (`u32`): the links themselves live
//! with the caller, behind the [`Links`] trait (the flow shard keeps them in
//! its slots' cold part; [`ArrayLinks`] keeps them in plain arrays for tests
//! and benches). So the wheel holds no memory per id and never allocates:
//! no `Vec` per slot that doubles by copying, no entry that goes stale. An
//! end of a list links to a *sentinel* instead of another id, `END | list`,
//! which names the list: so [`Wheel::remove`] unlinks an id in O(1) without
//! knowing where it is. Ids must be below [`END`] (2^31).
//!
//! The wheel does not store deadlines either: it asks [`Links::at`] when a
//! slot is processed. That is what makes rescheduling lazy. The caller may
//! move an id's deadline *later* at any time without telling the wheel; the
//! id stays where it is, comes out when its (now early) slot is processed,
//! and is re-placed by its current deadline like any id of a higher level
//! whose slot starts (cascade). A deadline that moves *earlier* must be
//! re-linked by the caller ([`Wheel::remove`], then [`Wheel::insert`]).
//!
//! Ground rules (`at(id)` is the deadline the caller reports now):
//! - Every linked id is in exactly one list: a slot's, or the fired list.
//! - For an id in a slot: the slot starts at or before `at(id)` (or at
//!   the tick it was inserted at, for an id the caller inserted later than
//!   its `at` says: it fires when that slot is processed), and after
//!   `elapsed`. An id is placed at level `L = level_for(elapsed, at)` (the
//!   level of the highest bit in which `at` and `elapsed` differ,
//!   `(63 - lzcnt(at ^ elapsed)) / 6`) and slot `slot_for(at, L) =
//!   (at >> 6L) & 63`, computed against `elapsed` as it was when the id was
//!   (re-)placed. Ids in level `L < 5` share every bit from `6 * (L + 1)`
//!   up with `elapsed` as it was then, and they are never in `elapsed`'s own
//!   slot of their level: `elapsed` only moves up to the start of the
//!   earliest occupied slot (processing it), or to a `now` that is before
//!   it. Both `elapsed` moving on and `at` moving later keep "the slot
//!   starts at or before `at`"; an id is re-placed when its slot starts.
//! - Ids whose `at` differs from `elapsed` at bit 36 or above (everything
//!   more than [`MAX_SPAN`] ahead, and nearer ones that cross a `2^36`
//!   boundary) are *clamped* into the top level, slot `(at >> 30) & 63`. The
//!   top level is read as a ring: a slot at or before `elapsed`'s own slot
//!   stands for the next turn. Clamped ids come back out when their slot
//!   starts and are re-placed.
//! - Every occupied slot starts after `elapsed`, and a lower level's
//!   occupied slots all start before a higher level's. So the earliest
//!   occupied slot of the lowest occupied level is the next thing to
//!   process, and its start is a lower bound of every `at`
//!   ([`Wheel::next_deadline`]); at level 0 a slot is one tick, so it is
//!   exact unless a deadline moved later.
//! - Bit `s` of a level's `occupied` is set iff its slot `s` is non-empty,
//!   and [`Wheel::len`] is the number of linked ids (slots and fired list).
//!
//! Costs: [`Wheel::insert`] and [`Wheel::remove`] are O(1), and so is
//! [`Wheel::pop_fired`]. [`Wheel::advance`] costs O(levels) per occupied
//! slot it reaches plus O(1) per id it fires or re-places: empty slots are
//! skipped with `rotate_right` + `trailing_zeros` on the bitfield, so the
//! cost of a jump depends on the occupied slots it crosses, not on its
//! length. An id is re-placed at most once per level per deadline it
//! reaches, plus once per `2^36` ticks advanced while clamped (with
//! millisecond ticks, once per ~795 days), plus once per level each time a
//! later deadline makes it come out early. Walking a list is a chain of
//! dependent reads (the next id is in the current one's links), so the
//! walk asks the caller to prefetch the next id ([`Links::prefetch`])
//! while it works on the current one.

mod level;
#[cfg(test)]
mod tests;

pub use level::{LEVELS, MAX_SPAN};

use level::{level_for, slot_for, slot_range, Expiration, Level, LEVEL_MULT};

const _: () = assert!(level::LEVEL_BITS as usize * LEVELS == MAX_SPAN.trailing_zeros() as usize);

/// The bit of a link that makes it a sentinel: `END | list` ends a list and
/// names it. Ids are below it.
pub const END: u32 = 1 << 31;
/// An empty list's head and tail.
const NIL: u32 = u32::MAX;
/// The list of ids that fired, after the 64 slots of each level.
const FIRED: usize = LEVELS * LEVEL_MULT;
const LISTS: usize = FIRED + 1;

/// Where a wheel's ids keep their two links and how it learns their
/// deadlines. Ids are below [`END`]. Links are the wheel's: the caller
/// never writes them while the id is linked.
pub trait Links {
    /// The id before `id` in its list, or `END | list` at the head.
    fn prev(&self, id: u32) -> u32;
    /// The id after `id` in its list, or `END | list` at the tail.
    fn next(&self, id: u32) -> u32;
    fn set_prev(&mut self, id: u32, link: u32);
    fn set_next(&mut self, id: u32, link: u32);
    /// The tick `id` is due now, as seen from tick `elapsed` (a caller that
    /// keeps deadlines modulo 2^32 reconstructs them against it; the wheel
    /// asks only about ids due within `MAX_SPAN` of it or clamped). While
    /// the id is linked it may only grow (see the module doc).
    fn at(&self, id: u32, elapsed: u64) -> u64;
    /// Start loading what `at` and `next` of `id` will read (a hint).
    #[inline]
    fn prefetch(&self, _id: u32) {}
}

/// Head and tail of one list ([`NIL`] when empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY: List = List { head: NIL, tail: NIL };

/// A hierarchical timer wheel; see the module docs for its ground rules.
#[derive(Debug)]
pub struct Wheel {
    /// The tick the wheel has been advanced to.
    elapsed: u64,
    /// Ids linked, in all slots and the fired list.
    len: usize,
    levels: [Level; LEVELS],
    /// Each level's 64 slots, level by level, then the fired list.
    lists: Box<[List; LISTS]>,
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
            levels: std::array::from_fn(Level::new),
            lists: Box::new([EMPTY; LISTS]),
            #[cfg(test)]
            slots_taken: 0,
        }
    }

    /// The tick the wheel has been advanced to.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Ids linked (in slots, and fired but not yet popped).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Link `id`, due at `at` (`links.at(id, elapsed)`), into its slot. An
    /// id already due (`at <= elapsed`) is not linked: `Err(id)`, like
    /// tokio's insert; the caller expires it itself.
    pub fn insert<L: Links>(&mut self, links: &mut L, id: u32, at: u64) -> Result<(), u32> {
        debug_assert!(id < END, "id {id} out of range");
        if at <= self.elapsed {
            return Err(id);
        }
        self.place(links, id, at);
        self.len += 1;
        Ok(())
    }

    /// Unlink `id` (in a slot or the fired list) in O(1).
    pub fn remove<L: Links>(&mut self, links: &mut L, id: u32) {
        self.unlink(links, id);
        self.len -= 1;
    }

    /// Put a future id into its level and slot (`len` is the caller's).
    #[inline]
    fn place<L: Links>(&mut self, links: &mut L, id: u32, at: u64) {
        debug_assert!(at > self.elapsed, "placing {id} at {at}, elapsed={}", self.elapsed);
        let level = level_for(self.elapsed, at);
        let slot = slot_for(at, level);
        self.levels[level].occupied |= 1 << slot;
        self.push_back(links, level * LEVEL_MULT + slot, id);
    }

    #[inline]
    fn push_back<L: Links>(&mut self, links: &mut L, list: usize, id: u32) {
        let end = END | list as u32;
        let l = &mut self.lists[list];
        links.set_next(id, end);
        if l.tail == NIL {
            l.head = id;
            links.set_prev(id, end);
        } else {
            links.set_next(l.tail, id);
            links.set_prev(id, l.tail);
        }
        l.tail = id;
    }

    /// Take `id` out of its list; a slot's list left empty clears its bit.
    fn unlink<L: Links>(&mut self, links: &mut L, id: u32) {
        let (p, n) = (links.prev(id), links.next(id));
        debug_assert!(p != NIL && n != NIL, "{id} is not linked");
        if p & END != 0 {
            self.lists[(p & !END) as usize].head = if n & END != 0 { NIL } else { n };
        } else {
            links.set_next(p, n);
        }
        if n & END != 0 {
            let list = (n & !END) as usize;
            if p & END != 0 {
                self.lists[list] = EMPTY;
                if list < FIRED {
                    self.levels[list / LEVEL_MULT].occupied &= !(1 << (list % LEVEL_MULT));
                }
            } else {
                self.lists[list].tail = p;
            }
        } else {
            links.set_prev(n, p);
        }
    }

    /// Advance to `now`: every id with `at <= now` moves to the fired list
    /// (take them with [`Wheel::pop_fired`]), the others of the slots
    /// processed are re-placed.
    ///
    /// A `now` before `elapsed` does nothing (it is not an error). Ids fire
    /// slot by slot, earliest slot first; within a slot in the order they
    /// were put into it. A slot above level 0 covers several ticks, so ids
    /// from one such slot are not sorted by `at` among themselves, but every
    /// id of a later slot has a later `at` (unless a deadline moved later).
    /// Ids of a processed slot that are not yet due (`at > now`, a higher
    /// level's or a lazily rescheduled one) are re-placed lower (cascade),
    /// and so are clamped ids whose `at` lies in a later turn of the top
    /// level.
    ///
    /// Afterwards `elapsed() == max(old elapsed, now)` and no slot holds an
    /// id with `at <= now`.
    pub fn advance<L: Links>(&mut self, now: u64, links: &mut L) {
        if now <= self.elapsed {
            return;
        }
        while let Some(exp) = self.next_expiration() {
            if exp.deadline > now {
                break;
            }
            self.process(exp, now, links);
        }
        self.elapsed = now;
    }

    /// Fire or re-place every id of the slot `exp` names, moving `elapsed`
    /// to the slot's start.
    fn process<L: Links>(&mut self, exp: Expiration, now: u64, links: &mut L) {
        debug_assert!(
            exp.deadline > self.elapsed && exp.deadline <= now,
            "{exp:?} outside (elapsed={}, now={now}]",
            self.elapsed
        );
        #[cfg(test)]
        {
            self.slots_taken += 1;
        }
        let list = exp.level * LEVEL_MULT + exp.slot;
        let taken = std::mem::replace(&mut self.lists[list], EMPTY);
        self.levels[exp.level].occupied &= !(1 << exp.slot);
        // Every remaining id is due at or after this slot's start, so moving
        // `elapsed` here keeps the ground rules; re-placed ids are placed
        // relative to it.
        self.elapsed = exp.deadline;
        let mut id = taken.head;
        while id != NIL {
            let next = links.next(id);
            let next = if next & END != 0 {
                NIL
            } else {
                links.prefetch(next);
                next
            };
            // Before the slot's start only for an id inserted at a later
            // tick than `at` says (the shard links already-due flows at
            // `elapsed + 1`): it fires now.
            let at = links.at(id, self.elapsed);
            // A clamped id only shares the slot's bits, its `at` lies in a
            // later turn: it goes back in even when due, so that it comes
            // out in the order of the slots it really belongs to.
            let in_slot = at.saturating_sub(exp.deadline) < slot_range(exp.level);
            if at <= now && in_slot {
                self.push_back(links, FIRED, id);
            } else {
                self.place(links, id, at.max(self.elapsed + 1));
            }
            id = next;
        }
    }

    /// Whether fired ids wait in the fired list.
    pub fn has_fired(&self) -> bool {
        self.lists[FIRED].head != NIL
    }

    /// The first fired id, unlinked; the next one is prefetched.
    pub fn pop_fired<L: Links>(&mut self, links: &mut L) -> Option<u32> {
        let id = self.lists[FIRED].head;
        if id == NIL {
            return None;
        }
        let next = links.next(id);
        if next & END == 0 {
            links.prefetch(next);
        }
        self.remove(links, id);
        Some(id)
    }

    /// The earliest tick at which [`Wheel::advance`] would process a slot:
    /// the start tick of the earliest occupied slot, a lower bound of the
    /// earliest `at` (exact when that slot is at level 0 and no deadline in
    /// it moved later). `None` when no slot holds an id (fired ids do not
    /// count). Always after [`Wheel::elapsed`].
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_expiration().map(|exp| exp.deadline)
    }

    /// The earliest occupied slot: the first one of the lowest occupied level.
    fn next_expiration(&self) -> Option<Expiration> {
        let found = self.levels.iter().find_map(|l| l.next_expiration(self.elapsed));
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
}

/// [`Links`] in plain arrays, with the deadline of each id stored beside
/// them: the wheel's tests and benches use it (the flow shard keeps its
/// links in its slots instead).
#[derive(Debug, Clone, Default)]
pub struct ArrayLinks {
    pub prev: Vec<u32>,
    pub next: Vec<u32>,
    /// Deadline of each id.
    pub at: Vec<u64>,
}

impl ArrayLinks {
    /// Room for ids `0..n`, every deadline 0.
    pub fn with_ids(n: usize) -> Self {
        ArrayLinks { prev: vec![NIL; n], next: vec![NIL; n], at: vec![0; n] }
    }
}

impl Links for ArrayLinks {
    #[inline]
    fn prev(&self, id: u32) -> u32 {
        self.prev[id as usize]
    }

    #[inline]
    fn next(&self, id: u32) -> u32 {
        self.next[id as usize]
    }

    #[inline]
    fn set_prev(&mut self, id: u32, link: u32) {
        self.prev[id as usize] = link;
    }

    #[inline]
    fn set_next(&mut self, id: u32, link: u32) {
        self.next[id as usize] = link;
    }

    #[inline]
    fn at(&self, id: u32, _elapsed: u64) -> u64 {
        self.at[id as usize]
    }
}
