//! `--pair`: the two directions of a connection (A:a → B:b and B:b → A:a,
//! one protocol) stitched into one [`Conn`], Zeek `conn.log` style.
//!
//! Owns: which flow is a direction's partner ([`partner`]), the routing
//! hash that sends both directions to one shard ([`symmetric_hash`]), and
//! the pairing stage ([`Pairer`]) that sits behind a shard and turns the
//! flows it emits into connections, each emitted exactly once. What a
//! connection says (originator, `conn_state`, history, uid): [`conn`].
//!
//! The stage needs one thing from its shard: whether a direction is still
//! live there (`Shard::contains`), passed in as a closure.
//!
//! # When a connection is emitted
//! A direction ends in its shard as usual (FIN/RST plus linger, idle,
//! evicted, shutdown) and comes here:
//! - its partner is waiting here: both have ended, the connection is
//!   emitted (its end reason: the direction that ended last);
//! - else, its partner is live in the shard: it waits for the partner to
//!   end (the shard ends every flow: by its timers at the latest);
//! - else it waits until it has been idle for `--idle` (its last record's
//!   collector time + idle): a partner that starts meanwhile makes it wait
//!   for that partner, none makes it a connection alone (**unpaired**:
//!   responder counters zero). A direction that ended `idle` has waited
//!   that long already, so it goes at once.
//! - At shutdown the shard's final flush pairs what it can, then every
//!   direction still waiting goes unpaired, sorted by (first, key).
//!
//! A direction that ends again while it waits (its flow ended by a FIN's
//! linger, then more records came) is added to the waiting one: one
//! direction of one connection.
//!
//! # Memory
//! Each direction waiting for a live partner has that partner in the
//! shard, so there are at most as many as the shard holds (`--max-flows`
//! per shard); those waiting for a partner that is not there are capped at
//! the shard's `--max-flows` too: past it, the one whose wait ends first
//! goes unpaired early (`pair_overflow`). So the stage holds at most twice
//! the shard's flow cap in flows.

pub mod conn;

pub use conn::{Conn, ConnState, History, Uid};
use std::collections::{BTreeSet, HashMap};

use crate::flow::{EndReason, Flow, FlowKey, KeyField, KeySpec};

/// The key of the other direction of the flow keyed `k`: addresses, ports
/// and interfaces swapped (ICMP: echo, timestamp, information and address
/// mask requests and replies answer each other; other ICMP types have no
/// partner). Exporter, engine, protocol and tos stay.
pub fn partner(k: &FlowKey) -> FlowKey {
    let (sport, dport) = match icmp_answer(k.proto, k.dport) {
        Some(d) => (k.sport, d),
        None if is_icmp(k.proto) => (k.sport, k.dport), // no partner: itself swapped
        None => (k.dport, k.sport),
    };
    FlowKey { src: k.dst, dst: k.src, sport, dport, input: k.output, output: k.input, ..*k }
}

fn is_icmp(proto: u8) -> bool {
    proto == 1 || proto == 58
}

/// ICMP's type×256+code of the answer to `dport`'s type (code 0), if it has one.
fn icmp_answer(proto: u8, dport: u16) -> Option<u16> {
    let t = (dport >> 8) as u8;
    let other: u8 = match proto {
        1 => match t {
            8 => 0,
            0 => 8,
            13 => 14,
            14 => 13,
            15 => 16,
            16 => 15,
            17 => 18,
            18 => 17,
            _ => return None,
        },
        58 => match t {
            128 => 129,
            129 => 128,
            _ => return None,
        },
        _ => return None,
    };
    Some(u16::from(other) << 8)
}

/// The routing hash of `--pair`: the same for a flow key and its
/// [`partner`], so both directions land in one shard. A function of the
/// key only (every record of one flow goes to one shard): the two
/// endpoints (address, port, interface on its side) in a fixed order, then
/// the fields both directions share. ICMP leaves the ports out (type and
/// code differ between request and answer).
pub fn symmetric_hash(k: &FlowKey) -> u64 {
    static FIXED: ahash::RandomState = ahash::RandomState::with_seeds(
        0x7061_6972_6564_2121,
        0x9e37_79b9_7f4a_7c15,
        0xc2b2_ae3d_27d4_eb4f,
        0x1656_67b1_9e37_79f9,
    );
    let ports = !is_icmp(k.proto);
    let a = (k.src, if ports { k.sport } else { 0 }, k.input);
    let b = (k.dst, if ports { k.dport } else { 0 }, k.output);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    FIXED.hash_one((lo, hi, k.exporter, k.engine, k.proto, k.tos))
}

/// Why `--pair` cannot work with a key (`None`: it can): both addresses,
/// both ports and the protocol must be in it.
pub fn key_problem(key: &KeySpec) -> Option<String> {
    let need = [
        (KeyField::Proto, "proto"),
        (KeyField::Src, "src"),
        (KeyField::Sport, "sport"),
        (KeyField::Dst, "dst"),
        (KeyField::Dport, "dport"),
    ];
    let missing: Vec<&str> = need.iter().filter(|(f, _)| !key.has(*f)).map(|(_, n)| *n).collect();
    (!missing.is_empty()).then(|| {
        format!(
            "--pair needs proto, src, sport, dst and dport in --key (missing: {})",
            missing.join(",")
        )
    })
}

/// What the pairing stage has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairStats {
    /// Connections emitted, by [`ConnState`] index.
    pub by_state: [u64; ConnState::ALL.len()],
    /// Connections emitted, by [`EndReason`] index.
    pub by_end_reason: [u64; 4],
    /// Connections of two directions.
    pub paired: u64,
    /// Connections of one direction (no partner came).
    pub unpaired: u64,
    /// Of those, directions sent unpaired early for want of room.
    pub overflow: u64,
    /// Sums over both directions of every connection emitted.
    pub records: u64,
    pub packets: u64,
    pub octets: u64,
}

impl PairStats {
    pub fn conns(&self) -> u64 {
        self.paired + self.unpaired
    }

    pub fn add(&mut self, o: &PairStats) {
        for (a, b) in self.by_state.iter_mut().zip(o.by_state) {
            *a += b;
        }
        for (a, b) in self.by_end_reason.iter_mut().zip(o.by_end_reason) {
            *a += b;
        }
        self.paired += o.paired;
        self.unpaired += o.unpaired;
        self.overflow += o.overflow;
        self.records += o.records;
        self.packets += o.packets;
        self.octets += o.octets;
    }

    fn count(&mut self, c: &Conn) {
        self.by_state[c.state() as usize] += 1;
        self.by_end_reason[c.end_reason as usize] += 1;
        if c.resp.is_some() {
            self.paired += 1;
        } else {
            self.unpaired += 1;
        }
        self.records += c.records();
        self.packets += c.orig.packets + c.resp_packets();
        self.octets += c.orig.octets + c.resp_octets();
    }
}

/// A waiting direction's deadline before it is decided (within one batch).
const UNDECIDED: u64 = u64::MAX - 1;
/// The deadline of a direction whose partner is live: none (the partner's end collects it).
const PARTNER_LIVE: u64 = u64::MAX;

/// The pairing stage behind one shard (see the module doc).
#[derive(Debug)]
pub struct Pairer {
    idle_ns: u64,
    /// Most directions waiting for a partner that is not live.
    cap: usize,
    /// Ended directions waiting, by their key, with their deadline.
    waiting: HashMap<FlowKey, (Flow, u64)>,
    /// (deadline, key) of the waiting directions with a deadline.
    deadlines: BTreeSet<(u64, FlowKey)>,
    /// Keys of the batch being paired.
    batch: Vec<FlowKey>,
    stats: PairStats,
}

impl Pairer {
    /// A stage for a shard with timeout `idle_ns` and flow cap `max_flows`.
    pub fn new(idle_ns: u64, max_flows: usize) -> Self {
        Pairer {
            idle_ns,
            cap: max_flows.max(1),
            waiting: HashMap::new(),
            deadlines: BTreeSet::new(),
            batch: Vec::new(),
            stats: PairStats::default(),
        }
    }

    pub fn stats(&self) -> &PairStats {
        &self.stats
    }

    /// The earliest time (ns) at which [`Pairer::advance`] may decide a
    /// waiting direction (the worker's poll sleeps no longer than this).
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|&(dl, _)| dl)
    }

    /// Directions waiting for a partner now.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Directions the shard emitted (drained from `flows`) at collector
    /// time `now`; `live(k)` says whether flow `k` is live in the shard.
    /// Connections that are complete go to `out`.
    pub fn push(
        &mut self,
        now: u64,
        flows: &mut Vec<Flow>,
        live: impl Fn(&FlowKey) -> bool,
        out: &mut Vec<Conn>,
    ) {
        if flows.is_empty() {
            return;
        }
        // Pass 1: pair with waiting directions (those of this batch too),
        // so that two directions ending together meet here.
        self.batch.clear();
        for f in flows.drain(..) {
            if let Some((w, dl)) = self.waiting.remove(&partner(&f.key)) {
                self.deadlines.remove(&(dl, w.key));
                self.emit(Conn::paired(w, f), out);
            } else if let Some((w, dl)) = self.waiting.get_mut(&f.key) {
                merge(w, &f);
                self.deadlines.remove(&(*dl, f.key));
                *dl = UNDECIDED;
                self.batch.push(f.key);
            } else {
                self.batch.push(f.key);
                self.waiting.insert(f.key, (f, UNDECIDED));
            }
        }
        // Pass 2: what the others wait for.
        let batch = std::mem::take(&mut self.batch);
        for k in &batch {
            if matches!(self.waiting.get(k), Some((_, UNDECIDED))) {
                self.decide(*k, now, &live, out);
            }
        }
        self.batch = batch;
        while self.deadlines.len() > self.cap {
            let Some((_, k)) = self.deadlines.pop_first() else { break };
            if let Some((f, _)) = self.waiting.remove(&k) {
                self.stats.overflow += 1;
                self.emit(Conn::unpaired(f), out);
            }
        }
    }

    /// Time moved to `now`: directions whose wait is over go unpaired,
    /// unless their partner is live now (then they wait for it).
    pub fn advance(&mut self, now: u64, live: impl Fn(&FlowKey) -> bool, out: &mut Vec<Conn>) {
        while let Some(&(dl, k)) = self.deadlines.first() {
            if dl > now {
                break;
            }
            self.deadlines.pop_first();
            self.decide(k, now, &live, out);
        }
    }

    /// End of input: the shard's final flush `flows` pairs with what waits
    /// (and among itself), and everything left goes unpaired (none of it
    /// counted `overflow`: nothing is early at the end). The caller sorts
    /// the connections (by [`Conn::order`]).
    pub fn finish(&mut self, flows: &mut Vec<Flow>, out: &mut Vec<Conn>) {
        self.cap = usize::MAX;
        self.push(u64::MAX, flows, |_| false, out);
        self.flush(out);
    }

    /// End of input: every waiting direction goes unpaired, sorted by
    /// (first, key).
    pub fn flush(&mut self, out: &mut Vec<Conn>) {
        let mut rest: Vec<Flow> = self.waiting.drain().map(|(_, (f, _))| f).collect();
        self.deadlines.clear();
        rest.sort_unstable_by_key(|f| (f.first_ns, f.key));
        for f in rest {
            self.emit(Conn::unpaired(f), out);
        }
    }

    /// Waiting direction `k` (its deadline already out of `deadlines`):
    /// wait for a live partner, or until idle, or go unpaired now.
    fn decide(
        &mut self,
        k: FlowKey,
        now: u64,
        live: &impl Fn(&FlowKey) -> bool,
        out: &mut Vec<Conn>,
    ) {
        let Some((f, dl)) = self.waiting.get_mut(&k) else { return };
        if live(&partner(&k)) {
            *dl = PARTNER_LIVE;
            return;
        }
        let until = f.seen_ns.saturating_add(self.idle_ns).min(UNDECIDED - 1);
        if until <= now.max(f.end_ns) {
            let (f, _) = self.waiting.remove(&k).expect("present");
            self.emit(Conn::unpaired(f), out);
        } else {
            *dl = until;
            self.deadlines.insert((until, k));
        }
    }

    fn emit(&mut self, c: Conn, out: &mut Vec<Conn>) {
        self.stats.count(&c);
        out.push(c);
    }
}

/// Add direction `f` (the same key, ended again) to waiting `w`.
fn merge(w: &mut Flow, f: &Flow) {
    if f.first_ns < w.first_ns {
        w.rec = f.rec;
    }
    w.records += f.records;
    w.packets += f.packets;
    w.octets += f.octets;
    w.tcp_flags |= f.tcp_flags;
    w.first_ns = w.first_ns.min(f.first_ns);
    w.last_ns = w.last_ns.max(f.last_ns);
    w.start_ns = w.start_ns.min(f.start_ns);
    w.seen_ns = w.seen_ns.max(f.seen_ns);
    if f.end_ns >= w.end_ns {
        w.end_ns = f.end_ns;
        w.end_reason = f.end_reason;
    }
    if f.exporter_end_reason != 0 {
        w.exporter_end_reason = f.exporter_end_reason;
    }
}

/// The Zeek `proto` enum of a protocol number.
pub fn zeek_proto(proto: u8) -> &'static str {
    match proto {
        6 => "tcp",
        17 => "udp",
        1 | 58 => "icmp",
        _ => "unknown_transport",
    }
}

/// Names of the end reasons, by index (for the report).
pub fn end_reason_names() -> [&'static str; 4] {
    EndReason::ALL.map(EndReason::as_str)
}

#[cfg(test)]
mod tests;
