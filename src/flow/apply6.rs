//! The IPv6 family's record path ([`Shard::apply6`]), the record-by-record
//! path of a batch that holds IPv6 records ([`Shard::run_mixed`]), and the
//! lookups across families of a key that keeps one address or none.
//!
//! A record of the IPv6 family (`slab6::is_v6`) is merged on its own, not
//! pipelined: its key (context interned as for IPv4, the two addresses
//! whole) is hashed over five words, looked up in the family's table, and
//! merged into its [`Hot6`] slot or made a new flow there. What a record
//! does to its flow is exactly what it does to an IPv4 one (`apply.rs`):
//! counters, times, flags, idle deadline, FIN/RST and flowEndReason.
//!
//! **A key in both families.** Under a key that keeps both addresses, an
//! IPv4 record and an IPv6 one never share a key (the address families
//! differ, as in [`FlowKey`](super::FlowKey)). Under one that keeps one
//! address or none ([`Shard::cross`]) they may: then a record that finds no
//! flow in its own family looks in the other's (an IPv6 record only when
//! every address the key keeps is IPv4) before it makes one, so a key has
//! at most one flow at a time over both families. The default key never
//! takes this path.

use super::key::origin_words;
use super::merge::Merge;
use super::shard::{EndReason, Flow, Shard};
use super::slab::{Cold, Tuple, HAS_FIN, LIVE, TOUCHED};
use super::slab6::{bits, is_v6, Hot6, Tuple6, DST4, NEXT4, SRC4};
use super::{FlowRecord, Records};

impl Shard {
    /// Merge `rec`, a record of the IPv6 family, at `now` (at least the
    /// shard's clock), due at `idle_at`; counted in the stats. Out of
    /// line: the IPv4 record path carries only the test that sends here.
    #[inline(never)]
    pub(super) fn apply6(&mut self, now: u64, idle_at: u32, rec: &FlowRecord, out: &mut Vec<Flow>) {
        let pk = self.packer.pack(rec);
        let m = Merge::from(rec);
        self.stats.records += 1;
        self.stats.packets += m.packets;
        self.stats.octets += m.octets;
        let ctx = self.contexts.intern(&pk.context());
        let key = Tuple6::of(rec, ctx, pk.ports(), pk.proto(), &self.v6.mask);
        let hash = self.hash6(&key);
        let (slab6, mask6) = (&self.v6.slab, &self.v6.mask);
        if let Some(idx) = self.v6.table.find(hash, |s| slab6.hot(s).holds(&key, mask6)) {
            self.update6(idx, now, idle_at, &m);
            return;
        }
        // Every address the key keeps is IPv4: its flow may be an IPv4 one.
        if self.v6.cross && key.fam & mask6.fam == mask6.fam && self.live > self.v6.live {
            let t =
                Tuple { addrs: (key.src as u64) << 32 | key.dst as u64, pc: key.pc, ps: key.ps };
            let hash4 = self.hash_of(&t);
            let (slab, mask) = (&self.slab, &self.mask);
            if let Some(idx) = self.table.find(hash4, |s| slab.hot(s).holds::<false>(&t, mask)) {
                self.update(idx, now, idle_at, &m);
                return;
            }
        }
        if self.live >= self.cfg.max_flows {
            self.evict(now, out);
        }
        self.create6(&key, hash, now, idle_at, &m, rec);
    }

    /// A record of IPv4 key `key` (masked) that found no IPv4 flow merges
    /// into the key's IPv6-family flow, if there is one (then true): for
    /// a key that keeps one address or none ([`Shard::cross`]).
    #[cold]
    #[inline(never)]
    pub(super) fn merge6_of_v4(&mut self, key: &Tuple, now: u64, idle_at: u32, m: &Merge) -> bool {
        if self.v6.live == 0 {
            return false;
        }
        let mask = &self.v6.mask;
        let t = Tuple6 {
            src: (key.addrs >> 32) as u128 & mask.src,
            dst: (key.addrs as u32) as u128 & mask.dst,
            pc: key.pc,
            ps: key.ps,
            fam: (SRC4 | DST4) & mask.fam,
        };
        let hash = self.hash6(&t);
        let (slab6, mask) = (&self.v6.slab, &self.v6.mask);
        match self.v6.table.find(hash, |s| slab6.hot(s).holds(&t, mask)) {
            Some(idx) => {
                self.update6(idx, now, idle_at, m);
                true
            }
            None => false,
        }
    }

    /// Whether the flow of record `rec`'s key (its addresses; context id
    /// `ctx`, ports and protocol packed) is live in the IPv6 family, or,
    /// for a key that keeps only IPv4 addresses of it ([`Shard::cross`]),
    /// in the IPv4 one ([`Shard::contains`]).
    pub(super) fn contains6(&self, rec: &FlowRecord, ctx: u32, ports: u32, proto: u8) -> bool {
        let (slab6, mask6) = (&self.v6.slab, &self.v6.mask);
        let key = Tuple6::of(rec, ctx, ports, proto, mask6);
        if self.v6.table.find(self.hash6(&key), |s| slab6.hot(s).holds(&key, mask6)).is_some() {
            return true;
        }
        if !(self.v6.cross && key.fam & mask6.fam == mask6.fam && is_v6(rec)) {
            return false;
        }
        let t = Tuple { addrs: (key.src as u64) << 32 | key.dst as u64, pc: key.pc, ps: key.ps };
        let (slab, mask) = (&self.slab, &self.mask);
        self.table.find(self.hash_of(&t), |s| slab.hot(s).holds::<false>(&t, mask)).is_some()
    }

    /// A record merges into flow `idx` of the IPv6 family.
    pub(super) fn update6(&mut self, idx: u32, now: u64, idle_at: u32, m: &Merge) {
        let f = self.v6.slab.hot_mut(idx);
        f.records += 1;
        f.packets += m.packets;
        f.octets += m.octets;
        f.tcp_flags |= m.tcp_flags;
        f.first_ns = f.first_ns.min(m.first_ns);
        f.last_ns = f.last_ns.max(m.last_ns);
        f.idle_at = idle_at;
        f.set(TOUCHED);
        if m.is_special() {
            self.special6(idx, now, m);
        }
    }

    /// A new IPv6-family flow from its first record `rec` (key `key`, hash
    /// `hash`), which adds `m`.
    fn create6(
        &mut self,
        key: &Tuple6,
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
        let ((src, s4), (dst, d4), (nexthop, n4)) =
            (bits(rec.src_addr), bits(rec.dst_addr), bits(rec.nexthop));
        let fam =
            if s4 { SRC4 } else { 0 } | if d4 { DST4 } else { 0 } | if n4 { NEXT4 } else { 0 };
        let idx = self.v6.slab.alloc();
        *self.v6.slab.hot_mut(idx) = Hot6 {
            packets: m.packets,
            octets: m.octets,
            first_ns: m.first_ns,
            last_ns: m.last_ns,
            records: 1,
            pc: key.pc & 0xffff_ffff_0000_0000 | (rec.src_port as u64) << 16 | rec.dst_port as u64,
            idle_at,
            ps: ((LIVE | if fin { HAS_FIN } else { 0 }) as u16) << 8 | rec.proto as u16,
            tcp_flags: m.tcp_flags,
            exp_reason: m.end_reason,
            fam,
            src,
            dst,
            nexthop,
        };
        *self.v6.slab.cold_mut(idx) = Cold {
            start_ns: now,
            fin: if fin { self.fin_at(now) } else { 0 },
            origin,
            src_as: rec.src_as,
            dst_as: rec.dst_as,
            input: rec.input,
            output: rec.output,
            tos: rec.tos,
            src_mask: rec.src_mask,
            dst_mask: rec.dst_mask,
            ..Cold::default()
        };
        self.v6.table.insert(hash, idx);
        self.live += 1;
        self.v6.live += 1;
        self.link6(idx);
    }

    /// Emit flow `i` of the IPv6 family, still linked in its wheel, as evicted.
    pub(super) fn evict_slot6(&mut self, i: u32, now: u64, out: &mut Vec<Flow>) {
        self.v6.wheel.remove(&mut self.v6.slab, i);
        self.finish6(i, now, EndReason::Evicted, out);
    }

    /// [`Shard::apply_segments`] record by record, for a batch with IPv6
    /// records: the clock moves to each segment's `now` before its records,
    /// as there.
    pub(super) fn run_mixed<R: Records + ?Sized>(
        &mut self,
        recs: &R,
        segs: &[(usize, u64)],
        out: &mut Vec<Flow>,
    ) {
        let n = recs.len();
        let (mut i, mut now) = (0, self.now);
        for &(end, t) in segs {
            if end <= i {
                continue;
            }
            if t > now {
                now = t;
                self.expire_all(now, out);
            }
            let idle_at = self.idle_at(now);
            while i < end.min(n) {
                self.apply_one(now, idle_at, &recs.record(i), out);
                i += 1;
            }
        }
        debug_assert!(i >= n, "record {i} past the last segment");
        if let Some(&(_, t)) = segs.last() {
            if i >= n && t > now {
                self.expire_all(t, out);
            }
        }
        self.contexts.sweep();
    }
}
