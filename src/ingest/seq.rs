//! Sequence accounting for one (exporter, engine type, engine id) stream
//! (SEMANTICS section 5), and the design that makes it exact in a
//! multi-worker collector.
//!
//! # What is counted
//! `flow_sequence` counts records exported before a datagram, so a datagram
//! covers the records `[seq, seq + count)`. A [`Stream`] keeps the highest
//! end seen (`hi`) and the ranges below it that are still missing (gaps):
//! - **in order**: starts at `hi`;
//! - **gap**: starts past `hi`: the records in between are counted lost
//!   (`lost_records`) and remembered as a gap;
//! - **late**: starts before `hi` and covers records of a gap: they are
//!   given back (lost goes down by exactly what it fills), so reordering is
//!   never loss; also a datagram from before the first one seen
//!   (`late_datagrams`);
//! - **duplicate**: starts before `hi` and every record it covers was
//!   already seen: counted (`duplicate_datagrams`), fills nothing;
//! - **restart**: the sequence goes back while the exporter's `sys_uptime`
//!   goes forward (its export process restarted: sequence back to 0, the
//!   box still up), or the uptime goes back by more than
//!   [`UPTIME_RESET_MS`] (a reboot), or the sequence goes back by more than
//!   [`REORDER_WINDOW`] records. The stream starts afresh; gaps still open
//!   stay lost. A late or duplicate datagram always carries an uptime at or
//!   before the latest one (exporters stamp uptime in export order), so it
//!   is never taken for a restart.
//!
//! The accounting does not depend on the order in which datagrams are
//! observed (within the window, and short of restarts): the same datagrams
//! in any order give the same `lost_records`.
//!
//! # Bounded
//! Gaps are kept in a `BTreeMap` (start -> end; empty, it allocates
//! nothing, so a stream without loss or reordering costs no heap), at most
//! [`MAX_GAPS`] per stream and a [`GapBudget`] for the whole table. One more
//! makes the lowest forgotten: its records stay lost, `gaps_overflow`
//! counts it, and a datagram that would have filled it is counted late
//! (filling nothing). Gaps further than [`REORDER_WINDOW`] below `hi` are
//! dropped (anything that far back is a restart). How many streams exist is
//! capped by the table ([`super::exporters`]).
//!
//! # One tracker per exporter, whatever the worker
//! SO_REUSEPORT spreads an exporter's datagrams over workers when it sends
//! from several source ports (or the group changes), so per-worker trackers
//! would each see holes that are another worker's datagrams. Instead every
//! stream lives once, in the collector-wide table of
//! [`super::exporters`]: each exporter has one entry, an `Arc` to a mutex
//! over its streams. A worker looks the entry up once (its per-exporter
//! counters map keeps the `Arc` next to the counters it already looks up per
//! datagram), then per datagram takes that exporter's mutex once: never per
//! record, uncontended unless the exporter really is spread over workers,
//! and no second hash lookup. Order across workers is arbitrary, which the
//! order-independent accounting above makes harmless.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How far back (in records) a sequence number may fall and still be a late
/// datagram rather than a restart.
pub const REORDER_WINDOW: u32 = 1 << 20;
/// Uptime going back by more than this (ms) is a restart (a reboot).
pub const UPTIME_RESET_MS: u32 = 60_000;
/// Most gaps remembered per stream (see the module doc): enough for two
/// workers to each take a whole loop's receive budget (16 x 64 datagrams)
/// of an exporter spread over them before the other catches up.
pub const MAX_GAPS: usize = 4096;

/// Unwrapped positions start here, so that going back by up to 2^31 never
/// goes below 0; a position's low 32 bits are the wire's sequence number.
const BASE: u64 = 1 << 32;
const HALF: u32 = 1 << 31;

/// What one datagram did to its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqEvent {
    /// First datagram of this (exporter, engine).
    First,
    /// Exactly the expected sequence.
    InOrder,
    /// A gap of this many records opened before this datagram.
    Gap(u64),
    /// A late datagram: it filled this many records of earlier gaps.
    Late(u64),
    /// Every record it covers was seen before.
    Duplicate,
    /// The exporter restarted.
    Restart,
    /// Not tracked: the table had no room for its exporter or engine.
    Untracked,
}

/// Totals of one stream (or summed over streams).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqTotals {
    pub lost_records: u64,
    pub restarts: u64,
    pub late_datagrams: u64,
    pub duplicate_datagrams: u64,
    /// Gaps forgotten because the stream held [`MAX_GAPS`] or the table's
    /// [`GapBudget`] was spent.
    pub gaps_overflow: u64,
}

impl SeqTotals {
    pub fn add(&mut self, o: &SeqTotals) {
        self.lost_records += o.lost_records;
        self.restarts += o.restarts;
        self.late_datagrams += o.late_datagrams;
        self.duplicate_datagrams += o.duplicate_datagrams;
        self.gaps_overflow += o.gaps_overflow;
    }
}

/// Gaps held by every stream of a table together, capped: what bounds the
/// memory of sequence state.
#[derive(Debug)]
pub struct GapBudget {
    used: AtomicUsize,
    cap: usize,
}

impl GapBudget {
    pub fn new(cap: usize) -> Self {
        GapBudget { used: AtomicUsize::new(0), cap }
    }

    fn take(&self) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < self.cap).then_some(n + 1))
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }

    /// Gaps held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// The sequence state of one (exporter, engine).
#[derive(Debug, Clone)]
pub struct Stream {
    /// End of the highest datagram seen (unwrapped).
    hi: u64,
    /// Below this nothing is known (before the first datagram, or a forgotten gap).
    floor: u64,
    /// `sys_uptime` of the highest datagram.
    uptime: u32,
    /// Missing ranges in `[floor, hi)`, start -> end: disjoint, non-empty.
    gaps: BTreeMap<u64, u64>,
    pub totals: SeqTotals,
}

impl Stream {
    /// A stream whose first datagram is `[seq, seq + count)`.
    pub fn new(seq: u32, count: u32, uptime: u32) -> Self {
        let floor = BASE + seq as u64;
        Stream {
            hi: floor + count as u64,
            floor,
            uptime,
            gaps: BTreeMap::new(),
            totals: SeqTotals::default(),
        }
    }

    /// Account one datagram of this stream; gaps it opens are taken from `budget`.
    #[inline]
    pub fn observe(&mut self, seq: u32, count: u32, uptime: u32, budget: &GapBudget) -> SeqEvent {
        let ahead = seq.wrapping_sub(self.hi as u32);
        if ahead == 0 {
            self.hi += count as u64;
            self.uptime = uptime;
            return SeqEvent::InOrder;
        }
        self.out_of_order(ahead, count, uptime, budget)
    }

    #[cold]
    fn out_of_order(
        &mut self,
        ahead: u32,
        count: u32,
        uptime: u32,
        budget: &GapBudget,
    ) -> SeqEvent {
        let up_back = self.uptime.wrapping_sub(uptime);
        let rebooted = up_back < HALF && up_back > UPTIME_RESET_MS;
        if ahead < HALF {
            if rebooted {
                return self.restart(ahead, count, uptime, budget);
            }
            let s = self.hi + ahead as u64;
            self.push_gap(self.hi, s, budget);
            self.totals.lost_records += ahead as u64;
            self.hi = s + count as u64;
            self.uptime = uptime;
            return SeqEvent::Gap(ahead as u64);
        }
        let back = ahead.wrapping_neg(); // hi - seq
        let up_forward = uptime.wrapping_sub(self.uptime);
        if back > REORDER_WINDOW || rebooted || (up_forward != 0 && up_forward < HALF) {
            return self.restart(ahead, count, uptime, budget);
        }
        let s = self.hi - back as u64;
        let e = s + count as u64;
        let filled = self.fill(s, e.min(self.hi), budget);
        self.totals.lost_records -= filled;
        let extends = e > self.hi;
        if extends {
            self.hi = e;
            self.uptime = uptime;
        }
        if filled == 0 && s >= self.floor && !extends {
            self.totals.duplicate_datagrams += 1;
            return SeqEvent::Duplicate;
        }
        self.totals.late_datagrams += 1;
        SeqEvent::Late(filled)
    }

    fn restart(&mut self, ahead: u32, count: u32, uptime: u32, budget: &GapBudget) -> SeqEvent {
        let seq = (self.hi as u32).wrapping_add(ahead);
        budget.give(self.gaps.len());
        let totals = self.totals;
        *self = Stream::new(seq, count, uptime);
        self.totals = totals;
        self.totals.restarts += 1;
        SeqEvent::Restart
    }

    /// Remember `[a, b)` as missing (it lies above every other gap).
    fn push_gap(&mut self, a: u64, b: u64, budget: &GapBudget) {
        // Gaps out of the window can no longer be filled.
        let window_floor = b.saturating_sub(REORDER_WINDOW as u64);
        while let Some(g) = self.gaps.first_entry() {
            if *g.get() > window_floor {
                break;
            }
            g.remove();
            budget.give(1);
        }
        // Full (or the budget spent): forget the lowest gap and reuse its
        // unit; with no gap of its own to give up, this one is forgotten at
        // once (its records stay lost).
        if (self.gaps.len() >= MAX_GAPS || !budget.take()) && !self.forget_oldest() {
            self.floor = self.floor.max(b);
            self.totals.gaps_overflow += 1;
            return;
        }
        self.gaps.insert(a, b);
    }

    /// Forget the lowest gap, keeping its budget unit for the caller.
    fn forget_oldest(&mut self) -> bool {
        match self.gaps.pop_first() {
            Some((_, end)) => {
                self.floor = self.floor.max(end);
                self.totals.gaps_overflow += 1;
                true
            }
            None => false,
        }
    }

    /// Take `[s, e)` out of the gaps; returns how many records that filled.
    fn fill(&mut self, s: u64, e: u64, budget: &GapBudget) -> u64 {
        let mut filled = 0;
        let mut upto = e;
        // Gaps starting below `upto`, from the highest down, while they reach past `s`.
        while let Some((&a, &b)) = self.gaps.range(..upto).next_back() {
            if b <= s {
                break;
            }
            let (lo, hi) = (a.max(s), b.min(e));
            filled += hi - lo;
            self.gaps.remove(&a);
            let mut kept = 0;
            if a < lo {
                self.gaps.insert(a, lo);
                kept += 1;
            }
            if hi < b {
                if kept == 1 && (self.gaps.len() >= MAX_GAPS || !budget.take()) {
                    // A split needs one more gap: forget the oldest instead.
                    self.forget_oldest();
                    kept -= 1;
                }
                self.gaps.insert(hi, b);
                kept += 1;
            }
            budget.give(1 - kept.min(1));
            upto = a;
        }
        filled
    }

    /// Gaps held now.
    pub fn open_gaps(&self) -> usize {
        self.gaps.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A budget no test reaches.
    static B: GapBudget = GapBudget { used: AtomicUsize::new(0), cap: usize::MAX };

    /// Observe datagrams of one record each (uptime = sequence).
    fn ones(seqs: &[u32]) -> (Stream, Vec<SeqEvent>) {
        let mut st = Stream::new(seqs[0], 1, seqs[0]);
        let ev = seqs[1..].iter().map(|&s| st.observe(s, 1, s, &B)).collect();
        (st, ev)
    }

    #[test]
    fn a_duplicate_never_fills_a_gap() {
        // The case: 0, 1, 5, then 1 again: 3 lost, 1 duplicate.
        let mut st = Stream::new(0, 1, 1000);
        assert_eq!(st.observe(1, 1, 1001, &B), SeqEvent::InOrder);
        assert_eq!(st.observe(5, 1, 1005, &B), SeqEvent::Gap(3));
        assert_eq!(st.observe(1, 1, 1001, &B), SeqEvent::Duplicate);
        let t = st.totals;
        assert_eq!((t.lost_records, t.duplicate_datagrams, t.late_datagrams), (3, 1, 0));
        // The late ones still give theirs back, each once.
        assert_eq!(st.observe(3, 1, 1003, &B), SeqEvent::Late(1));
        assert_eq!(st.observe(3, 1, 1003, &B), SeqEvent::Duplicate);
        assert_eq!(st.totals.lost_records, 2);
        assert_eq!(st.open_gaps(), 2, "3 split [2,5) in two");
    }

    #[test]
    fn in_order_gap_late() {
        let up = 90_000_000; // 25 h of uptime
        let mut st = Stream::new(100, 30, up);
        assert_eq!(st.observe(130, 30, up + 10, &B), SeqEvent::InOrder);
        assert_eq!(st.observe(190, 30, up + 30, &B), SeqEvent::Gap(30));
        assert_eq!(st.observe(160, 30, up + 20, &B), SeqEvent::Late(30));
        assert_eq!(st.observe(220, 30, up + 40, &B), SeqEvent::InOrder);
        assert_eq!(st.totals, SeqTotals { late_datagrams: 1, ..Default::default() });
        // Before the first datagram seen: late, nothing to give back.
        assert_eq!(st.observe(70, 30, up - 10, &B), SeqEvent::Late(0));
    }

    #[test]
    fn sequence_back_to_zero_with_uptime_going_on_is_a_restart() {
        // The export process restarted, the router did not: uptime goes on.
        let mut st = Stream::new(5000, 30, 3_600_000);
        assert_eq!(st.observe(5030, 30, 3_600_100, &B), SeqEvent::InOrder);
        assert_eq!(st.observe(0, 30, 3_600_200, &B), SeqEvent::Restart);
        assert_eq!(st.observe(30, 30, 3_600_300, &B), SeqEvent::InOrder);
        assert_eq!(st.totals, SeqTotals { restarts: 1, ..Default::default() });
    }

    #[test]
    fn uptime_going_back_is_a_restart_either_way() {
        // A reboot: uptime back to seconds; the sequence back to 0 ...
        let mut st = Stream::new(5000, 30, 3_600_000);
        assert_eq!(st.observe(0, 30, 2_000, &B), SeqEvent::Restart);
        assert_eq!(st.observe(30, 30, 2_100, &B), SeqEvent::InOrder);
        assert_eq!(st.totals, SeqTotals { restarts: 1, ..Default::default() });
        // ... or (an exporter that starts its sequence anywhere) ahead.
        let mut st = Stream::new(5000, 30, 3_600_000);
        assert_eq!(st.observe(90_000, 30, 1_000, &B), SeqEvent::Restart);
        assert_eq!(st.totals, SeqTotals { restarts: 1, ..Default::default() });
        // Far back in sequence, whatever the uptime.
        let mut st = Stream::new(50_000_000, 30, 10_000_000);
        assert_eq!(st.observe(0, 30, 10_000_000, &B), SeqEvent::Restart);
        assert_eq!(st.totals.lost_records, 0);
    }

    #[test]
    fn a_restart_keeps_what_was_lost_before_it() {
        let (mut st, _) = ones(&[0, 1, 5]);
        assert_eq!(st.observe(0, 1, 100, &B), SeqEvent::Restart);
        assert_eq!(st.totals.lost_records, 3);
        assert_eq!(st.open_gaps(), 0);
    }

    #[test]
    fn wraps_at_u32() {
        let mut st = Stream::new(u32::MAX - 9, 30, 1);
        assert_eq!(st.observe(20, 30, 2, &B), SeqEvent::InOrder);
        assert_eq!(st.observe(80, 30, 3, &B), SeqEvent::Gap(30));
        assert_eq!(st.observe(50, 30, 2, &B), SeqEvent::Late(30));
        assert_eq!(st.totals.lost_records, 0);
    }

    #[test]
    fn gaps_are_capped_and_the_overflow_counted() {
        let seqs: Vec<u32> = (0..=MAX_GAPS as u32 + 3).map(|i| i * 2).collect();
        let (mut st, _) = ones(&seqs);
        assert_eq!(st.open_gaps(), MAX_GAPS);
        assert_eq!(st.totals.gaps_overflow, 3);
        assert_eq!(st.totals.lost_records, MAX_GAPS as u64 + 3);
        // The oldest gap (at 1) was forgotten: a datagram filling it is late
        // and gives nothing back; the newest (at 2*MAX_GAPS+5) still fills.
        assert_eq!(st.observe(1, 1, 1, &B), SeqEvent::Late(0));
        let newest = 2 * MAX_GAPS as u32 + 5;
        assert_eq!(st.observe(newest, 1, newest, &B), SeqEvent::Late(1));
        // Splitting gaps is capped too.
        let mut st = Stream::new(0, 1, 0);
        st.observe(100_000, 1, 1000, &B);
        for s in (2..2 * MAX_GAPS as u32 + 4).step_by(2) {
            assert_eq!(st.observe(s, 1, 1000, &B), SeqEvent::Late(1));
        }
        // One gap cut MAX_GAPS + 1 times would be MAX_GAPS + 2 gaps.
        assert_eq!(st.open_gaps(), MAX_GAPS);
        assert_eq!(st.totals.gaps_overflow, 2);
    }

    #[test]
    fn the_table_budget_bounds_every_stream_together() {
        let budget = GapBudget::new(3);
        let (mut a, mut b) = (Stream::new(0, 1, 0), Stream::new(0, 1, 0));
        a.observe(2, 1, 2, &budget);
        a.observe(4, 1, 4, &budget);
        b.observe(2, 1, 2, &budget);
        assert_eq!(budget.used(), 3);
        // The budget is spent: b forgets its own oldest gap to open one.
        assert_eq!(b.observe(4, 1, 4, &budget), SeqEvent::Gap(1));
        assert_eq!((b.open_gaps(), b.totals.gaps_overflow, budget.used()), (1, 1, 3));
        // Filling gives back; a restart gives back what it held.
        assert_eq!(a.observe(1, 1, 1, &budget), SeqEvent::Late(1));
        assert_eq!(budget.used(), 2);
        assert_eq!(a.observe(0, 1, 100, &budget), SeqEvent::Restart);
        assert_eq!(budget.used(), 1);
        // Splitting a gap with the budget spent keeps the count of gaps.
        let budget = GapBudget::new(1);
        let mut c = Stream::new(0, 1, 0);
        c.observe(10, 1, 10, &budget);
        assert_eq!(c.observe(5, 1, 5, &budget), SeqEvent::Late(1));
        assert_eq!((c.open_gaps(), budget.used(), c.totals.lost_records), (1, 1, 8));
    }

    proptest! {
        /// Whatever the order datagrams are observed in (a local shuffle,
        /// as across workers), with some withheld and some duplicated,
        /// lost records are exactly those withheld and every extra copy is
        /// a duplicate.
        #[test]
        fn loss_is_exact_in_any_order(
            counts in prop::collection::vec(1u32..=30, 2..60),
            withheld in prop::collection::btree_set(1usize..60, 0..6),
            dups in prop::collection::btree_set(0usize..60, 0..6),
            swaps in prop::collection::vec((0usize..60, 1usize..4), 0..30),
            start in any::<u32>(),
        ) {
            // Datagram i covers [seq_i, seq_i + counts[i]); uptime grows with it.
            let mut seq = start;
            let mut dgs = Vec::new();
            for (i, &c) in counts.iter().enumerate() {
                dgs.push((i, seq, c, 1_000_000 + i as u32));
                seq = seq.wrapping_add(c);
            }
            let last = dgs.len() - 1;
            let lost: u64 = withheld
                .iter()
                .filter(|&&i| i < last)
                .map(|&i| counts[i] as u64)
                .sum();
            let arrived = |i: usize| i == 0 || i == last || !withheld.contains(&i);
            // The first datagram makes the stream; the rest (less the
            // withheld), plus copies of some (the first included), arrive
            // in a local shuffle.
            let mut sent: Vec<_> = dgs[1..]
                .iter()
                .filter(|d| arrived(d.0))
                .copied()
                .collect();
            let copies: Vec<_> =
                dgs.iter().filter(|d| dups.contains(&d.0) && arrived(d.0)).copied().collect();
            sent.extend(copies.iter().copied());
            for (at, by) in swaps {
                let n = sent.len();
                sent.swap(at % n, (at % n + by).min(n - 1));
            }
            let mut st = Stream::new(dgs[0].1, dgs[0].2, dgs[0].3);
            for (_, s, c, up) in &sent {
                st.observe(*s, *c, *up, &B);
            }
            prop_assume!(st.totals.gaps_overflow == 0);
            prop_assert_eq!(st.totals.lost_records, lost);
            prop_assert_eq!(st.totals.duplicate_datagrams, copies.len() as u64);
            prop_assert_eq!(st.totals.restarts, 0);
        }
    }
}
