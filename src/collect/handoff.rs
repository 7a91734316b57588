//! What crosses threads: bounded lock-free queues (crossbeam `ArrayQueue`)
//! between workers (records routed to the shard that owns their key, see
//! [`route`](super::route)) and from workers to the writer (finished flows,
//! dump rows), and the flags and wakeups around them.
//!
//! A full queue is **backpressure**, never a silent drop: what a producer
//! does while it waits is [`push`](super::push)'s. A worker that is asleep
//! in `poll` is woken through its mio `Waker` only when it said it sleeps
//! (`sleeping` flag; Dekker-style SeqCst handshake, so no wakeup is lost).
//! The shutdown handshake (every worker done sending, then finished) is
//! kept by each worker's [`Leaving`], even when its thread unwinds.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crossbeam_queue::ArrayQueue;

use super::gauges::{Gauges, Snapshot};
use crate::flow::{Flow, FlowRecord};
use crate::hist::Latency;
use crate::ingest::SeqTracker;
use crate::pair::Conn;
use crate::wire::template::MessageHeader;
use crate::wire::{Header, RecordFields};

/// Records per cross-shard batch.
pub const RECORD_BATCH: usize = 128;
/// Batches an inbox holds.
pub const INBOX_BATCHES: usize = 256;
/// Messages a worker-to-writer queue holds.
pub const WRITER_MSGS: usize = 64;

/// Records for another shard, with the collector time they arrived at.
#[derive(Debug)]
pub struct RecordBatch {
    pub now: u64,
    /// Kernel receive time of the batch's oldest record (latency histogram).
    pub rx_first: u64,
    pub recs: Vec<FlowRecord>,
}

/// One record as received, for `--dump`.
#[derive(Debug, Clone, Copy)]
pub struct DumpRow {
    pub ts: u64,
    pub exporter: IpAddr,
    pub index: u16,
    pub rec: DumpRec,
}

/// A dumped record and its datagram's header: v5 as on the wire, v9/IPFIX
/// as decoded.
#[derive(Debug, Clone, Copy)]
pub enum DumpRec {
    V5 { header: Header, rec: RecordFields },
    Templated { header: MessageHeader, rec: FlowRecord },
}

/// A message to the writer.
#[derive(Debug)]
pub enum ToWriter {
    /// Flows that ended by timer or eviction, in emission order.
    Flows(Vec<Flow>),
    /// Dump rows (a header row is written before every record with index 0).
    Dump(Vec<DumpRow>),
    /// The worker's final flush (`shutdown`): the writer sorts all of them together (D8).
    Final(Vec<Flow>),
    /// `--pair`: connections completed, in emission order.
    Conns(Vec<Conn>),
    /// `--pair`: the worker's last connections (sorted together, as `Final`).
    FinalConns(Vec<Conn>),
}

/// One worker's end of every queue.
#[derive(Debug)]
pub struct Mailbox {
    pub inbox: ArrayQueue<RecordBatch>,
    pub to_writer: ArrayQueue<ToWriter>,
    /// Emptied flow and dump batches on their way back from the writer, so
    /// the steady state allocates (and the kernel zeroes) no new batches.
    pub spent_flows: ArrayQueue<Vec<Flow>>,
    pub spent_dump: ArrayQueue<Vec<DumpRow>>,
    pub sleeping: AtomicBool,
    pub waker: mio::Waker,
    pub gauges: Gauges,
    pub snapshot: Mutex<Snapshot>,
}

impl Mailbox {
    pub fn new(waker: mio::Waker) -> Self {
        Mailbox {
            inbox: ArrayQueue::new(INBOX_BATCHES),
            to_writer: ArrayQueue::new(WRITER_MSGS),
            spent_flows: ArrayQueue::new(WRITER_MSGS),
            spent_dump: ArrayQueue::new(WRITER_MSGS),
            sleeping: AtomicBool::new(false),
            waker,
            gauges: Gauges::default(),
            snapshot: Mutex::new(Snapshot::default()),
        }
    }

    /// Wake the owner if it is (about to be) asleep in poll.
    pub fn notify(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }
}

/// One extra sink's counters as the writer last published them (for `/metrics`).
#[derive(Debug, Clone)]
pub struct SinkCounters {
    pub name: &'static str,
    pub counters: Vec<(&'static str, u64)>,
    /// Which counters are gauges.
    pub gauges: &'static [&'static str],
}

/// State every thread shares.
#[derive(Debug)]
pub struct Shared {
    pub mailboxes: Vec<Mailbox>,
    /// Stop receiving (SIGINT/SIGTERM, or a fatal writer error).
    pub stop: AtomicBool,
    /// Workers that have pushed their last cross-shard batch.
    pub done_sending: AtomicUsize,
    /// Workers that have sent their final flush.
    pub finished: AtomicUsize,
    /// The writer hit an output error: workers discard instead of waiting.
    pub writer_failed: AtomicBool,
    /// SIGHUP: reopen the output file.
    pub reopen: AtomicBool,
    /// SIGHUPs whose output path could not be opened (for `/metrics`).
    pub reopen_failures: AtomicU64,
    /// The writer's flow-end-to-written histogram, published about once a second.
    pub writer_latency: Mutex<Latency>,
    /// The extra sinks' counters, published by the writer about once a second.
    pub sink_counters: Mutex<Vec<SinkCounters>>,
    /// Flow rows the OS accepted from the writer, set when it ends (with a
    /// failure, what the shards emitted beyond it is the loss).
    pub flows_written: AtomicU64,
    /// The writer thread (it registers itself when it starts), for [`Shared::wake_writer`].
    pub writer_thread: OnceLock<std::thread::Thread>,
    /// The writer is (about to be) parked with nothing to do.
    pub writer_parked: AtomicBool,
    /// Sequence state of every exporter, shared by the workers' `Ingest`s;
    /// the stats line and `/metrics` read it here.
    pub seq: SeqTracker,
}

impl Shared {
    pub fn new(mailboxes: Vec<Mailbox>) -> Self {
        Shared {
            mailboxes,
            stop: AtomicBool::new(false),
            done_sending: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            writer_failed: AtomicBool::new(false),
            reopen: AtomicBool::new(false),
            reopen_failures: AtomicU64::new(0),
            writer_latency: Mutex::new(Latency::new()),
            sink_counters: Mutex::new(Vec::new()),
            flows_written: AtomicU64::new(0),
            writer_thread: OnceLock::new(),
            writer_parked: AtomicBool::new(false),
            seq: SeqTracker::new(),
        }
    }

    /// After a push to a writer queue: unpark the writer if it said it parks
    /// (the same SeqCst handshake as [`Mailbox::notify`]; an idle writer
    /// costs no wakeups, a busy one costs a load per message).
    pub fn wake_writer(&self) {
        if self.writer_parked.load(Ordering::SeqCst)
            && self.writer_parked.swap(false, Ordering::SeqCst)
        {
            if let Some(t) = self.writer_thread.get() {
                t.unpark();
            }
        }
    }

    /// Ask every worker to stop, and wake them.
    pub fn stop_all(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for m in &self.mailboxes {
            let _ = m.waker.wake();
        }
    }
}

/// A worker's part in the shutdown handshake: `done_sending` (its last
/// record routed to a peer), then `finished` (its final flush queued for the
/// writer). Peers wait for every worker's `done_sending` and the writer for
/// every `finished`, without a time limit; so if the worker's thread unwinds
/// (a bug) before it got there, dropping this marks both and stops the
/// collector, and nobody waits for it forever.
#[derive(Debug)]
pub struct Leaving {
    shared: Arc<Shared>,
    sent: bool,
    finished: bool,
}

impl Leaving {
    pub fn new(shared: Arc<Shared>) -> Self {
        Leaving { shared, sent: false, finished: false }
    }

    pub fn done_sending(&mut self) {
        if !std::mem::replace(&mut self.sent, true) {
            self.shared.done_sending.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn finished(&mut self) {
        self.done_sending();
        if !std::mem::replace(&mut self.finished, true) {
            self.shared.finished.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Leaving {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.stop_all();
            self.finished();
            self.shared.wake_writer();
        }
    }
}

#[cfg(test)]
mod tests {
    use mio::{Poll, Token};

    use super::*;

    fn collector(workers: usize) -> (Arc<Shared>, Vec<Poll>) {
        let polls: Vec<Poll> = (0..workers).map(|_| Poll::new().unwrap()).collect();
        let mbs = polls
            .iter()
            .map(|p| Mailbox::new(mio::Waker::new(p.registry(), Token(9)).unwrap()))
            .collect();
        (Arc::new(Shared::new(mbs)), polls)
    }

    /// A worker thread that unwinds before its part of the shutdown
    /// handshake still counts as done sending and finished, and stops the
    /// collector: its peers' wait for every worker (which has no time
    /// limit) ends. One that ends normally is counted once.
    #[test]
    fn a_worker_that_unwinds_is_never_waited_for() {
        let (shared, _polls) = collector(2);
        let s = Arc::clone(&shared);
        let t = std::thread::spawn(move || {
            let mut l = Leaving::new(s);
            l.done_sending();
            panic!("a bug in worker 0");
        });
        assert!(t.join().is_err());
        assert_eq!(shared.done_sending.load(Ordering::SeqCst), 1);
        assert_eq!(shared.finished.load(Ordering::SeqCst), 1);
        assert!(shared.stop.load(Ordering::SeqCst));

        let (shared, _polls) = collector(2);
        let mut l = Leaving::new(Arc::clone(&shared));
        l.done_sending();
        l.finished();
        drop(l);
        assert_eq!(shared.done_sending.load(Ordering::SeqCst), 1);
        assert_eq!(shared.finished.load(Ordering::SeqCst), 1);
        assert!(!shared.stop.load(Ordering::SeqCst), "a normal end stops nothing");
    }
}
