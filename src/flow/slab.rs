//! The slab of flow slots a shard's table points into, and the links its
//! timer wheel and free list run through.
//!
//! Owns: the slots' memory layout. A slot is split in two parts, each in
//! its own chunked array (chunks of fixed size, so that growing never moves
//! a slot and a slot index is a shift and a mask away):
//!
//! - [`Hot`], one cache line (64 bytes, aligned): everything a record that
//!   merges into its flow reads or writes. The key as a context id and the
//!   IPv4 5-tuple (as the first record had it: the key spec's masks apply
//!   at the compare, see [`Tuple`]), the counters, the router times, the
//!   idle deadline, flags, state bits and the exporter's end reason. So the
//!   merge path takes at most one cache miss per record, on a line stage 2
//!   of the pipeline has already asked for.
//! - [`Cold`], 48 bytes: what creation, FIN/RST records, timer firing and
//!   emission touch. Collector start time, the linger deadline, the timer
//!   wheel's two links (which also make the free list), the origin id, and
//!   the first record's attributes.
//!
//! Deadlines are millisecond ticks kept modulo 2^32 (`u32`): valid while
//! they lie within 2^31 ms (24.8 days) of the wheel's `elapsed`, which
//! holds because idle and linger are below 2^31 ms (checked by the
//! configuration and [`crate::flow::Shard::new`]): a live flow's deadline
//! is never further than that from `elapsed`, and the wheel only asks
//! about live flows ([`reconstruct`]).
//!
//! The free list is intrusive: a free slot's `next` link (unused while it
//! is in no wheel list) points to the next free slot; no `Vec` of indices.
//!
//! Address families: [`Hot`] is the IPv4 slot, and [`Slab`] is generic
//! over its hot part ([`HotSlot`]: the idle deadline and the state bits are
//! all the slab, its free list and the wheel read). An IPv6 family would add
//! its own hot part (128 bytes: two 16-byte addresses in place of `addrs`)
//! in a `Slab` of its own and its own table, with the same [`Cold`] part and
//! context interner; the shard's one wheel would link both slabs through a
//! [`Links`] over the pair (ids of the second family marked by bit 30), so
//! nothing on the IPv4 path changes. Not built yet: no input makes IPv6
//! records today (`key::v4_bits`).

use crate::timer::{Links, END};

/// State bits of a slot ([`Hot::state`]).
pub(super) const LIVE: u8 = 1;
/// Updated since the eviction hand last passed (its second chance).
pub(super) const TOUCHED: u8 = 2;
/// A FIN/RST record set [`Cold::fin`].
pub(super) const HAS_FIN: u8 = 4;

/// End of the free list.
pub(super) const NIL: u32 = u32::MAX;

/// The 5-tuple and context of a key, as the hot slot lays them out: what
/// the pipeline computes per record, compares and hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Tuple {
    /// `src << 32 | dst`.
    pub(super) addrs: u64,
    /// `ctx << 32 | sport << 16 | dport`.
    pub(super) pc: u64,
    /// `LIVE << 8 | proto`: the protocol, and the state a slot must have to
    /// hold the key (so one compare also rules out free slots).
    pub(super) ps: u16,
}

/// The key spec's masks over a [`Tuple`]: the bits it keeps (the context
/// id and the `LIVE` bit are always kept, the other state bits never).
#[derive(Debug, Clone, Copy)]
pub(super) struct TupleMask {
    pub(super) addrs: u64,
    pub(super) pc: u64,
    pub(super) ps: u16,
}

/// The masks of a key spec that keeps the whole 5-tuple.
pub(super) const FULL: TupleMask =
    TupleMask { addrs: u64::MAX, pc: u64::MAX, ps: (LIVE as u16) << 8 | 0xff };

impl Tuple {
    /// The key of a record: addresses, ports, protocol as packed, and its context id.
    #[inline(always)]
    pub(super) fn new(addrs: u64, ctx: u32, ports: u32, proto: u8) -> Self {
        Tuple {
            addrs,
            pc: (ctx as u64) << 32 | ports as u64,
            ps: (LIVE as u16) << 8 | proto as u16,
        }
    }

    /// The two words the table hash is computed over (the protocol folded
    /// into the top bits of the context id, which stays far below 2^16).
    #[inline(always)]
    pub(super) fn words(&self) -> (u64, u64) {
        (self.addrs, self.pc ^ (self.ps as u64) << 48)
    }

    #[inline(always)]
    pub(super) fn proto(&self) -> u8 {
        self.ps as u8
    }

    #[inline(always)]
    pub(super) fn ctx(&self) -> u32 {
        (self.pc >> 32) as u32
    }
}

/// The part of a flow every record touches: one cache line.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
pub(super) struct Hot {
    pub(super) packets: u64,
    pub(super) octets: u64,
    /// Earliest First and latest Last of its records (router clock, ns).
    pub(super) first_ns: u64,
    pub(super) last_ns: u64,
    pub(super) records: u64,
    /// The first record's 5-tuple and the key's context id (unmasked: a key
    /// without some 5-tuple field still reports the first record's).
    pub(super) addrs: u64,
    pub(super) pc: u64,
    /// Idle deadline: `ceil((seen_ns + idle_ns) / TICK_NS)` of the latest
    /// record, modulo 2^32 (the collector time of the latest record, as the
    /// tick it makes the flow due).
    pub(super) idle_at: u32,
    /// `state << 8 | proto`: the state bits ([`LIVE`], [`TOUCHED`],
    /// [`HAS_FIN`]) beside the protocol, so that one compare checks both.
    pub(super) ps: u16,
    /// OR of its records' tcp flags.
    pub(super) tcp_flags: u8,
    /// The last nonzero flowEndReason (IPFIX IE 136) of its records (0 if none).
    pub(super) exp_reason: u8,
}

const _: () = assert!(std::mem::size_of::<Hot>() == 64);

impl Hot {
    /// Whether this slot is live and holds key `k` (as packed: masked)
    /// under `m`, or under [`FULL`] when `SIMPLE` (constant masks, folded
    /// away).
    #[inline(always)]
    pub(super) fn holds<const SIMPLE: bool>(&self, k: &Tuple, m: &TupleMask) -> bool {
        let d = if SIMPLE {
            (self.addrs ^ k.addrs) | (self.pc ^ k.pc) | (self.ps & FULL.ps ^ k.ps) as u64
        } else {
            (self.addrs & m.addrs ^ k.addrs)
                | (self.pc & m.pc ^ k.pc)
                | (self.ps & m.ps ^ k.ps) as u64
        };
        d == 0
    }

    /// Its key as packed (masked; as a live slot's, whatever its state now).
    #[inline]
    pub(super) fn tuple(&self, m: &TupleMask) -> Tuple {
        let ps = self.ps & m.ps & 0xff | (LIVE as u16) << 8;
        Tuple { addrs: self.addrs & m.addrs, pc: self.pc & m.pc, ps }
    }

    #[inline(always)]
    pub(super) fn proto(&self) -> u8 {
        self.ps as u8
    }

    #[inline(always)]
    pub(super) fn state(&self) -> u8 {
        (self.ps >> 8) as u8
    }

    #[inline(always)]
    pub(super) fn set(&mut self, bits: u8) {
        self.ps |= (bits as u16) << 8;
    }

    #[inline(always)]
    pub(super) fn unset(&mut self, bits: u8) {
        self.ps &= !((bits as u16) << 8);
    }
}

/// The part creation, FIN/RST records, timers and emission touch: 48 bytes.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(super) struct Cold {
    /// Collector time of its first record (ns).
    pub(super) start_ns: u64,
    /// The timer wheel's links ([`Links`]); `next` is the free list's while free.
    pub(super) prev: u32,
    pub(super) next: u32,
    /// Linger deadline tick modulo 2^32, if [`HAS_FIN`].
    pub(super) fin: u32,
    /// The origin: context id of the first record's exporter, engine and sampling.
    pub(super) origin: u32,
    pub(super) nexthop: u32,
    pub(super) src_as: u32,
    pub(super) dst_as: u32,
    pub(super) input: u32,
    pub(super) output: u32,
    pub(super) tos: u8,
    pub(super) src_mask: u8,
    pub(super) dst_mask: u8,
    pub(super) _spare: u8,
}

const _: () = assert!(std::mem::size_of::<Cold>() == 48);

impl Default for Cold {
    fn default() -> Self {
        Cold {
            start_ns: 0,
            prev: NIL,
            next: NIL,
            fin: 0,
            origin: 0,
            nexthop: 0,
            src_as: 0,
            dst_as: 0,
            input: 0,
            output: 0,
            tos: 0,
            src_mask: 0,
            dst_mask: 0,
            _spare: 0,
        }
    }
}

/// A tick kept modulo 2^32, back in full, as seen from tick `elapsed`
/// (valid within 2^31 ticks of it either way).
#[inline(always)]
pub(super) fn reconstruct(t: u32, elapsed: u64) -> u64 {
    elapsed.wrapping_add_signed(t.wrapping_sub(elapsed as u32) as i32 as i64)
}

/// What the slab, its free list and the timer wheel need of a hot part:
/// the idle deadline and the state bits. [`Hot`] is the IPv4 one; an IPv6
/// family's (128 bytes: two 16-byte addresses) would be another, in a
/// `Slab` of its own with the same [`Cold`] part, so that adding it
/// changes nothing on the IPv4 path (module doc).
pub(super) trait HotSlot: Copy + Default + std::fmt::Debug {
    /// [`Hot::idle_at`].
    fn idle_at(&self) -> u32;
    /// [`LIVE`], [`TOUCHED`], [`HAS_FIN`].
    fn state(&self) -> u8;
}

impl HotSlot for Hot {
    #[inline(always)]
    fn idle_at(&self) -> u32 {
        self.idle_at
    }

    #[inline(always)]
    fn state(&self) -> u8 {
        Hot::state(self)
    }
}

/// Slots in chunks of fixed size: growing never moves a slot (no copy stall
/// at millions of flows), and an index is a shift and a mask away. A chunk
/// is a fixed-size array (allocated whole, default slots), so indexing
/// inside it needs no bounds check. Generic over the hot part (one type
/// per address family); the cold part is the same for every family.
#[derive(Debug)]
pub(super) struct Slab<H = Hot> {
    hot: Vec<Box<[H; CHUNK]>>,
    cold: Vec<Box<[Cold; CHUNK]>>,
    /// Slots ever used (live or on the free list).
    pub(super) len: usize,
    /// Head of the free list (through [`Cold::next`]), [`NIL`] if empty.
    free: u32,
}

impl<H> Default for Slab<H> {
    fn default() -> Self {
        Slab { hot: Vec::new(), cold: Vec::new(), len: 0, free: NIL }
    }
}

pub(super) const CHUNK_BITS: u32 = 12;
pub(super) const CHUNK: usize = 1 << CHUNK_BITS;

/// Chunk and position within it of slot `i`.
#[inline(always)]
fn at(i: u32) -> (usize, usize) {
    ((i >> CHUNK_BITS) as usize, i as usize & (CHUNK - 1))
}

impl<H: HotSlot> Slab<H> {
    #[inline(always)]
    pub(super) fn hot(&self, i: u32) -> &H {
        let (c, k) = at(i);
        &self.hot[c][k]
    }

    #[inline(always)]
    pub(super) fn hot_mut(&mut self, i: u32) -> &mut H {
        let (c, k) = at(i);
        &mut self.hot[c][k]
    }

    #[inline(always)]
    pub(super) fn cold(&self, i: u32) -> &Cold {
        let (c, k) = at(i);
        &self.cold[c][k]
    }

    #[inline(always)]
    pub(super) fn cold_mut(&mut self, i: u32) -> &mut Cold {
        let (c, k) = at(i);
        &mut self.cold[c][k]
    }

    /// Start loading slot `i`'s hot line (stage 2 of the pipeline).
    #[inline(always)]
    pub(super) fn prefetch(&self, i: u32) {
        crate::platform::cpu::prefetch(self.hot(i));
    }

    /// A slot for a new flow, from the free list or else a new one.
    pub(super) fn alloc(&mut self) -> u32 {
        if self.free != NIL {
            let i = self.free;
            self.free = self.cold(i).next;
            return i;
        }
        let i = u32::try_from(self.len).ok().filter(|&i| i < END);
        let i = i.expect("more than 2^31 flow slots");
        if self.hot.len() * CHUNK <= self.len {
            self.grow();
        }
        self.len += 1;
        i
    }

    /// Put slot `i` (no longer live, in no wheel list) on the free list.
    pub(super) fn release(&mut self, i: u32) {
        debug_assert!(self.hot(i).state() & LIVE == 0);
        let head = self.free;
        self.cold_mut(i).next = head;
        self.free = i;
    }

    /// One more chunk, written whole (default slots), so that its pages are
    /// faulted in now rather than one by one on the hot path.
    fn grow(&mut self) {
        self.hot.push(chunk());
        self.cold.push(chunk());
    }

    /// Allocate and touch chunks for `n` slots, so that the first `n` flows
    /// take no page fault.
    pub(super) fn reserve(&mut self, n: usize) {
        while self.hot.len() * CHUNK < n {
            self.grow();
        }
    }

    pub(super) fn clear(&mut self) {
        self.hot.clear();
        self.cold.clear();
        self.len = 0;
        self.free = NIL;
    }

    /// The tick slot `i` is due, seen from tick `elapsed`: its idle
    /// deadline, or its linger deadline if earlier; and whether the linger
    /// one it is.
    #[inline]
    pub(super) fn deadline(&self, i: u32, elapsed: u64) -> (u64, bool) {
        let h = self.hot(i);
        let idle = reconstruct(h.idle_at(), elapsed);
        if h.state() & HAS_FIN != 0 {
            let fin = reconstruct(self.cold(i).fin, elapsed);
            if fin <= idle {
                return (fin, true);
            }
        }
        (idle, false)
    }
}

/// The shard's timer wheel links through the cold parts, and reads
/// deadlines from both parts.
impl<H: HotSlot> Links for Slab<H> {
    #[inline(always)]
    fn prev(&self, id: u32) -> u32 {
        self.cold(id).prev
    }

    #[inline(always)]
    fn next(&self, id: u32) -> u32 {
        self.cold(id).next
    }

    #[inline(always)]
    fn set_prev(&mut self, id: u32, link: u32) {
        self.cold_mut(id).prev = link;
    }

    #[inline(always)]
    fn set_next(&mut self, id: u32, link: u32) {
        self.cold_mut(id).next = link;
    }

    #[inline]
    fn at(&self, id: u32, elapsed: u64) -> u64 {
        self.deadline(id, elapsed).0
    }

    #[inline(always)]
    fn prefetch(&self, id: u32) {
        crate::platform::cpu::prefetch(self.hot(id));
        crate::platform::cpu::prefetch(self.cold(id));
    }
}

/// A chunk of default slots.
fn chunk<T: Default + Clone>() -> Box<[T; CHUNK]> {
    let v = vec![T::default(); CHUNK].into_boxed_slice();
    v.try_into().unwrap_or_else(|_| unreachable!("a boxed slice of CHUNK slots"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_modulo_2_32_come_back_within_2_31() {
        for elapsed in [0u64, 5, 1 << 31, (1 << 32) - 3, 1 << 40, 1_700_000_000_000, u64::MAX >> 1]
        {
            for d in [0i64, 1, -1, 1_860_000, -1_860_000, (1 << 31) - 1, -(1 << 31)] {
                let t = elapsed.wrapping_add_signed(d);
                if (d < 0 && elapsed < d.unsigned_abs()) || t > u64::MAX >> 1 {
                    continue;
                }
                assert_eq!(reconstruct(t as u32, elapsed), t, "elapsed {elapsed} d {d}");
            }
        }
    }

    #[test]
    fn free_list_is_lifo_and_reuses_slots() {
        let mut s: Slab = Slab::default();
        let ids: Vec<u32> = (0..5).map(|_| s.alloc()).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
        s.release(1);
        s.release(3);
        assert_eq!((s.alloc(), s.alloc(), s.alloc()), (3, 1, 5));
        assert_eq!(s.len, 6);
    }
}
