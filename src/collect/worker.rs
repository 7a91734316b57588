//! A worker: one pinned thread owning its sockets (one per `--listen`
//! address, in each address's SO_REUSEPORT group), its receive batches, its
//! [`Ingest`] counters and sequence state, and one flow [`Shard`].
//!
//! At start it reserves its share of `--reserve-flows` in its shard, on its
//! own core. Per loop: (after a light round, wait up to `--rx-coalesce`) → poll
//! (timeout from the shard's next deadline) → recvmmsg every socket until
//! empty → decode each batch's records in place and route them to the shard
//! that owns their key (own shard: merged once per receive batch, pipelined;
//! others: batched into their inbox) → drain the own inbox → advance timers
//! to the wall clock → finished flows to the writer in bounded batches,
//! whose emptied vectors come back. No allocation per datagram once the
//! batch vectors are warm. One lock per datagram: its exporter's sequence
//! state, shared by the workers (`ingest::exporters`), uncontended unless
//! one exporter's datagrams reach several workers.
//!
//! With `--pair`, the flows the shard ends pass through the worker's
//! [`Pairer`] (both directions of a connection are in this shard: the
//! routing hash is symmetric) and connections go to the writer instead.
//!
//! Which shard owns a record and the batches for peers: [`route`](super::route).
//! What a worker does when a queue is full: `push.rs`.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::clock::wall_ns;
use super::gauges::Snapshot;
use super::handoff::{DumpRec, DumpRow, Leaving, Shared, ToWriter};
use super::push::{self, PushStats};
use super::route::Router;
use crate::flow::{Flow, KeySpec, Records, Shard};
use crate::hist::Latency;
use crate::ingest::{is_templated, Ingest, WireRecords};
use crate::pair::{PairStats, Pairer};
use crate::platform::{recv_batch, socket_drops, RecvBatch, ReuseportSocket};

/// Datagrams per recvmmsg call.
pub const RECV_BATCH: usize = 64;
/// recvmmsg calls per socket per loop before other work gets a turn.
const RECV_BUDGET: usize = 16;
/// Longest poll sleep: timers and gauges stay fresh on a quiet collector.
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// Flows per writer message.
const FLOW_BATCH: usize = 256;
/// Receive-buffer bytes the kernel charges for one full v5 datagram
/// (its `truesize`, measured on loopback: 2304), rounded up.
const DATAGRAM_TRUESIZE: usize = 2560;

/// What a worker hands back when it ends.
#[derive(Debug)]
pub struct WorkerResult {
    pub id: usize,
    pub ingest: Ingest,
    pub shard: crate::flow::ShardStats,
    pub kernel_drops: u64,
    /// Datagrams read but not processed because shutdown's read ran out of time.
    pub unread_at_shutdown: u64,
    pub queue_stalls: u64,
    pub writer_stalls: u64,
    /// Dump rows dropped because the writer had failed (flows: see
    /// `Shared::flows_written`).
    pub unwritten_rows: u64,
    /// Kernel receive time to records applied to their shard.
    pub receive_to_applied: Latency,
    /// Export time in the header to kernel receive time.
    pub export_to_receive: Latency,
    /// `--pair`: the connections the worker emitted.
    pub pair: Option<PairStats>,
}

/// How to build a worker: what it owns and how it behaves.
#[derive(Debug)]
pub struct WorkerConfig {
    /// Its index, which is also its shard's in routing.
    pub id: usize,
    /// One socket per `--listen` address.
    pub sockets: Vec<ReuseportSocket>,
    pub shard: Shard,
    pub ingest: Ingest,
    /// The flow key (routing hashes it).
    pub key: KeySpec,
    pub stitch: bool,
    pub dump: bool,
    /// `--rx-coalesce`: the longest wait after a light receive round (see
    /// `Worker::coalesce_wait`).
    pub rx_coalesce: Duration,
    /// Flow slots to reserve when the worker starts (on its own core, so the
    /// memory is first touched there: local on NUMA machines).
    pub reserve: usize,
    /// `--pair`: the pairing stage behind the shard.
    pub pairer: Option<Pairer>,
}

/// A worker's state; `run` consumes it on its thread.
#[derive(Debug)]
pub struct Worker {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub poll: Poll,
    pub sockets: Vec<(ReuseportSocket, RecvBatch)>,
    pub shard: Shard,
    /// `--pair`: the pairing stage behind the shard.
    pairer: Option<Pairer>,
    pub ingest: Ingest,
    router: Router,
    pub stitch: bool,
    pub dump: bool,
    now: u64,
    /// Receive times of the datagrams of the current recvmmsg batch.
    batch_rx: Vec<u64>,
    receive_to_applied: Latency,
    export_to_receive: Latency,
    /// The receive batch's records, read in place: each datagram's are
    /// noted here, those of other shards then routed out (and with
    /// `--no-stitch` all dropped once dumped), so what stays is the own
    /// shard's, applied together at the end of the batch; `segs` says where
    /// each datagram's end (with its time).
    wire: WireRecords,
    segs: Vec<(usize, u64)>,
    flows: Vec<Flow>,
    dump_rows: Vec<DumpRow>,
    pushed: PushStats,
    /// Rejections already logged, and when: one line per REJECT_LOG_EVERY at most.
    reject_log: LogThrottle,
    /// The same for datagrams the caps kept out: exporters, engines.
    overflow_log: [LogThrottle; 2],
    last_snapshot: Option<std::time::Instant>,
    /// `--rx-coalesce`: the longest wait after a light receive round.
    rx_coalesce: Duration,
    /// Flow slots to reserve at start (see [`WorkerConfig::reserve`]).
    reserve: usize,
    /// Smallest receive buffer of the worker's sockets (bytes, as the kernel reports it).
    rcvbuf: usize,
    /// Its part in the shutdown handshake, kept even if the thread unwinds.
    leaving: Leaving,
}

/// Longest a stopping worker keeps reading its sockets.
const SHUTDOWN_READ: Duration = Duration::from_secs(2);

/// After this long waiting for its peers at shutdown, a worker says so (once).
const PEER_WAIT_NOTE: Duration = Duration::from_secs(10);

/// How often a worker publishes its full [`Snapshot`] for `--metrics`.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// At most one log line about rejected datagrams per worker this often.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);

impl Worker {
    /// Register the sockets with `poll` (whose waker is in this worker's
    /// mailbox in `shared`).
    pub fn new(shared: Arc<Shared>, poll: Poll, cfg: WorkerConfig) -> std::io::Result<Self> {
        let n = shared.mailboxes.len();
        let mut socks = Vec::new();
        for (i, s) in cfg.sockets.into_iter().enumerate() {
            poll.registry().register(
                &mut SourceFd(&s.as_raw_fd()),
                Token(i),
                Interest::READABLE,
            )?;
            socks.push((s, RecvBatch::new(RECV_BATCH, crate::platform::DEFAULT_BUF_LEN)));
        }
        let rcvbuf = socks.iter().filter_map(|(s, _)| s.rcvbuf().ok()).min().unwrap_or(0);
        Ok(Worker {
            id: cfg.id,
            poll,
            sockets: socks,
            now: cfg.shard.now(),
            shard: cfg.shard,
            ingest: cfg.ingest,
            router: Router::new(cfg.id, n, cfg.key, cfg.pairer.is_some()),
            pairer: cfg.pairer,
            stitch: cfg.stitch,
            dump: cfg.dump,
            batch_rx: Vec::with_capacity(RECV_BATCH),
            receive_to_applied: Latency::new(),
            export_to_receive: Latency::new(),
            wire: WireRecords::with_capacity(RECV_BATCH),
            segs: Vec::with_capacity(RECV_BATCH),
            flows: Vec::with_capacity(FLOW_BATCH),
            dump_rows: Vec::new(),
            pushed: PushStats::default(),
            reject_log: LogThrottle::default(),
            overflow_log: Default::default(),
            last_snapshot: None,
            rx_coalesce: cfg.rx_coalesce,
            reserve: cfg.reserve,
            rcvbuf,
            leaving: Leaving::new(Arc::clone(&shared)),
            shared,
        })
    }

    /// How long to let datagrams accumulate after a light round of `got`
    /// datagrams that took `dt` since the previous round: `--rx-coalesce`,
    /// but never longer than a quarter of the receive buffer takes to fill
    /// at the rate just seen, and never past the next timer deadline.
    fn coalesce_wait(&self, got: usize, dt: Duration) -> Duration {
        if self.rx_coalesce.is_zero() || got == 0 || got >= RECV_BATCH {
            return Duration::ZERO;
        }
        let rate = got as f64 / dt.as_secs_f64().max(1e-6); // datagrams/s
        let fill = (self.rcvbuf / 4) as f64 / (rate * DATAGRAM_TRUESIZE as f64);
        self.rx_coalesce.min(Duration::from_secs_f64(fill)).min(self.sleep_for())
    }

    fn worker_count(&self) -> usize {
        self.router.workers()
    }

    /// The worker loop; returns its counters at the end.
    pub fn run(mut self) -> WorkerResult {
        if self.stitch {
            self.shard.reserve(self.reserve);
        }
        let mut events = Events::with_capacity(64);
        let mut more = false;
        let mut wait = Duration::ZERO;
        let mut last_round = std::time::Instant::now();
        while !self.shared.stop.load(Ordering::Relaxed) {
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            let mb = &self.shared.mailboxes[self.id];
            let mut timeout = if more { Duration::ZERO } else { self.sleep_for() };
            if !timeout.is_zero() {
                mb.sleeping.store(true, Ordering::SeqCst);
                if !mb.inbox.is_empty() || self.shared.stop.load(Ordering::SeqCst) {
                    timeout = Duration::ZERO;
                }
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    eprintln!("nfstitch: worker {}: poll failed: {e}", self.id);
                    break;
                }
            }
            self.shared.mailboxes[self.id].sleeping.store(false, Ordering::SeqCst);
            let got;
            (more, got) = self.receive();
            let now = std::time::Instant::now();
            wait = if more { Duration::ZERO } else { self.coalesce_wait(got, now - last_round) };
            last_round = now;
            self.flush_outgoing();
            self.drain_inbox();
            self.tick(wall_ns());
            self.publish();
            self.log_rejections();
            self.log_overflow(false);
        }
        self.shutdown()
    }

    /// How long poll may sleep: until the shard's (or, with `--pair`, the
    /// pairing stage's) next deadline, at most MAX_SLEEP.
    fn sleep_for(&self) -> Duration {
        let wall = wall_ns();
        let pair = self.pairer.as_ref().and_then(Pairer::next_deadline);
        let next = match (self.shard.next_deadline(), pair) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match next {
            Some(d) if d <= wall => Duration::ZERO,
            Some(d) => Duration::from_nanos(d - wall).min(MAX_SLEEP),
            None => MAX_SLEEP,
        }
    }

    /// Read every socket until empty or out of budget. Returns whether data
    /// may remain, and how many datagrams were read.
    fn receive(&mut self) -> (bool, usize) {
        let mut more = false;
        let mut got = 0;
        for s in 0..self.sockets.len() {
            let mut calls = 0;
            loop {
                let (sock, batch) = &mut self.sockets[s];
                let n = match recv_batch(sock, batch) {
                    Ok(n) => n,
                    Err(e) => {
                        if e.kind() != std::io::ErrorKind::WouldBlock {
                            eprintln!("nfstitch: worker {}: receive failed: {e}", self.id);
                        }
                        0
                    }
                };
                if n == 0 {
                    break;
                }
                got += n;
                let mut fallback_now = None;
                self.batch_rx.clear();
                for i in 0..n {
                    let (meta, _) = self.sockets[s].1.get(i);
                    let ts = match meta.rx_time_ns {
                        Some(t) => t,
                        None => *fallback_now.get_or_insert_with(wall_ns),
                    };
                    let src = meta.src.ip();
                    self.batch_rx.push(ts);
                    self.datagram(s, i, ts, src);
                }
                self.apply_local(s);
                // One clock read per batch: every datagram in it is applied now
                // (its records for other shards are measured when those apply them).
                let applied = wall_ns();
                for &ts in &self.batch_rx {
                    self.receive_to_applied.record(applied.saturating_sub(ts));
                }
                calls += 1;
                if calls >= RECV_BUDGET {
                    more = true;
                    break;
                }
            }
        }
        (more, got)
    }

    /// Merge the own shard's records of socket `s`'s receive batch, read in
    /// place from its buffer, one segment per datagram (software-pipelined
    /// across datagrams: see `Shard::apply_segments`).
    fn apply_local(&mut self, s: usize) {
        if !self.wire.is_empty() {
            let view = self.wire.view(self.sockets[s].1.buffer());
            self.shard.apply_segments(&view, &self.segs, &mut self.flows);
        }
        self.wire.clear();
        self.segs.clear();
        if self.flows.len() >= FLOW_BATCH {
            self.send_flows();
        }
    }

    /// Decode, count and route one received datagram (slot `i` of socket
    /// `s`'s batch). Its records are noted in `wire` (read in place later);
    /// those for the own shard wait there for [`Worker::apply_local`] at the
    /// end of the batch, those for other shards are copied to their batches.
    fn datagram(&mut self, s: usize, i: usize, ts: u64, src: IpAddr) {
        self.now = self.now.max(ts);
        let now = self.now;
        if self.stitch && self.wire.is_empty() {
            // Before the batch's first own record: due flows leave in bounded
            // batches here; later datagrams of the batch advance in apply_segments.
            self.advance_to(now);
        }
        let batch = &self.sockets[s].1;
        if batch.get(i).0.truncated {
            return self.ingest.truncated(src, batch.buf_len());
        }
        if is_templated(batch.get(i).1) {
            self.templated(s, i, ts, src);
            return;
        }
        let start = self.wire.len();
        let res = self.ingest.wire(src, batch.get(i).1, batch.offset(i), &mut self.wire);
        if let (true, Ok(h)) = (self.dump, &res) {
            let view = self.wire.view(batch.buffer());
            self.dump_rows.extend((start..view.len()).map(|k| DumpRow {
                ts: now,
                exporter: view.exporter(k),
                index: (k - start) as u16,
                rec: DumpRec::V5 { header: *h, rec: view.wire(k).fields() },
            }));
        }
        let mut full = 0; // destinations whose outgoing batch filled
        if !self.stitch {
            self.wire.clear();
        } else {
            if self.worker_count() > 1 {
                let buf = self.sockets[s].1.buffer();
                full = self.router.route(&mut self.wire, buf, start, ts);
            }
            self.segs.push((self.wire.len(), now));
        }
        if let Ok(h) = res {
            // Meaningful only when exporter and collector share a clock.
            self.export_to_receive.record(ts.saturating_sub(h.export_ns()));
        }
        self.hand_on(full);
    }

    /// A v9/IPFIX datagram (slot `i` of socket `s`'s batch): decoded into
    /// records by this worker's template cache; each the flow table can take
    /// ([`crate::ingest::stitchable_now`]) goes to the shard that owns its
    /// key, the own shard's at once (after the batch's v5 records noted so
    /// far, to keep arrival order).
    fn templated(&mut self, s: usize, i: usize, ts: u64, src: IpAddr) {
        let now = self.now;
        if self.stitch {
            if !self.wire.is_empty() {
                self.apply_local(s);
            }
            self.advance_to(now);
        }
        let mut full = 0u64;
        let multi = self.worker_count() > 1;
        let (stitch, dump) = (self.stitch, self.dump);
        let Worker { sockets, ingest, shard, router, flows, dump_rows, .. } = self;
        let bytes = sockets[s].1.get(i).1;
        let mut prev = None;
        let mut index = 0u16;
        let res = ingest.templated(src, now, bytes, &mut |h, fr, ok| {
            if dump {
                if prev != Some(*h) {
                    prev = Some(*h);
                    index = 0;
                }
                let rec = DumpRec::Templated { header: *h, rec: *fr };
                dump_rows.push(DumpRow { ts: now, exporter: fr.exporter, index, rec });
                index = index.wrapping_add(1);
            }
            if !(stitch && ok) {
                return;
            }
            match multi.then(|| router.route_record(fr, ts)).flatten() {
                Some(bit) => full |= bit,
                None => shard.apply(now, fr, flows),
            }
        });
        if let Ok(h) = res {
            self.export_to_receive.record(ts.saturating_sub(h.export_ns()));
        }
        self.hand_on(full);
    }

    /// After a datagram: send the full batches of the workers whose bits
    /// are set in `full`, and the flows and dump rows once a batch is full.
    fn hand_on(&mut self, mut full: u64) {
        while full != 0 {
            let dest = full.trailing_zeros() as usize;
            full &= full - 1;
            self.send_records(dest);
        }
        if self.flows.len() >= FLOW_BATCH {
            self.send_flows();
        }
        if self.dump_rows.len() >= FLOW_BATCH {
            self.send_dump();
        }
    }

    /// Push the batch for `dest` into its inbox (backpressure while full,
    /// draining the own inbox meanwhile).
    fn send_records(&mut self, dest: usize) {
        let Some(batch) = self.router.take(dest, self.now) else { return };
        let shared = Arc::clone(&self.shared);
        self.pushed.queue_stalls +=
            push::to_peer(&shared.mailboxes[dest], batch, || self.drain_inbox());
    }

    fn flush_outgoing(&mut self) {
        for dest in 0..self.worker_count() {
            self.send_records(dest);
        }
    }

    /// Apply every batch waiting in the own inbox. True if any was.
    fn drain_inbox(&mut self) -> bool {
        let shared = Arc::clone(&self.shared);
        let inbox = &shared.mailboxes[self.id].inbox;
        let mut any = false;
        while let Some(b) = inbox.pop() {
            any = true;
            self.now = self.now.max(b.now);
            self.advance_to(self.now);
            self.shard.apply_batch(self.now, &b.recs, &mut self.flows);
            self.receive_to_applied.record(wall_ns().saturating_sub(b.rx_first));
            self.router.recycle(b.recs);
            if self.flows.len() >= FLOW_BATCH {
                self.send_flows();
            }
        }
        any
    }

    /// Advance timers to the wall clock and hand everything finished to the writer.
    fn tick(&mut self, wall: u64) {
        self.now = self.now.max(wall);
        self.ingest.expire_held(self.now);
        self.ingest.publish_templates(self.now);
        if self.stitch {
            self.advance_to(self.now);
        }
        if !self.flows.is_empty() || self.pairer.is_some() {
            self.send_flows();
        }
        if !self.dump_rows.is_empty() {
            self.send_dump();
        }
    }

    /// Advance the shard's timers to `now`, handing due flows to the writer
    /// in batches of FLOW_BATCH (a tick may end millions at once).
    fn advance_to(&mut self, now: u64) {
        while self.shard.advance_bounded(now, &mut self.flows, FLOW_BATCH) {
            self.send_flows();
        }
        if self.flows.len() >= FLOW_BATCH {
            self.send_flows();
        }
    }

    fn send_flows(&mut self) {
        if let Some(p) = self.pairer.as_mut() {
            // --pair: the flows become connections (the pairing stage's clock moves too).
            let (mut conns, shard) = (Vec::new(), &self.shard);
            p.push(self.now, &mut self.flows, |k| shard.contains(k), &mut conns);
            p.advance(self.now, |k| shard.contains(k), &mut conns);
            if !conns.is_empty() {
                self.push_to_writer(ToWriter::Conns(conns));
            }
            return;
        }
        let mb = &self.shared.mailboxes[self.id];
        let fresh = mb.spent_flows.pop().unwrap_or_else(|| Vec::with_capacity(FLOW_BATCH));
        let flows = std::mem::replace(&mut self.flows, fresh);
        self.push_to_writer(ToWriter::Flows(flows));
    }

    fn send_dump(&mut self) {
        let mb = &self.shared.mailboxes[self.id];
        let fresh = mb.spent_dump.pop().unwrap_or_else(|| Vec::with_capacity(FLOW_BATCH));
        let rows = std::mem::replace(&mut self.dump_rows, fresh);
        self.push_to_writer(ToWriter::Dump(rows));
    }

    /// Queue a message for the writer (see [`push::to_writer`]).
    fn push_to_writer(&mut self, msg: ToWriter) {
        push::to_writer(&self.shared, self.id, msg, &mut self.pushed);
    }

    /// Never a line per packet: one line per interval, with the count and the latest reason.
    fn log_rejections(&mut self) {
        let total = self.ingest.counters.rejected_total();
        let Some(n) = self.reject_log.due(total, false) else { return };
        if let Some((src, why)) = self.ingest.last_rejection {
            eprintln!(
                "nfstitch: worker {}: rejected {n} datagrams (latest from {src}: {why}); see the report for counts by reason",
                self.id
            );
        }
    }

    /// Datagrams the caps kept out of per-exporter state, the same way (and
    /// at shutdown, `last`, whatever was not said yet).
    fn log_overflow(&mut self, last: bool) {
        let totals = self.ingest.overflow_totals();
        for (which, (total, log)) in totals.into_iter().zip(&mut self.overflow_log).enumerate() {
            // The rate limit first: the note is formatted only to be printed.
            let Some(n) = log.due(total, last) else { continue };
            if let Some(note) = self.ingest.overflow_note(which) {
                eprintln!(
                    "nfstitch: warning: worker {}: {n} datagrams kept out of per-exporter state, counted in the totals only (latest {note})",
                    self.id
                );
            }
        }
    }

    fn kernel_drops(&self) -> u64 {
        self.sockets
            .iter()
            .map(|(s, b)| socket_drops(s).unwrap_or(0).max(b.kernel_drops().unwrap_or(0)))
            .sum()
    }

    fn publish(&mut self) {
        let g = &self.shared.mailboxes[self.id].gauges;
        let c = &self.ingest.counters;
        g.datagrams.store(c.datagrams, Ordering::Relaxed);
        g.records.store(c.records, Ordering::Relaxed);
        g.rejected.store(c.rejected_total(), Ordering::Relaxed);
        g.active_flows.store(self.shard.len() as u64, Ordering::Relaxed);
        g.flows.store(self.shard.stats().flows_total(), Ordering::Relaxed);
        g.queue_stalls
            .store(self.pushed.queue_stalls + self.pushed.writer_stalls, Ordering::Relaxed);
        // A socket that has never dropped has no counter yet: it counts 0.
        let drops = self.sockets.iter().map(|(_, b)| b.kernel_drops().unwrap_or(0)).sum();
        g.kernel_drops.store(drops, Ordering::Relaxed);
        // The full snapshot (per exporter, histograms) about once a second.
        if self.last_snapshot.is_some_and(|t| t.elapsed() < SNAPSHOT_EVERY) {
            return;
        }
        self.last_snapshot = Some(std::time::Instant::now());
        let snap = Snapshot {
            counters: self.ingest.counters,
            flows: self.shard.stats().flows,
            active_flows: self.shard.len() as u64,
            kernel_drops: self.kernel_drops(),
            queue_stalls: self.pushed.queue_stalls + self.pushed.writer_stalls,
            exporters: self.ingest.exporter_counters(),
            overflow: self.ingest.overflow,
            templated: self.ingest.templated.counters,
            receive_to_applied: self.receive_to_applied.clone(),
            export_to_receive: self.export_to_receive.clone(),
        };
        if let Ok(mut s) = self.shared.mailboxes[self.id].snapshot.lock() {
            *s = snap;
        }
    }

    /// Stop: take what is already queued in the sockets, hand off the last
    /// cross-shard batches, drain the inbox until every worker is done
    /// sending, then flush every flow once (`shutdown`).
    fn shutdown(mut self) -> WorkerResult {
        // What is queued now, but bounded: under sustained overload the
        // sockets never run empty, and shutdown must not wait for them.
        let until = std::time::Instant::now() + SHUTDOWN_READ;
        let mut more = true;
        while more && std::time::Instant::now() < until {
            more = self.receive().0;
        }
        // Out of time with data still queued: read the rest without
        // processing it, so that it is counted (`unread_at_shutdown`) rather
        // than vanishing with the socket (also bounded).
        let mut unread = 0;
        if more {
            let until = std::time::Instant::now() + SHUTDOWN_READ;
            for (sock, batch) in &mut self.sockets {
                unread += discard_queued(sock, batch, until);
            }
        }
        self.flush_outgoing();
        let shared = Arc::clone(&self.shared);
        self.leaving.done_sending();
        // No time limit: a worker that stopped waiting would leave the
        // records its peers still route to it unapplied, and a peer pushing
        // into its full inbox waiting forever. The wait is finite: a peer
        // reaches `done_sending` after a bounded read (SHUTDOWN_READ, twice)
        // of finitely many datagrams, pushes to inboxes that are drained
        // (here, or by a peer waiting in `push::to_peer`), and pushes to the
        // writer, which progresses or has failed (then pushes are dropped,
        // counted); a writer that never progresses would hold the final flush
        // anyway. A peer that panics is counted done by its [`Leaving`].
        let n = self.worker_count();
        let start = std::time::Instant::now();
        let mut said = false;
        while shared.done_sending.load(Ordering::SeqCst) < n {
            if !self.drain_inbox() {
                std::thread::sleep(Duration::from_micros(100));
            }
            if !said && start.elapsed() > PEER_WAIT_NOTE {
                said = true;
                eprintln!(
                    "nfstitch: worker {}: still waiting for {} peers to hand over their last \
                     records (a slow output holds them); nothing is dropped",
                    self.id,
                    n - shared.done_sending.load(Ordering::SeqCst)
                );
            }
        }
        self.drain_inbox();
        self.tick(wall_ns());
        // Held v9/IPFIX datagrams whose template never came: expired, counted.
        self.ingest.expire_held(u64::MAX);
        let mut last = Vec::new();
        if self.stitch {
            self.shard.flush(self.now, &mut last);
        }
        match self.pairer.as_mut() {
            None => self.push_to_writer(ToWriter::Final(last)),
            Some(p) => {
                let mut conns = Vec::new();
                p.finish(&mut last, &mut conns);
                self.push_to_writer(ToWriter::FinalConns(conns));
            }
        }
        self.last_snapshot = None;
        self.publish();
        self.log_overflow(true);
        let kernel_drops = self.kernel_drops();
        self.leaving.finished();
        shared.wake_writer();
        WorkerResult {
            id: self.id,
            ingest: std::mem::take(&mut self.ingest),
            shard: *self.shard.stats(),
            kernel_drops,
            unread_at_shutdown: unread,
            queue_stalls: self.pushed.queue_stalls,
            writer_stalls: self.pushed.writer_stalls,
            unwritten_rows: self.pushed.unwritten_rows,
            receive_to_applied: std::mem::take(&mut self.receive_to_applied),
            export_to_receive: std::mem::take(&mut self.export_to_receive),
            pair: self.pairer.as_ref().map(|p| *p.stats()),
        }
    }
}

/// One log line per [`REJECT_LOG_EVERY`] at most about a growing counter.
#[derive(Debug, Default)]
struct LogThrottle {
    logged: u64,
    last: Option<std::time::Instant>,
}

impl LogThrottle {
    /// How much `total` grew since the last line, if a line is due now
    /// (`now`: whatever the time since the last).
    fn due(&mut self, total: u64, now: bool) -> Option<u64> {
        if total == self.logged
            || (!now && self.last.is_some_and(|t| t.elapsed() < REJECT_LOG_EVERY))
        {
            return None;
        }
        let n = total - self.logged;
        self.logged = total;
        self.last = Some(std::time::Instant::now());
        Some(n)
    }
}

/// Read and count, without processing, what `sock` holds, until it is empty
/// or `until` passes: how a worker that must stop accounts for what is left.
fn discard_queued(sock: &ReuseportSocket, batch: &mut RecvBatch, until: std::time::Instant) -> u64 {
    let mut n = 0;
    while std::time::Instant::now() < until {
        match recv_batch(sock, batch) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k as u64,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discard_queued_counts_every_datagram_left() {
        let sock = ReuseportSocket::bind("127.0.0.1:0".parse().unwrap(), Some(1 << 20)).unwrap();
        let to = sock.local_addr().unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..150u32 {
            tx.send_to(&i.to_be_bytes(), to).unwrap();
        }
        let mut batch = RecvBatch::new(RECV_BATCH, crate::platform::DEFAULT_BUF_LEN);
        let until = std::time::Instant::now() + Duration::from_secs(5);
        assert_eq!(discard_queued(&sock, &mut batch, until), 150);
        assert_eq!(discard_queued(&sock, &mut batch, until), 0, "the socket is empty after");
    }
}
