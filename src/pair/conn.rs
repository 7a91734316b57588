//! One connection: the two directions of a flow pair (or one direction
//! alone), who the originator is, and what the TCP flags each direction
//! ORed say about it: Zeek's `conn_state` and a `history`.
//!
//! Owns: orientation (originator heuristics), the flags-to-`conn_state`
//! mapping, the history letters and the `uid`. No state, no clock.
//!
//! # Originator
//! 1. the side whose **first record** has SYN without ACK (the other's does not);
//! 2. else the side seen first (earlier router `first`);
//! 3. else (same `first`: one millisecond in v5) the side with the higher
//!    port (the ephemeral one), then the higher address.
//!
//! The history starts with `^` when the originator is not the side seen
//! first (rule 1 overrode the times) or when rule 3 decided: Zeek's mark
//! for a direction its heuristics chose.
//!
//! # `conn_state` from ORed flags
//! `o`/`r` are the originator's and responder's ORed TCP flags; a responder
//! "answered" when it has packets. TCP, checked in this order:
//!
//! | state | flags |
//! |---|---|
//! | `REJ` | `r` has RST, `r` no SYN, `o` has SYN (a SYN answered by RST) |
//! | `RSTRH` | `r` has RST and SYN, `o` no SYN |
//! | `RSTR` | `r` has RST (otherwise) |
//! | `RSTOS0` | `o` has SYN and RST, no answer with SYN from `r` |
//! | `RSTO` | `o` has RST (otherwise; `OTH` when `o` has no SYN and `r` never answered) |
//! | `SF` | both have FIN |
//! | `SH` / `S2` | `o` has FIN: `SH` when `r` has no SYN, else `S2` |
//! | `SHR` / `S3` | `r` has FIN: `SHR` when `o` has no SYN, else `S3` |
//! | `S0` | `o` has SYN, `r` never answered |
//! | `S1` | `o` has SYN, `r` has SYN |
//! | `OTH` | anything else (midstream: no SYN seen) |
//!
//! UDP: `SF` when both sides sent, `S0` when only the originator did, `SHR`
//! when only the responder did; other protocols `OTH` (as Zeek does).
//!
//! What flags cannot tell: the **order** of events (Zeek's `REJ` vs a RST
//! after an established handshake, `RSTO` vs `RSTR` when both sides reset:
//! the responder's RST wins here; whether a FIN came before or after a
//! RST), whether a SYN of the responder carried the ACK (Zeek's `h`),
//! payload (`D`/`d`), retransmissions and gaps, and anything a router's
//! sampling hid. So the history has only `S`/`s` (SYN), `F`/`f` (FIN) and
//! `R`/`r` (RST), each at most once, in that fixed order (not the order
//! they happened in): `^SsFf` for a flipped, cleanly closed connection.
//!
//! # `uid`
//! `C` and 17 base-62 digits of a 128-bit keyed hash (a fixed key, see
//! [`uid`]) of the connection key (the exporter when `--key` has it, the
//! protocol, originator and responder address and port) and the
//! connection's `first` in ns: the same connection gets the same uid in
//! every run, with any number of workers.

use std::net::IpAddr;

use crate::flow::{EndReason, Flow};

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// A connection: the originator's direction and the responder's, if seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// The originator's direction (or the only one seen).
    pub orig: Flow,
    /// The responder's direction; `None`: unpaired (responder counters zero).
    pub resp: Option<Flow>,
    /// The originator was chosen by a heuristic against or without the
    /// time order: `^` in the history.
    pub flipped: bool,
    /// Why the connection ended: the end reason of its direction that ended last.
    pub end_reason: EndReason,
}

/// Zeek's connection states, as far as flags tell (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConnState {
    S0,
    S1,
    SF,
    REJ,
    S2,
    S3,
    RSTO,
    RSTR,
    RSTOS0,
    RSTRH,
    SH,
    SHR,
    OTH,
}

impl ConnState {
    pub const ALL: [ConnState; 13] = [
        ConnState::S0,
        ConnState::S1,
        ConnState::SF,
        ConnState::REJ,
        ConnState::S2,
        ConnState::S3,
        ConnState::RSTO,
        ConnState::RSTR,
        ConnState::RSTOS0,
        ConnState::RSTRH,
        ConnState::SH,
        ConnState::SHR,
        ConnState::OTH,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::S0 => "S0",
            ConnState::S1 => "S1",
            ConnState::SF => "SF",
            ConnState::REJ => "REJ",
            ConnState::S2 => "S2",
            ConnState::S3 => "S3",
            ConnState::RSTO => "RSTO",
            ConnState::RSTR => "RSTR",
            ConnState::RSTOS0 => "RSTOS0",
            ConnState::RSTRH => "RSTRH",
            ConnState::SH => "SH",
            ConnState::SHR => "SHR",
            ConnState::OTH => "OTH",
        }
    }

    /// The state of a connection whose originator ORed flags `o` and sent
    /// `op` packets, whose responder ORed `r` and sent `rp` packets.
    pub fn from_flags(proto: u8, o: u8, op: u64, r: u8, rp: u64) -> ConnState {
        let (has, not) = (|f: u8, b: u8| f & b != 0, |f: u8, b: u8| f & b == 0);
        match proto {
            6 => {
                let answered = rp > 0;
                if has(r, RST) {
                    if not(r, SYN) && has(o, SYN) {
                        ConnState::REJ
                    } else if has(r, SYN) && not(o, SYN) {
                        ConnState::RSTRH
                    } else {
                        ConnState::RSTR
                    }
                } else if has(o, RST) {
                    if has(o, SYN) && not(r, SYN) {
                        ConnState::RSTOS0
                    } else if not(o, SYN) && !answered {
                        ConnState::OTH
                    } else {
                        ConnState::RSTO
                    }
                } else if has(o, FIN) && has(r, FIN) {
                    ConnState::SF
                } else if has(o, FIN) {
                    if not(r, SYN) {
                        ConnState::SH
                    } else {
                        ConnState::S2
                    }
                } else if has(r, FIN) {
                    if not(o, SYN) {
                        ConnState::SHR
                    } else {
                        ConnState::S3
                    }
                } else if has(o, SYN) && !answered {
                    ConnState::S0
                } else if has(o, SYN) && has(r, SYN) {
                    ConnState::S1
                } else {
                    ConnState::OTH
                }
            }
            17 => match (op > 0, rp > 0) {
                (true, true) => ConnState::SF,
                (true, false) => ConnState::S0,
                (false, true) => ConnState::SHR,
                (false, false) => ConnState::OTH,
            },
            _ => ConnState::OTH,
        }
    }
}

/// The history letters (at most 7: `^SsFfRr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    buf: [u8; 7],
    len: u8,
}

impl History {
    pub fn new(proto: u8, flipped: bool, o: u8, r: u8) -> Self {
        let mut h = History { buf: [0; 7], len: 0 };
        let mut push = |c: u8| {
            h.buf[h.len as usize] = c;
            h.len += 1;
        };
        if flipped {
            push(b'^');
        }
        if proto == 6 {
            for (bit, up, low) in [(SYN, b'S', b's'), (FIN, b'F', b'f'), (RST, b'R', b'r')] {
                if o & bit != 0 {
                    push(up);
                }
                if r & bit != 0 {
                    push(low);
                }
            }
        }
        h
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever pushed.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl Conn {
    /// A direction alone: the originator, responder counters zero.
    pub fn unpaired(f: Flow) -> Conn {
        Conn { end_reason: f.end_reason, orig: f, resp: None, flipped: false }
    }

    /// The two directions of one connection, `last` the one that ended
    /// last (its end reason is the connection's): orient them.
    pub fn paired(first: Flow, last: Flow) -> Conn {
        let end_reason = last.end_reason;
        let (a, b) = (first, last);
        let syn_only = |f: &Flow| f.rec.proto == 6 && f.rec.tcp_flags & (SYN | ACK) == SYN;
        let (a_orig, flipped) = if syn_only(&a) != syn_only(&b) {
            // Rule 1; flipped when the SYN side was not seen first.
            let a_orig = syn_only(&a);
            let (o, r) = if a_orig { (&a, &b) } else { (&b, &a) };
            (a_orig, o.first_ns > r.first_ns)
        } else if a.first_ns != b.first_ns {
            (a.first_ns < b.first_ns, false)
        } else {
            // Rule 3: the higher (ephemeral) port, then the higher address.
            let side = |f: &Flow| (f.rec.src_port, f.rec.src_addr);
            (side(&a) > side(&b), true)
        };
        let (orig, resp) = if a_orig { (a, b) } else { (b, a) };
        Conn { orig, resp: Some(resp), flipped, end_reason }
    }

    pub fn resp_packets(&self) -> u64 {
        self.resp.as_ref().map_or(0, |f| f.packets)
    }

    pub fn resp_octets(&self) -> u64 {
        self.resp.as_ref().map_or(0, |f| f.octets)
    }

    pub fn resp_flags(&self) -> u8 {
        self.resp.as_ref().map_or(0, |f| f.tcp_flags)
    }

    /// Records of both directions.
    pub fn records(&self) -> u64 {
        self.orig.records + self.resp.as_ref().map_or(0, |f| f.records)
    }

    /// Earliest `first` of both directions (router clock, ns).
    pub fn first_ns(&self) -> u64 {
        self.resp.as_ref().map_or(self.orig.first_ns, |f| f.first_ns.min(self.orig.first_ns))
    }

    /// Latest `last` of both directions (router clock, ns).
    pub fn last_ns(&self) -> u64 {
        self.resp.as_ref().map_or(self.orig.last_ns, |f| f.last_ns.max(self.orig.last_ns))
    }

    /// When the connection ended (collector clock): its last direction's end.
    pub fn end_ns(&self) -> u64 {
        self.resp.as_ref().map_or(self.orig.end_ns, |f| f.end_ns.max(self.orig.end_ns))
    }

    pub fn state(&self) -> ConnState {
        let o = &self.orig;
        ConnState::from_flags(
            o.rec.proto,
            o.tcp_flags,
            o.packets,
            self.resp_flags(),
            self.resp_packets(),
        )
    }

    pub fn history(&self) -> History {
        History::new(self.orig.rec.proto, self.flipped, self.orig.tcp_flags, self.resp_flags())
    }

    /// The originator's and responder's address and port.
    pub fn endpoints(&self) -> (IpAddr, u16, IpAddr, u16) {
        let r = &self.orig.rec;
        (r.src_addr, r.src_port, r.dst_addr, r.dst_port)
    }

    /// The stable connection id (see the module doc), `C` + 17 base-62 digits.
    pub fn uid(&self) -> Uid {
        let (oa, op, ra, rp) = self.endpoints();
        uid(self.orig.key.exporter, self.orig.rec.proto, oa, op, ra, rp, self.first_ns())
    }

    /// Sort key for outputs that must not depend on the worker count:
    /// (first, originator's key).
    pub fn order(&self) -> (u64, crate::flow::FlowKey) {
        (self.first_ns(), self.orig.key)
    }
}

/// A connection uid: `C` and 17 base-62 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Uid([u8; 18]);

impl Uid {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("C")
    }
}

/// The uid hash's fixed key (any constant would do; it must never change,
/// or uids change between versions).
const UID_KEY: [u64; 2] = [0x6e66_7374_6974_6368, 0x636f_6e6e_2d75_6964];

/// [`Conn::uid`] from its parts.
pub fn uid(
    exporter: IpAddr,
    proto: u8,
    oa: IpAddr,
    op: u16,
    ra: IpAddr,
    rp: u16,
    first: u64,
) -> Uid {
    let mut bytes = Vec::with_capacity(64);
    for a in [exporter, oa, ra] {
        match a {
            IpAddr::V4(a) => bytes.extend_from_slice(&a.to_ipv6_mapped().octets()),
            IpAddr::V6(a) => bytes.extend_from_slice(&a.octets()),
        }
    }
    bytes.push(proto);
    bytes.extend_from_slice(&op.to_be_bytes());
    bytes.extend_from_slice(&rp.to_be_bytes());
    bytes.extend_from_slice(&first.to_be_bytes());
    let mut h = [UID_KEY[0], UID_KEY[1]];
    for (lane, seed) in h.iter_mut().zip([0x9e37_79b9_7f4a_7c15u64, 0xc2b2_ae3d_27d4_eb4f]) {
        // FNV-1a over the bytes from a keyed offset, then a splitmix64 finish.
        let mut x = *lane ^ seed;
        for &b in &bytes {
            x ^= b as u64;
            x = x.wrapping_mul(0x0000_0100_0000_01b3);
        }
        *lane = mix(x);
    }
    let mut v = (h[0] as u128) << 64 | h[1] as u128;
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = [b'C'; 18];
    for d in out[1..].iter_mut() {
        *d = DIGITS[(v % 62) as usize];
        v /= 62;
    }
    Uid(out)
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ x >> 31
}
