//! The router model of one exporter: a cache that cuts sessions into records
//! (active/inactive timeouts, FIN/RST), an export queue, and the datagrams
//! with their header fields: v5 here (uptime, export time, flow_sequence,
//! engine, sampling), v9/IPFIX through [`crate::templated`].
//!
//! # How records appear
//! Each datagram is due at a tick of the exporter's clock (`now`). It takes
//! records whose export time has come, oldest first; when there are not
//! enough, new sessions are started *backwards in time*: a session is drawn,
//! cut into records, and anchored so that its first record is exported now
//! (its packets happened before). Its later records wait in a heap until
//! their time. So datagrams are always full, the export rate is exactly the
//! datagram schedule, and memory holds only sessions that still have records
//! to come, not the router's whole cache.
//!
//! # Exact counts, complete truth
//! With a planned number of datagrams (`quota`), the model keeps the
//! invariant `ready + flows waiting <= room left` (room: free record slots in
//! this and the remaining datagrams; a waiting flow needs one slot when cut
//! short). When the room is used up, the run's end has come for every open
//! session: [`ExporterGen::close`] cuts them at `now` and the router exports
//! what it holds (a session's part after `now` never happens). So the last
//! datagram leaves nothing behind, every started connection is finished,
//! and the record count is exactly `quota * records_per_datagram`.
//! Unplanned runs (a wall-clock deadline) end with [`ExporterGen::finish`]:
//! the same cut, then as many datagrams as needed.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::net::IpAddr;

use nfstitch::wire::{encode, HeaderFields, RecordFields};

use nfstitch::wire::template::encode::end_reason;

use crate::corrupt;
use crate::model::{self, Chunk, End, Params, Shape, ICMP, TCP};
use crate::rng::Rng;
use crate::templated::{self, Policy, Templated};
use crate::truth::{ConnTruth, CorruptCounts, ExporterTruth};

/// Uptime ms of an absolute ms, for a router booted at `boot_ms` (32-bit wrap).
#[inline]
fn uptime(abs_ms: u64, boot_ms: u64) -> u32 {
    abs_ms.wrapping_sub(boot_ms) as u32
}

/// One record with the absolute times the truth and the cut need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rec {
    pub fields: RecordFields,
    pub first_ms: u64,
    pub last_ms: u64,
    /// Connection id: `2 * session + direction`.
    pub conn: u64,
    /// An IPv6 session's record (its addresses map by [`templated::v6_addr`]).
    pub v6: bool,
    /// Why the router exported it (IPFIX flowEndReason).
    pub end: u8,
}

/// A record waiting for its export time.
#[derive(Debug, Clone, Copy)]
struct Pending {
    ready_ms: u64,
    order: u64,
    /// More records of the same connection wait after this one.
    more: bool,
    rec: Rec,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    /// Reversed: the max-heap pops the earliest export time first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.ready_ms, o.order).cmp(&(self.ready_ms, self.order))
    }
}

/// Sums of one made datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DgStats {
    pub records: u64,
    pub packets: u64,
    pub octets: u64,
}

/// Per-connection truth while a run goes on.
#[derive(Debug, Clone, Copy)]
struct ConnAcc {
    src_addr: u32,
    dst_addr: u32,
    src_port: u16,
    dst_port: u16,
    proto: u8,
    tcp_flags: u8,
    records: u64,
    packets: u64,
    octets: u64,
    first_ms: u64,
    last_ms: u64,
    v6: bool,
}

/// What an exporter needs to know about the run.
#[derive(Debug, Clone, Copy)]
pub struct ExporterSetup {
    pub index: u16,
    pub seed: u64,
    pub params: Params,
    pub records_per_datagram: usize,
    /// Raw header sampling field.
    pub sampling: u16,
    pub corrupt_ratio: f64,
    /// Absolute ms of the first tick (the run's start).
    pub start_ms: u64,
    /// Boot this long before the start (ms).
    pub uptime_at_start_ms: u64,
    pub quota: Option<u64>,
    pub connections: bool,
    pub addr: IpAddr,
    pub port: u16,
    /// `--version`: 5, 9 or 10.
    pub version: u16,
    /// `--ipv6`: the share of IPv6 sessions.
    pub ipv6: f64,
    /// Templates of v9/IPFIX.
    pub policy: Policy,
}

/// One exporter: its router model, sequence, and truth.
#[derive(Debug)]
pub struct ExporterGen {
    pub index: u16,
    rng: Rng,
    crng: Rng,
    params: Params,
    rpd: usize,
    sampling: u16,
    corrupt_ratio: f64,
    boot_ms: u64,
    seq: u32,
    sessions: u64,
    ready: VecDeque<Rec>,
    heap: BinaryHeap<Pending>,
    /// Connections with records in `heap`.
    heap_flows: u64,
    order: u64,
    quota: Option<u64>,
    made: u64,
    /// After [`ExporterGen::finish`]: no new sessions, drain what is left.
    draining: bool,
    /// Sums of the datagram being made.
    cur: DgStats,
    fields: Vec<RecordFields>,
    segs: Vec<(u64, u64)>,
    chunks: Vec<Chunk>,
    pk: Vec<u64>,
    oc: Vec<u64>,
    sess: Vec<Pending>,
    pub truth: ExporterTruth,
    pub corrupt: CorruptCounts,
    conns: Option<Vec<ConnAcc>>,
    /// v9/IPFIX: the export process, and the records of the datagram being made.
    tpl: Option<Templated>,
    taken: Vec<Rec>,
    ipv6: f64,
    /// Picks IPv6 sessions (drawn only when `ipv6 > 0`).
    v6rng: Rng,
}

impl ExporterGen {
    pub fn new(s: &ExporterSetup) -> Self {
        let rpd = s.records_per_datagram;
        let seq0 = Rng::new(s.seed, 0x2_0000 + s.index as u64).next_u64() as u32;
        ExporterGen {
            index: s.index,
            rng: Rng::new(s.seed, 1 + s.index as u64),
            crng: Rng::new(s.seed, 0x1_0000 + s.index as u64),
            params: s.params,
            rpd,
            sampling: s.sampling,
            corrupt_ratio: s.corrupt_ratio,
            boot_ms: s.start_ms - s.uptime_at_start_ms,
            seq: seq0,
            sessions: 0,
            ready: VecDeque::new(),
            heap: BinaryHeap::new(),
            heap_flows: 0,
            order: 0,
            quota: s.quota,
            made: 0,
            draining: false,
            cur: DgStats::default(),
            fields: Vec::with_capacity(rpd),
            segs: Vec::new(),
            chunks: Vec::new(),
            pk: Vec::new(),
            oc: Vec::new(),
            sess: Vec::new(),
            truth: ExporterTruth::new(s.addr, s.port, s.index as u8),
            corrupt: CorruptCounts::default(),
            conns: s.connections.then(Vec::new),
            tpl: Templated::new(s.version, s.index as u32, seq0, &s.policy),
            taken: Vec::with_capacity(rpd),
            ipv6: s.ipv6,
            v6rng: Rng::new(s.seed, 0x5_0000 + s.index as u64),
        }
    }

    /// The router's boot time, absolute ms (its uptime clock).
    pub fn boot_ms(&self) -> u64 {
        self.boot_ms
    }

    /// The sequence number of the next datagram (v5 flow_sequence, v9
    /// package sequence, IPFIX data records sent).
    pub fn sequence(&self) -> u32 {
        self.tpl.as_ref().map_or(self.seq, Templated::sequence)
    }

    /// Records made but not yet in a datagram (ready or waiting).
    pub fn pending(&self) -> usize {
        self.ready.len() + self.heap.len()
    }

    /// True while the planned quota is not reached, or (unplanned) records remain.
    pub fn has_more(&self) -> bool {
        match self.quota {
            Some(q) => self.made < q,
            None => !self.draining || self.pending() > 0,
        }
    }

    /// Free record slots left for waiting flows and ready records.
    fn room_left(&self) -> u64 {
        match self.quota {
            None => u64::MAX,
            Some(q) => {
                let room =
                    (q - self.made - 1) * self.rpd as u64 + (self.rpd - self.fields.len()) as u64;
                room.saturating_sub(self.ready.len() as u64 + self.heap_flows)
            }
        }
    }

    /// The end of the run for every open session: cut each at `now_ms` (a
    /// record in progress ends now, later ones never happen) and make what
    /// the router holds ready for export.
    pub fn close(&mut self, now_ms: u64) {
        self.close_until(now_ms, || false);
    }

    /// [`ExporterGen::close`], asking `stop` every 1024 waiting records
    /// whether time is up: then the records still waiting are dropped (never
    /// exported, never counted). Returns how many were dropped.
    pub fn close_until(&mut self, now_ms: u64, mut stop: impl FnMut() -> bool) -> u64 {
        let mut n = 0u32;
        while let Some(p) = self.heap.pop() {
            self.cut_ready(p.rec, now_ms);
            n = n.wrapping_add(1);
            if n % 1024 == 0 && stop() {
                break;
            }
        }
        let dropped = self.heap.len() as u64;
        self.heap.clear();
        self.heap_flows = 0;
        dropped
    }

    /// A waiting record at the end of the run: cut at `now_ms` and ready
    /// (or gone, when it would start later).
    #[inline]
    fn cut_ready(&mut self, mut r: Rec, now_ms: u64) {
        if r.first_ms > now_ms {
            return;
        }
        if r.last_ms > now_ms {
            let f = &mut r.fields;
            let span = r.last_ms - r.first_ms + 1;
            let kept = now_ms - r.first_ms + 1;
            let pk = ((f.packets as u64 * kept / span) as u32).max(1);
            f.octets = ((f.octets as u64 * pk as u64 / f.packets as u64) as u32).max(pk);
            f.packets = pk;
            f.tcp_flags &= !(model::FIN | model::RST);
            r.last_ms = now_ms;
            f.last = uptime(now_ms, self.boot_ms);
        }
        // Flushed at the end of the run, before its own end came.
        r.end = end_reason::FORCED_END;
        self.ready.push_back(r);
    }

    /// End an unplanned run at `now_ns`: cut open sessions, then
    /// [`ExporterGen::next_datagram`] drains what is left (the last datagram
    /// may hold fewer records) and returns None once empty.
    pub fn finish(&mut self, now_ns: u64) {
        self.finish_until(now_ns, || false);
    }

    /// [`ExporterGen::finish`], with the cut bounded in time as in
    /// [`ExporterGen::close_until`]; returns the records dropped.
    pub fn finish_until(&mut self, now_ns: u64, stop: impl FnMut() -> bool) -> u64 {
        let dropped = self.close_until(now_ns / 1_000_000, stop);
        self.quota = None;
        self.draining = true;
        dropped
    }

    /// Make the next valid datagram, due at `now_ns` (absolute ns), into
    /// `out` (cleared). None when the quota is reached or, after
    /// [`ExporterGen::finish`], nothing is left.
    pub fn next_datagram(&mut self, now_ns: u64, out: &mut Vec<u8>) -> Option<DgStats> {
        out.clear();
        if let Some(q) = self.quota {
            if self.made >= q {
                return None;
            }
        }
        let now_ms = now_ns / 1_000_000;
        self.fields.clear();
        self.taken.clear();
        self.cur = DgStats::default();
        while self.fields.len() < self.rpd {
            if let Some(r) = self.ready.pop_front() {
                self.take(&r);
                continue;
            }
            if let Some(top) = self.heap.peek() {
                if top.ready_ms <= now_ms {
                    if top.more && self.room_left() == 0 {
                        self.close(now_ms);
                        continue;
                    }
                    let p = self.heap.pop().expect("peeked");
                    if !p.more {
                        self.heap_flows -= 1;
                    }
                    self.take(&p.rec);
                    continue;
                }
            }
            if self.draining {
                break;
            }
            let room = self.room_left();
            if room == 0 {
                debug_assert!(!self.heap.is_empty(), "no room and nothing to cut: {self:?}");
                self.close(now_ms);
                continue;
            }
            self.new_session(now_ms, room);
        }
        if self.fields.is_empty() {
            return None;
        }
        let st = self.cur;
        if let Some(t) = self.tpl.as_mut() {
            let up = uptime(now_ms, self.boot_ms);
            let enc = t.encode(now_ms, up, &self.taken, out, &mut self.truth);
            debug_assert_eq!(enc, st, "the encoder wrote what the model counted");
        } else {
            let h = HeaderFields {
                sys_uptime: uptime(now_ms, self.boot_ms),
                unix_secs: (now_ms / 1000) as u32,
                unix_nsecs: (now_ms % 1000) as u32 * 1_000_000,
                flow_sequence: self.seq,
                engine_type: 0,
                engine_id: self.index as u8,
                sampling: self.sampling,
            };
            encode(&h, &self.fields, out);
            self.seq = self.seq.wrapping_add(self.fields.len() as u32);
        }
        self.made += 1;
        self.truth.datagrams += 1;
        self.truth.records += st.records;
        self.truth.packets += st.packets;
        self.truth.octets += st.octets;
        Some(st)
    }

    /// Put a record in the datagram being made, and count it.
    #[inline]
    fn take(&mut self, r: &Rec) {
        let f = &r.fields;
        self.cur.records += 1;
        self.cur.packets += f.packets as u64;
        self.cur.octets += f.octets as u64;
        self.fields.push(*f);
        if self.tpl.is_some() {
            self.taken.push(*r);
        }
        if let Some(conns) = &mut self.conns {
            let c = &mut conns[r.conn as usize];
            c.records += 1;
            c.packets += f.packets as u64;
            c.octets += f.octets as u64;
            c.tcp_flags |= f.tcp_flags;
            c.first_ms = c.first_ms.min(r.first_ms);
            c.last_ms = c.last_ms.max(r.last_ms);
        }
    }

    /// With probability `--corrupt-ratio`, a malformed datagram to send after
    /// `valid` (into `out`); returns its reason index. Uses its own random
    /// stream, so the valid traffic does not depend on the ratio.
    pub fn maybe_corrupt(&mut self, valid: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        if self.corrupt_ratio <= 0.0 || !self.crng.chance(self.corrupt_ratio) {
            return None;
        }
        let reason = if self.tpl.is_some() {
            corrupt::make_templated(&mut self.crng, valid, out)
        } else {
            corrupt::make(&mut self.crng, valid, out)
        };
        self.corrupt.add(reason);
        self.truth.corrupt += 1;
        Some(reason)
    }

    /// The connections with at least one record sent.
    pub fn connections(&self) -> Option<Vec<ConnTruth>> {
        let conns = self.conns.as_ref()?;
        Some(
            conns
                .iter()
                .filter(|c| c.records > 0)
                .map(|c| ConnTruth {
                    exporter: self.truth.exporter,
                    src_addr: templated::addr(c.src_addr, c.v6),
                    src_port: c.src_port,
                    dst_addr: templated::addr(c.dst_addr, c.v6),
                    dst_port: c.dst_port,
                    proto: c.proto,
                    packets: c.packets,
                    octets: c.octets,
                    records: c.records,
                    tcp_flags: c.tcp_flags,
                    first: c.first_ms * 1_000_000,
                    last: c.last_ms * 1_000_000,
                })
                .collect(),
        )
    }

    /// Start a session whose first record is exported at `now_ms`, adding at
    /// most `room` to (ready records + waiting flows): beyond that its later
    /// records are dropped (it ends with the run).
    fn new_session(&mut self, now_ms: u64, room: u64) {
        let n = self.sessions;
        self.sessions += 1;
        let e = self.index;
        let shape: Shape = model::draw_shape(&mut self.rng);
        let v6 = self.ipv6 > 0.0 && self.v6rng.chance(self.ipv6);
        let srv = model::pick_server(&mut self.rng);
        let (srv_addr, srv_as, srv_mask) = model::server(srv);
        let client = model::client_addr(e, n);
        let uplink = 11 + (srv % 2) as u16;
        let access = 1 + (n % 4) as u16;
        let nexthop_up = 0x0AFF_0000 | (e as u32) << 8 | (uplink as u32 - 10);
        let client_as = 64512 + e;
        let (peer, sport, rev_dport) = if shape.proto == ICMP {
            (model::icmp_peer(n), 0, shape.reply_icmp)
        } else {
            let p = model::client_port(n);
            (srv_addr, p, p)
        };
        let fwd_sport = sport;
        let rev_sport = if shape.proto == ICMP { 0 } else { shape.dport };
        // ICMP of an IPv6 session is ICMPv6.
        let (proto, fwd_dport, rev_dport) = if v6 && shape.proto == ICMP {
            (templated::ICMP6, templated::icmp6(shape.dport), templated::icmp6(rev_dport))
        } else {
            (shape.proto, shape.dport, rev_dport)
        };

        shape.segments(&self.params, &mut self.segs);
        model::cut(&self.segs, &self.params, &mut self.chunks);
        let nch = self.chunks.len() as u64;
        let flagged = [
            matches!(shape.end, End::Fin | End::RstFwd),
            matches!(shape.end, End::Fin | End::RstRev | End::Scan),
        ];
        let ready_of =
            |c: &Chunk, dir: usize| if c.last_chunk && flagged[dir] { c.last } else { c.ready };
        let dirs = shape.dirs() as usize;
        let c0 = self.chunks[0];
        // Anchor on the later of the two directions' first export: the other
        // direction's first record (say the SYN of a scan answered by RST,
        // which waits for the inactive timeout) leaves with it, a little
        // late. Anchoring on the earlier one would park it for a whole
        // inactive timeout, and at high rates that is a lot of memory.
        let anchor = (0..dirs).map(|d| ready_of(&c0, d)).max().unwrap_or(c0.ready);
        let start = now_ms - anchor;

        self.sess.clear();
        if let Some(conns) = &mut self.conns {
            let key = |src, dst, sp, dp| ConnAcc {
                src_addr: src,
                dst_addr: dst,
                src_port: sp,
                dst_port: dp,
                proto,
                tcp_flags: 0,
                records: 0,
                packets: 0,
                octets: 0,
                first_ms: u64::MAX,
                last_ms: 0,
                v6,
            };
            conns.push(key(client, peer, fwd_sport, fwd_dport));
            conns.push(key(peer, client, rev_sport, rev_dport));
        }
        for (dir, &ends_flagged) in flagged.iter().enumerate().take(dirs) {
            let fwd = dir == 0;
            let (pkts, size) = if fwd {
                (shape.fwd_pkts, shape.fwd_size)
            } else {
                (shape.rev_pkts, shape.rev_size)
            };
            let pkts = model::clamp_packets(pkts, nch);
            let min_size = if shape.proto == TCP { 40.0 } else { 28.0 };
            let octets = (pkts as f64 * size.max(min_size) + 0.5) as u64;
            if nch == 1 {
                self.pk.clear();
                self.pk.push(pkts);
                self.oc.clear();
                self.oc.push(octets);
            } else {
                model::split(pkts, self.chunks.iter().map(|c| c.last - c.first + 1), &mut self.pk);
                split_prop(octets, &self.pk, &mut self.oc);
            }
            let base = RecordFields {
                src_addr: if fwd { client } else { peer },
                dst_addr: if fwd { peer } else { client },
                nexthop: if fwd { nexthop_up } else { 0 },
                input: if fwd { access } else { uplink },
                output: if fwd { uplink } else { access },
                src_port: if fwd { fwd_sport } else { rev_sport },
                dst_port: if fwd { fwd_dport } else { rev_dport },
                proto,
                tos: if fwd { shape.tos_fwd } else { shape.tos_rev },
                src_as: if fwd { client_as } else { srv_as },
                dst_as: if fwd { srv_as } else { client_as },
                src_mask: if fwd { 24 } else { srv_mask },
                dst_mask: if fwd { srv_mask } else { 24 },
                ..Default::default()
            };
            let conn = 2 * n + dir as u64;
            for (i, c) in self.chunks.iter().enumerate() {
                let mut first = start + c.first;
                if !fwd && i == 0 {
                    first = (first + shape.rtt_ms).min(start + c.last);
                }
                let last = start + c.last;
                let p = self.pk[i];
                let flags = tcp_flags(&shape, fwd, i == 0, c.last_chunk, p);
                let fields = RecordFields {
                    packets: p as u32,
                    octets: self.oc[i] as u32,
                    first: uptime(first, self.boot_ms),
                    last: uptime(last, self.boot_ms),
                    tcp_flags: flags,
                    ..base
                };
                let end = if !c.seg_end {
                    end_reason::ACTIVE_TIMEOUT
                } else if c.last_chunk && ends_flagged {
                    end_reason::END_OF_FLOW
                } else {
                    end_reason::IDLE_TIMEOUT
                };
                let rec = Rec { fields, first_ms: first, last_ms: last, conn, v6, end };
                if nch == 1 {
                    // One record per direction, both exported now (the anchor).
                    if room > dir as u64 {
                        self.ready.push_back(rec);
                    }
                    continue;
                }
                self.sess.push(Pending {
                    ready_ms: start + ready_of(c, dir),
                    order: 0,
                    more: false,
                    rec,
                });
            }
        }
        if nch == 1 {
            return;
        }
        // Route: exported now, or waiting. Keep within `room`.
        let now_count = self.sess.iter().filter(|p| p.ready_ms <= now_ms).count() as u64;
        let waiting_dirs = (0..dirs as u64)
            .filter(|d| self.sess.iter().any(|p| p.rec.conn == 2 * n + d && p.ready_ms > now_ms))
            .count() as u64;
        let keep_waiting = now_count + waiting_dirs <= room;
        let mut now_left = room.min(now_count);
        for i in 0..self.sess.len() {
            let mut p = self.sess[i];
            if p.ready_ms <= now_ms {
                if now_left > 0 {
                    now_left -= 1;
                    self.ready.push_back(p.rec);
                }
            } else if keep_waiting {
                // Within a direction export times grow: the next one waits too.
                p.more = self.sess.get(i + 1).is_some_and(|q| q.rec.conn == p.rec.conn);
                if !p.more {
                    self.heap_flows += 1;
                }
                p.order = self.order;
                self.order += 1;
                self.heap.push(p);
            }
        }
    }
}

/// Split `total` proportionally to `weights` (floor; the rest to the last).
fn split_prop(total: u64, weights: &[u64], out: &mut Vec<u64>) {
    out.clear();
    let w_sum: u64 = weights.iter().sum::<u64>().max(1);
    let mut given = 0;
    for &w in weights {
        let x = (total as u128 * w as u128 / w_sum as u128) as u64;
        given += x;
        out.push(x);
    }
    if let Some(l) = out.last_mut() {
        *l += total - given;
    }
}

/// Cumulative TCP flags of one record of a session.
fn tcp_flags(s: &Shape, fwd: bool, first: bool, last: bool, pkts: u64) -> u8 {
    use model::{ACK, FIN, PSH, RST, SYN};
    if s.proto != TCP {
        return 0;
    }
    if s.end == End::Scan {
        return if fwd { SYN } else { RST | ACK };
    }
    let mut f = match (first, fwd) {
        (true, true) => SYN | if pkts >= 2 { ACK } else { 0 } | if pkts >= 3 { PSH } else { 0 },
        (true, false) => SYN | ACK | if pkts >= 2 { PSH } else { 0 },
        (false, _) => ACK | if pkts >= 2 { PSH } else { 0 },
    };
    if last {
        if pkts == 1 && !first {
            f = ACK;
        }
        match s.end {
            End::Fin => f |= FIN | ACK,
            End::RstFwd if fwd => f |= RST,
            End::RstRev if !fwd => f |= RST,
            _ => {}
        }
    }
    f
}
