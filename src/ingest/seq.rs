//! Per-exporter sequence tracking (SEMANTICS section 5).
//!
//! `flow_sequence` counts records exported before a datagram, so the next
//! datagram of the same (exporter, engine) should carry `seq + count`. A jump
//! forward is a gap: those records are lost (for now). A datagram that arrives
//! late (its sequence falls in a gap already counted) gives its records back:
//! reordering is never loss. A large jump backwards, or the exporter's uptime
//! going back by more than a minute, is a restart: counted, not a loss.

use std::net::IpAddr;

use hashbrown::HashMap;

/// How far back (in records) a sequence number may fall and still be a late
/// datagram rather than a restart.
pub const REORDER_WINDOW: u32 = 1 << 20;
/// Uptime going back by more than this (ms) with the sequence going back is a restart.
pub const UPTIME_RESET_MS: u32 = 60_000;

/// What one datagram did to its exporter's sequence.
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
    /// The exporter restarted.
    Restart,
}

#[derive(Debug, Clone, Copy, Default)]
struct State {
    expected: u32,
    uptime: u32,
    /// Records in gaps not yet filled by late datagrams.
    open_gap: u64,
}

/// Per (exporter, engine type, engine id) totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqTotals {
    pub lost_records: u64,
    pub restarts: u64,
    pub late_datagrams: u64,
}

/// Sequence state for every (exporter, engine) seen.
#[derive(Debug, Default)]
pub struct SeqTracker {
    states: HashMap<(IpAddr, u8, u8), (State, SeqTotals)>,
}

impl SeqTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Account one accepted datagram.
    pub fn observe(
        &mut self,
        exporter: IpAddr,
        engine_type: u8,
        engine_id: u8,
        seq: u32,
        count: u32,
        uptime: u32,
    ) -> SeqEvent {
        let next = seq.wrapping_add(count);
        let (st, tot) = match self.states.entry((exporter, engine_type, engine_id)) {
            hashbrown::hash_map::Entry::Vacant(v) => {
                v.insert((State { expected: next, uptime, open_gap: 0 }, SeqTotals::default()));
                return SeqEvent::First;
            }
            hashbrown::hash_map::Entry::Occupied(o) => o.into_mut(),
        };
        let ahead = seq.wrapping_sub(st.expected);
        if ahead == 0 {
            st.expected = next;
            st.uptime = uptime;
            return SeqEvent::InOrder;
        }
        if ahead < u32::MAX / 2 {
            // Forward jump: a gap.
            st.open_gap += ahead as u64;
            tot.lost_records += ahead as u64;
            st.expected = next;
            st.uptime = uptime;
            return SeqEvent::Gap(ahead as u64);
        }
        let back = st.expected.wrapping_sub(seq);
        let uptime_reset = st.uptime.wrapping_sub(uptime) < u32::MAX / 2
            && st.uptime.wrapping_sub(uptime) > UPTIME_RESET_MS;
        if back > REORDER_WINDOW || uptime_reset {
            *st = State { expected: next, uptime, open_gap: 0 };
            tot.restarts += 1;
            return SeqEvent::Restart;
        }
        // A late datagram: give back what it fills of the open gaps.
        let filled = (count as u64).min(st.open_gap);
        st.open_gap -= filled;
        tot.lost_records -= filled;
        tot.late_datagrams += 1;
        SeqEvent::Late(filled)
    }

    /// Totals per (exporter, engine type, engine id), sorted.
    pub fn totals(&self) -> Vec<((IpAddr, u8, u8), SeqTotals)> {
        let mut v: Vec<_> = self.states.iter().map(|(k, (_, t))| (*k, *t)).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// Sum over every exporter.
    pub fn sum(&self) -> SeqTotals {
        self.states.values().fold(SeqTotals::default(), |mut a, (_, t)| {
            a.lost_records += t.lost_records;
            a.restarts += t.restarts;
            a.late_datagrams += t.late_datagrams;
            a
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn in_order_gap_late_restart() {
        let mut t = SeqTracker::new();
        let up = 90_000_000; // 25 h of uptime
        assert_eq!(t.observe(E, 0, 0, 100, 30, up), SeqEvent::First);
        assert_eq!(t.observe(E, 0, 0, 130, 30, up + 10), SeqEvent::InOrder);
        // 160..190 missing: a gap of 30.
        assert_eq!(t.observe(E, 0, 0, 190, 30, up + 30), SeqEvent::Gap(30));
        assert_eq!(t.sum().lost_records, 30);
        // It arrives late: not a loss after all.
        assert_eq!(t.observe(E, 0, 0, 160, 30, up + 20), SeqEvent::Late(30));
        assert_eq!(t.sum().lost_records, 0);
        assert_eq!(t.observe(E, 0, 0, 220, 30, up + 40), SeqEvent::InOrder);
        // Restart: sequence back to 0, uptime reset.
        assert_eq!(t.observe(E, 0, 0, 0, 10, 5), SeqEvent::Restart);
        assert_eq!(t.observe(E, 0, 0, 10, 10, 50), SeqEvent::InOrder);
        let s = t.sum();
        assert_eq!((s.lost_records, s.restarts, s.late_datagrams), (0, 1, 1));
    }

    #[test]
    fn far_backwards_jump_is_restart_not_loss() {
        let mut t = SeqTracker::new();
        t.observe(E, 0, 0, 50_000_000, 30, 10_000_000);
        assert_eq!(t.observe(E, 0, 0, 0, 30, 10_000_100), SeqEvent::Restart);
        assert_eq!(t.sum().lost_records, 0);
    }

    #[test]
    fn wraps_at_u32() {
        let mut t = SeqTracker::new();
        t.observe(E, 0, 0, u32::MAX - 9, 30, 1);
        assert_eq!(t.observe(E, 0, 0, 20, 30, 2), SeqEvent::InOrder);
    }

    #[test]
    fn engines_are_separate() {
        let mut t = SeqTracker::new();
        t.observe(E, 0, 1, 0, 30, 1);
        t.observe(E, 0, 2, 500, 30, 1);
        assert_eq!(t.observe(E, 0, 1, 30, 30, 2), SeqEvent::InOrder);
        assert_eq!(t.observe(E, 0, 2, 530, 30, 2), SeqEvent::InOrder);
    }
}
