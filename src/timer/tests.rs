//! Tests of the timer wheel: exhaustive placement at level and slot
//! boundaries, O(1) removal from any position of a list, lazy rescheduling,
//! and random operations against a `BTreeMap` reference model.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::level::{level_range, slot_for, slot_range};
use super::*;

/// A wheel with its links in arrays (ids below `IDS`).
struct T {
    w: Wheel,
    l: ArrayLinks,
    /// The deadline each id had when it was last placed by `ins` (the
    /// exact placement rules hold for ids whose deadline has not moved since).
    placed: Vec<u64>,
}

const IDS: usize = 1 << 16;

impl T {
    fn new(start: u64) -> Self {
        T { w: Wheel::new(start), l: ArrayLinks::with_ids(IDS), placed: vec![0; IDS] }
    }

    fn ins(&mut self, id: u32, at: u64) -> Result<(), u32> {
        self.l.at[id as usize] = at;
        self.placed[id as usize] = at;
        self.w.insert(&mut self.l, id, at)
    }

    fn remove(&mut self, id: u32) {
        self.w.remove(&mut self.l, id);
        self.l.prev[id as usize] = u32::MAX;
        self.l.next[id as usize] = u32::MAX;
    }

    /// Advance to `now` and pop every fired id, as (id, at).
    fn fire(&mut self, now: u64) -> Vec<(u32, u64)> {
        self.w.advance(now, &mut self.l);
        let mut v = Vec::new();
        while let Some(id) = self.w.pop_fired(&mut self.l) {
            v.push((id, self.l.at[id as usize]));
        }
        assert!(!self.w.has_fired());
        v
    }

    fn advance(&mut self, now: u64, out: &mut Vec<(u32, u64)>) {
        out.extend(self.fire(now));
    }

    fn elapsed(&self) -> u64 {
        self.w.elapsed()
    }

    /// The ids of list `list`, head to tail, checking both directions of
    /// every link and the sentinels at the ends.
    fn list(&self, list: usize) -> Vec<u32> {
        let l = self.w.lists[list];
        let mut v = Vec::new();
        if l.head == NIL {
            assert_eq!(l.tail, NIL, "list {list}: tail without head");
            return v;
        }
        let end = END | list as u32;
        assert_eq!(self.l.prev(l.head), end, "list {list}: head's prev");
        let mut id = l.head;
        loop {
            v.push(id);
            assert!(v.len() <= IDS, "list {list} loops");
            let n = self.l.next(id);
            if n == end {
                assert_eq!(l.tail, id, "list {list}: tail");
                break;
            }
            assert_eq!(n & END, 0, "list {list}: {id} links to another list's end {n:#x}");
            assert_eq!(self.l.prev(n), id, "list {list}: prev of {n}");
            id = n;
        }
        v
    }
}

/// Check every ground rule of the module docs by walking all lists.
fn check_invariants(t: &T) {
    let w = &t.w;
    let e0 = w.elapsed;
    let mut total = t.list(FIRED).len();
    for (l, lvl) in w.levels.iter().enumerate() {
        for s in 0..64 {
            let ids = t.list(l * 64 + s);
            let bit = lvl.occupied & (1 << s) != 0;
            assert_eq!(bit, !ids.is_empty(), "level {l} slot {s}: occupied bit vs {ids:?}");
            total += ids.len();
            for id in ids {
                let at = t.l.at[id as usize];
                assert!(at > e0, "{id} due at {at} held at elapsed={e0}");
                assert!(
                    lvl.slot_start(s, e0) <= at,
                    "{id} due at {at}: level {l} slot {s} starts at {} (elapsed={e0})",
                    lvl.slot_start(s, e0)
                );
                if at != t.placed[id as usize] {
                    continue; // moved later lazily: only the lower bound holds
                }
                assert_eq!(slot_for(at, l), s, "{id} due at {at} in level {l} slot {s}");
                if l < LEVELS - 1 {
                    assert_eq!(
                        at / level_range(l),
                        e0 / level_range(l),
                        "{id} due at {at} at level {l} does not share the high bits of elapsed={e0}"
                    );
                    assert_ne!(s, slot_for(e0, l), "{id} in elapsed's own slot, level {l}");
                } else if at / MAX_SPAN == e0 / MAX_SPAN {
                    // Not clamped: in the current turn, after elapsed's slot.
                    assert!(s > slot_for(e0, l), "{id} due at {at}: top slot {s} elapsed={e0}");
                }
            }
        }
    }
    assert_eq!(total, w.len(), "len() vs ids in lists");
}

/// (level, slot) whose list holds this id.
fn where_is(t: &T, id: u32) -> Option<(usize, usize)> {
    (0..FIRED).find(|&list| t.list(list).contains(&id)).map(|list| (list / 64, list % 64))
}

/// Reference level: the lowest one whose whole turn holds both ticks.
fn level_ref(elapsed: u64, at: u64) -> usize {
    (0..LEVELS).find(|&l| elapsed / level_range(l) == at / level_range(l)).unwrap_or(LEVELS - 1)
}

/// Every `at` of the exhaustive test, seen from `start`: each tick of
/// `start+1 ..= start+5000`, and every level boundary (`64^k` for `k` in
/// `1..=6`, the last one being `MAX_SPAN`) `+- 1`, both as a distance from
/// `start` and as the next aligned multiple above it.
fn exhaustive_ats(start: u64) -> BTreeSet<u64> {
    let mut ats: BTreeSet<u64> = (1..=5000).map(|d| start + d).collect();
    for k in 1..=LEVELS {
        let b = slot_range(k);
        let next = (start / b + 1) * b;
        for base in [start + b, next, next + b, start + 2 * b] {
            for at in [base - 1, base, base + 1] {
                if at > start {
                    ats.insert(at);
                }
            }
        }
    }
    ats
}

const STARTS: [u64; 6] = [0, 12_345, 4095, MAX_SPAN - 2500, 7 * MAX_SPAN + 4000, (1 << 50) + 3];

/// Insert `ats`, then advance with `steps` (cycled) until everything fired,
/// checking that each entry fires exactly once, in the call whose `now`
/// first reaches its `at`.
fn run_exhaustive(start: u64, ats: &BTreeSet<u64>, steps: &mut dyn FnMut() -> u64) {
    let mut w = T::new(start);
    let by_id: Vec<u64> = ats.iter().copied().collect();
    for (id, &at) in by_id.iter().enumerate() {
        assert_eq!(w.ins(id as u32, at), Ok(()));
    }
    check_invariants(&w);
    let last = *ats.iter().next_back().unwrap();
    let mut fired = vec![false; by_id.len()];
    let mut out = Vec::new();
    let mut prev = start;
    let mut calls = 0;
    while prev < last {
        let now = prev + steps();
        out.clear();
        w.advance(now, &mut out);
        calls += 1;
        assert_eq!(w.elapsed(), now);
        for e in &out {
            let id = e.0 as usize;
            assert_eq!(e.1, by_id[id], "entry changed: {e:?}");
            assert!(!fired[id], "{e:?} fired twice (now={now})");
            assert!(e.1 <= now, "{e:?} fired before its at, now={now}");
            assert!(e.1 > prev, "{e:?} fired late: previous advance to {prev} reached it");
            fired[id] = true;
        }
        // Nothing due left behind.
        let expect = ats.range(prev + 1..=now).count();
        assert_eq!(out.len(), expect, "advance {prev} -> {now}: fired {} of {expect}", out.len());
        if let Some(d) = w.w.next_deadline() {
            assert!(d > now, "next_deadline {d} <= elapsed {now}");
            let min = by_id.iter().zip(&fired).filter(|(_, f)| !**f).map(|(a, _)| *a).min();
            assert!(d <= min.unwrap(), "next_deadline {d} after earliest at {min:?}");
        }
        if calls % 16 == 0 {
            check_invariants(&w);
        }
        prev = now;
    }
    assert!(fired.iter().all(|f| *f));
    assert!(w.w.is_empty());
    assert_eq!(w.w.next_deadline(), None);
    check_invariants(&w);
}

#[test]
fn exhaustive_ticks_and_boundaries_fire_once_in_their_advance_cycled_steps() {
    const STEPS: [u64; 19] = [
        1,
        2,
        3,
        5,
        63,
        64,
        65,
        1,
        4095,
        4097,
        100_000,
        7,
        1 << 20,
        3,
        (1 << 26) + 1,
        1,
        (1 << 30) - 1,
        11,
        (1 << 33) + 5,
    ];
    for start in STARTS {
        let ats = exhaustive_ats(start);
        let mut i = 0;
        run_exhaustive(start, &ats, &mut || {
            i += 1;
            STEPS[(i - 1) % STEPS.len()]
        });
    }
}

#[test]
fn exhaustive_ticks_and_boundaries_fire_once_in_their_advance_random_steps() {
    for (n, start) in STARTS.into_iter().enumerate() {
        let ats = exhaustive_ats(start);
        // loadgen's seeded generator (a dev-dependency), so failures reproduce.
        let mut rng = loadgen::rng::SplitMix64::new(0x9E37_79B9_7F4A_7C15 ^ n as u64);
        run_exhaustive(start, &ats, &mut || {
            // Magnitude 2^0 .. 2^34, uniform in bits, so small steps dominate
            // early and big ones still come.
            let bits = rng.next_u64() % 35;
            1 + rng.next_u64() % (1u64 << bits)
        });
    }
}

#[test]
fn exhaustive_ticks_single_steps() {
    // Tick by tick through the dense range: every call yields exactly the
    // entries of that tick.
    for start in [0, 100, 4000, MAX_SPAN - 3000] {
        let mut w = T::new(start);
        for d in 1..=5000u64 {
            w.ins(d as u32, start + d).unwrap();
            w.ins(d as u32 + 10_000, start + d).unwrap();
        }
        let mut out = Vec::new();
        for d in 1..=5000u64 {
            assert_eq!(w.w.next_deadline(), Some(start + d), "exact at level 0 or slot start");
            out.clear();
            w.advance(start + d, &mut out);
            assert_eq!(out, [(d as u32, start + d), (d as u32 + 10_000, start + d)]);
        }
        assert!(w.w.is_empty());
    }
}

#[test]
fn one_jump_fires_everything_in_slot_order() {
    // Inserted in ascending order, so each slot holds its entries sorted and
    // slot order makes the whole output sorted by `at`.
    for start in STARTS {
        let ats = exhaustive_ats(start);
        let mut w = T::new(start);
        for (id, &at) in ats.iter().enumerate() {
            w.ins(id as u32, at).unwrap();
        }
        let mut out = Vec::new();
        w.advance(start + 4 * MAX_SPAN, &mut out);
        let got: Vec<u64> = out.iter().map(|e| e.1).collect();
        let want: Vec<u64> = ats.iter().copied().collect();
        assert_eq!(got, want);
        assert!(w.w.is_empty());
    }
}

#[test]
fn output_is_in_slot_order_within_a_slot_insertion_order() {
    let mut w = T::new(0);
    for (id, at) in [(0, 5), (1, 3), (2, 200), (3, 100), (4, 70), (5, 100_000), (6, 4100)] {
        w.ins(id, at).unwrap();
    }
    let mut out = Vec::new();
    w.advance(1_000_000, &mut out);
    let got: Vec<u64> = out.iter().map(|e| e.1).collect();
    // Level 0 slots 3, 5; level 1 slot [64, 128) in insertion order (100, 70);
    // level 1 slot [192, 256); level 2 slots [4096, 8192) and [98304, 102400).
    assert_eq!(got, [3, 5, 100, 70, 200, 4100, 100_000]);
}

#[test]
fn insert_places_by_level_and_slot() {
    for start in STARTS {
        for at in exhaustive_ats(start) {
            let mut w = T::new(start);
            w.ins(7, at).unwrap();
            let level = level_ref(start, at);
            assert_eq!(
                where_is(&w, 7),
                Some((level, slot_for(at, level))),
                "start={start} at={at}"
            );
            check_invariants(&w);
        }
    }
    // The explicit boundaries from 0.
    let cases = [
        (63, 0, 63),
        (64, 1, 1),
        (4095, 1, 63),
        (4096, 2, 1),
        ((1 << 18) - 1, 2, 63),
        (1 << 18, 3, 1),
        ((1 << 24) - 1, 3, 63),
        (1 << 24, 4, 1),
        ((1 << 30) - 1, 4, 63),
        (1 << 30, 5, 1),
        (MAX_SPAN - 1, 5, 63),
        (MAX_SPAN, 5, 0),
        (MAX_SPAN + (1 << 30) + 1, 5, 1),
    ];
    for (at, level, slot) in cases {
        let mut w = T::new(0);
        w.ins(1, at).unwrap();
        assert_eq!(where_is(&w, 1), Some((level, slot)), "at={at}");
    }
}

#[test]
fn insert_due_is_handed_back_untouched() {
    let mut w = T::new(1000);
    for at in [0, 1, 999, 1000] {
        assert_eq!(w.ins(3, at), Err(3));
        assert_eq!(w.l.next[3], u32::MAX, "not linked");
    }
    assert!(w.w.is_empty());
    assert_eq!(w.w.next_deadline(), None);
    assert_eq!(w.ins(1, 1001), Ok(()));
    assert_eq!(w.w.len(), 1);
}

#[test]
fn advance_backwards_or_in_place_does_nothing() {
    let mut w = T::new(500);
    w.ins(1, 501).unwrap();
    let mut out = Vec::new();
    w.advance(10, &mut out);
    w.advance(500, &mut out);
    assert!(out.is_empty());
    assert_eq!(w.elapsed(), 500);
    assert_eq!(w.w.len(), 1);
    w.advance(501, &mut out);
    assert_eq!(out, [(1, 501)]);
    w.advance(0, &mut out);
    assert_eq!(w.elapsed(), 501);
}

#[test]
fn next_deadline_is_slot_start() {
    let mut w = T::new(10);
    assert_eq!(w.w.next_deadline(), None);
    w.ins(1, 5000).unwrap(); // level 2 slot 1: starts at 4096
    assert_eq!(w.w.next_deadline(), Some(4096));
    w.ins(2, 200).unwrap(); // level 1 slot 3: starts at 192
    assert_eq!(w.w.next_deadline(), Some(192));
    w.ins(3, 40).unwrap(); // level 0: exact
    assert_eq!(w.w.next_deadline(), Some(40));
    let mut out = Vec::new();
    w.advance(40, &mut out);
    assert_eq!(w.w.next_deadline(), Some(192));
    // Reaching the slot start cascades without firing; the deadline gets exact.
    w.advance(192, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(w.w.next_deadline(), Some(200));
    w.advance(4096, &mut out);
    assert_eq!(out.len(), 2);
    // 5000 = 4096 + 14 * 64 + 8: now in level 1, slot starting at 4992.
    assert_eq!(w.w.next_deadline(), Some(4992));
    check_invariants(&w);
}

#[test]
fn top_level_clamped_entry_in_current_slot_does_not_hide_later_slots() {
    // elapsed 0 is in top-level slot 0; the clamped entry at MAX_SPAN + 1 is
    // in slot 0 too (next turn). The entry in slot 1 must still come first.
    let mut w = T::new(0);
    w.ins(1, MAX_SPAN + 1).unwrap();
    w.ins(2, (1 << 30) + 5).unwrap();
    assert_eq!(where_is(&w, 1), Some((5, 0)));
    assert_eq!(where_is(&w, 2), Some((5, 1)));
    assert_eq!(w.w.next_deadline(), Some(1 << 30));
    let mut out = Vec::new();
    w.advance((1 << 30) + 5, &mut out);
    assert_eq!(out, [(2, (1 << 30) + 5)]);
    assert_eq!(w.w.next_deadline(), Some(MAX_SPAN));
    out.clear();
    w.advance(MAX_SPAN, &mut out);
    assert!(out.is_empty());
    assert_eq!(w.w.next_deadline(), Some(MAX_SPAN + 1));
    w.advance(MAX_SPAN + 1, &mut out);
    assert_eq!(out, [(1, MAX_SPAN + 1)]);
}

#[test]
fn clamped_entries_fire_at_their_real_at() {
    for start in [0, 777, MAX_SPAN - 1, 3 * MAX_SPAN + (1 << 30) * 17 + 5] {
        let ats = [
            start + MAX_SPAN - 1,
            start + MAX_SPAN,
            start + MAX_SPAN + 1,
            start + 2 * MAX_SPAN + 12_345,
            start + 3 * MAX_SPAN + (1 << 30) * 40 + 7,
            start + 5 * MAX_SPAN - 1,
            start + (1 << 42) + 99,
        ];
        let mut w = T::new(start);
        for (id, &at) in ats.iter().enumerate() {
            w.ins(id as u32, at).unwrap();
            assert_eq!(where_is(&w, id as u32).map(|p| p.0), Some(LEVELS - 1), "at={at}");
        }
        check_invariants(&w);
        // Big steps, not aligned to anything: each entry fires in the call
        // that reaches it, never earlier.
        let step = (1 << 33) + 12_345_679;
        let mut now = start;
        let mut fired = 0;
        let mut out = Vec::new();
        while fired < ats.len() {
            let prev = now;
            now += step;
            out.clear();
            w.advance(now, &mut out);
            for e in &out {
                assert_eq!(e.1, ats[e.0 as usize], "at changed");
                assert!(e.1 <= now && e.1 > prev, "{e:?} fired in ({prev}, {now}]");
            }
            fired += out.len();
            let due = ats.iter().filter(|&&a| a > prev && a <= now).count();
            assert_eq!(out.len(), due, "advance {prev} -> {now}");
            if let Some(d) = w.w.next_deadline() {
                let min = ats.iter().filter(|&&a| a > now).min().unwrap();
                assert!(d > now && d <= *min, "next_deadline {d}, now {now}, min at {min}");
            }
            check_invariants(&w);
        }
        // Jumping exactly to at - 1 then at.
        for &at in &ats {
            let mut w = T::new(start);
            w.ins(1, at).unwrap();
            let mut out = Vec::new();
            w.advance(at - 1, &mut out);
            assert!(out.is_empty(), "fired before at={at}");
            assert_eq!(w.w.len(), 1);
            check_invariants(&w);
            w.advance(at, &mut out);
            assert_eq!(out, [(1, at)]);
        }
    }
}

#[test]
fn long_jump_skips_empty_slots() {
    const HOUR: u64 = 3_600_000;
    let mut w = T::new(0);
    let mut out = Vec::new();
    w.advance(1 << 40, &mut out);
    assert_eq!(w.w.slots_taken, 0);
    let base = w.elapsed();
    for (id, h) in [(1, 5), (2, 7), (3, 9)] {
        w.ins(id, base + h * HOUR + 123).unwrap();
    }
    w.advance(base + 10 * HOUR, &mut out);
    assert_eq!(out.len(), 3);
    // Each entry is taken out of at most one slot per level.
    assert!(w.w.slots_taken <= 3 * LEVELS as u64, "slots taken: {}", w.w.slots_taken);
}

#[test]
fn far_clamped_entry_costs_one_visit_per_turn() {
    let mut w = T::new(0);
    let at = (1 << 44) + 12_345;
    w.ins(1, at).unwrap();
    let mut out = Vec::new();
    w.advance(at - 1, &mut out);
    assert!(out.is_empty());
    w.advance(at, &mut out);
    assert_eq!(out, [(1, at)]);
    // One top-level visit per 2^36 turn, then at most one per lower level.
    let turns = (1u64 << 44) / MAX_SPAN;
    assert!(w.w.slots_taken <= turns + LEVELS as u64, "slots taken: {}", w.w.slots_taken);
}

#[test]
fn remove_unlinks_from_any_position_in_o1() {
    // Five ids in one level-0 slot (10) and one alone in another (20):
    // remove the head, a middle one, the tail, then the sole one.
    let mut w = T::new(0);
    for id in 1..=5 {
        w.ins(id, 10).unwrap();
    }
    w.ins(9, 20).unwrap();
    assert_eq!(w.list(10), [1, 2, 3, 4, 5]);
    w.remove(1);
    assert_eq!(w.list(10), [2, 3, 4, 5]);
    w.remove(3);
    assert_eq!(w.list(10), [2, 4, 5]);
    w.remove(5);
    assert_eq!(w.list(10), [2, 4]);
    w.remove(9);
    assert_eq!(w.w.levels[0].occupied, 1 << 10, "slot 20 emptied, its bit cleared");
    assert_eq!(w.w.len(), 2);
    check_invariants(&w);
    w.remove(2);
    w.remove(4);
    assert!(w.w.is_empty() && w.w.next_deadline().is_none());
    check_invariants(&w);
    // Removed ids never fire; a removed id can be linked again.
    w.ins(4, 30).unwrap();
    let mut out = Vec::new();
    w.advance(100, &mut out);
    assert_eq!(out, [(4, 30)]);
}

#[test]
fn remove_takes_an_id_out_of_the_fired_list() {
    let mut w = T::new(0);
    for id in 0..4 {
        w.ins(id, 5).unwrap();
    }
    w.w.advance(5, &mut w.l);
    assert!(w.w.has_fired());
    assert_eq!(w.list(FIRED), [0, 1, 2, 3]);
    w.remove(2);
    check_invariants(&w);
    assert_eq!(w.fire(5), [(0, 5), (1, 5), (3, 5)]);
    assert!(w.w.is_empty());
}

#[test]
fn a_deadline_moved_later_is_rescheduled_lazily() {
    // Linked at 10; its deadline moves to 5000 without the wheel being
    // told: it comes out of slot 10, is re-placed (level 2), and fires at
    // 5000 exactly, not before.
    let mut w = T::new(0);
    w.ins(1, 10).unwrap();
    w.ins(2, 10).unwrap();
    w.l.at[1] = 5000;
    assert_eq!(w.fire(10), [(2, 10)]);
    assert_eq!(where_is(&w, 1), Some((2, 1)));
    assert_eq!(w.w.next_deadline(), Some(4096));
    check_invariants(&w);
    assert!(w.fire(4999).is_empty());
    // Moved later again while in a level-1 slot.
    w.l.at[1] = 6000;
    assert!(w.fire(5000).is_empty());
    assert_eq!(w.fire(6000), [(1, 6000)]);
    assert!(w.w.is_empty());
    // Moved earlier: the caller removes and inserts again.
    w.ins(3, 9000).unwrap();
    w.remove(3);
    w.ins(3, 6500).unwrap();
    assert_eq!(w.fire(7000), [(3, 6500)]);
}

#[test]
fn mass_expiry_fires_every_id_of_a_slot_once() {
    // 30k ids due in one tick, plus 30k whose deadline moved later: one
    // advance walks the whole list; the first half fires, the rest moves on.
    let mut w = T::new(0);
    for id in 0..30_000u32 {
        w.ins(id, 1000).unwrap();
        w.ins(id + 30_000, 1000).unwrap();
        w.l.at[id as usize + 30_000] = 1000 + 1 + u64::from(id % 7);
    }
    let fired = w.fire(1000);
    assert_eq!(fired.len(), 30_000);
    assert!(fired.iter().enumerate().all(|(i, &(id, at))| id == i as u32 && at == 1000));
    assert_eq!(w.w.len(), 30_000);
    check_invariants(&w);
    assert_eq!(w.fire(1007).len(), 30_000);
    assert!(w.w.is_empty());
}

#[test]
fn works_at_the_top_of_u64() {
    let start = u64::MAX - 10_000;
    let mut w = T::new(start);
    for d in 1..=10_000 {
        w.ins(d as u32, start + d).unwrap();
    }
    let mut out = Vec::new();
    w.advance(u64::MAX - 1, &mut out);
    assert_eq!(out.len(), 9999);
    assert_eq!(w.w.next_deadline(), Some(u64::MAX));
    w.advance(u64::MAX, &mut out);
    assert_eq!(out.len(), 10_000);
    assert!(w.ins(0, u64::MAX).is_err());
}

// ---- random operations against a reference model ----

#[derive(Debug, Clone)]
enum Op {
    /// Insert at `elapsed - back` (expects Err).
    InsertPast(u64),
    /// Insert at `elapsed + ahead` (saturating; 0 means `at == elapsed`).
    InsertAhead(u64),
    /// Advance by `step`; fired ids whose bit in `extend` is set are
    /// inserted again with a later `at`.
    Advance { step: u64, extend: u64, ext_max: u64, ext_seed: u64 },
    /// Advance exactly to `next_deadline()`.
    AdvanceToDeadline { extend: u64 },
    /// Move the deadline of a linked id (picked by `pick`) later by `by`,
    /// without telling the wheel (the shard's lazy rescheduling).
    Postpone { pick: u64, by: u64 },
    /// Move the deadline of a linked id earlier: remove, then insert.
    Prepone { pick: u64, by: u64 },
    /// Remove the linked ids whose id matches `mask`.
    Remove(u32),
}

fn arb_distance() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0..4u64,
        4 => 1..70u64,
        4 => 1..5000u64,
        2 => 1..(1u64 << 24),
        2 => (MAX_SPAN - 5000)..(MAX_SPAN + 5000),
        2 => 1..(1u64 << 40),
        // Up to 2^44: milliseconds since 1970 fit in 2^41, and a clamped
        // id costs one visit per 2^36 ticks advanced.
        1 => 0..(1u64 << 44),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    let ext_max = prop_oneof![Just(64u64), Just(5000), Just(1 << 20), Just(MAX_SPAN * 2)];
    prop_oneof![
        1 => (0..100u64).prop_map(Op::InsertPast),
        8 => arb_distance().prop_map(Op::InsertAhead),
        4 => (arb_distance(), any::<u64>(), ext_max, any::<u64>()).prop_map(
            |(step, extend, ext_max, ext_seed)| Op::Advance { step, extend, ext_max, ext_seed }
        ),
        2 => any::<u64>().prop_map(|extend| Op::AdvanceToDeadline { extend }),
        3 => (any::<u64>(), arb_distance()).prop_map(|(pick, by)| Op::Postpone { pick, by }),
        1 => (any::<u64>(), arb_distance()).prop_map(|(pick, by)| Op::Prepone { pick, by }),
        1 => (1..8u32).prop_map(Op::Remove),
    ]
}

fn arb_start() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..10_000u64,
        (MAX_SPAN - 10_000)..(MAX_SPAN + 10),
        0..(1u64 << 50),
        (u64::MAX - (1 << 38))..u64::MAX,
    ]
}

/// Linked ids by (deadline, id).
type Model = BTreeMap<(u64, u32), ()>;

struct Harness {
    w: T,
    model: Model,
    next_id: u32,
    out: Vec<(u32, u64)>,
}

impl Harness {
    fn insert_id(&mut self, id: u32, at: u64) {
        let res = self.w.ins(id, at);
        if at <= self.w.elapsed() {
            assert_eq!(res, Err(id), "insert at {at} <= elapsed {}", self.w.elapsed());
        } else {
            assert_eq!(res, Ok(()));
            self.model.insert((at, id), ());
        }
    }

    fn insert(&mut self, at: u64) {
        let id = self.next_id;
        self.next_id += 1;
        self.insert_id(id, at);
    }

    /// The linked id `pick` lands on, with its deadline.
    fn pick(&self, pick: u64) -> Option<(u64, u32)> {
        let n = self.model.len();
        (n > 0).then(|| *self.model.keys().nth((pick % n as u64) as usize).unwrap())
    }

    fn advance(&mut self, now: u64, extend: u64, ext_max: u64, ext_seed: u64) {
        let before = self.w.elapsed();
        self.out = self.w.fire(now);
        assert_eq!(self.w.elapsed(), before.max(now));
        let mut due: Vec<(u32, u64)> = Vec::new();
        while let Some(entry) = self.model.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (at, id) = entry.remove_entry().0;
            due.push((id, at));
        }
        let mut got = self.out.clone();
        got.sort_by_key(|e| (e.1, e.0));
        due.sort_by_key(|e| (e.1, e.0));
        assert_eq!(got, due, "advance {before} -> {now}");
        // Fired ids inserted again, later.
        for (i, e) in self.out.clone().into_iter().enumerate() {
            if extend >> (i % 64) & 1 == 1 {
                let d = 1 + (ext_seed.wrapping_mul(2 * i as u64 + 1) >> 7) % ext_max;
                let Some(at) = self.w.elapsed().checked_add(d) else {
                    continue;
                };
                self.insert_id(e.0, at);
            }
        }
    }

    fn check(&self) {
        check_invariants(&self.w);
        assert_eq!(self.w.w.len(), self.model.len());
        assert_eq!(self.w.w.is_empty(), self.model.is_empty());
        let elapsed = self.w.elapsed();
        let lazy = self.model.keys().any(|&(at, id)| self.w.placed[id as usize] != at);
        match (self.w.w.next_deadline(), self.model.keys().next()) {
            (None, None) => {}
            (Some(d), Some(&(min, _))) => {
                assert!(d <= min, "next_deadline {d} after earliest at {min}");
                assert!(d > elapsed, "next_deadline {d} <= elapsed {elapsed}");
                if min / 64 == elapsed / 64 && !lazy {
                    assert_eq!(d, min, "level 0 deadline must be exact");
                }
            }
            (d, m) => panic!("next_deadline {d:?} vs model min {m:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_ops_match_btreemap_model(
        start in arb_start(),
        ops in prop::collection::vec(arb_op(), 1..150),
    ) {
        let mut h = Harness { w: T::new(start), model: Model::new(), next_id: 0, out: Vec::new() };
        for op in ops {
            let elapsed = h.w.elapsed();
            match op {
                Op::InsertPast(back) => h.insert(elapsed.saturating_sub(back)),
                Op::InsertAhead(d) => h.insert(elapsed.saturating_add(d)),
                Op::Advance { step, extend, ext_max, ext_seed } => {
                    h.advance(elapsed.saturating_add(step), extend, ext_max, ext_seed)
                }
                Op::AdvanceToDeadline { extend } => {
                    if let Some(d) = h.w.w.next_deadline() {
                        h.advance(d, extend, 64, 0x5DEECE66D);
                    }
                }
                Op::Postpone { pick, by } => {
                    if let Some((at, id)) = h.pick(pick) {
                        let later = at.saturating_add(by);
                        h.model.remove(&(at, id));
                        h.model.insert((later, id), ());
                        h.w.l.at[id as usize] = later;
                    }
                }
                Op::Prepone { pick, by } => {
                    if let Some((at, id)) = h.pick(pick) {
                        h.model.remove(&(at, id));
                        h.w.remove(id);
                        h.insert_id(id, at.saturating_sub(by));
                    }
                }
                Op::Remove(m) => {
                    let gone: Vec<(u64, u32)> =
                        h.model.keys().copied().filter(|&(_, id)| id % (m + 1) == 0).collect();
                    for k in gone {
                        h.model.remove(&k);
                        h.w.remove(k.1);
                    }
                }
            }
            h.check();
        }
        // Drain everything: nothing is lost.
        let n = h.model.len();
        let last = h.model.keys().map(|k| k.0).max().unwrap_or(0);
        h.advance(last, 0, 1, 0);
        prop_assert_eq!(h.out.len(), n);
        h.check();
    }

    #[test]
    fn random_backwards_advance_is_noop(start in arb_start(), back in 1..1000u64, at in 1..5000u64) {
        let mut w = T::new(start);
        let at = start.saturating_add(at);
        let ok = w.ins(1, at).is_ok();
        let mut out = Vec::new();
        w.advance(start.saturating_sub(back), &mut out);
        prop_assert!(out.is_empty());
        prop_assert_eq!(w.elapsed(), start);
        prop_assert_eq!(w.w.len(), usize::from(ok));
    }
}
