//! The record pipeline of a shard: [`Shard::apply`], [`Shard::apply_batch`]
//! and [`Shard::apply_segments`], and what a record does to its flow
//! (merge into it, or create it).
//!
//! A record goes through three stages, each a few records behind the
//! previous one, so that the cache misses of a batch overlap:
//! 1. its key is packed, its context interned (a compare against the last
//!    one, `context.rs`), the compact key hashed and its bucket prefetched;
//! 2. its bucket is peeked and the hot line of the slot it points to
//!    prefetched;
//! 3. it is merged: the hot line is compared and written, nothing else is
//!    touched (no timer, eviction or free-list structure; the idle deadline
//!    lives in the slot, the wheel re-reads it lazily).
//!
//! Context ids computed in stage 1 stay valid until the batch ends: no id
//! is freed before (`Contexts::sweep` runs after the last merge).
//!
//! IPv6: a record of the IPv6 family (`slab6.rs`) takes `apply6.rs`'s
//! path, one record at a time. The pipeline here is the IPv4 family's: a
//! batch that can hold IPv6 records (not a v5 receive batch:
//! [`Records::V4_ONLY`]) and does is applied record by record instead
//! (`Shard::run_mixed`), with the same result.

use super::key::{origin_words, v4_bits};
use super::merge::Merge;
use super::shard::{EndReason, Flow, Shard, TICK_NS};
use super::slab::{Cold, Hot, Tuple, FULL, HAS_FIN, LIVE, TOUCHED};
use super::slab6::is_v6;
use super::table::FlowTable;
use super::{FlowRecord, KeyHasher, KeyPacker, Records};
use crate::flow::context::Contexts;

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
    key: Tuple,
    hash: u64,
    merge: Merge,
    /// The slot stage 2 found for its hash ([`NO_HINT`] if none): the
    /// record's flow if that slot is live and holds its key.
    hint: u32,
}

const NO_HINT: u32 = u32::MAX;

/// Stage 1 of record `j` of a batch: its key (context interned), hash and
/// merge into the ring, its packets and octets into `sums`, its bucket
/// fetched.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn stage1<R: Records + ?Sized, const SIMPLE: bool>(
    table: &FlowTable,
    contexts: &mut Contexts,
    recs: &R,
    j: usize,
    packer: &KeyPacker,
    hasher: &KeyHasher,
    ring: &mut [Ahead; RING],
    sums: &mut (u64, u64),
) {
    let a = ahead::<R, SIMPLE>(contexts, recs, j, packer, hasher);
    table.prefetch(a.hash);
    sums.0 += a.merge.packets;
    sums.1 += a.merge.octets;
    ring[j % RING] = a;
}

/// Record `j`'s key (its context interned), hash and merge.
#[inline(always)]
fn ahead<R: Records + ?Sized, const SIMPLE: bool>(
    contexts: &mut Contexts,
    recs: &R,
    j: usize,
    packer: &KeyPacker,
    hasher: &KeyHasher,
) -> Ahead {
    let (pk, merge) = recs.key_merge(j, packer);
    let ctx = if SIMPLE {
        contexts.intern_exporter(&pk, packer.context_rest())
    } else {
        contexts.intern(&pk.context())
    };
    let key = Tuple::new(pk.addrs(), ctx, pk.ports(), pk.proto());
    let (a, b) = key.words();
    Ahead { key, hash: hasher.hash2(a, b), merge, hint: NO_HINT }
}

/// What a record adds to its flow's hot line (all of a merge but the
/// FIN/RST and end reason path).
#[inline(always)]
fn merge_into(f: &mut Hot, idle_at: u32, m: &Merge) {
    f.records += 1;
    f.packets += m.packets;
    f.octets += m.octets;
    f.tcp_flags |= m.tcp_flags;
    f.first_ns = f.first_ns.min(m.first_ns);
    f.last_ns = f.last_ns.max(m.last_ns);
    f.idle_at = idle_at;
    f.set(TOUCHED);
}

impl Shard {
    /// Merge one record at collector time `now` (call [`Shard::advance`] first).
    /// A new flow beyond `max_flows` evicts the least recently updated one
    /// (approximately) into `out`.
    pub fn apply(&mut self, now: u64, rec: &FlowRecord, out: &mut Vec<Flow>) {
        debug_assert!(
            now >= self.now || now / TICK_NS <= self.wheel.elapsed(),
            "apply before advance"
        );
        let now = self.now.max(now);
        let idle_at = self.idle_at(now);
        self.apply_one(now, idle_at, rec, out);
        self.contexts.sweep();
    }

    /// Merge one record of either family at `now` (at least the shard's
    /// clock), due at `idle_at`, counted in the stats; no context sweep.
    #[inline]
    pub(super) fn apply_one(
        &mut self,
        now: u64,
        idle_at: u32,
        rec: &FlowRecord,
        out: &mut Vec<Flow>,
    ) {
        if is_v6(rec) {
            self.apply6(now, idle_at, rec, out);
            return;
        }
        // One record: no pipeline, so no ring to fill (this is the path of
        // every v9/IPFIX record and every record of a replay).
        let recs = std::slice::from_ref(rec);
        let a = ahead::<_, false>(&mut self.contexts, recs, 0, &self.packer, &self.hasher);
        self.stats.records += 1;
        self.stats.packets += a.merge.packets;
        self.stats.octets += a.merge.octets;
        self.apply_hashed::<_, false, true>(now, idle_at, recs, 0, &a, out);
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
        // IPv6 records, or IPv6 flows an IPv4 record may have to find
        // (`apply6.rs`): record by record.
        if (self.v6.live != 0 && self.v6.cross)
            || !R::V4_ONLY && (0..recs.len()).any(|i| recs.is_v6(i))
        {
            self.run_mixed(recs, segs, out);
        } else if self.simple {
            self.run::<R, true>(recs, segs, out);
        } else {
            self.run::<R, false>(recs, segs, out);
        }
    }

    /// [`Shard::apply_segments`], for a key spec that is `simple` or not
    /// (`Shard::simple`: the whole 5-tuple and no context field but the
    /// exporter, as the default key; then the tuple needs no masks and a
    /// context is the exporter's two words).
    #[inline(always)]
    fn run<R: Records + ?Sized, const SIMPLE: bool>(
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
            stage1::<_, SIMPLE>(
                &self.table,
                &mut self.contexts,
                recs,
                j,
                &packer,
                &hasher,
                &mut ring,
                &mut sums,
            );
        }
        for a in &mut ring[..n.min(PEEK_AHEAD)] {
            self.peek(a);
        }
        let steady = n.saturating_sub(LOOKAHEAD);
        let (mut i, mut now) = (0, self.now);
        let mut idle_at = self.idle_at(now);
        for &(end, t) in segs {
            if end <= i {
                continue; // no records (or none of its own): the clock waits for one
            }
            if t > now {
                now = t;
                self.expire_all(now, out);
                idle_at = self.idle_at(now);
            }
            let end = end.min(n);
            while i < end.min(steady) {
                // Stage 1 of i + LOOKAHEAD, stage 2 of i + PEEK_AHEAD, merge of i.
                stage1::<_, SIMPLE>(
                    &self.table,
                    &mut self.contexts,
                    recs,
                    i + LOOKAHEAD,
                    &packer,
                    &hasher,
                    &mut ring,
                    &mut sums,
                );
                self.peek(&mut ring[(i + PEEK_AHEAD) % RING]);
                self.apply_hashed::<_, SIMPLE, false>(now, idle_at, recs, i, &ring[i % RING], out);
                i += 1;
            }
            if i < end {
                self.apply_tail::<_, SIMPLE>(now, idle_at, recs, i..end, &mut ring, out);
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
        } else if let Some(&(_, t)) = segs.last() {
            // Datagrams after the last record still move the clock.
            if t > now {
                self.expire_all(t, out);
            }
        }
        // No key of this batch is pending any more.
        self.contexts.sweep();
    }

    /// Stage 2 of a record: fetch the slot its bucket's probe run points to.
    #[inline]
    fn peek(&self, a: &mut Ahead) {
        if let Some(slot) = self.table.peek(a.hash) {
            self.slab.prefetch(slot);
            a.hint = slot;
        }
    }

    /// Merge records `range` of a segment among the batch's last
    /// `LOOKAHEAD` (their stage 1 done), with the stage checks the steady
    /// loop goes without; out of line.
    #[inline(never)]
    fn apply_tail<R: Records + ?Sized, const SIMPLE: bool>(
        &mut self,
        now: u64,
        idle_at: u32,
        recs: &R,
        range: std::ops::Range<usize>,
        ring: &mut [Ahead; RING],
        out: &mut Vec<Flow>,
    ) {
        for i in range {
            if i + PEEK_AHEAD < recs.len() {
                self.peek(&mut ring[(i + PEEK_AHEAD) % RING]);
            }
            self.apply_hashed::<_, SIMPLE, false>(now, idle_at, recs, i, &ring[i % RING], out);
        }
    }

    /// Merge record `i` of `recs`, whose key, hash and merge are `a`, at
    /// `now` (at least the shard's clock), making the flow due at `idle_at`
    /// ([`Shard::idle_at`] of `now`). The caller counts it in the stats.
    /// With `CROSS` (one record at a time: [`Shard::apply_one`]) a key that
    /// keeps one address or none also looks for its flow among the IPv6
    /// family's; the pipeline goes without (its batches never meet an IPv6
    /// flow then: [`Shard::apply_segments`]), so its code is the IPv4 one alone.
    #[inline]
    fn apply_hashed<R: Records + ?Sized, const SIMPLE: bool, const CROSS: bool>(
        &mut self,
        now: u64,
        idle_at: u32,
        recs: &R,
        i: usize,
        a: &Ahead,
        out: &mut Vec<Flow>,
    ) {
        debug_assert!(now >= self.now, "apply before advance");
        debug_assert!(!self.pending(), "apply with due flows pending");
        let (key, m) = (&a.key, &a.merge);
        let mask = if SIMPLE { &FULL } else { &self.mask };
        // A live slot holding the key is the key's flow (a key has one at most).
        if a.hint != NO_HINT {
            let h = self.slab.hot_mut(a.hint);
            if h.holds::<SIMPLE>(key, mask) {
                merge_into(h, idle_at, m);
                if m.is_special() {
                    self.special(a.hint, now, m);
                }
                return;
            }
        }
        let slab = &self.slab;
        if let Some(idx) = self.table.find_new(a.hash, |s| slab.hot(s).holds::<SIMPLE>(key, mask)) {
            self.update(idx, now, idle_at, m);
            return;
        }
        // A miss so far, or a key still in the array being drained.
        if let Some(idx) = self.table.find_old(a.hash, |s| slab.hot(s).holds::<SIMPLE>(key, mask)) {
            self.update_cold(idx, now, idle_at, m);
            return;
        }
        // A key that keeps one address or none may have its flow in the
        // IPv6 family (never with the default key).
        if CROSS && self.v6.cross && self.merge6_of_v4(key, now, idle_at, m) {
            return;
        }
        if self.live >= self.cfg.max_flows {
            self.evict(now, out);
        }
        self.create(key, a.hash, now, idle_at, m, &recs.record(i));
    }

    /// [`Shard::update`] out of line (a key found in the flow table's old array).
    #[cold]
    #[inline(never)]
    fn update_cold(&mut self, idx: u32, now: u64, idle_at: u32, m: &Merge) {
        self.update(idx, now, idle_at, m);
    }

    /// A record merges into flow `idx`: its hot line only (and the cold
    /// part for a FIN/RST or an exporter's end of flow).
    #[inline]
    pub(super) fn update(&mut self, idx: u32, now: u64, idle_at: u32, m: &Merge) {
        merge_into(self.slab.hot_mut(idx), idle_at, m);
        if m.is_special() {
            self.special(idx, now, m);
        }
    }

    /// A new flow from its first record `rec` (key `key`, hash `hash`),
    /// which adds `m` (the record's [`Merge`]).
    fn create(
        &mut self,
        key: &Tuple,
        hash: u64,
        now: u64,
        idle_at: u32,
        m: &Merge,
        rec: &FlowRecord,
    ) {
        let origin = self.contexts.intern(&origin_words(rec));
        self.contexts.acquire(key.ctx());
        self.contexts.acquire(origin);
        let fin = m.ends_connection();
        let idx = self.slab.alloc();
        *self.slab.hot_mut(idx) = Hot {
            packets: m.packets,
            octets: m.octets,
            first_ns: m.first_ns,
            last_ns: m.last_ns,
            records: 1,
            addrs: (v4_bits(rec.src_addr) as u64) << 32 | v4_bits(rec.dst_addr) as u64,
            pc: key.pc & 0xffff_ffff_0000_0000 | (rec.src_port as u64) << 16 | rec.dst_port as u64,
            idle_at,
            ps: ((LIVE | if fin { HAS_FIN } else { 0 }) as u16) << 8 | rec.proto as u16,
            tcp_flags: m.tcp_flags,
            exp_reason: m.end_reason,
        };
        *self.slab.cold_mut(idx) = Cold {
            start_ns: now,
            fin: if fin { self.fin_at(now) } else { 0 },
            origin,
            nexthop: v4_bits(rec.nexthop),
            src_as: rec.src_as,
            dst_as: rec.dst_as,
            input: rec.input,
            output: rec.output,
            tos: rec.tos,
            src_mask: rec.src_mask,
            dst_mask: rec.dst_mask,
            ..Cold::default()
        };
        self.table.insert(hash, idx);
        self.live += 1;
        self.link(idx);
    }

    /// Emit the flow in slot `i`, still linked in the wheel, as evicted.
    pub(super) fn evict_slot(&mut self, i: u32, now: u64, out: &mut Vec<Flow>) {
        self.wheel.remove(&mut self.slab, i);
        self.finish(i, now, EndReason::Evicted, out);
    }
}
