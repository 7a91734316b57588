//! Eviction when a shard is full: CLOCK (second chance) over the slab.
//!
//! Owns: the hand, an index sweeping the slots in order, and the rule of
//! what it evicts. No queue: the only per-flow state is the `TOUCHED` bit
//! of the hot slot, which the merge sets in the line it writes anyway.
//!
//! To make room, the hand looks at the slot under it and moves on by one:
//! a free slot is skipped; a live slot that is marked loses its mark (a
//! second chance); the first unmarked live slot is evicted. At most
//! [`SECOND_CHANCES`] marks are cleared per eviction; after that the next
//! live slot goes regardless (everything the hand looked at was busy), so
//! no record waits on a long run of busy flows. (A full shard has no free
//! slots: the slab grows only when the free list is empty, so when `live
//! == max_flows` every slot is live and the work per eviction is at most
//! `SECOND_CHANCES + 1` slots.)
//!
//! How this approximates least recently updated (D10): a flow is evicted
//! only if no record reached it since the hand last passed it, that is
//! within the last turn of the hand; busy flows are marked again before
//! the hand comes back and outlive any number of one-record flows. A new
//! flow goes into the slot just evicted, right behind the hand, so it has
//! a whole turn before it is looked at, like the tail of a queue. The
//! order differs from a queue's in two ways, both bounded by one turn:
//! among flows not updated for a turn, the one under the hand goes, not
//! the oldest; and a flow created in a slot freed by a timer, ahead of the
//! hand, may be looked at sooner than a turn after its creation.
//!
//! Both address families: the hand's turn runs over the IPv4 slab and then
//! over the IPv6 one (`slab6.rs`; `Shard::hand_v6` says which it is in), so
//! every flow of either family is looked at once per turn and `max_flows`
//! bounds both together. With no IPv6 flow ever held, the IPv6 slab is
//! empty and the hand goes round the IPv4 slab exactly as before.

use super::shard::{Flow, Shard};
use super::slab::{LIVE, TOUCHED};

/// Most marks one eviction clears (second chances) before it evicts the
/// next live slot regardless: the bound on one eviction's work.
pub(super) const SECOND_CHANCES: usize = 32;

impl Shard {
    /// Emit the least recently updated flow, approximately (CLOCK, module
    /// doc), as evicted at `now`.
    pub(super) fn evict(&mut self, now: u64, out: &mut Vec<Flow>) {
        debug_assert!(self.live > 0, "evicting from an empty shard");
        let mut chances = 0;
        loop {
            if !self.v6.hand_v6 {
                let len = self.slab.len as u32;
                while self.hand < len {
                    let i = self.hand;
                    self.hand += 1;
                    let h = self.slab.hot_mut(i);
                    if h.state() & LIVE == 0 {
                        continue;
                    }
                    if h.state() & TOUCHED != 0 && chances < SECOND_CHANCES {
                        h.unset(TOUCHED);
                        chances += 1;
                        continue;
                    }
                    self.evict_slot(i, now, out);
                    return;
                }
                self.hand = 0;
                if self.v6.slab.len == 0 {
                    continue; // no IPv6 slot: the turn is the IPv4 slab's alone
                }
                self.v6.hand_v6 = true;
            }
            let len = self.v6.slab.len as u32;
            while self.hand < len {
                let i = self.hand;
                self.hand += 1;
                let h = self.v6.slab.hot_mut(i);
                if h.state() & LIVE == 0 {
                    continue;
                }
                if h.state() & TOUCHED != 0 && chances < SECOND_CHANCES {
                    h.unset(TOUCHED);
                    chances += 1;
                    continue;
                }
                self.evict_slot6(i, now, out);
                return;
            }
            self.hand = 0;
            self.v6.hand_v6 = false;
        }
    }
}
