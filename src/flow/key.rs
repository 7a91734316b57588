//! The flow key: which record fields identify "one flow", selectable with `--key`.
//!
//! A [`FlowKey`] always has every field; the fields not selected by the
//! [`KeySpec`] are zero, so equality and hashing only see the selected ones.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use super::FlowRecord;

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
            src: if on(KeyField::Src) { r.src_addr } else { 0 },
            sport: if on(KeyField::Sport) { r.src_port } else { 0 },
            dst: if on(KeyField::Dst) { r.dst_addr } else { 0 },
            dport: if on(KeyField::Dport) { r.dst_port } else { 0 },
            tos: if on(KeyField::Tos) { r.tos } else { 0 },
            input: if on(KeyField::Input) { r.input } else { 0 },
            output: if on(KeyField::Output) { r.output } else { 0 },
        }
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
    pub src: u32,
    pub sport: u16,
    pub dst: u32,
    pub dport: u16,
    pub tos: u8,
    pub input: u16,
    pub output: u16,
}

/// The fixed-seed hasher used for flow tables and for routing records to
/// shards: the same key lands on the same shard in every run.
#[derive(Debug, Clone, Default)]
pub struct KeyHasher;

impl KeyHasher {
    #[inline]
    pub fn hash(key: &FlowKey) -> u64 {
        static STATE: std::sync::OnceLock<ahash::RandomState> = std::sync::OnceLock::new();
        STATE
            .get_or_init(|| {
                ahash::RandomState::with_seeds(
                    0x6e66_7374_6974_6368,
                    0x9e37_79b9_7f4a_7c15,
                    0xc2b2_ae3d_27d4_eb4f,
                    0x1656_67b1_9e37_79f9,
                )
            })
            .hash_one(key)
    }
}
