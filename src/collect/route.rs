//! Cross-shard routing: which worker owns a record (ahash of its packed key,
//! mod the worker count, fixed seeds: the same key goes to the same shard in
//! every worker), and the outgoing batches of records for each peer, with the
//! receive time of each batch's oldest record. Spent batches come back from
//! the peers' inboxes into a small pool, so steady state allocates none.
//!
//! It only sorts and batches; pushing a full batch into the peer's inbox
//! (and waiting while it is full) is [`push`](super::push)'s.

use super::handoff::{RecordBatch, RECORD_BATCH};
use crate::flow::{FlowRecord, KeyHasher, KeyPacker, KeySpec, Records};
use crate::ingest::WireRecords;

/// One worker's routing state: its id, the key, one outgoing batch per peer.
#[derive(Debug)]
pub struct Router {
    id: usize,
    /// The key, as the routing hash needs it.
    packer: KeyPacker,
    out: Vec<Vec<FlowRecord>>,
    /// Receive time of the oldest record in each `out` batch.
    out_rx: Vec<u64>,
    /// Emptied batches, for the next `out` batch that leaves.
    pool: Vec<Vec<FlowRecord>>,
}

impl Router {
    /// Routing for worker `id` of `workers` (at most 64: `route` returns a bitmask).
    pub fn new(id: usize, workers: usize, key: KeySpec) -> Self {
        debug_assert!(id < workers && workers <= 64, "worker {id} of {workers}");
        Router {
            id,
            packer: key.packer(),
            out: (0..workers).map(|_| Vec::with_capacity(RECORD_BATCH)).collect(),
            out_rx: vec![0; workers],
            pool: Vec::new(),
        }
    }

    /// Workers (shards) the records are spread over.
    pub fn workers(&self) -> usize {
        self.out.len()
    }

    /// Copy the records of `wire[start..]` (one datagram's, in `buf`, received
    /// at `ts`) that other shards own to their outgoing batches and drop them
    /// from `wire`, keeping the own ones. Returns a bitmask of the
    /// destinations whose batch filled.
    pub fn route(&mut self, wire: &mut WireRecords, buf: &[u8], start: usize, ts: u64) -> u64 {
        let n = self.workers() as u64;
        let mut full = 0;
        let mut dests = [0u8; crate::wire::MAX_RECORDS];
        let view = wire.view(buf);
        for k in start..view.len() {
            let dest = (KeyHasher::hash_packed(&view.key(k, &self.packer)) % n) as usize;
            dests[k - start] = dest as u8;
            if dest == self.id {
                continue;
            }
            let batch = &mut self.out[dest];
            if batch.is_empty() {
                self.out_rx[dest] = ts;
            }
            batch.push(view.record(k));
            if batch.len() >= RECORD_BATCH {
                full |= 1 << dest;
            }
        }
        let id = self.id as u8;
        wire.retain_from(start, |k| dests[k - start] == id);
        full
    }

    /// The batch for `dest`, stamped with collector time `now`, replaced by a
    /// pooled empty one; `None` if it holds no record.
    pub fn take(&mut self, dest: usize, now: u64) -> Option<RecordBatch> {
        if self.out[dest].is_empty() {
            return None;
        }
        let fresh = self.pool.pop().unwrap_or_else(|| Vec::with_capacity(RECORD_BATCH));
        let recs = std::mem::replace(&mut self.out[dest], fresh);
        Some(RecordBatch { now, rx_first: self.out_rx[dest], recs })
    }

    /// Keep an applied batch's vector for reuse (a few per peer at most).
    pub fn recycle(&mut self, mut recs: Vec<FlowRecord>) {
        recs.clear();
        if self.pool.len() < 4 * self.workers() + 4 {
            self.pool.push(recs);
        }
    }
}
