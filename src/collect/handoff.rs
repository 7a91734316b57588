//! What crosses threads: bounded lock-free queues (crossbeam `ArrayQueue`)
//! between workers (records routed to the shard that owns their key, see
//! [`route`](super::route)) and from workers to the writer (finished flows,
//! dump rows), and the flags and wakeups around them.
//!
//! A full queue is **backpressure**, never a silent drop: what a producer
//! does while it waits is [`push`](super::push)'s. A worker that is asleep
//! in `poll` is woken through its mio `Waker` only when it said it sleeps
//! (`sleeping` flag; Dekker-style SeqCst handshake, so no wakeup is lost).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crossbeam_queue::ArrayQueue;

use super::gauges::{Gauges, Snapshot};
use crate::flow::{Flow, FlowRecord};
use crate::hist::Latency;
use crate::ingest::SeqTracker;
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
    pub header: Header,
    pub index: u16,
    pub rec: RecordFields,
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
    /// The writer's flow-end-to-written histogram, published about once a second.
    pub writer_latency: Mutex<Latency>,
    /// The extra sinks' counters, published by the writer about once a second.
    pub sink_counters: Mutex<Vec<SinkCounters>>,
    /// Flow rows the writer wrote, set when it ends (with a failure, what
    /// the shards emitted beyond it is the loss).
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
