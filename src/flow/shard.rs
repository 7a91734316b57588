//! The flow shard: a flow table over a slab of slots, plus a hierarchical
//! timer wheel over slot indices.
//!
//! Ground rules:
//! - Every live flow has exactly one *current* wheel entry, the one whose
//!   `at` equals the slot's `scheduled` tick (and whose `gen` is the slot's).
//!   Other entries for the slot are stale and are ignored when they fire.
//! - A flow's deadline is `min(seen + idle, fin + linger)` (D3, D4), at 1 ms
//!   resolution, rounded up. Records that move the deadline *later* do not
//!   touch the wheel: when the entry fires early, it is re-inserted (lazy
//!   rescheduling). A FIN/RST that moves it *earlier* inserts a new entry.
//! - Stale entries (from evictions and earlier-moves) are bounded: once they
//!   outnumber the live flows the wheel is compacted, so memory stays
//!   proportional to `max_flows`.
//! - `advance(now)` must be called before records of time `now` are applied;
//!   time never goes backwards (a smaller `now` is clamped).
//! - Every flow leaves exactly once (D5): by its deadline (`fin`, `idle`),
//!   by eviction when full (`evicted`, oldest created first, D10), or by
//!   [`Shard::flush`] (`shutdown`, sorted by first then key, D8).

use std::collections::VecDeque;

use hashbrown::HashTable;

use super::key::KeyHasher;
use super::{FlowKey, FlowRecord, KeySpec};
use crate::timer::{Entry, Wheel};

/// Wheel resolution: 1 ms.
pub const TICK_NS: u64 = 1_000_000;

/// Timeouts and limits of one shard.
#[derive(Debug, Clone, Copy)]
pub struct ShardConfig {
    pub key: KeySpec,
    /// After a FIN/RST record, the flow ends this long after the last such record.
    pub linger_ns: u64,
    /// A flow with no record for this long ends `idle`.
    pub idle_ns: u64,
    /// At most this many flows at once; a new flow beyond it evicts the oldest.
    pub max_flows: usize,
}

/// Why a flow was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndReason {
    Fin,
    Idle,
    Evicted,
    Shutdown,
}

impl EndReason {
    pub const ALL: [EndReason; 4] =
        [EndReason::Fin, EndReason::Idle, EndReason::Evicted, EndReason::Shutdown];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Fin => "fin",
            EndReason::Idle => "idle",
            EndReason::Evicted => "evicted",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// A restitched flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub key: FlowKey,
    /// The flow's first record: exporter, engine, addresses, ports, protocol
    /// and the attributes (ifIndex, nexthop, tos, AS, masks, sampling) come from it.
    /// Its own packets/octets/times are not the flow's: use the fields below.
    pub rec: FlowRecord,
    pub records: u64,
    pub packets: u64,
    pub octets: u64,
    /// OR of every record's tcp flags.
    pub tcp_flags: u8,
    /// Earliest First of its records (router clock, ns).
    pub first_ns: u64,
    /// Latest Last of its records (router clock, ns).
    pub last_ns: u64,
    /// Collector time of its first and latest record (ns).
    pub start_ns: u64,
    pub seen_ns: u64,
    /// Collector time it ended: its deadline, or the eviction / shutdown time.
    pub end_ns: u64,
    pub end_reason: EndReason,
}

/// What a shard has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub records: u64,
    pub packets: u64,
    pub octets: u64,
    /// Flows emitted, by [`EndReason`] index.
    pub flows: [u64; 4],
    pub wheel_compactions: u64,
}

impl ShardStats {
    pub fn flows_total(&self) -> u64 {
        self.flows.iter().sum()
    }

    pub fn add(&mut self, o: &ShardStats) {
        self.records += o.records;
        self.packets += o.packets;
        self.octets += o.octets;
        for (a, b) in self.flows.iter_mut().zip(o.flows) {
            *a += b;
        }
        self.wheel_compactions += o.wheel_compactions;
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    flow: Flow,
    hash: u64,
    gen: u32,
    live: bool,
    /// Linger deadline (ns) from the latest FIN/RST record; `u64::MAX` if none.
    fin_ns: u64,
    /// Tick of the slot's current wheel entry.
    scheduled: u64,
}

/// One flow table with its timer wheel. Owned by one thread; no locks.
#[derive(Debug)]
pub struct Shard {
    cfg: ShardConfig,
    table: HashTable<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    wheel: Wheel,
    /// Creation order, for oldest-first eviction: (slot, gen); stale pairs skipped.
    fifo: VecDeque<(u32, u32)>,
    fired: Vec<Entry>,
    stale_timers: usize,
    live: usize,
    now: u64,
    stats: ShardStats,
}

#[inline]
fn ceil_tick(ns: u64) -> u64 {
    ns.div_ceil(TICK_NS)
}

/// A slot's deadline tick and the reason it would end then.
fn deadline(cfg: &ShardConfig, slot: &Slot) -> (u64, EndReason) {
    let idle = ceil_tick(slot.flow.seen_ns.saturating_add(cfg.idle_ns));
    let fin = if slot.fin_ns == u64::MAX { u64::MAX } else { ceil_tick(slot.fin_ns) };
    if fin <= idle {
        (fin, EndReason::Fin)
    } else {
        (idle, EndReason::Idle)
    }
}

impl Shard {
    /// A shard whose clock starts at `now` (ns).
    pub fn new(cfg: ShardConfig, now: u64) -> Self {
        assert!(cfg.max_flows >= 1, "max_flows must be at least 1");
        Shard {
            cfg,
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            wheel: Wheel::new(now / TICK_NS),
            fifo: VecDeque::new(),
            fired: Vec::new(),
            stale_timers: 0,
            live: 0,
            now,
            stats: ShardStats::default(),
        }
    }

    pub fn config(&self) -> &ShardConfig {
        &self.cfg
    }

    /// Flows held now.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn stats(&self) -> &ShardStats {
        &self.stats
    }

    /// Timer entries held, stale ones included (bounded by about twice the flows).
    pub fn wheel_len(&self) -> usize {
        self.wheel.len()
    }

    /// The shard's clock (ns).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The earliest time (ns) at which [`Shard::advance`] may emit a flow
    /// (a lower bound: lazily rescheduled entries may fire without emitting).
    pub fn next_deadline(&self) -> Option<u64> {
        self.wheel.next_deadline().map(|t| t.saturating_mul(TICK_NS))
    }

    /// Move the clock to `now` and emit every flow whose deadline has passed.
    pub fn advance(&mut self, now: u64, out: &mut Vec<Flow>) {
        self.now = self.now.max(now);
        let now_tick = self.now / TICK_NS;
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.advance(now_tick, &mut fired);
        for e in fired.drain(..) {
            let slot = &self.slots[e.id as usize];
            if !slot.live || slot.gen != e.gen || slot.scheduled != e.at {
                self.stale_timers -= 1;
                continue;
            }
            let (tick, reason) = deadline(&self.cfg, slot);
            if tick <= now_tick {
                self.finish(e.id, tick * TICK_NS, reason, out);
            } else {
                self.slots[e.id as usize].scheduled = tick;
                let rescheduled = self.wheel.insert(Entry { id: e.id, gen: e.gen, at: tick });
                debug_assert!(rescheduled.is_ok(), "tick {tick} > now {now_tick}");
            }
        }
        self.fired = fired;
    }

    /// Merge one record at collector time `now` (call [`Shard::advance`] first).
    /// A new flow beyond `max_flows` evicts the oldest one into `out`.
    pub fn apply(&mut self, now: u64, rec: &FlowRecord, out: &mut Vec<Flow>) {
        debug_assert!(
            now >= self.now || now / TICK_NS <= self.wheel.elapsed(),
            "apply before advance"
        );
        let now = self.now.max(now);
        self.stats.records += 1;
        self.stats.packets += rec.packets;
        self.stats.octets += rec.octets;
        let key = self.cfg.key.key_of(rec);
        let hash = KeyHasher::hash(&key);
        let slots = &self.slots;
        if let Some(&idx) = self.table.find(hash, |&i| slots[i as usize].flow.key == key) {
            self.update(idx, now, rec);
            return;
        }
        if self.live >= self.cfg.max_flows {
            self.evict_oldest(now, out);
        }
        self.create(key, hash, now, rec);
    }

    /// Emit every remaining flow with reason `shutdown`, sorted by first then
    /// key (D8). The shard is empty afterwards and can be reused.
    pub fn flush(&mut self, now: u64, out: &mut Vec<Flow>) {
        self.now = self.now.max(now);
        let start = out.len();
        for slot in self.slots.iter_mut().filter(|s| s.live) {
            let mut f = slot.flow;
            f.end_ns = self.now;
            f.end_reason = EndReason::Shutdown;
            out.push(f);
        }
        out[start..].sort_unstable_by_key(|f| (f.first_ns, f.key));
        self.stats.flows[EndReason::Shutdown as usize] += (out.len() - start) as u64;
        self.table.clear();
        self.slots.clear();
        self.free.clear();
        self.fifo.clear();
        self.wheel = Wheel::new(self.now / TICK_NS);
        self.stale_timers = 0;
        self.live = 0;
    }

    fn update(&mut self, idx: u32, now: u64, rec: &FlowRecord) {
        let linger = self.cfg.linger_ns;
        let slot = &mut self.slots[idx as usize];
        let f = &mut slot.flow;
        f.records += 1;
        f.packets += rec.packets;
        f.octets += rec.octets;
        f.tcp_flags |= rec.tcp_flags;
        f.first_ns = f.first_ns.min(rec.first_ns);
        f.last_ns = f.last_ns.max(rec.last_ns);
        f.seen_ns = now;
        if rec.ends_connection() {
            slot.fin_ns = now.saturating_add(linger);
            let (tick, _) = deadline(&self.cfg, slot);
            if tick < slot.scheduled {
                self.stale_timers += 1;
                self.schedule(idx, tick);
            }
        }
    }

    fn create(&mut self, key: FlowKey, hash: u64, now: u64, rec: &FlowRecord) {
        let flow = Flow {
            key,
            rec: *rec,
            records: 1,
            packets: rec.packets,
            octets: rec.octets,
            tcp_flags: rec.tcp_flags,
            first_ns: rec.first_ns,
            last_ns: rec.last_ns,
            start_ns: now,
            seen_ns: now,
            end_ns: 0,
            end_reason: EndReason::Shutdown,
        };
        let fin_ns =
            if rec.ends_connection() { now.saturating_add(self.cfg.linger_ns) } else { u64::MAX };
        let idx = match self.free.pop() {
            Some(i) => {
                let s = &mut self.slots[i as usize];
                s.flow = flow;
                s.hash = hash;
                s.live = true;
                s.fin_ns = fin_ns;
                i
            }
            None => {
                let i = u32::try_from(self.slots.len()).expect("more than 2^32 flow slots");
                self.slots.push(Slot { flow, hash, gen: 0, live: true, fin_ns, scheduled: 0 });
                i
            }
        };
        let slots = &self.slots;
        self.table.insert_unique(hash, idx, |&i| slots[i as usize].hash);
        self.live += 1;
        let gen = self.slots[idx as usize].gen;
        self.fifo.push_back((idx, gen));
        if self.fifo.len() > 2 * self.live + 1024 {
            let slots = &self.slots;
            self.fifo.retain(|&(i, g)| slots[i as usize].live && slots[i as usize].gen == g);
        }
        let (tick, _) = deadline(&self.cfg, &self.slots[idx as usize]);
        self.schedule(idx, tick);
    }

    /// Make `tick` the slot's current deadline entry. A tick already due
    /// (zero timeouts) goes in at the next tick: flows never end inside `apply`.
    fn schedule(&mut self, idx: u32, tick: u64) {
        let tick = tick.max(self.wheel.elapsed() + 1);
        let slot = &mut self.slots[idx as usize];
        slot.scheduled = tick;
        let res = self.wheel.insert(Entry { id: idx, gen: slot.gen, at: tick });
        debug_assert!(res.is_ok());
        if self.stale_timers > self.live + 1024 {
            let slots = &self.slots;
            self.wheel.retain(|e| {
                let s = &slots[e.id as usize];
                s.live && s.gen == e.gen && s.scheduled == e.at
            });
            self.stale_timers = 0;
            self.stats.wheel_compactions += 1;
        }
    }

    fn evict_oldest(&mut self, now: u64, out: &mut Vec<Flow>) {
        while let Some((i, g)) = self.fifo.pop_front() {
            let s = &self.slots[i as usize];
            if s.live && s.gen == g {
                self.stale_timers += 1;
                self.finish(i, now, EndReason::Evicted, out);
                return;
            }
        }
        debug_assert!(false, "full shard with an empty fifo: live={}", self.live);
    }

    fn finish(&mut self, idx: u32, end_ns: u64, reason: EndReason, out: &mut Vec<Flow>) {
        let slot = &mut self.slots[idx as usize];
        debug_assert!(slot.live);
        slot.live = false;
        slot.gen = slot.gen.wrapping_add(1);
        let mut f = slot.flow;
        let hash = slot.hash;
        match self.table.find_entry(hash, |&i| i == idx) {
            Ok(e) => {
                e.remove();
            }
            Err(_) => debug_assert!(false, "live slot {idx} missing from the table"),
        }
        self.free.push(idx);
        self.live -= 1;
        f.end_ns = end_ns;
        f.end_reason = reason;
        self.stats.flows[reason as usize] += 1;
        out.push(f);
    }
}
