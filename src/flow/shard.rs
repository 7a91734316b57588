//! The flow shard: a flow table ([`FlowTable`]) over a slab of slots, plus a
//! hierarchical timer wheel over slot indices.
//!
//! Layout for speed: a slot is split into a hot part (packed key, counters,
//! times: two cache lines, touched by every record) and a cold part (the
//! first record, touched at creation and emission), both in fixed chunks so
//! growth never copies; [`Shard::apply_segments`] merges a whole receive
//! batch with the buckets and slots of later records already being fetched.
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
//!   by eviction when full (`evicted`, least recently updated first,
//!   approximately, D10), or by [`Shard::flush`] (`shutdown`, sorted by first
//!   then key, D8).
//!
//! Eviction (second chance over a queue): every live flow has exactly one
//! current entry in the eviction queue (a `(slot, gen)` pair; pairs of flows
//! that ended are stale and skipped). A flow joins the tail when created. A
//! record that merges into a flow only sets the slot's `touched` mark, in
//! the hot slot it writes anyway: no queue work per record. To make room, the
//! head is taken: if it is marked, the mark is cleared and it rejoins the
//! tail (a second chance); the first unmarked one is evicted. So a flow is
//! evicted only if no record reached it since it last joined the queue, and
//! every flow that joined before it had rejoined or ended: a busy flow
//! outlives any number of one-record flows that came after it, where plain
//! creation order evicted it first. Bounds: a re-queue clears a mark that
//! one record set, so re-queues never outnumber merged records (amortized,
//! at most one per record); and one eviction re-queues at most
//! [`SECOND_CHANCES`] flows, then evicts the head regardless (all the flows
//! it looked at were busy, and the oldest-queued of them goes), so no single
//! record waits on a long run of busy flows. Stale pairs: one per flow that
//! ended, skipped once; the queue is compacted when they outnumber the live
//! flows.

use std::collections::VecDeque;

use super::key::{KeyHasher, KeyPacker, PackedKey};
use super::slab::{Cold, Hot, Slab, CHUNK};
use super::table::FlowTable;
use super::{FlowKey, FlowRecord, KeySpec, Merge, Records};
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
    /// At most this many flows at once; a new flow beyond it evicts the least
    /// recently updated one (approximately: second chance, see the module doc).
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
    /// The last nonzero flowEndReason (IPFIX IE 136) its records carried;
    /// 0 if none did (always for v5).
    pub exporter_end_reason: u8,
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

/// The flow held in slot `i` (end time and reason still to be filled in).
fn flow_of(slab: &Slab, i: u32) -> Flow {
    let (h, c) = (slab.hot(i), slab.cold(i));
    Flow {
        key: h.key.unpack(),
        rec: c.rec,
        records: h.records,
        packets: h.packets,
        octets: h.octets,
        tcp_flags: h.tcp_flags,
        first_ns: h.first_ns,
        last_ns: h.last_ns,
        start_ns: c.start_ns,
        seen_ns: h.seen_ns,
        end_ns: 0,
        end_reason: EndReason::Shutdown,
        exporter_end_reason: h.exp_reason,
    }
}

/// One flow table with its timer wheel. Owned by one thread; no locks.
#[derive(Debug)]
pub struct Shard {
    cfg: ShardConfig,
    packer: KeyPacker,
    /// The flow table hash, seeded at random per shard (hash flooding).
    hasher: KeyHasher,
    table: FlowTable,
    slab: Slab,
    free: Vec<u32>,
    wheel: Wheel,
    /// Eviction queue, in the order flows were created or last given a
    /// second chance: (slot, gen); stale pairs (flows that ended) skipped.
    fifo: VecDeque<(u32, u32)>,
    /// Entries the wheel fired, processed up to `fired_pos` (see [`Shard::advance_bounded`]).
    fired: Vec<Entry>,
    fired_pos: usize,
    stale_timers: usize,
    live: usize,
    now: u64,
    stats: ShardStats,
}

/// How many records ahead of the one being merged `apply_segments` hashes
/// keys and prefetches buckets, and (closer) peeks buckets and prefetches slots.
const LOOKAHEAD: usize = 16;
const PEEK_AHEAD: usize = 8;
/// Ring of hashed keys in flight (a power of two above LOOKAHEAD).
const RING: usize = 32;

/// A record between stage 1 and its merge: its key, the key's hash and
/// what it adds to its flow.
#[derive(Debug, Clone, Copy, Default)]
struct Ahead {
    key: PackedKey,
    hash: u64,
    merge: Merge,
    /// The slot stage 2 found for its hash ([`NO_HINT`] if none): the
    /// record's flow if that slot is live and holds its key.
    hint: u32,
}

const NO_HINT: u32 = u32::MAX;

/// Most flows one eviction re-queues (second chances) before it evicts the
/// queue's head regardless: the bound on one eviction's work.
const SECOND_CHANCES: usize = 32;

/// Stage 1 of record `j` of a batch: its key, hash and merge into the
/// ring, its packets and octets into `sums`, its bucket fetched.
#[inline(always)]
fn stage1<R: Records + ?Sized>(
    table: &FlowTable,
    recs: &R,
    j: usize,
    packer: &KeyPacker,
    hasher: &KeyHasher,
    ring: &mut [Ahead; RING],
    sums: &mut (u64, u64),
) {
    let (key, merge) = recs.key_merge(j, packer);
    let hash = hasher.hash(&key);
    table.prefetch(hash);
    sums.0 += merge.packets;
    sums.1 += merge.octets;
    ring[j % RING] = Ahead { key, hash, merge, hint: NO_HINT };
}

#[inline]
fn ceil_tick(ns: u64) -> u64 {
    ns.div_ceil(TICK_NS)
}

/// A slot's deadline tick and the reason it would end then.
fn deadline(cfg: &ShardConfig, slot: &Hot) -> (u64, EndReason) {
    let idle = ceil_tick(slot.seen_ns.saturating_add(cfg.idle_ns));
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
            packer: cfg.key.packer(),
            hasher: KeyHasher::seeded(),
            cfg,
            table: FlowTable::default(),
            slab: Slab::default(),
            free: Vec::new(),
            wheel: Wheel::new(now / TICK_NS),
            fifo: VecDeque::new(),
            fired: Vec::new(),
            fired_pos: 0,
            stale_timers: 0,
            live: 0,
            now,
            stats: ShardStats::default(),
        }
    }

    /// Make room for `n` flows now, so that the first `n` flows cost no
    /// allocation or table growth, and no page fault for their slots and
    /// buckets (those are written now; the small per-flow queues are only
    /// allocated).
    pub fn reserve(&mut self, n: usize) {
        let n = n.min(self.cfg.max_flows);
        self.table.reserve(n);
        self.slab.reserve(n);
        self.free.reserve(n.min(CHUNK));
        self.fifo.reserve(n);
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
        if self.fired_pos < self.fired.len() {
            return Some(self.now); // due flows not yet emitted
        }
        self.wheel.next_deadline().map(|t| t.saturating_mul(TICK_NS))
    }

    /// Move the clock to `now` and emit every flow whose deadline has passed.
    pub fn advance(&mut self, now: u64, out: &mut Vec<Flow>) {
        while self.advance_bounded(now, out, usize::MAX) {}
    }

    /// [`Shard::advance`] that emits at most `max` flows per call, so that a
    /// caller can hand them on in bounded batches (a timer tick may end
    /// millions). True while due flows remain: call again with the same
    /// `now`, and no record applied in between, until it returns false.
    pub fn advance_bounded(&mut self, now: u64, out: &mut Vec<Flow>, max: usize) -> bool {
        debug_assert!(
            self.fired_pos == self.fired.len() || now <= self.now,
            "advance_bounded: a later now while flows of an earlier one are pending"
        );
        self.now = self.now.max(now);
        let now_tick = self.now / TICK_NS;
        if self.fired_pos == self.fired.len() {
            self.fired.clear();
            self.fired_pos = 0;
            self.wheel.advance(now_tick, &mut self.fired);
        }
        let mut emitted = 0;
        while emitted < max && self.fired_pos < self.fired.len() {
            let e = self.fired[self.fired_pos];
            self.fired_pos += 1;
            let slot = self.slab.hot(e.id);
            if !slot.live || slot.gen != e.gen || slot.scheduled != e.at {
                self.stale_timers -= 1;
                continue;
            }
            let (tick, reason) = deadline(&self.cfg, slot);
            if tick <= now_tick {
                self.finish(e.id, tick * TICK_NS, reason, out);
                emitted += 1;
            } else {
                self.slab.hot_mut(e.id).scheduled = tick;
                let rescheduled = self.wheel.insert(Entry { id: e.id, gen: e.gen, at: tick });
                debug_assert!(rescheduled.is_ok(), "tick {tick} > now {now_tick}");
            }
        }
        self.fired_pos < self.fired.len()
    }

    /// Whether the flow keyed `key` (a key under this shard's [`KeySpec`]:
    /// fields outside it zero) is live here. For `--pair`, which asks
    /// whether a direction's partner is still open (`crate::pair`).
    pub fn contains(&self, key: &FlowKey) -> bool {
        let packed = key.pack();
        let hash = self.hasher.hash(&packed);
        let slab = &self.slab;
        self.table.find_new(hash, |s| slab.hot(s).key == packed).is_some()
            || self.table.find_old(hash, |s| slab.hot(s).key == packed).is_some()
    }

    /// Merge one record at collector time `now` (call [`Shard::advance`] first).
    /// A new flow beyond `max_flows` evicts the least recently updated one
    /// (approximately) into `out`.
    pub fn apply(&mut self, now: u64, rec: &FlowRecord, out: &mut Vec<Flow>) {
        debug_assert!(
            now >= self.now || now / TICK_NS <= self.wheel.elapsed(),
            "apply before advance"
        );
        let key = self.packer.pack(rec);
        let a = Ahead { hash: self.hasher.hash(&key), key, merge: Merge::from(rec), hint: NO_HINT };
        self.count(&a.merge);
        self.stats.records += 1;
        let now = self.now.max(now);
        self.apply_hashed(now, std::slice::from_ref(rec), 0, &a, out);
    }

    /// [`Shard::apply`] for many records at the same `now`, in order, with
    /// the same result (see [`Shard::apply_segments`]).
    pub fn apply_batch(&mut self, now: u64, recs: &[FlowRecord], out: &mut Vec<Flow>) {
        self.apply_segments(recs, &[(recs.len(), now)], out);
    }

    /// Apply `recs` in order, in segments: `segs[k] = (end, now)` says that
    /// the records before index `end` (and after the previous segment's)
    /// arrived at `now`; the clock advances to each segment's `now` before
    /// its records, so the result is exactly that of [`Shard::advance`] and
    /// [`Shard::apply`] record by record. (A segment is one datagram of a
    /// receive batch; `now` never decreases across segments.)
    ///
    /// Software-pipelined: while record `i` is merged, the slot of record
    /// `i + PEEK_AHEAD` and the bucket of record `i + LOOKAHEAD` are being
    /// fetched, so a steady stream of cache misses overlaps instead of
    /// stalling once per record. The loop runs per segment (the clock moves
    /// only between segments), and all but the last `LOOKAHEAD` records of
    /// the batch take a loop with every stage and no stage checks.
    pub fn apply_segments<R: Records + ?Sized>(
        &mut self,
        recs: &R,
        segs: &[(usize, u64)],
        out: &mut Vec<Flow>,
    ) {
        let n = recs.len();
        // A copy: `apply_hashed` takes `&mut self`, after which the masks
        // would be read from `self` again for every record.
        let packer = self.packer;
        let hasher = self.hasher.clone();
        let mut ring = [Ahead::default(); RING];
        // Packets and octets of the records through stage 1.
        let mut sums = (0u64, 0u64);
        for j in 0..n.min(LOOKAHEAD) {
            stage1(&self.table, recs, j, &packer, &hasher, &mut ring, &mut sums);
        }
        for a in &mut ring[..n.min(PEEK_AHEAD)] {
            self.peek(a);
        }
        let steady = n.saturating_sub(LOOKAHEAD);
        let (mut i, mut now) = (0, self.now);
        for &(end, t) in segs {
            if end <= i {
                continue; // no records (or none of its own): the clock waits for one
            }
            if t > now {
                now = t;
                self.advance(now, out);
            }
            let end = end.min(n);
            while i < end.min(steady) {
                // Stage 1 of i + LOOKAHEAD, stage 2 of i + PEEK_AHEAD, merge of i.
                stage1(&self.table, recs, i + LOOKAHEAD, &packer, &hasher, &mut ring, &mut sums);
                self.peek(&mut ring[(i + PEEK_AHEAD) % RING]);
                self.apply_hashed(now, recs, i, &ring[i % RING], out);
                i += 1;
            }
            if i < end {
                self.apply_tail(now, recs, i..end, &mut ring, out);
                i = end;
            }
        }
        if i < n {
            // Records i.. are not applied: take those through stage 1 back out.
            for a in (i..n.min(i + LOOKAHEAD)).map(|k| &ring[k % RING]) {
                sums.0 -= a.merge.packets;
                sums.1 -= a.merge.octets;
            }
        }
        self.stats.records += i as u64;
        self.stats.packets += sums.0;
        self.stats.octets += sums.1;
        if i < n {
            debug_assert!(false, "record {i} past the last segment");
            return;
        }
        // Datagrams after the last record still move the clock.
        if let Some(&(_, t)) = segs.last() {
            if t > now {
                self.advance(t, out);
            }
        }
    }

    /// Stage 2 of a record: fetch the slot its bucket's probe run points to.
    #[inline]
    fn peek(&self, a: &mut Ahead) {
        if let Some(slot) = self.table.peek(a.hash) {
            self.slab.prefetch(slot);
            a.hint = slot;
        }
    }

    /// Count a record in the shard's stats.
    fn count(&mut self, m: &Merge) {
        self.stats.packets += m.packets;
        self.stats.octets += m.octets;
    }

    /// Merge records `range` of a segment among the batch's last
    /// `LOOKAHEAD` (their stage 1 done), with the stage checks the steady
    /// loop goes without; out of line.
    #[inline(never)]
    fn apply_tail<R: Records + ?Sized>(
        &mut self,
        now: u64,
        recs: &R,
        range: std::ops::Range<usize>,
        ring: &mut [Ahead; RING],
        out: &mut Vec<Flow>,
    ) {
        for i in range {
            if i + PEEK_AHEAD < recs.len() {
                self.peek(&mut ring[(i + PEEK_AHEAD) % RING]);
            }
            self.apply_hashed(now, recs, i, &ring[i % RING], out);
        }
    }

    /// Merge record `i` of `recs`, whose key, hash and merge are `a`, at
    /// `now` (at least the shard's clock). The caller counts it in the stats.
    #[inline]
    fn apply_hashed<R: Records + ?Sized>(
        &mut self,
        now: u64,
        recs: &R,
        i: usize,
        a: &Ahead,
        out: &mut Vec<Flow>,
    ) {
        debug_assert!(now >= self.now, "apply before advance");
        debug_assert!(self.fired_pos == self.fired.len(), "apply with due flows pending");
        let slab = &self.slab;
        // A live slot holding the key is the key's flow (a key has one at most).
        if a.hint != NO_HINT && slab.hot(a.hint).key == a.key && slab.hot(a.hint).live {
            self.update(a.hint, now, &a.merge);
            return;
        }
        if let Some(idx) = self.table.find_new(a.hash, |s| slab.hot(s).key == a.key) {
            self.update(idx, now, &a.merge);
            return;
        }
        // A miss so far, or a key still in the array being drained.
        if let Some(idx) = self.table.find_old(a.hash, |s| slab.hot(s).key == a.key) {
            self.update_cold(idx, now, &a.merge);
            return;
        }
        if self.live >= self.cfg.max_flows {
            self.evict_lru(now, out);
        }
        self.create(a.key, a.hash, now, &a.merge, &recs.record(i));
    }

    /// Emit every remaining flow with reason `shutdown`, sorted by first then
    /// key (D8). The shard is empty afterwards and can be reused.
    pub fn flush(&mut self, now: u64, out: &mut Vec<Flow>) {
        self.now = self.now.max(now);
        let start = out.len();
        for i in 0..self.slab.len as u32 {
            if self.slab.hot(i).live {
                let mut f = flow_of(&self.slab, i);
                f.end_ns = self.now;
                f.end_reason = EndReason::Shutdown;
                out.push(f);
            }
        }
        out[start..].sort_unstable_by_key(|f| (f.first_ns, f.key));
        self.stats.flows[EndReason::Shutdown as usize] += (out.len() - start) as u64;
        self.table.clear();
        self.slab.clear();
        self.free.clear();
        self.fifo.clear();
        self.wheel = Wheel::new(self.now / TICK_NS);
        self.fired.clear();
        self.fired_pos = 0;
        self.stale_timers = 0;
        self.live = 0;
    }

    /// [`Shard::update`] out of line (a key found in the flow table's old array).
    #[cold]
    #[inline(never)]
    fn update_cold(&mut self, idx: u32, now: u64, m: &Merge) {
        self.update(idx, now, m);
    }

    #[inline]
    fn update(&mut self, idx: u32, now: u64, m: &Merge) {
        let f = self.slab.hot_mut(idx);
        f.records += 1;
        f.packets += m.packets;
        f.octets += m.octets;
        f.tcp_flags |= m.tcp_flags;
        f.first_ns = f.first_ns.min(m.first_ns);
        f.last_ns = f.last_ns.max(m.last_ns);
        f.seen_ns = now;
        f.touched = true;
        if m.is_special() {
            self.special(idx, now, m);
        }
    }

    /// A record with FIN/RST or a flowEndReason reached flow `idx` at `now`:
    /// keep the reason, and linger if it ends the connection. Out of line:
    /// one record of a flow, at most a few, takes it.
    #[inline(never)]
    fn special(&mut self, idx: u32, now: u64, m: &Merge) {
        if m.end_reason != 0 {
            self.slab.hot_mut(idx).exp_reason = m.end_reason;
        }
        if m.ends_connection() {
            self.linger(idx, now);
        }
    }

    /// A FIN/RST record reached flow `idx` at `now`: (re)start its linger,
    /// and move its wheel entry earlier if the deadline moved earlier. Out
    /// of line: one record of a flow, at most a few, takes it.
    #[inline(never)]
    fn linger(&mut self, idx: u32, now: u64) {
        let linger = self.cfg.linger_ns;
        let f = self.slab.hot_mut(idx);
        f.fin_ns = now.saturating_add(linger);
        let (tick, _) = deadline(&self.cfg, f);
        if tick < f.scheduled {
            self.stale_timers += 1;
            self.schedule(idx, tick);
        }
    }

    /// A new flow from its first record `rec`, which adds `m` (the record's
    /// [`Merge`]).
    fn create(&mut self, key: PackedKey, hash: u64, now: u64, m: &Merge, rec: &FlowRecord) {
        let fin_ns =
            if m.ends_connection() { now.saturating_add(self.cfg.linger_ns) } else { u64::MAX };
        let mut hot = Hot {
            key,
            records: 1,
            packets: m.packets,
            octets: m.octets,
            first_ns: m.first_ns,
            last_ns: m.last_ns,
            seen_ns: now,
            fin_ns,
            scheduled: 0,
            hash,
            gen: 0,
            tcp_flags: m.tcp_flags,
            live: true,
            touched: false,
            exp_reason: m.end_reason,
        };
        let cold = Cold { rec: *rec, start_ns: now };
        let idx = match self.free.pop() {
            Some(i) => {
                hot.gen = self.slab.hot(i).gen;
                *self.slab.hot_mut(i) = hot;
                *self.slab.cold_mut(i) = cold;
                i
            }
            None => self.slab.push(hot, cold),
        };
        self.table.insert(hash, idx);
        self.live += 1;
        self.fifo.push_back((idx, hot.gen));
        if self.fifo.len() > 2 * self.live + 1024 {
            let slab = &self.slab;
            self.fifo.retain(|&(i, g)| {
                let s = slab.hot(i);
                s.live && s.gen == g
            });
        }
        let (tick, _) = deadline(&self.cfg, &hot);
        self.schedule(idx, tick);
    }

    /// Make `tick` the slot's current deadline entry. A tick already due
    /// (zero timeouts) goes in at the next tick: flows never end inside `apply`.
    fn schedule(&mut self, idx: u32, tick: u64) {
        let tick = tick.max(self.wheel.elapsed() + 1);
        let slot = self.slab.hot_mut(idx);
        slot.scheduled = tick;
        let res = self.wheel.insert(Entry { id: idx, gen: slot.gen, at: tick });
        debug_assert!(res.is_ok());
        if self.stale_timers > self.live + 1024 {
            let slab = &self.slab;
            self.wheel.retain(|e| {
                let s = slab.hot(e.id);
                s.live && s.gen == e.gen && s.scheduled == e.at
            });
            self.stale_timers = 0;
            self.stats.wheel_compactions += 1;
        }
    }

    /// Emit the least recently updated flow, approximately (second chance,
    /// D10): the queue's head is evicted unless it was updated since it
    /// joined the queue, in which case its mark is cleared and it joins the
    /// tail again. At most [`SECOND_CHANCES`] re-queues per eviction; past
    /// that the head goes regardless (every flow looked at was busy).
    fn evict_lru(&mut self, now: u64, out: &mut Vec<Flow>) {
        let mut chances = 0;
        while let Some((i, g)) = self.fifo.pop_front() {
            let s = self.slab.hot_mut(i);
            if !s.live || s.gen != g {
                continue;
            }
            if s.touched && chances < SECOND_CHANCES {
                s.touched = false;
                chances += 1;
                self.fifo.push_back((i, g));
                continue;
            }
            self.stale_timers += 1;
            self.finish(i, now, EndReason::Evicted, out);
            return;
        }
        debug_assert!(false, "full shard with an empty fifo: live={}", self.live);
    }

    fn finish(&mut self, idx: u32, end_ns: u64, reason: EndReason, out: &mut Vec<Flow>) {
        let mut f = flow_of(&self.slab, idx);
        let slot = self.slab.hot_mut(idx);
        debug_assert!(slot.live);
        slot.live = false;
        slot.gen = slot.gen.wrapping_add(1);
        let removed = self.table.remove(slot.hash, idx);
        debug_assert!(removed, "live slot {idx} missing from the table");
        self.free.push(idx);
        self.live -= 1;
        f.end_ns = end_ns;
        f.end_reason = reason;
        self.stats.flows[reason as usize] += 1;
        out.push(f);
    }
}
