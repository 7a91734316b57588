//! The wheel's geometry and one level of it: [`LEVELS`] and [`MAX_SPAN`],
//! the `occupied` bitfield over a level's 64 slots, plus the two placement
//! functions, [`level_for`] and [`slot_for`].

use std::fmt;

/// Levels in the wheel, 64 slots each.
pub const LEVELS: usize = 6;
/// Ticks spanned by the wheel: `64^LEVELS`. Deadlines further than this from
/// `elapsed` are clamped into the top level (they come back out and are
/// re-placed later).
pub const MAX_SPAN: u64 = 1 << 36;

/// Bits of the tick consumed by one level.
pub(super) const LEVEL_BITS: u32 = 6;
/// Slots per level.
pub(super) const LEVEL_MULT: usize = 1 << LEVEL_BITS;
/// The top level: the only one whose "current" slot may hold entries.
pub(super) const TOP: usize = LEVELS - 1;

const SLOT_MASK: u64 = (LEVEL_MULT as u64) - 1;

/// Ticks covered by one slot of `level`.
pub(super) const fn slot_range(level: usize) -> u64 {
    1 << (LEVEL_BITS as usize * level)
}

/// Ticks covered by a whole turn of `level`.
pub(super) const fn level_range(level: usize) -> u64 {
    1 << (LEVEL_BITS as usize * (level + 1))
}

/// The level an entry due at `when` belongs to while the wheel stands at
/// `elapsed`: the level of the most significant bit in which they differ.
///
/// Entries that differ from `elapsed` at or above bit 36 (everything more than
/// [`MAX_SPAN`] ahead, and also some nearer ones that cross a 2^36 boundary)
/// are clamped into the top level.
pub(super) fn level_for(elapsed: u64, when: u64) -> usize {
    // OR-ing in the slot mask caps the leading zeros, so equal values and
    // values differing only in the lowest 6 bits both give level 0.
    let mut masked = (elapsed ^ when) | SLOT_MASK;
    if masked >= MAX_SPAN {
        masked = MAX_SPAN - 1;
    }
    let significant = (u64::BITS - 1 - masked.leading_zeros()) as usize;
    significant / LEVEL_BITS as usize
}

/// The slot of `level` that an entry due at `when` goes to.
pub(super) fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (LEVEL_BITS as usize * level)) & SLOT_MASK) as usize
}

/// The earliest occupied slot of the wheel and the tick at which it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Expiration {
    pub(super) level: usize,
    pub(super) slot: usize,
    /// Start tick of the slot: `<=` every `at` in it, `> elapsed`.
    pub(super) deadline: u64,
}

/// One level's bookkeeping: which of its 64 slots hold a non-empty list (the
/// lists themselves live in the wheel).
pub(super) struct Level {
    level: usize,
    /// Bit `s` is set iff slot `s`'s list is non-empty.
    pub(super) occupied: u64,
}

impl Level {
    pub(super) fn new(level: usize) -> Self {
        Level { level, occupied: 0 }
    }

    /// The slot `now` falls in on this level.
    fn now_slot(&self, now: u64) -> usize {
        slot_for(now, self.level)
    }

    /// The start tick of `slot` as seen from `now`: in the current turn of the
    /// level if the slot lies after `now`'s slot, otherwise in the next turn
    /// (only the top level can hold such slots, see the module docs).
    pub(super) fn slot_start(&self, slot: usize, now: u64) -> u64 {
        let level_start = now & !(level_range(self.level) - 1);
        let start = level_start + slot as u64 * slot_range(self.level);
        if slot <= self.now_slot(now) {
            // Cannot overflow: such slots only hold clamped ids, whose
            // deadline lies in a later 2^36 block than `now`, so the next
            // turn of the top level exists.
            start + level_range(self.level)
        } else {
            start
        }
    }

    /// The first occupied slot after `now`'s slot, wrapping around, so that
    /// `now`'s own slot comes last.
    pub(super) fn next_expiration(&self, now: u64) -> Option<Expiration> {
        if self.occupied == 0 {
            return None;
        }
        let now_slot = self.now_slot(now);
        debug_assert!(
            self.level == TOP || self.occupied & (1 << now_slot) == 0,
            "level {} holds ids in the slot of elapsed={now} (slot {now_slot}): {self:?}",
            self.level,
        );
        // Rotate so that bit 0 is the slot right after `now_slot`.
        let start = (now_slot + 1) % LEVEL_MULT;
        let rotated = self.occupied.rotate_right(start as u32);
        let slot = (start + rotated.trailing_zeros() as usize) % LEVEL_MULT;
        let deadline = self.slot_start(slot, now);
        debug_assert!(
            deadline > now,
            "level {} slot {slot}: deadline {deadline} <= now {now}",
            self.level
        );
        Some(Expiration { level: self.level, slot, deadline })
    }
}

impl fmt::Debug for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "level {} occupied={:#018x}", self.level, self.occupied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: the lowest level `l` whose whole turn (`level_range(l)`)
    /// contains both ticks, i.e. they agree on every bit above `6 * (l + 1)`;
    /// the top level if there is none.
    fn level_for_ref(elapsed: u64, when: u64) -> usize {
        (0..LEVELS).find(|&l| elapsed / level_range(l) == when / level_range(l)).unwrap_or(TOP)
    }

    const ELAPSED: [u64; 12] = [
        0,
        1,
        63,
        64,
        100,
        4095,
        4096,
        1_000_000,
        (1 << 36) - 1,
        1 << 36,
        3 * (1 << 36) + 123_456_789,
        u64::MAX - (1 << 37),
    ];

    /// Interesting `when`s around every level boundary, seen from `elapsed`:
    /// `elapsed + 64^k +- 1` and the next multiple of `64^k` above `elapsed`
    /// `+- 1`, for `k` in `1..=6` (`64^6 = MAX_SPAN`), plus the first ticks.
    fn boundary_whens(elapsed: u64) -> Vec<u64> {
        let mut v: Vec<u64> = (0..=130).map(|d| elapsed.saturating_add(d)).collect();
        for k in 1..=LEVELS {
            let b = slot_range(k);
            let next = (elapsed / b + 1).saturating_mul(b);
            for base in [elapsed.saturating_add(b), next, next.saturating_add(b)] {
                for d in [-1i64, 0, 1] {
                    v.push(base.saturating_add_signed(d));
                }
            }
        }
        v
    }

    #[test]
    fn test_level_for_from_zero() {
        for when in 0..64 {
            assert_eq!(level_for(0, when), 0, "when={when}");
        }
        for level in 1..LEVELS {
            let lo = slot_range(level);
            let hi = level_range(level);
            for when in [lo, lo + 1, 2 * lo - 1, 2 * lo, hi / 2, hi - 2, hi - 1] {
                assert_eq!(level_for(0, when), level, "when={when} ({when:#b})");
            }
            // The last tick below the boundary stays one level down.
            assert_eq!(level_for(0, lo - 1), level - 1, "when={}", lo - 1);
        }
        // At and beyond MAX_SPAN: clamped into the top level.
        for when in [MAX_SPAN - 1, MAX_SPAN, MAX_SPAN + 1, 5 * MAX_SPAN, u64::MAX] {
            assert_eq!(level_for(0, when), TOP, "when={when}");
        }
    }

    #[test]
    fn test_level_for_boundaries_not_distance() {
        // The level is chosen by the highest differing bit, not by distance:
        // 127 -> 128 crosses a 64 boundary after a single tick.
        assert_eq!(level_for(100, 127), 0);
        assert_eq!(level_for(100, 128), 1);
        assert_eq!(level_for(127, 128), 1);
        assert_eq!(level_for(128, 191), 0);
        assert_eq!(level_for(4095, 4096), 2);
        assert_eq!(level_for(4096, 4096 + 4095), 1);
        assert_eq!(level_for(4096, 8192), 2);
        assert_eq!(level_for((1 << 30) - 1, 1 << 30), 5);
        // Crossing a 2^36 boundary, however close, means the top level.
        assert_eq!(level_for(MAX_SPAN - 1, MAX_SPAN), TOP);
        assert_eq!(level_for(MAX_SPAN - 1, MAX_SPAN + 5), TOP);
        assert_eq!(level_for(MAX_SPAN, 2 * MAX_SPAN - 1), TOP);
        assert_eq!(level_for(MAX_SPAN, MAX_SPAN + 63), 0);
    }

    #[test]
    fn test_level_for_exhaustive_boundaries() {
        for elapsed in ELAPSED {
            for when in boundary_whens(elapsed) {
                assert_eq!(
                    level_for(elapsed, when),
                    level_for_ref(elapsed, when),
                    "elapsed={elapsed} when={when} xor={:#b}",
                    elapsed ^ when
                );
            }
            for when in elapsed..elapsed.saturating_add(5000) {
                assert_eq!(
                    level_for(elapsed, when),
                    level_for_ref(elapsed, when),
                    "{elapsed} {when}"
                );
            }
        }
    }

    #[test]
    fn test_slot_for() {
        for when in 0..64 {
            assert_eq!(slot_for(when, 0), when as usize);
        }
        assert_eq!(slot_for(64, 0), 0);
        for level in 1..LEVELS {
            let r = slot_range(level);
            for pos in 0..64u64 {
                let when = pos * r;
                assert_eq!(slot_for(when, level), pos as usize, "level={level} when={when}");
                assert_eq!(slot_for(when + r - 1, level), pos as usize, "level={level}");
                if pos > 0 {
                    assert_eq!(slot_for(when - 1, level), pos as usize - 1, "level={level}");
                }
            }
            // Wraps after one full turn.
            assert_eq!(slot_for(level_range(level), level), 0);
            assert_eq!(slot_for(level_range(level) + r, level), 1);
        }
        for elapsed in ELAPSED {
            for when in boundary_whens(elapsed) {
                for level in 0..LEVELS {
                    let expect = ((when / slot_range(level)) % 64) as usize;
                    assert_eq!(slot_for(when, level), expect, "when={when} level={level}");
                }
            }
        }
    }

    #[test]
    fn test_next_expiration_wraps_on_top_level_only() {
        let add = |l: &mut Level, at: u64| l.occupied |= 1 << slot_for(at, l.level);
        let mut lvl = Level::new(1);
        // elapsed = 100 is in level-1 slot 1; an id due at 200 is in slot 3.
        add(&mut lvl, 200);
        let exp = lvl.next_expiration(100).unwrap();
        assert_eq!(exp, Expiration { level: 1, slot: 3, deadline: 192 });

        let mut top = Level::new(TOP);
        let now = 5 * slot_range(TOP) + 7; // top-level slot 5
                                           // Clamped: same slot bits as `now`, one turn later: must come last.
        add(&mut top, MAX_SPAN + 5 * slot_range(TOP) + 9);
        // Not clamped: slot 6 in the current turn.
        add(&mut top, 6 * slot_range(TOP) + 1);
        // Clamped: slot 2, next turn.
        add(&mut top, 3 * MAX_SPAN + 2 * slot_range(TOP));
        let exp = top.next_expiration(now).unwrap();
        assert_eq!(exp, Expiration { level: TOP, slot: 6, deadline: 6 * slot_range(TOP) });
        top.occupied &= !(1 << 6);
        let exp = top.next_expiration(now).unwrap();
        assert_eq!(exp.slot, 2);
        assert_eq!(exp.deadline, MAX_SPAN + 2 * slot_range(TOP));
        top.occupied &= !(1 << 2);
        let exp = top.next_expiration(now).unwrap();
        assert_eq!(exp.slot, 5);
        assert_eq!(exp.deadline, MAX_SPAN + 5 * slot_range(TOP));
    }
}
