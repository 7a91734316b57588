//! Tests of the timer wheel: exhaustive placement at level and slot
//! boundaries, and random operations against a `BTreeMap` reference model.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::level::{level_range, slot_for, slot_range};
use super::*;

fn entry(id: u32, at: u64) -> Entry {
    Entry { id, gen: 0, at }
}

/// Check every ground rule of the module docs by walking all slots.
fn check_invariants(w: &Wheel) {
    let e0 = w.elapsed;
    let mut total = 0;
    for (l, lvl) in w.levels.iter().enumerate() {
        for (s, slot) in lvl.slots.iter().enumerate() {
            let bit = lvl.occupied & (1 << s) != 0;
            assert_eq!(bit, !slot.is_empty(), "level {l} slot {s}: occupied bit vs {slot:?}");
            total += slot.len();
            for e in slot {
                assert!(e.at > e0, "{e:?} held at elapsed={e0}");
                assert_eq!(slot_for(e.at, l), s, "{e:?} in level {l} slot {s}");
                assert!(
                    lvl.slot_start(s, e0) <= e.at,
                    "{e:?}: level {l} slot {s} starts at {} (elapsed={e0})",
                    lvl.slot_start(s, e0)
                );
                if l < LEVELS - 1 {
                    assert_eq!(
                        e.at / level_range(l),
                        e0 / level_range(l),
                        "{e:?} at level {l} does not share the high bits of elapsed={e0}"
                    );
                    assert_ne!(s, slot_for(e0, l), "{e:?} in elapsed's own slot, level {l}");
                } else if e.at / MAX_SPAN == e0 / MAX_SPAN {
                    // Not clamped: in the current turn, after elapsed's slot.
                    assert!(s > slot_for(e0, l), "{e:?} top slot {s} elapsed={e0}");
                }
            }
        }
    }
    assert_eq!(total, w.len(), "len() vs entries in slots");
}

/// (level, slot) holding the entry with this id.
fn where_is(w: &Wheel, id: u32) -> Option<(usize, usize)> {
    for (l, lvl) in w.levels.iter().enumerate() {
        for (s, slot) in lvl.slots.iter().enumerate() {
            if slot.iter().any(|e| e.id == id) {
                return Some((l, s));
            }
        }
    }
    None
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
    let mut w = Wheel::new(start);
    let by_id: Vec<u64> = ats.iter().copied().collect();
    for (id, &at) in by_id.iter().enumerate() {
        assert_eq!(w.insert(entry(id as u32, at)), Ok(()));
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
            let id = e.id as usize;
            assert_eq!(e.at, by_id[id], "entry changed: {e:?}");
            assert!(!fired[id], "{e:?} fired twice (now={now})");
            assert!(e.at <= now, "{e:?} fired before its at, now={now}");
            assert!(e.at > prev, "{e:?} fired late: previous advance to {prev} reached it");
            fired[id] = true;
        }
        // Nothing due left behind.
        let expect = ats.range(prev + 1..=now).count();
        assert_eq!(out.len(), expect, "advance {prev} -> {now}: fired {} of {expect}", out.len());
        if let Some(d) = w.next_deadline() {
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
    assert!(w.is_empty());
    assert_eq!(w.next_deadline(), None);
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
        let mut w = Wheel::new(start);
        for d in 1..=5000u64 {
            w.insert(entry(d as u32, start + d)).unwrap();
            w.insert(entry(d as u32 + 10_000, start + d)).unwrap();
        }
        let mut out = Vec::new();
        for d in 1..=5000u64 {
            assert_eq!(w.next_deadline(), Some(start + d), "exact at level 0 or slot start");
            out.clear();
            w.advance(start + d, &mut out);
            assert_eq!(out, [entry(d as u32, start + d), entry(d as u32 + 10_000, start + d)]);
        }
        assert!(w.is_empty());
    }
}

#[test]
fn one_jump_fires_everything_in_slot_order() {
    // Inserted in ascending order, so each slot holds its entries sorted and
    // slot order makes the whole output sorted by `at`.
    for start in STARTS {
        let ats = exhaustive_ats(start);
        let mut w = Wheel::new(start);
        for (id, &at) in ats.iter().enumerate() {
            w.insert(entry(id as u32, at)).unwrap();
        }
        let mut out = Vec::new();
        w.advance(start + 4 * MAX_SPAN, &mut out);
        let got: Vec<u64> = out.iter().map(|e| e.at).collect();
        let want: Vec<u64> = ats.iter().copied().collect();
        assert_eq!(got, want);
        assert!(w.is_empty());
    }
}

#[test]
fn output_is_in_slot_order_within_a_slot_insertion_order() {
    let mut w = Wheel::new(0);
    for (id, at) in [(0, 5), (1, 3), (2, 200), (3, 100), (4, 70), (5, 100_000), (6, 4100)] {
        w.insert(entry(id, at)).unwrap();
    }
    let mut out = Vec::new();
    w.advance(1_000_000, &mut out);
    let got: Vec<u64> = out.iter().map(|e| e.at).collect();
    // Level 0 slots 3, 5; level 1 slot [64, 128) in insertion order (100, 70);
    // level 1 slot [192, 256); level 2 slots [4096, 8192) and [98304, 102400).
    assert_eq!(got, [3, 5, 100, 70, 200, 4100, 100_000]);
}

#[test]
fn insert_places_by_level_and_slot() {
    for start in STARTS {
        for at in exhaustive_ats(start) {
            let mut w = Wheel::new(start);
            w.insert(entry(7, at)).unwrap();
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
        let mut w = Wheel::new(0);
        w.insert(entry(1, at)).unwrap();
        assert_eq!(where_is(&w, 1), Some((level, slot)), "at={at}");
    }
}

#[test]
fn insert_due_is_handed_back_untouched() {
    let mut w = Wheel::new(1000);
    for at in [0, 1, 999, 1000] {
        let e = Entry { id: 3, gen: 9, at };
        assert_eq!(w.insert(e), Err(e));
    }
    assert!(w.is_empty());
    assert_eq!(w.next_deadline(), None);
    assert_eq!(w.insert(entry(1, 1001)), Ok(()));
    assert_eq!(w.len(), 1);
}

#[test]
fn advance_backwards_or_in_place_does_nothing() {
    let mut w = Wheel::new(500);
    w.insert(entry(1, 501)).unwrap();
    let mut out = Vec::new();
    w.advance(10, &mut out);
    w.advance(500, &mut out);
    assert!(out.is_empty());
    assert_eq!(w.elapsed(), 500);
    assert_eq!(w.len(), 1);
    w.advance(501, &mut out);
    assert_eq!(out, [entry(1, 501)]);
    w.advance(0, &mut out);
    assert_eq!(w.elapsed(), 501);
}

#[test]
fn next_deadline_is_slot_start() {
    let mut w = Wheel::new(10);
    assert_eq!(w.next_deadline(), None);
    w.insert(entry(1, 5000)).unwrap(); // level 2 slot 1: starts at 4096
    assert_eq!(w.next_deadline(), Some(4096));
    w.insert(entry(2, 200)).unwrap(); // level 1 slot 3: starts at 192
    assert_eq!(w.next_deadline(), Some(192));
    w.insert(entry(3, 40)).unwrap(); // level 0: exact
    assert_eq!(w.next_deadline(), Some(40));
    let mut out = Vec::new();
    w.advance(40, &mut out);
    assert_eq!(w.next_deadline(), Some(192));
    // Reaching the slot start cascades without firing; the deadline gets exact.
    w.advance(192, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(w.next_deadline(), Some(200));
    w.advance(4096, &mut out);
    assert_eq!(out.len(), 2);
    // 5000 = 4096 + 14 * 64 + 8: now in level 1, slot starting at 4992.
    assert_eq!(w.next_deadline(), Some(4992));
    check_invariants(&w);
}

#[test]
fn top_level_clamped_entry_in_current_slot_does_not_hide_later_slots() {
    // elapsed 0 is in top-level slot 0; the clamped entry at MAX_SPAN + 1 is
    // in slot 0 too (next turn). The entry in slot 1 must still come first.
    let mut w = Wheel::new(0);
    w.insert(entry(1, MAX_SPAN + 1)).unwrap();
    w.insert(entry(2, (1 << 30) + 5)).unwrap();
    assert_eq!(where_is(&w, 1), Some((5, 0)));
    assert_eq!(where_is(&w, 2), Some((5, 1)));
    assert_eq!(w.next_deadline(), Some(1 << 30));
    let mut out = Vec::new();
    w.advance((1 << 30) + 5, &mut out);
    assert_eq!(out, [entry(2, (1 << 30) + 5)]);
    assert_eq!(w.next_deadline(), Some(MAX_SPAN));
    out.clear();
    w.advance(MAX_SPAN, &mut out);
    assert!(out.is_empty());
    assert_eq!(w.next_deadline(), Some(MAX_SPAN + 1));
    w.advance(MAX_SPAN + 1, &mut out);
    assert_eq!(out, [entry(1, MAX_SPAN + 1)]);
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
        let mut w = Wheel::new(start);
        for (id, &at) in ats.iter().enumerate() {
            w.insert(entry(id as u32, at)).unwrap();
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
                assert_eq!(e.at, ats[e.id as usize], "at changed");
                assert!(e.at <= now && e.at > prev, "{e:?} fired in ({prev}, {now}]");
            }
            fired += out.len();
            let due = ats.iter().filter(|&&a| a > prev && a <= now).count();
            assert_eq!(out.len(), due, "advance {prev} -> {now}");
            if let Some(d) = w.next_deadline() {
                let min = ats.iter().filter(|&&a| a > now).min().unwrap();
                assert!(d > now && d <= *min, "next_deadline {d}, now {now}, min at {min}");
            }
            check_invariants(&w);
        }
        // Jumping exactly to at - 1 then at.
        for &at in &ats {
            let mut w = Wheel::new(start);
            w.insert(entry(1, at)).unwrap();
            let mut out = Vec::new();
            w.advance(at - 1, &mut out);
            assert!(out.is_empty(), "fired before at={at}");
            assert_eq!(w.len(), 1);
            check_invariants(&w);
            w.advance(at, &mut out);
            assert_eq!(out, [entry(1, at)]);
        }
    }
}

#[test]
fn long_jump_skips_empty_slots() {
    const HOUR: u64 = 3_600_000;
    let mut w = Wheel::new(0);
    let mut out = Vec::new();
    w.advance(1 << 40, &mut out);
    assert_eq!(w.slots_taken, 0);
    let base = w.elapsed();
    for (id, h) in [(1, 5), (2, 7), (3, 9)] {
        w.insert(entry(id, base + h * HOUR + 123)).unwrap();
    }
    w.advance(base + 10 * HOUR, &mut out);
    assert_eq!(out.len(), 3);
    // Each entry is taken out of at most one slot per level.
    assert!(w.slots_taken <= 3 * LEVELS as u64, "slots taken: {}", w.slots_taken);
}

#[test]
fn far_clamped_entry_costs_one_visit_per_turn() {
    let mut w = Wheel::new(0);
    let at = (1 << 44) + 12_345;
    w.insert(entry(1, at)).unwrap();
    let mut out = Vec::new();
    w.advance(at - 1, &mut out);
    assert!(out.is_empty());
    w.advance(at, &mut out);
    assert_eq!(out, [entry(1, at)]);
    // One top-level visit per 2^36 turn, then at most one per lower level.
    let turns = (1u64 << 44) / MAX_SPAN;
    assert!(w.slots_taken <= turns + LEVELS as u64, "slots taken: {}", w.slots_taken);
}

#[test]
fn fired_slots_keep_their_allocation() {
    let mut w = Wheel::new(0);
    for id in 0..100 {
        w.insert(entry(id, 10)).unwrap(); // level 0 slot 10
        w.insert(entry(id + 100, 100)).unwrap(); // level 1 slot 1
    }
    let mut out = Vec::with_capacity(200);
    // Fires level 0 slot 10 and cascades level 1 slot 1 into level 0 slot 36.
    w.advance(99, &mut out);
    assert_eq!(out.len(), 100);
    assert!(w.levels[0].slots[10].is_empty() && w.levels[0].slots[10].capacity() >= 100);
    assert!(w.levels[1].slots[1].is_empty() && w.levels[1].slots[1].capacity() >= 100);
    assert_eq!(w.levels[0].slots[36].len(), 100);
    w.advance(100, &mut out);
    assert_eq!(out.len(), 200);
    assert!(w.levels[0].slots[36].is_empty() && w.levels[0].slots[36].capacity() >= 100);
    check_invariants(&w);
    // Steady state: the same pattern again fills the kept allocations.
    let caps: Vec<usize> = [10, 36].iter().map(|&s| w.levels[0].slots[s].capacity()).collect();
    for id in 0..100 {
        w.insert(entry(id, 64 * 3 + 10)).unwrap();
        w.insert(entry(id + 100, 64 * 3 + 36)).unwrap();
    }
    let again: Vec<usize> = [10, 36].iter().map(|&s| w.levels[0].slots[s].capacity()).collect();
    assert_eq!(caps, again, "slots reallocated");
}

#[test]
fn retain_removes_and_keeps_placement() {
    let mut w = Wheel::new(0);
    for id in 0..1000u32 {
        w.insert(entry(id, 1 + u64::from(id) * 997)).unwrap();
    }
    w.retain(|e| e.id % 3 == 0);
    assert_eq!(w.len(), 334);
    check_invariants(&w);
    let mut out = Vec::new();
    w.advance(u64::MAX, &mut out);
    assert_eq!(out.len(), 334);
    assert!(out.iter().all(|e| e.id % 3 == 0));
    assert!(w.is_empty());
}

#[test]
fn works_at_the_top_of_u64() {
    let start = u64::MAX - 10_000;
    let mut w = Wheel::new(start);
    for d in 1..=10_000 {
        w.insert(entry(d as u32, start + d)).unwrap();
    }
    let mut out = Vec::new();
    w.advance(u64::MAX - 1, &mut out);
    assert_eq!(out.len(), 9999);
    assert_eq!(w.next_deadline(), Some(u64::MAX));
    w.advance(u64::MAX, &mut out);
    assert_eq!(out.len(), 10_000);
    assert!(w.insert(entry(0, u64::MAX)).is_err());
}

// ---- random operations against a reference model ----

#[derive(Debug, Clone)]
enum Op {
    /// Insert at `elapsed - back` (expects Err).
    InsertPast(u64),
    /// Insert at `elapsed + ahead` (saturating; 0 means `at == elapsed`).
    InsertAhead(u64),
    /// Advance by `step`; fired entries whose bit in `extend` is set are
    /// re-inserted with a later `at` (the shard's lazy extension).
    Advance { step: u64, extend: u64, ext_max: u64, ext_seed: u64 },
    /// Advance exactly to `next_deadline()`.
    AdvanceToDeadline { extend: u64 },
    /// Drop entries whose id matches `mask`.
    Retain(u32),
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
        // entry costs one visit per 2^36 ticks advanced.
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
        1 => (1..8u32).prop_map(Op::Retain),
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

type Model = BTreeMap<(u64, u32), Entry>;

struct Harness {
    w: Wheel,
    model: Model,
    next_id: u32,
    out: Vec<Entry>,
}

impl Harness {
    fn insert(&mut self, at: u64) {
        let e = Entry { id: self.next_id, gen: self.next_id.wrapping_mul(31), at };
        self.next_id += 1;
        let res = self.w.insert(e);
        if at <= self.w.elapsed() {
            assert_eq!(res, Err(e), "insert at {at} <= elapsed {}", self.w.elapsed());
        } else {
            assert_eq!(res, Ok(()));
            self.model.insert((at, e.id), e);
        }
    }

    fn advance(&mut self, now: u64, extend: u64, ext_max: u64, ext_seed: u64) {
        let before = self.w.elapsed();
        self.out.clear();
        self.w.advance(now, &mut self.out);
        assert_eq!(self.w.elapsed(), before.max(now));
        let mut due: Vec<Entry> = Vec::new();
        while let Some(entry) = self.model.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        let mut got = self.out.clone();
        got.sort_by_key(|e| (e.at, e.id));
        assert_eq!(got, due, "advance {before} -> {now}");
        // Lazy extension: the deadline moved later; re-insert the same id.
        let fired = std::mem::take(&mut self.out);
        for (i, e) in fired.iter().enumerate() {
            if extend >> (i % 64) & 1 == 1 {
                let d = 1 + (ext_seed.wrapping_mul(2 * i as u64 + 1) >> 7) % ext_max;
                let Some(at) = self.w.elapsed().checked_add(d) else {
                    continue;
                };
                let e2 = Entry { id: e.id, gen: e.gen.wrapping_add(1), at };
                assert_eq!(self.w.insert(e2), Ok(()));
                self.model.insert((at, e2.id), e2);
            }
        }
        self.out = fired;
    }

    fn check(&self) {
        check_invariants(&self.w);
        assert_eq!(self.w.len(), self.model.len());
        assert_eq!(self.w.is_empty(), self.model.is_empty());
        let elapsed = self.w.elapsed();
        match (self.w.next_deadline(), self.model.keys().next()) {
            (None, None) => {}
            (Some(d), Some(&(min, _))) => {
                assert!(d <= min, "next_deadline {d} after earliest at {min}");
                assert!(d > elapsed, "next_deadline {d} <= elapsed {elapsed}");
                if min / 64 == elapsed / 64 {
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
        let mut h = Harness { w: Wheel::new(start), model: Model::new(), next_id: 0, out: Vec::new() };
        for op in ops {
            let elapsed = h.w.elapsed();
            match op {
                Op::InsertPast(back) => h.insert(elapsed.saturating_sub(back)),
                Op::InsertAhead(d) => h.insert(elapsed.saturating_add(d)),
                Op::Advance { step, extend, ext_max, ext_seed } => {
                    h.advance(elapsed.saturating_add(step), extend, ext_max, ext_seed)
                }
                Op::AdvanceToDeadline { extend } => {
                    if let Some(d) = h.w.next_deadline() {
                        h.advance(d, extend, 64, 0x5DEECE66D);
                    }
                }
                Op::Retain(m) => {
                    h.w.retain(|e| e.id % (m + 1) != 0);
                    h.model.retain(|_, e| e.id % (m + 1) != 0);
                }
            }
            h.check();
        }
        // Drain everything: nothing is lost.
        let n = h.model.len();
        let last = h.model.keys().next_back().map_or(0, |k| k.0);
        h.advance(last, 0, 1, 0);
        prop_assert_eq!(h.out.len(), n);
        h.check();
    }

    #[test]
    fn random_backwards_advance_is_noop(start in arb_start(), back in 1..1000u64, at in 1..5000u64) {
        let mut w = Wheel::new(start);
        let at = start.saturating_add(at);
        let ok = w.insert(entry(1, at)).is_ok();
        let mut out = Vec::new();
        w.advance(start.saturating_sub(back), &mut out);
        prop_assert!(out.is_empty());
        prop_assert_eq!(w.elapsed(), start);
        prop_assert_eq!(w.len(), usize::from(ok));
    }
}
