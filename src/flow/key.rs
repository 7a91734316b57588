//! The flow key: which record fields identify "one flow", selectable with `--key`.
//!
//! A [`FlowKey`] always has every field; the fields not selected by the
//! [`KeySpec`] are zero, so equality and hashing only see the selected ones.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use super::record::{V4_ZERO, ZERO};
use super::FlowRecord;
use crate::wire::Record;

/// A field that can be part of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyField {
    Exporter,
    Engine,
    Proto,
    Src,
    Sport,
    Dst,
    Dport,
    Tos,
    Input,
    Output,
}

impl KeyField {
    pub const ALL: [(&'static str, KeyField); 10] = [
        ("exporter", KeyField::Exporter),
        ("engine", KeyField::Engine),
        ("proto", KeyField::Proto),
        ("src", KeyField::Src),
        ("sport", KeyField::Sport),
        ("dst", KeyField::Dst),
        ("dport", KeyField::Dport),
        ("tos", KeyField::Tos),
        ("input", KeyField::Input),
        ("output", KeyField::Output),
    ];

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The set of key fields.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeySpec(u16);

impl KeySpec {
    /// `exporter,proto,src,sport,dst,dport` (decision D2).
    pub const DEFAULT: &'static str = "exporter,proto,src,sport,dst,dport";
    /// The origin's key (no exporter): `proto,src,sport,dst,dport`.
    pub const ORIGIN: &'static str = "proto,src,sport,dst,dport";

    pub fn has(&self, f: KeyField) -> bool {
        self.0 & f.bit() != 0
    }

    /// Project a record onto the key.
    #[inline]
    pub fn key_of(&self, r: &FlowRecord) -> FlowKey {
        let m = self.0;
        let on = |f: KeyField| m & f.bit() != 0;
        FlowKey {
            exporter: if on(KeyField::Exporter) {
                r.exporter
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            },
            engine: if on(KeyField::Engine) {
                u16::from_be_bytes([r.engine_type, r.engine_id])
            } else {
                0
            },
            proto: if on(KeyField::Proto) { r.proto } else { 0 },
            src: if on(KeyField::Src) { r.src_addr } else { V4_ZERO },
            sport: if on(KeyField::Sport) { r.src_port } else { 0 },
            dst: if on(KeyField::Dst) { r.dst_addr } else { V4_ZERO },
            dport: if on(KeyField::Dport) { r.dst_port } else { 0 },
            tos: if on(KeyField::Tos) { r.tos } else { 0 },
            input: if on(KeyField::Input) { r.input } else { 0 },
            output: if on(KeyField::Output) { r.output } else { 0 },
        }
    }

    /// The packing of this key straight from a record (the hot path's
    /// `key_of(r).pack()`, without building a [`FlowKey`]).
    pub fn packer(&self) -> KeyPacker {
        // Pack a record with every field at all-ones and one with every field
        // zero: the first gives the bits the key keeps, the second the bits it
        // sets whatever the record (an unselected exporter packs as 0.0.0.0).
        let ones = FlowRecord {
            exporter: IpAddr::V6(std::net::Ipv6Addr::from_bits(u128::MAX)),
            engine_type: u8::MAX,
            engine_id: u8::MAX,
            proto: u8::MAX,
            src_addr: IpAddr::V4(Ipv4Addr::BROADCAST),
            src_port: u16::MAX,
            dst_addr: IpAddr::V4(Ipv4Addr::BROADCAST),
            dst_port: u16::MAX,
            tos: u8::MAX,
            input: u32::MAX,
            output: u32::MAX,
            ..ZERO
        };
        let (keep, fill) = (self.key_of(&ones).pack(), self.key_of(&ZERO).pack());
        KeyPacker { keep: keep.0, fill: fill.0 }
    }
}

/// [`KeySpec::packer`]: the key of a record as five words, by masks.
#[derive(Debug, Clone, Copy)]
pub struct KeyPacker {
    /// Bits of the full packing that the key keeps.
    keep: [u64; 5],
    /// Bits set for unselected fields (an unselected exporter is 0.0.0.0).
    fill: [u64; 5],
}

impl KeyPacker {
    /// Same as `spec.key_of(r).pack()`.
    #[inline(always)]
    pub fn pack(&self, r: &FlowRecord) -> PackedKey {
        self.mask(words(
            exporter_words(r.exporter),
            u16::from_be_bytes([r.engine_type, r.engine_id]),
            r.proto,
            v4_bits(r.src_addr),
            r.src_port,
            v4_bits(r.dst_addr),
            r.dst_port,
            r.tos,
            r.input,
            r.output,
        ))
    }

    /// Same as [`KeyPacker::pack`] of the [`FlowRecord`] that `r` makes with
    /// a datagram from an exporter packed as `exporter` ([`exporter_words`])
    /// with `engine` (type << 8 | id): straight from the wire bytes.
    #[inline]
    pub fn pack_wire(&self, exporter: [u64; 2], engine: u16, r: &Record<'_>) -> PackedKey {
        // Adjacent fields read together (ports, proto and tos): their
        // halves fall back into place in `words`, one load each.
        let (ports, proto_tos) = (r.ports(), r.proto_tos());
        self.mask(words(
            exporter,
            engine,
            (proto_tos >> 8) as u8,
            r.src_addr(),
            (ports >> 16) as u16,
            r.dst_addr(),
            ports as u16,
            proto_tos as u8,
            r.input() as u32,
            r.output() as u32,
        ))
    }

    #[inline(always)]
    fn mask(&self, full: [u64; 5]) -> PackedKey {
        let mut w = [0u64; 5];
        for i in 0..5 {
            w[i] = full[i] & self.keep[i] | self.fill[i];
        }
        PackedKey(w)
    }
}

impl Default for KeySpec {
    fn default() -> Self {
        KeySpec::DEFAULT.parse().expect("default key parses")
    }
}

impl FromStr for KeySpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut bits = 0u16;
        for name in s.split(',').map(str::trim) {
            let Some((_, f)) = KeyField::ALL.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = KeyField::ALL.iter().map(|(n, _)| *n).collect();
                return Err(format!("unknown key field {name:?}; choose from {}", names.join(",")));
            };
            if bits & f.bit() != 0 {
                return Err(format!("key field {name:?} given twice"));
            }
            bits |= f.bit();
        }
        Ok(KeySpec(bits))
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> =
            KeyField::ALL.iter().filter(|(_, k)| self.has(*k)).map(|(n, _)| *n).collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySpec({self})")
    }
}

/// A flow's identity under some [`KeySpec`]. Ordered, so final flushes can be sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub exporter: IpAddr,
    pub engine: u16,
    pub proto: u8,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub tos: u8,
    pub input: u32,
    pub output: u32,
}

/// A [`FlowKey`] packed into five words: what the flow table stores, compares
/// and hashes (five integer compares instead of a field-by-field enum compare).
/// The exporter takes the first two words as an IPv6 address (IPv4 as
/// `::ffff:a.b.c.d`, unpacked back to IPv4).
#[derive(Debug, Clone, Copy, Eq, Default)]
pub struct PackedKey(pub [u64; 5]);

impl PartialEq for PackedKey {
    /// Branch-free, inlined (a derived array compare calls memcmp).
    #[inline]
    fn eq(&self, o: &Self) -> bool {
        let (a, b) = (&self.0, &o.0);
        ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0
    }
}

impl FlowKey {
    #[inline]
    pub fn pack(&self) -> PackedKey {
        PackedKey(words(
            exporter_words(self.exporter),
            self.engine,
            self.proto,
            v4_bits(self.src),
            self.sport,
            v4_bits(self.dst),
            self.dport,
            self.tos,
            self.input,
            self.output,
        ))
    }
}

/// The first two words of a packed key: the exporter as an IPv6 address
/// (IPv4 as `::ffff:a.b.c.d`).
#[inline]
pub fn exporter_words(exporter: IpAddr) -> [u64; 2] {
    let ex = match exporter {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
    .to_bits();
    [(ex >> 64) as u64, ex as u64]
}

/// The 32 bits of an IPv4 address as the packed key holds it; an IPv6
/// address folded to 32 bits.
///
/// A shard's IPv4 family holds IPv4 flows only: records with an IPv6
/// address go to its IPv6 family (`slab6.rs`), which keeps them whole. The
/// fold is what routing (`collect`'s `hash mod workers` of the packed key)
/// and a [`PackedKey`] of an IPv6 record see: the same key always folds the
/// same way, and the shard never compares folded addresses.
#[inline(always)]
pub(crate) fn v4_bits(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(a) => a.to_bits(),
        IpAddr::V6(a) => {
            let b = a.to_bits();
            (b ^ b >> 32 ^ b >> 64 ^ b >> 96) as u32
        }
    }
}

/// The one word layout of a packed key ([`PackedKey::unpack`] reads it back).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn words(
    ex: [u64; 2],
    engine: u16,
    proto: u8,
    src: u32,
    sport: u16,
    dst: u32,
    dport: u16,
    tos: u8,
    input: u32,
    output: u32,
) -> [u64; 5] {
    [
        ex[0],
        ex[1],
        (src as u64) << 32 | dst as u64,
        (sport as u64) << 48
            | (dport as u64) << 32
            | (engine as u64) << 16
            | (proto as u64) << 8
            | tos as u64,
        (input as u64) << 32 | output as u64,
    ]
}

impl PackedKey {
    pub fn unpack(&self) -> FlowKey {
        let w = self.0;
        let ex = std::net::Ipv6Addr::from_bits((w[0] as u128) << 64 | w[1] as u128);
        FlowKey {
            exporter: IpAddr::V6(ex).to_canonical(),
            engine: (w[3] >> 16) as u16,
            proto: (w[3] >> 8) as u8,
            src: IpAddr::V4(Ipv4Addr::from((w[2] >> 32) as u32)),
            sport: (w[3] >> 48) as u16,
            dst: IpAddr::V4(Ipv4Addr::from(w[2] as u32)),
            dport: (w[3] >> 32) as u16,
            tos: w[3] as u8,
            input: (w[4] >> 32) as u32,
            output: w[4] as u32,
        }
    }
}

/// A packed key's words other than the 5-tuple (exporter, engine, tos,
/// input, output; the unselected ones as the packer fills them): what a
/// shard interns as a *context* (`context.rs`). The same four words with
/// the first record's exporter, engine and sampling are a flow's *origin*
/// ([`origin_words`]).
pub(crate) type ContextWords = [u64; 4];

/// Bits of word 3 that belong to the context (engine, tos); the 5-tuple's
/// ports and protocol are the others.
const CONTEXT_W3: u64 = 0xffff_00ff;

impl PackedKey {
    /// The context words of this key.
    #[inline(always)]
    pub(crate) fn context(&self) -> ContextWords {
        let w = &self.0;
        [w[0], w[1], w[3] & CONTEXT_W3, w[4]]
    }

    /// Source and destination address, `src << 32 | dst`.
    #[inline(always)]
    pub(crate) fn addrs(&self) -> u64 {
        self.0[2]
    }

    /// Source and destination port, `sport << 16 | dport`.
    #[inline(always)]
    pub(crate) fn ports(&self) -> u32 {
        (self.0[3] >> 32) as u32
    }

    #[inline(always)]
    pub(crate) fn proto(&self) -> u8 {
        (self.0[3] >> 8) as u8
    }

    /// The packed key of a context and a 5-tuple (each as packed: masked).
    #[inline]
    pub(crate) fn join(ctx: &ContextWords, addrs: u64, ports: u32, proto: u8) -> PackedKey {
        PackedKey([
            ctx[0],
            ctx[1],
            addrs,
            (ports as u64) << 32 | ctx[2] | (proto as u64) << 8,
            ctx[3],
        ])
    }
}

/// The origin of a flow whose first record is `r`: its exporter, engine
/// and sampling field, unmasked, in the context word layout (the sampling
/// field in word 2's bits 32..48, which no context uses).
#[inline]
pub(crate) fn origin_words(r: &FlowRecord) -> ContextWords {
    let [a, b] = exporter_words(r.exporter);
    let engine = u16::from_be_bytes([r.engine_type, r.engine_id]) as u64;
    [a, b, (r.sampling as u64) << 32 | engine << 16, 0]
}

/// What a context or origin holds, unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContextFields {
    pub exporter: IpAddr,
    pub engine_type: u8,
    pub engine_id: u8,
    pub sampling: u16,
    pub tos: u8,
    pub input: u32,
    pub output: u32,
}

/// [`ContextWords`] unpacked.
pub(crate) fn context_fields(c: &ContextWords) -> ContextFields {
    let ex = std::net::Ipv6Addr::from_bits((c[0] as u128) << 64 | c[1] as u128);
    let [engine_type, engine_id] = ((c[2] >> 16) as u16).to_be_bytes();
    ContextFields {
        exporter: IpAddr::V6(ex).to_canonical(),
        engine_type,
        engine_id,
        sampling: (c[2] >> 32) as u16,
        tos: c[2] as u8,
        input: (c[3] >> 32) as u32,
        output: c[3] as u32,
    }
}

impl KeyPacker {
    /// The bits of the 5-tuple the key keeps: (addresses, ports, protocol)
    /// in the layout of [`PackedKey::addrs`], [`PackedKey::ports`] and
    /// [`PackedKey::proto`].
    pub(crate) fn tuple_masks(&self) -> (u64, u32, u8) {
        let k = PackedKey(self.keep);
        (k.addrs(), k.ports(), k.proto())
    }

    /// Whether the context words of every key are the same but for the
    /// exporter's two (no engine, tos, input or output in the key).
    pub(crate) fn exporter_only(&self) -> bool {
        let c = PackedKey(self.keep).context();
        c[2] == 0 && c[3] == 0
    }

    /// The last two context words of every key, when
    /// [`KeyPacker::exporter_only`].
    #[inline(always)]
    pub(crate) fn context_rest(&self) -> [u64; 2] {
        let c = PackedKey(self.fill).context();
        [c[2], c[3]]
    }
}

/// The hash of a packed key: ahash over its five words (five folded
/// multiplies), or a shard's compact key ([`KeyHasher::hash2`], one),
/// under fixed seeds for routing ([`KeyHasher::hash_packed`]:
/// the same key lands on the same shard in every run) or under a table's own
/// seeds ([`KeyHasher::seeded`], random per process: an exporter cannot pick
/// keys that collide in the flow table, whatever it knows of the code).
#[derive(Debug, Clone)]
pub struct KeyHasher(ahash::RandomState, [u64; 2]);

impl KeyHasher {
    /// Seeds drawn at random (by ahash from the OS) for this hasher.
    pub fn seeded() -> Self {
        let s = ahash::RandomState::new();
        // Two more seeds for `hash2`, drawn from the first (odd: never zero).
        let extra = [s.hash_one(0x5eed_u64) | 1, s.hash_one(0x5eed_5eed_u64) | 1];
        KeyHasher(s, extra)
    }

    /// The hash of `key` under this hasher's seeds.
    #[inline]
    pub fn hash(&self, key: &PackedKey) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = self.0.build_hasher();
        for w in key.0 {
            h.write_u64(w);
        }
        h.finish()
    }

    /// The hash of `words` under this hasher's seeds (a shard's IPv6 key,
    /// `slab6.rs`).
    #[inline]
    pub(crate) fn hash_words(&self, words: &[u64]) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = self.0.build_hasher();
        for &w in words {
            h.write_u64(w);
        }
        h.finish()
    }

    /// The hash of a shard's compact key, two words (`slab.rs`): one
    /// folded multiply of the words, each XORed with a seed of its own
    /// (wyhash's core step: a 128-bit product, its halves XORed). The seeds
    /// are random per table, so an exporter cannot aim keys at one bucket;
    /// a third of the instructions of two ahash rounds.
    #[inline(always)]
    pub(crate) fn hash2(&self, a: u64, b: u64) -> u64 {
        let p = ((a ^ self.1[0]) as u128) * ((b ^ self.1[1]) as u128);
        (p as u64) ^ (p >> 64) as u64
    }

    /// The routing hash: fixed seeds, the same in every process.
    #[inline]
    pub fn hash_packed(key: &PackedKey) -> u64 {
        static FIXED: KeyHasher = KeyHasher(
            ahash::RandomState::with_seeds(
                0x6e66_7374_6974_6368,
                0x9e37_79b9_7f4a_7c15,
                0xc2b2_ae3d_27d4_eb4f,
                0x1656_67b1_9e37_79f9,
            ),
            [0x9e37_79b9_7f4a_7c15, 0xc2b2_ae3d_27d4_eb4f],
        );
        FIXED.hash(key)
    }
}

#[cfg(test)]
mod pack_tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table_seeds_are_random() {
        let k = PackedKey([1, 2, 3, 4, 5]);
        // Two tables: two draws of 256 bits of seed; equal hashes for one
        // key would take a 2^-64 coincidence.
        assert_ne!(KeyHasher::seeded().hash(&k), KeyHasher::seeded().hash(&k));
        let a = KeyHasher::seeded();
        assert_eq!(a.hash(&k), a.clone().hash(&k), "one table, one hash");
        assert_ne!(KeyHasher::seeded().hash2(1, 2), KeyHasher::seeded().hash2(1, 2));
        assert_eq!(a.hash2(1, 2), a.clone().hash2(1, 2));
    }

    fn any_key() -> impl Strategy<Value = FlowKey> {
        (
            prop_oneof![
                any::<u32>().prop_map(|a| IpAddr::V4(a.into())),
                // Not IPv4-mapped: those unpack as IPv4 by design.
                any::<u128>()
                    .prop_filter("not v4-mapped", |a| (a >> 32) != 0xffff)
                    .prop_map(|a| IpAddr::V6(a.into())),
            ],
            any::<(u16, u8, u32, u16, u32, u16, u8, u32, u32)>(),
        )
            .prop_map(
                |(exporter, (engine, proto, src, sport, dst, dport, tos, input, output))| FlowKey {
                    exporter,
                    engine,
                    proto,
                    src: IpAddr::V4(src.into()),
                    sport,
                    dst: IpAddr::V4(dst.into()),
                    dport,
                    tos,
                    input,
                    output,
                },
            )
    }

    proptest! {
        #[test]
        fn packer_equals_key_of_then_pack(
            bits in 0u16..1 << KeyField::ALL.len(),
            k in any_key(),
            rest in any::<(u8, u32, u32, u8)>(),
        ) {
            let spec = KeySpec(bits);
            let [et, ei] = k.engine.to_be_bytes();
            let r = FlowRecord {
                exporter: k.exporter,
                engine_type: et,
                engine_id: ei,
                proto: k.proto,
                src_addr: k.src,
                src_port: k.sport,
                dst_addr: k.dst,
                dst_port: k.dport,
                tos: k.tos,
                input: k.input,
                output: k.output,
                tcp_flags: rest.0,
                nexthop: IpAddr::V4(rest.1.into()),
                src_as: rest.2,
                src_mask: rest.3,
                ..ZERO
            };
            prop_assert_eq!(spec.packer().pack(&r), spec.key_of(&r).pack());
        }

        #[test]
        fn pack_round_trips_and_preserves_equality(a in any_key(), b in any_key()) {
            prop_assert_eq!(a.pack().unpack(), a);
            prop_assert_eq!(a == b, a.pack() == b.pack());
        }
    }

    #[test]
    fn unspecified_v4_and_v6_exporters_differ() {
        let mut k = FlowKey {
            exporter: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            engine: 0,
            proto: 6,
            src: IpAddr::V4(1.into()),
            sport: 2,
            dst: IpAddr::V4(3.into()),
            dport: 4,
            tos: 0,
            input: 0,
            output: 0,
        };
        let v4 = k.pack();
        k.exporter = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        assert_ne!(v4, k.pack());
        assert_eq!(k.pack().unpack(), k);
    }
}
