//! The IPv6 flow slot family: [`Hot6`], the hot part of a flow whose
//! record has an IPv6 address, in a `Slab<Hot6>` of its own beside the
//! IPv4 one (`slab.rs`), with the same [`Cold`](super::slab::Cold) part.
//!
//! Owns: the IPv6 hot slot's layout and its key ([`Tuple6`], [`TupleMask6`]).
//!
//! A record is of the IPv6 family when its source or destination address is
//! IPv6 ([`is_v6`]); every other record is IPv4 and never sees this file, so
//! the IPv4 slot stays one cache line and its path unchanged. [`Hot6`] is
//! two cache lines (128 bytes): the first holds what every record writes
//! (counters, times, idle deadline, state bits, flags) and the key's
//! context, ports and protocol, exactly as [`Hot`](super::slab::Hot) does;
//! the second the two 16-byte addresses and the next hop (the cold part's
//! `nexthop` holds IPv4 only, so an IPv6 flow keeps its own here).
//!
//! Addresses are kept as 128 bits with a family bit each ([`Hot6::fam`]):
//! an IPv6 address as its bits, an IPv4 one (the other address of a record
//! that mixes the families: no decoder makes one, but a [`FlowRecord`] may)
//! as its 32 bits with its bit set, so that a flow emits every address
//! exactly as its first record had it, and `1.2.3.4` and `::1.2.3.4` (or
//! `::ffff:1.2.3.4`) stay different keys, as [`FlowKey`](super::FlowKey)s
//! they are.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::slab::{HotSlot, LIVE};
use super::FlowRecord;

/// Family bits of [`Hot6::fam`] and [`Tuple6::fam`]: the address is IPv4.
pub(super) const SRC4: u8 = 1;
pub(super) const DST4: u8 = 2;
/// The next hop is IPv4 (in [`Hot6::fam`] only: not part of a key).
pub(super) const NEXT4: u8 = 4;

/// Whether record `r` belongs to the IPv6 family: its source or
/// destination address is IPv6.
#[inline(always)]
pub(crate) fn is_v6(r: &FlowRecord) -> bool {
    r.src_addr.is_ipv6() || r.dst_addr.is_ipv6()
}

/// An address as [`Hot6`] keeps it, and whether it is IPv4.
#[inline]
pub(super) fn bits(a: IpAddr) -> (u128, bool) {
    match a {
        IpAddr::V4(a) => (a.to_bits() as u128, true),
        IpAddr::V6(a) => (a.to_bits(), false),
    }
}

/// [`bits`] back.
#[inline]
pub(super) fn addr(bits: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from_bits(bits))
    }
}

/// The key of an IPv6-family record, as [`Hot6`] lays it out: the
/// counterpart of [`Tuple`](super::slab::Tuple).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Tuple6 {
    pub(super) src: u128,
    pub(super) dst: u128,
    /// `ctx << 32 | sport << 16 | dport`.
    pub(super) pc: u64,
    /// `LIVE << 8 | proto`.
    pub(super) ps: u16,
    /// [`SRC4`] and [`DST4`].
    pub(super) fam: u8,
}

/// The key spec's masks over a [`Tuple6`].
#[derive(Debug, Clone, Copy)]
pub(super) struct TupleMask6 {
    pub(super) src: u128,
    pub(super) dst: u128,
    pub(super) pc: u64,
    pub(super) ps: u16,
    pub(super) fam: u8,
}

impl TupleMask6 {
    /// The masks of a key that keeps the source address if `src`, the
    /// destination if `dst`, and the ports, protocol and context as `pc`
    /// and `ps` (those of the IPv4 [`TupleMask`](super::slab::TupleMask)).
    pub(super) fn new(src: bool, dst: bool, pc: u64, ps: u16) -> Self {
        let all = |on: bool| if on { u128::MAX } else { 0 };
        let fam = if src { SRC4 } else { 0 } | if dst { DST4 } else { 0 };
        TupleMask6 { src: all(src), dst: all(dst), pc, ps, fam }
    }
}

impl Tuple6 {
    /// The key of record `r` (an IPv6-family one, or an IPv4 one looked up
    /// in this family) whose context id is `ctx` and whose ports and
    /// protocol are packed (masked) as `ports` and `proto`, masked by `m`.
    #[inline]
    pub(super) fn of(r: &FlowRecord, ctx: u32, ports: u32, proto: u8, m: &TupleMask6) -> Self {
        let ((src, s4), (dst, d4)) = (bits(r.src_addr), bits(r.dst_addr));
        let fam = if s4 { SRC4 } else { 0 } | if d4 { DST4 } else { 0 };
        Tuple6 {
            src: src & m.src,
            dst: dst & m.dst,
            pc: (ctx as u64) << 32 | ports as u64,
            ps: (LIVE as u16) << 8 | proto as u16,
            fam: fam & m.fam,
        }
    }

    /// The words the table hash is computed over.
    #[inline]
    pub(super) fn words(&self) -> [u64; 5] {
        [
            (self.src >> 64) as u64,
            self.src as u64,
            (self.dst >> 64) as u64,
            self.dst as u64,
            self.pc ^ (self.ps as u64) << 48 ^ (self.fam as u64) << 40,
        ]
    }

    #[inline(always)]
    pub(super) fn ctx(&self) -> u32 {
        (self.pc >> 32) as u32
    }

    #[inline(always)]
    pub(super) fn proto(&self) -> u8 {
        self.ps as u8
    }
}

/// The hot part of an IPv6-family flow: two cache lines.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
pub(super) struct Hot6 {
    pub(super) packets: u64,
    pub(super) octets: u64,
    /// Earliest First and latest Last of its records (router clock, ns).
    pub(super) first_ns: u64,
    pub(super) last_ns: u64,
    pub(super) records: u64,
    /// The first record's ports and the key's context id (as [`Hot::pc`](super::slab::Hot)).
    pub(super) pc: u64,
    /// Idle deadline tick modulo 2^32 (as [`Hot::idle_at`](super::slab::Hot)).
    pub(super) idle_at: u32,
    /// `state << 8 | proto` (as [`Hot::ps`](super::slab::Hot)).
    pub(super) ps: u16,
    pub(super) tcp_flags: u8,
    pub(super) exp_reason: u8,
    /// [`SRC4`], [`DST4`], [`NEXT4`]: which addresses are IPv4.
    pub(super) fam: u8,
    /// The first record's addresses and next hop ([`bits`]).
    pub(super) src: u128,
    pub(super) dst: u128,
    pub(super) nexthop: u128,
}

const _: () = assert!(std::mem::size_of::<Hot6>() == 128);

impl Hot6 {
    /// Whether this slot is live and holds key `k` (masked) under `m`.
    #[inline]
    pub(super) fn holds(&self, k: &Tuple6, m: &TupleMask6) -> bool {
        let d = (self.src & m.src ^ k.src) | (self.dst & m.dst ^ k.dst);
        let e = (self.pc & m.pc ^ k.pc)
            | (self.ps & m.ps ^ k.ps) as u64
            | (self.fam & m.fam ^ k.fam) as u64;
        d == 0 && e == 0
    }

    /// Its key as packed (masked).
    #[inline]
    pub(super) fn tuple(&self, m: &TupleMask6) -> Tuple6 {
        Tuple6 {
            src: self.src & m.src,
            dst: self.dst & m.dst,
            pc: self.pc & m.pc,
            ps: self.ps & m.ps & 0xff | (LIVE as u16) << 8,
            fam: self.fam & m.fam,
        }
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

impl HotSlot for Hot6 {
    #[inline(always)]
    fn idle_at(&self) -> u32 {
        self.idle_at
    }

    #[inline(always)]
    fn state(&self) -> u8 {
        Hot6::state(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_with_their_family() {
        for a in [
            IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)),
            IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0x0102, 0x0304)),
            IpAddr::V6(Ipv4Addr::new(1, 2, 3, 4).to_ipv6_mapped()),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        ] {
            let (b, v4) = bits(a);
            assert_eq!(addr(b, v4), a);
        }
    }

    #[test]
    fn mixed_families_with_equal_bits_are_different_keys() {
        let m = TupleMask6::new(true, true, u64::MAX, (LIVE as u16) << 8 | 0xff);
        let mut r = crate::flow::record::ZERO;
        r.src_addr = IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4));
        r.dst_addr = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let a = Tuple6::of(&r, 0, 0, 6, &m);
        r.src_addr = IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0x0102, 0x0304));
        let b = Tuple6::of(&r, 0, 0, 6, &m);
        assert_eq!(a.src, b.src);
        assert_ne!(a, b);
        let h = Hot6 { src: a.src, dst: a.dst, pc: a.pc, ps: a.ps, fam: a.fam, ..Hot6::default() };
        assert!(h.holds(&a, &m) && !h.holds(&b, &m));
    }
}
