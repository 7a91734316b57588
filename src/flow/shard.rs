//! The flow shard: a flow table ([`FlowTable`]) over a slab of slots
//! (`slab.rs`), a hierarchical timer wheel linked through the slots
//! ([`Wheel`]), a CLOCK hand for eviction and a context interner.
//!
//! Files: this one holds the shard's types, its state and what ends a flow
//! (`finish`, `flush`); `apply.rs` the record pipeline, `expiry.rs` the
//! deadlines and the wheel, `evict.rs` the eviction hand, `context.rs` the
//! interner, `slab.rs` the slot layout.
//!
//! Layout for speed: a slot is split into a hot part (key as a context id
//! and 5-tuple, counters, times, idle deadline, flags: one cache line,
//! touched by every record) and a cold part (first record's attributes,
//! linger deadline, wheel links: touched at creation, FIN/RST, expiry and
//! emission), both in fixed chunks so growth never copies;
//! [`Shard::apply_segments`] merges a whole receive batch with the buckets
//! and slots of later records already being fetched. A record that merges
//! into its flow touches its bucket and its hot line and nothing else: no
//! timer, eviction or free-list structure.
//!
//! Ground rules:
//! - Every live flow is linked into the wheel exactly once (a slot list or
//!   the fired list); a flow that ends is unlinked; nothing goes stale.
//! - A flow's deadline is `min(seen + idle, fin + linger)` (D3, D4), at 1 ms
//!   resolution, rounded up. Records that move the deadline *later* only
//!   write the slot: when its wheel slot is processed the wheel reads the
//!   deadline again and re-places it (lazy rescheduling, `timer` module
//!   doc). A FIN/RST that moves it *earlier* unlinks and re-links it.
//! - `advance(now)` must be called before records of time `now` are applied;
//!   time never goes backwards (a smaller `now` is clamped).
//! - Every flow leaves exactly once (D5): by its deadline (`fin`, `idle`),
//!   by eviction when full (`evicted`, least recently updated first,
//!   approximately, D10, `evict.rs`), or by [`Shard::flush`] (`shutdown`,
//!   sorted by first then key, D8).
//! - Context ids are released only at the end of a batch or a public
//!   advance, never while keys of the pipeline's lookahead are pending
//!   (`context.rs`).
//!
//! Memory per flow: 64 (hot) + 48 (cold) + 8 per bucket at the table's
//! load (5/16 to 5/8: 12.8 to 25.6 bytes per flow), and nothing else per
//! flow (the wheel holds 2 x 385 list ends, the hand one index, the free
//! list runs through the slots; contexts are per distinct context).
//!
//! Address families: a record with an IPv6 address goes to the IPv6
//! family (`slab6.rs`): its own slab of 128-byte hot parts (same cold
//! part), its own table and its own timer wheel (`Shard::v6`,
//! advanced in step with the IPv4 one), so nothing on the IPv4 path
//! changes; the eviction hand sweeps both slabs in turn, `max_flows` counts
//! both, contexts are shared (`apply6.rs`). An IPv6 flow takes 128 + 48
//! bytes plus its bucket.

use std::net::{IpAddr, Ipv4Addr};

use super::context::Contexts;
use super::key::{context_fields, KeyHasher, KeyPacker, PackedKey};
use super::record::{V4_ZERO, ZERO};
use super::slab::{Slab, Tuple, TupleMask, LIVE};
use super::slab6::{addr, is_v6, Hot6, Tuple6, TupleMask6, DST4, NEXT4, SRC4};
use super::table::FlowTable;
use super::{FlowKey, FlowRecord, KeySpec};
use crate::timer::Wheel;

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
    /// recently updated one (approximately: second chance, see `evict.rs`).
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
    /// A shard keeps only those: its packets, octets, times and tcp flags
    /// are the flow's (the same as the fields below).
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
    /// Collector time of its first record (ns).
    pub start_ns: u64,
    /// Collector time of its latest record, to the millisecond: the shard
    /// keeps it as the idle deadline it makes, so this is that deadline
    /// less the idle timeout (at most 1 ms after the record), and never
    /// after `end_ns`.
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
    /// Always 0 since the wheel links its flows in place (no stale entries
    /// to compact); kept as a `--stats-json` key.
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

/// One flow table with its timer wheel. Owned by one thread; no locks.
#[derive(Debug)]
pub struct Shard {
    pub(super) cfg: ShardConfig,
    pub(super) packer: KeyPacker,
    /// The 5-tuple bits the key keeps.
    pub(super) mask: TupleMask,
    /// The key keeps the whole 5-tuple and no context field but the
    /// exporter (the default key, or the origin key): the pipeline's
    /// specialized path (`apply.rs`).
    pub(super) simple: bool,
    /// The flow table hash, seeded at random per shard (hash flooding).
    pub(super) hasher: KeyHasher,
    pub(super) table: FlowTable,
    pub(super) slab: Slab,
    pub(super) wheel: Wheel,
    /// The IPv6 family (`slab6.rs`, `apply6.rs`), boxed: the IPv4 path
    /// sees one pointer of it.
    pub(super) v6: Box<Family6>,
    pub(super) contexts: Contexts,
    /// The eviction hand: the next slot it looks at (`evict.rs`), in the
    /// IPv6 slab if `v6.hand_v6`, else the IPv4 one.
    pub(super) hand: u32,
    /// Flows held, both families.
    pub(super) live: usize,
    pub(super) now: u64,
    pub(super) stats: ShardStats,
}

/// A shard's IPv6 slot family: its masks, index, slots and timer wheel
/// (at the IPv4 wheel's `elapsed` whenever it holds flows: `expiry.rs`).
#[derive(Debug)]
pub(super) struct Family6 {
    pub(super) mask: TupleMask6,
    pub(super) table: FlowTable,
    pub(super) slab: Slab<Hot6>,
    pub(super) wheel: Wheel,
    /// Flows of the family held (in [`Shard::live`] too): its wheel holds
    /// flows exactly when this is not 0.
    pub(super) live: usize,
    /// The key keeps one address or none: a key may then have records of
    /// both families, so a record that finds no flow in its own family
    /// looks in the other's before it makes one (`apply6.rs`).
    pub(super) cross: bool,
    /// The eviction hand is in this family's slab (`evict.rs`).
    pub(super) hand_v6: bool,
}

/// The longest idle or linger timeout a shard takes: its deadlines are
/// kept modulo 2^32 ms and must stay within 2^31 ms of its clock (`slab.rs`).
pub const MAX_TIMEOUT_NS: u64 = ((1u64 << 31) - 2) * TICK_NS;

impl Shard {
    /// A shard whose clock starts at `now` (ns).
    pub fn new(cfg: ShardConfig, now: u64) -> Self {
        assert!(cfg.max_flows >= 1, "max_flows must be at least 1");
        assert!(
            cfg.idle_ns <= MAX_TIMEOUT_NS && cfg.linger_ns <= MAX_TIMEOUT_NS,
            "idle and linger must be below 2^31 ms (24.8 days)"
        );
        let packer = cfg.key.packer();
        let (addrs, ports, proto) = packer.tuple_masks();
        let simple =
            packer.exporter_only() && (addrs, ports, proto) == (u64::MAX, u32::MAX, u8::MAX);
        let mask = TupleMask {
            addrs,
            pc: 0xffff_ffff_0000_0000 | ports as u64,
            ps: (LIVE as u16) << 8 | proto as u16,
        };
        let (src, dst) = (addrs >> 32 != 0, addrs as u32 != 0);
        Shard {
            packer,
            simple,
            mask,
            hasher: KeyHasher::seeded(),
            cfg,
            table: FlowTable::default(),
            slab: Slab::default(),
            wheel: Wheel::new(now / TICK_NS),
            v6: Box::new(Family6 {
                mask: TupleMask6::new(src, dst, mask.pc, mask.ps),
                table: FlowTable::default(),
                slab: Slab::default(),
                wheel: Wheel::new(now / TICK_NS),
                live: 0,
                cross: !(src && dst),
                hand_v6: false,
            }),
            contexts: Contexts::default(),
            hand: 0,
            live: 0,
            now,
            stats: ShardStats::default(),
        }
    }

    /// Make room for `n` flows now, so that the first `n` flows cost no
    /// allocation or table growth, and no page fault for their slots and
    /// buckets (those are written now). IPv4 flows: the IPv6 family grows
    /// as its flows come (reserving both would double the memory held).
    pub fn reserve(&mut self, n: usize) {
        let n = n.min(self.cfg.max_flows);
        self.table.reserve(n);
        self.slab.reserve(n);
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

    /// Flows linked in the timer wheels: exactly the flows held (no stale entries).
    pub fn wheel_len(&self) -> usize {
        self.wheel.len() + self.v6.wheel.len()
    }

    /// Flows held now of the IPv6 family (a source or destination address
    /// is IPv6), included in [`Shard::len`].
    pub fn len_v6(&self) -> usize {
        self.v6.live
    }

    /// Context ids held (at most two per flow between batches).
    #[cfg(test)]
    pub(super) fn contexts_len(&self) -> usize {
        self.contexts.len()
    }

    /// The shard's clock (ns).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Whether the flow keyed `key` (a key under this shard's [`KeySpec`]:
    /// fields outside it zero) is live here. For `--pair`, which asks
    /// whether a direction's partner is still open (`crate::pair`). A
    /// lookup only: a context the shard does not hold means no such flow.
    pub fn contains(&self, key: &FlowKey) -> bool {
        let pk = key.pack();
        let Some(ctx) = self.contexts.find(&pk.context()) else {
            return false;
        };
        let rec = FlowRecord { src_addr: key.src, dst_addr: key.dst, ..ZERO };
        if is_v6(&rec) {
            return self.contains6(&rec, ctx, pk.ports(), pk.proto());
        }
        let t = Tuple::new(pk.addrs(), ctx, pk.ports(), pk.proto());
        let (slab, mask) = (&self.slab, &self.mask);
        self.table.find(self.hash_of(&t), |s| slab.hot(s).holds::<false>(&t, mask)).is_some()
            || (self.v6.cross && self.contains6(&rec, ctx, pk.ports(), pk.proto()))
    }

    /// The hash of a slot's key (the table keeps only a tag of it).
    #[inline]
    pub(super) fn hash_of(&self, t: &Tuple) -> u64 {
        let (a, b) = t.words();
        self.hasher.hash2(a, b)
    }

    /// The flow held in slot `i`, ending at `end_ns` for `reason`.
    fn flow_of(&self, i: u32, end_ns: u64, reason: EndReason) -> Flow {
        let (h, c) = (self.slab.hot(i), self.slab.cold(i));
        let t = h.tuple(&self.mask);
        let key: FlowKey =
            PackedKey::join(self.contexts.words(t.ctx()), t.addrs, t.pc as u32, t.proto()).unpack();
        let o = context_fields(self.contexts.words(c.origin));
        let rec = FlowRecord {
            exporter: o.exporter,
            engine_type: o.engine_type,
            engine_id: o.engine_id,
            sampling: o.sampling,
            src_addr: IpAddr::V4(Ipv4Addr::from((h.addrs >> 32) as u32)),
            dst_addr: IpAddr::V4(Ipv4Addr::from(h.addrs as u32)),
            nexthop: IpAddr::V4(Ipv4Addr::from(c.nexthop)),
            input: c.input,
            output: c.output,
            packets: h.packets,
            octets: h.octets,
            first_ns: h.first_ns,
            last_ns: h.last_ns,
            src_port: (h.pc >> 16) as u16,
            dst_port: h.pc as u16,
            tcp_flags: h.tcp_flags,
            proto: h.proto(),
            tos: c.tos,
            src_as: c.src_as,
            dst_as: c.dst_as,
            src_mask: c.src_mask,
            dst_mask: c.dst_mask,
            end_reason: h.exp_reason,
        };
        let seen_ns = self.seen_ns(i).clamp(c.start_ns, end_ns.max(c.start_ns));
        Flow {
            key,
            rec,
            records: h.records,
            packets: h.packets,
            octets: h.octets,
            tcp_flags: h.tcp_flags,
            first_ns: h.first_ns,
            last_ns: h.last_ns,
            start_ns: c.start_ns,
            seen_ns,
            end_ns,
            end_reason: reason,
            exporter_end_reason: h.exp_reason,
        }
    }

    /// The hash of an IPv6-family key.
    #[inline]
    pub(super) fn hash6(&self, t: &Tuple6) -> u64 {
        self.hasher.hash_words(&t.words())
    }

    /// [`Shard::flow_of`] for slot `i` of the IPv6 family.
    fn flow_of6(&self, i: u32, end_ns: u64, reason: EndReason) -> Flow {
        let (h, c) = (self.v6.slab.hot(i), self.v6.slab.cold(i));
        let t = h.tuple(&self.v6.mask);
        let mut key: FlowKey =
            PackedKey::join(self.contexts.words(t.ctx()), 0, t.pc as u32, t.proto()).unpack();
        key.src =
            if self.v6.mask.fam & SRC4 != 0 { addr(t.src, t.fam & SRC4 != 0) } else { V4_ZERO };
        key.dst =
            if self.v6.mask.fam & DST4 != 0 { addr(t.dst, t.fam & DST4 != 0) } else { V4_ZERO };
        let o = context_fields(self.contexts.words(c.origin));
        let rec = FlowRecord {
            exporter: o.exporter,
            engine_type: o.engine_type,
            engine_id: o.engine_id,
            sampling: o.sampling,
            src_addr: addr(h.src, h.fam & SRC4 != 0),
            dst_addr: addr(h.dst, h.fam & DST4 != 0),
            nexthop: addr(h.nexthop, h.fam & NEXT4 != 0),
            input: c.input,
            output: c.output,
            packets: h.packets,
            octets: h.octets,
            first_ns: h.first_ns,
            last_ns: h.last_ns,
            src_port: (h.pc >> 16) as u16,
            dst_port: h.pc as u16,
            tcp_flags: h.tcp_flags,
            proto: h.proto(),
            tos: c.tos,
            src_as: c.src_as,
            dst_as: c.dst_as,
            src_mask: c.src_mask,
            dst_mask: c.dst_mask,
            end_reason: h.exp_reason,
        };
        let seen_ns = self.seen_ns6(i).clamp(c.start_ns, end_ns.max(c.start_ns));
        Flow {
            key,
            rec,
            records: h.records,
            packets: h.packets,
            octets: h.octets,
            tcp_flags: h.tcp_flags,
            first_ns: h.first_ns,
            last_ns: h.last_ns,
            start_ns: c.start_ns,
            seen_ns,
            end_ns,
            end_reason: reason,
            exporter_end_reason: h.exp_reason,
        }
    }

    /// [`Shard::finish`] for slot `i` of the IPv6 family.
    pub(super) fn finish6(&mut self, i: u32, end_ns: u64, reason: EndReason, out: &mut Vec<Flow>) {
        out.push(self.flow_of6(i, end_ns, reason));
        let h = self.v6.slab.hot_mut(i);
        let t = h.tuple(&self.v6.mask);
        h.unset(u8::MAX);
        let hash = self.hash6(&t);
        let removed = self.v6.table.remove(hash, i);
        debug_assert!(removed, "live IPv6 slot {i} missing from the table");
        let origin = self.v6.slab.cold(i).origin;
        self.contexts.release(t.ctx());
        self.contexts.release(origin);
        self.v6.slab.release(i);
        self.live -= 1;
        self.v6.live -= 1;
        self.stats.flows[reason as usize] += 1;
    }

    /// End the flow in slot `i` (already out of the wheel) at `end_ns` for
    /// `reason`: emit it, take it out of the table, give back its contexts
    /// and its slot.
    pub(super) fn finish(&mut self, i: u32, end_ns: u64, reason: EndReason, out: &mut Vec<Flow>) {
        out.push(self.flow_of(i, end_ns, reason));
        let h = self.slab.hot_mut(i);
        debug_assert!(h.state() & LIVE != 0);
        let t = h.tuple(&self.mask);
        h.unset(u8::MAX);
        let hash = self.hash_of(&t);
        let removed = self.table.remove(hash, i);
        debug_assert!(removed, "live slot {i} missing from the table");
        let origin = self.slab.cold(i).origin;
        self.contexts.release(t.ctx());
        self.contexts.release(origin);
        self.slab.release(i);
        self.live -= 1;
        self.stats.flows[reason as usize] += 1;
    }

    /// Emit every remaining flow with reason `shutdown`, sorted by first then
    /// key (D8). The shard is empty afterwards and can be reused.
    pub fn flush(&mut self, now: u64, out: &mut Vec<Flow>) {
        self.now = self.now.max(now);
        let start = out.len();
        for i in 0..self.slab.len as u32 {
            if self.slab.hot(i).state() & LIVE != 0 {
                out.push(self.flow_of(i, self.now, EndReason::Shutdown));
            }
        }
        for i in 0..self.v6.slab.len as u32 {
            if self.v6.slab.hot(i).state() & LIVE != 0 {
                out.push(self.flow_of6(i, self.now, EndReason::Shutdown));
            }
        }
        out[start..].sort_unstable_by_key(|f| (f.first_ns, f.key));
        self.stats.flows[EndReason::Shutdown as usize] += (out.len() - start) as u64;
        self.table.clear();
        self.slab.clear();
        self.v6.table.clear();
        self.v6.slab.clear();
        self.contexts.clear();
        self.wheel = Wheel::new(self.now / TICK_NS);
        self.v6.wheel = Wheel::new(self.now / TICK_NS);
        self.hand = 0;
        self.v6.hand_v6 = false;
        self.live = 0;
        self.v6.live = 0;
    }
}
