//! Deadlines of a shard's flows and the glue to its timer wheel:
//! [`Shard::advance`], [`Shard::advance_bounded`], [`Shard::next_deadline`].
//!
//! A flow's deadline lives in its slot: the idle deadline in the hot part
//! (`idle_at`, written by every record: `ceil((now + idle) / TICK_NS)`,
//! exactly D4's `seen + idle` rounded up to the tick), the linger deadline
//! in the cold part (`fin`, written by FIN/RST records, D3). The wheel
//! links the slot at its deadline when it is created and asks the slot
//! again whenever its wheel slot is processed ([`crate::timer::Links`]
//! for the slab, `slab.rs`): a record that moves the deadline later costs
//! the wheel nothing. A first FIN/RST that moves it earlier unlinks and
//! re-links it (O(1), intrusive lists); later FIN/RSTs only move it later.
//!
//! Ticks are kept modulo 2^32 and read back against the wheel's `elapsed`
//! (`slab::reconstruct`), valid within 2^31 ms. Idle and linger are below
//! 2^31 ms, and the wheel is moved at most [`STEP`] ticks at a time, the
//! flows it fired emitted in between, so every deadline read back lies
//! within `max(idle, linger) + STEP` < 2^31 ms of `elapsed` even when the
//! clock jumps by months (a replay with a gap).
//!
//! The IPv6 family's flows (`slab6.rs`) are linked in a wheel of their own
//! (`Shard::wheel6`), over their own slab, moved in step with the IPv4 one
//! while it holds flows (then both stand at the same `elapsed`; an empty
//! one is left behind and caught up when it takes a flow, so that IPv4
//! alone pays one test per step): the IPv4 wheel and its links stay
//! exactly as they were. A step emits the IPv4 flows due, then the IPv6
//! ones.

use super::merge::Merge;
use super::shard::{EndReason, Flow, Shard, TICK_NS};
use super::slab::{reconstruct, HotSlot, Slab, HAS_FIN};
use crate::timer::Wheel;

/// The most ticks the wheel is advanced at once (2^29 ms: 6.2 days).
const STEP: u64 = 1 << 29;

impl Shard {
    /// The idle deadline of a record at `now`, as a slot keeps it.
    #[inline]
    pub(super) fn idle_at(&self, now: u64) -> u32 {
        now.saturating_add(self.cfg.idle_ns).div_ceil(TICK_NS) as u32
    }

    /// The linger deadline of a FIN/RST record at `now`, as a slot keeps it.
    #[inline]
    pub(super) fn fin_at(&self, now: u64) -> u32 {
        now.saturating_add(self.cfg.linger_ns).div_ceil(TICK_NS) as u32
    }

    /// Collector time of the latest record of slot `i`, to the millisecond
    /// (its idle deadline less the idle timeout).
    pub(super) fn seen_ns(&self, i: u32) -> u64 {
        let idle = reconstruct(self.slab.hot(i).idle_at, self.wheel.elapsed());
        idle.saturating_mul(TICK_NS).saturating_sub(self.cfg.idle_ns)
    }

    /// [`Shard::seen_ns`] of slot `i` of the IPv6 family.
    pub(super) fn seen_ns6(&self, i: u32) -> u64 {
        let idle = reconstruct(self.v6.slab.hot(i).idle_at, self.wheel.elapsed());
        idle.saturating_mul(TICK_NS).saturating_sub(self.cfg.idle_ns)
    }

    /// Link the new flow `idx` into the wheel at its deadline. A deadline
    /// already due (zero timeouts) goes in at the next tick: flows never end
    /// inside `apply` (it still ends at its own deadline).
    pub(super) fn link(&mut self, idx: u32) {
        link_in(&mut self.wheel, &mut self.slab, idx);
    }

    /// [`Shard::link`] for the IPv6 family. Its wheel stands at the IPv4
    /// wheel's `elapsed` whenever it holds a flow; while empty it is not
    /// moved ([`Shard::expire`]), so it is caught up here first.
    pub(super) fn link6(&mut self, idx: u32) {
        if self.v6.wheel.is_empty() {
            self.v6.wheel.advance(self.wheel.elapsed(), &mut self.v6.slab);
        }
        debug_assert_eq!(self.v6.wheel.elapsed(), self.wheel.elapsed());
        link_in(&mut self.v6.wheel, &mut self.v6.slab, idx);
    }

    /// [`Shard::special`] for flow `idx` of the IPv6 family.
    #[inline(never)]
    pub(super) fn special6(&mut self, idx: u32, now: u64, m: &Merge) {
        if m.end_reason != 0 {
            self.v6.slab.hot_mut(idx).exp_reason = m.end_reason;
        }
        if m.ends_connection() {
            let fin = self.fin_at(now);
            self.v6.slab.cold_mut(idx).fin = fin;
            let h = self.v6.slab.hot_mut(idx);
            let had_fin = h.state() & HAS_FIN != 0;
            h.set(HAS_FIN);
            if !had_fin {
                relink_if_fin(&mut self.v6.wheel, &mut self.v6.slab, idx);
            }
        }
    }

    /// A record with FIN/RST or a flowEndReason reached flow `idx` at
    /// `now`: keep the reason, and linger if it ends the connection. Out of
    /// line: one record of a flow, at most a few, takes it.
    #[inline(never)]
    pub(super) fn special(&mut self, idx: u32, now: u64, m: &Merge) {
        if m.end_reason != 0 {
            self.slab.hot_mut(idx).exp_reason = m.end_reason;
        }
        if m.ends_connection() {
            self.linger(idx, now);
        }
    }

    /// A FIN/RST (or an exporter's end of flow) reached flow `idx` at
    /// `now`: (re)start its linger (D3: the last one wins). The first one
    /// may move the deadline earlier: it re-links the flow.
    fn linger(&mut self, idx: u32, now: u64) {
        let fin = self.fin_at(now);
        self.slab.cold_mut(idx).fin = fin;
        let h = self.slab.hot_mut(idx);
        let had_fin = h.state() & HAS_FIN != 0;
        h.set(HAS_FIN);
        // A later FIN/RST only moves the linger later (time never goes back),
        // and records only move the idle deadline later: no earlier deadline.
        if !had_fin {
            relink_if_fin(&mut self.wheel, &mut self.slab, idx);
        }
    }

    /// Flows due but not yet emitted (a bounded advance to finish).
    #[inline]
    pub(super) fn pending(&self) -> bool {
        self.wheel.has_fired()
            || self.wheel.elapsed() < self.now / TICK_NS
            || self.v6.wheel.has_fired()
    }

    /// The earliest time (ns) at which [`Shard::advance`] may emit a flow
    /// (a lower bound: lazily rescheduled flows may come out without ending).
    pub fn next_deadline(&self) -> Option<u64> {
        if self.pending() {
            return Some(self.now); // due flows not yet emitted
        }
        let next = match (self.wheel.next_deadline(), self.v6.wheel.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        next.map(|t| t.saturating_mul(TICK_NS))
    }

    /// Move the clock to `now` and emit every flow whose deadline has passed.
    pub fn advance(&mut self, now: u64, out: &mut Vec<Flow>) {
        self.expire_all(now, out);
        self.contexts.sweep();
    }

    /// [`Shard::advance`] that emits at most `max` flows per call, so that a
    /// caller can hand them on in bounded batches (a timer tick may end
    /// millions). True while due flows remain: call again with the same
    /// `now`, and no record applied in between, until it returns false.
    pub fn advance_bounded(&mut self, now: u64, out: &mut Vec<Flow>, max: usize) -> bool {
        let more = self.expire(now, out, max);
        self.contexts.sweep();
        more
    }

    /// [`Shard::advance`] without the context sweep (inside a batch).
    pub(super) fn expire_all(&mut self, now: u64, out: &mut Vec<Flow>) {
        while self.expire(now, out, usize::MAX) {}
    }

    /// Emit up to `max` due flows at `now`; true while more may be due.
    fn expire(&mut self, now: u64, out: &mut Vec<Flow>, max: usize) -> bool {
        debug_assert!(
            !self.pending() || now <= self.now,
            "advance_bounded: a later now while flows of an earlier one are pending"
        );
        self.now = self.now.max(now);
        let now_tick = self.now / TICK_NS;
        let mut emitted = 0;
        loop {
            while emitted < max {
                let Some(i) = self.wheel.pop_fired(&mut self.slab) else { break };
                let (tick, by_fin) = self.slab.deadline(i, self.wheel.elapsed());
                debug_assert!(tick <= self.wheel.elapsed(), "slot {i} fired before {tick}");
                let reason = if by_fin { EndReason::Fin } else { EndReason::Idle };
                self.finish(i, tick * TICK_NS, reason, out);
                emitted += 1;
            }
            if self.v6.live != 0 {
                emitted = self.expire6(emitted, max, out);
            }
            if emitted == max {
                return self.pending();
            }
            let elapsed = self.wheel.elapsed();
            if elapsed >= now_tick {
                return false;
            }
            let to = now_tick.min(elapsed.saturating_add(STEP));
            self.wheel.advance(to, &mut self.slab);
            if self.v6.live != 0 {
                self.v6.wheel.advance(to, &mut self.v6.slab);
            }
        }
    }

    /// The IPv6 family's part of [`Shard::expire`]: emit its fired flows
    /// while `emitted < max`; the new count. Out of line, and only called
    /// while its wheel holds flows (an empty one is left behind, and caught
    /// up when it takes one: [`Shard::link6`]).
    #[inline(never)]
    fn expire6(&mut self, mut emitted: usize, max: usize, out: &mut Vec<Flow>) -> usize {
        while emitted < max {
            let Some(i) = self.v6.wheel.pop_fired(&mut self.v6.slab) else { break };
            let (tick, by_fin) = self.v6.slab.deadline(i, self.v6.wheel.elapsed());
            debug_assert!(tick <= self.v6.wheel.elapsed(), "IPv6 slot {i} fired before {tick}");
            let reason = if by_fin { EndReason::Fin } else { EndReason::Idle };
            self.finish6(i, tick * TICK_NS, reason, out);
            emitted += 1;
        }
        emitted
    }
}

/// Link new flow `idx` of `slab` into `wheel` at its deadline ([`Shard::link`]).
fn link_in<H: HotSlot>(wheel: &mut Wheel, slab: &mut Slab<H>, idx: u32) {
    let elapsed = wheel.elapsed();
    let (tick, _) = slab.deadline(idx, elapsed);
    let linked = wheel.insert(slab, idx, tick.max(elapsed + 1));
    debug_assert!(linked.is_ok());
}

/// Flow `idx`'s first FIN/RST may have moved its deadline earlier: if its
/// linger deadline is now the one, re-link it there.
fn relink_if_fin<H: HotSlot>(wheel: &mut Wheel, slab: &mut Slab<H>, idx: u32) {
    let elapsed = wheel.elapsed();
    let (tick, by_fin) = slab.deadline(idx, elapsed);
    if by_fin {
        wheel.remove(slab, idx);
        let linked = wheel.insert(slab, idx, tick.max(elapsed + 1));
        debug_assert!(linked.is_ok());
    }
}
