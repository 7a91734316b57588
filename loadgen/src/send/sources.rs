//! The two [`BatchSource`]s the paced loop sends from.
//!
//! - The live model: an exporter's [`ExporterGen`] makes each batch's
//!   datagrams (each maybe followed by a malformed one) into the thread's
//!   slots just before the batch is due. After the `--duration` deadline it
//!   cuts its open sessions and sends what its router holds, unpaced, for at
//!   most [`DRAIN_GRACE`] ([`BatchSource::after_paced`]).
//! - `--pool` ([`PoolShare`]): an exporter's share of the pool, made before
//!   the clock started; when a batch leaves, its datagrams are patched for
//!   the wall clock and sent from the pool's own buffer (no copy).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use nfstitch::wire::MAX_DATAGRAM_LEN;

use super::paced::{BatchSource, Lane, Run, Thread};
use super::DRAIN_GRACE;
use crate::pool::Pool;
use crate::router::ExporterGen;
use crate::truth::ExporterTruth;

/// The live model's batch: `n` filled slots of room for each valid datagram
/// and a malformed one after it.
#[derive(Debug)]
pub(super) struct Slots {
    bufs: Vec<Vec<u8>>,
    n: usize,
}

impl BatchSource for ExporterGen {
    type Scratch = Slots;

    fn scratch(b: usize) -> Slots {
        Slots {
            bufs: (0..2 * b).map(|_| Vec::with_capacity(MAX_DATAGRAM_LEN + 64)).collect(),
            n: 0,
        }
    }

    fn has_left(&self, _next_k: u64) -> bool {
        self.has_more()
    }

    fn make(&mut self, e: usize, next_k: u64, run: &Run<'_>, s: &mut Slots) -> u64 {
        let slots = &mut s.bufs;
        let mut n = 0;
        let mut k = next_k;
        for _ in 0..run.b {
            let Some(_) = self.next_datagram(run.plan.tick_ns(run.g(e, k)), &mut slots[n]) else {
                break;
            };
            k += 1;
            n += 1;
            let (made, rest) = slots.split_at_mut(n);
            if self.maybe_corrupt(&made[n - 1], &mut rest[0]).is_some() {
                n += 1;
            }
        }
        s.n = n;
        k - next_k
    }

    fn ready<'a>(&'a mut self, s: &'a mut Slots, out: &mut Vec<&'a [u8]>) {
        out.extend(s.bufs[..s.n].iter().map(|v| v.as_slice()));
    }

    /// The end of the run: what each router still holds goes out now, a
    /// batch per exporter in turn, for at most [`DRAIN_GRACE`] after the
    /// deadline. Cutting the sessions (a pass over the router's waiting
    /// records) gets half of that, shared by the exporters; what it cannot
    /// reach is dropped, and counted as unsent.
    fn after_paced(t: &mut Thread<'_, Self>, lanes: &mut [Lane<Self>]) -> Result<()> {
        let drain_end = t.run.deadline.map(|d| d.max(Instant::now()) + DRAIN_GRACE);
        let cut_end = drain_end.map(|e| e - DRAIN_GRACE / 2);
        let open: Vec<usize> = (0..lanes.len()).filter(|&i| lanes[i].src.has_more()).collect();
        for (n, &i) in open.iter().enumerate() {
            let lane = &mut lanes[i];
            let now_ns = t.run.plan.tick_ns(t.run.g(lane.e, lane.next_k));
            let share = cut_end.map(|end| {
                let now = Instant::now();
                now + end.saturating_duration_since(now) / (open.len() - n) as u32
            });
            t.out.unsent_records +=
                lane.src.finish_until(now_ns, || share.is_some_and(|s| Instant::now() >= s));
        }
        'drain: loop {
            let mut any = false;
            for lane in lanes.iter_mut().filter(|l| l.src.has_more()) {
                if drain_end.is_some_and(|end| Instant::now() >= end) {
                    break 'drain;
                }
                any |= t.send_batch(lane, None)?;
            }
            if !any {
                break;
            }
        }
        t.out.unsent_records += lanes.iter().map(|l| l.src.pending() as u64).sum::<u64>();
        Ok(())
    }
}

/// `--pool`: one exporter's share of the pool and what it sent.
#[derive(Debug)]
pub(super) struct PoolShare {
    pub pool: Pool,
    pub truth: ExporterTruth,
    /// Valid datagrams this exporter sends in all (`--count`), if bounded.
    pub quota: Option<u64>,
}

/// A pool batch: how many valid datagrams, then their entries (each valid
/// one and the malformed ones after it).
#[derive(Debug)]
pub(super) struct Picks {
    n: u64,
    idx: Vec<usize>,
}

impl BatchSource for PoolShare {
    type Scratch = Picks;

    fn scratch(b: usize) -> Picks {
        Picks { n: 0, idx: Vec::with_capacity(2 * b) }
    }

    fn has_left(&self, next_k: u64) -> bool {
        self.quota.is_none_or(|q| q > next_k)
    }

    fn make(&mut self, _e: usize, next_k: u64, run: &Run<'_>, p: &mut Picks) -> u64 {
        p.n = (run.b as u64).min(self.quota.map_or(u64::MAX, |q| q - next_k));
        p.n
    }

    /// Patched for the wall clock as they leave.
    fn ready<'a>(&'a mut self, p: &'a mut Picks, out: &mut Vec<&'a [u8]>) {
        let now_ms = wall_ms();
        p.idx.clear();
        for _ in 0..p.n {
            self.pool.take_next(now_ms, &mut p.idx);
        }
        let pool = &self.pool;
        out.extend(p.idx.iter().map(|&i| pool.entry(i)));
    }
}

/// Wall clock, ms since the epoch.
fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
