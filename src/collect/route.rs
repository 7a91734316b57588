//! Cross-shard routing: which worker owns a record (ahash of its packed key,
//! mod the worker count, fixed seeds: the same key goes to the same shard in
//! every worker; with `--pair` a hash that is the same for both directions of
//! a connection, [`crate::pair::symmetric_hash`]), and the outgoing batches
//! of records for each peer, with the receive time of each batch's oldest
//! record. Spent batches come back from
//! the peers' inboxes into a small pool, so steady state allocates none.
//!
//! It only sorts and batches; pushing a full batch into the peer's inbox
//! (and waiting while it is full) is [`push`](super::push)'s.

use super::handoff::{RecordBatch, RECORD_BATCH};
use crate::flow::{FlowKey, FlowRecord, KeyHasher, KeyPacker, KeySpec, PackedKey, Records};
use crate::ingest::WireRecords;

/// One worker's routing state: its id, the key, one outgoing batch per peer.
#[derive(Debug)]
pub struct Router {
    id: usize,
    /// The key, as the routing hash needs it.
    packer: KeyPacker,
    /// `--pair`: route by the symmetric hash of the key (both directions of
    /// a connection to one shard).
    pair: Option<KeySpec>,
    out: Vec<Vec<FlowRecord>>,
    /// Receive time of the oldest record in each `out` batch.
    out_rx: Vec<u64>,
    /// Emptied batches, for the next `out` batch that leaves.
    pool: Vec<Vec<FlowRecord>>,
}

impl Router {
    /// Routing for worker `id` of `workers` (at most 64: `route` returns a
    /// bitmask); `pair`: by the symmetric hash (`--pair`).
    pub fn new(id: usize, workers: usize, key: KeySpec, pair: bool) -> Self {
        debug_assert!(id < workers && workers <= 64, "worker {id} of {workers}");
        Router {
            id,
            packer: key.packer(),
            pair: pair.then_some(key),
            out: (0..workers).map(|_| Vec::with_capacity(RECORD_BATCH)).collect(),
            out_rx: vec![0; workers],
            pool: Vec::new(),
        }
    }

    /// Workers (shards) the records are spread over.
    pub fn workers(&self) -> usize {
        self.out.len()
    }

    /// The worker whose shard owns `key`.
    #[inline]
    pub fn owner(&self, key: &PackedKey) -> usize {
        (KeyHasher::hash_packed(key) % self.workers() as u64) as usize
    }

    /// The worker whose shard owns flow `key` and its partner (`--pair`).
    #[inline]
    pub fn pair_owner(&self, key: &FlowKey) -> usize {
        (crate::pair::symmetric_hash(key) % self.workers() as u64) as usize
    }

    /// Copy the records of `wire[start..]` (one datagram's, in `buf`, received
    /// at `ts`) that other shards own to their outgoing batches and drop them
    /// from `wire`, keeping the own ones. Returns a bitmask of the
    /// destinations whose batch filled.
    pub fn route(&mut self, wire: &mut WireRecords, buf: &[u8], start: usize, ts: u64) -> u64 {
        let mut full = 0;
        let mut dests = [0u8; crate::wire::MAX_RECORDS];
        let view = wire.view(buf);
        for k in start..view.len() {
            let dest = match &self.pair {
                None => self.owner(&view.key(k, &self.packer)),
                Some(spec) => self.pair_owner(&spec.key_of(&view.record(k))),
            };
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

    /// Route one record (v9/IPFIX, decoded) received at `ts`: `None` when
    /// this worker's shard owns it (the caller applies it), else it is
    /// copied to its owner's batch and `Some(bit)` says whether that batch
    /// filled (a bitmask as [`Router::route`]'s, 0 when not full).
    #[inline]
    pub fn route_record(&mut self, rec: &FlowRecord, ts: u64) -> Option<u64> {
        let dest = self.owner(&self.packer.pack(rec));
        if dest == self.id {
            return None;
        }
        let batch = &mut self.out[dest];
        if batch.is_empty() {
            self.out_rx[dest] = ts;
        }
        batch.push(*rec);
        Some(if batch.len() >= RECORD_BATCH { 1 << dest } else { 0 })
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

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::ingest::Ingest;
    use crate::wire::{encode, HeaderFields, RecordFields};

    /// Records of 30-record datagrams routed by worker 1 of 4: every record
    /// ends up either kept (own shard) or in the batch of the worker that
    /// owns it, none twice; a batch reports full at RECORD_BATCH and leaves
    /// with the receive time of its oldest record.
    #[test]
    fn every_record_goes_to_its_owner_once() {
        let mut r = Router::new(1, 4, KeySpec::default(), false);
        let mut ing = Ingest::new(false, false);
        let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let (mut kept, mut routed, mut full_seen) = (0, [0usize; 4], 0u64);
        let mut oldest = [0u64; 4];
        for d in 0..20u16 {
            let recs: Vec<RecordFields> = (0..30u16)
                .map(|i| RecordFields { src_port: d * 30 + i, packets: 1, ..Default::default() })
                .collect();
            let mut bytes = Vec::new();
            encode(&HeaderFields::default(), &recs, &mut bytes);
            let mut wire = WireRecords::default();
            ing.wire(src, &bytes, 0, &mut wire).unwrap();
            let ts = 1000 + u64::from(d);
            let was_empty: Vec<bool> = r.out.iter().map(Vec::is_empty).collect();
            let full = r.route(&mut wire, &bytes, 0, ts);
            for dest in 0..4 {
                if was_empty[dest] && !r.out[dest].is_empty() {
                    oldest[dest] = ts;
                }
            }
            let view = wire.view(&bytes);
            assert!((0..view.len()).all(|k| r.owner(&view.key(k, &r.packer)) == 1));
            kept += view.len();
            for (dest, out) in r.out.iter().enumerate() {
                assert!(out.iter().all(|rec| r.owner(&r.packer.pack(rec)) == dest));
                assert_eq!(full & (1 << dest) != 0, out.len() >= RECORD_BATCH, "dest {dest}");
            }
            full_seen |= full;
            for dest in 0..4 {
                if full & (1 << dest) != 0 {
                    let b = r.take(dest, 7).unwrap();
                    assert_eq!((b.now, b.rx_first), (7, oldest[dest]), "the oldest record's time");
                    routed[dest] += b.recs.len();
                    r.recycle(b.recs);
                }
            }
        }
        assert!(r.out[1].is_empty() && r.take(1, 0).is_none(), "nothing routed to itself");
        for dest in [0, 2, 3] {
            routed[dest] += r.take(dest, 0).map_or(0, |b| b.recs.len());
        }
        assert_eq!(kept + routed.iter().sum::<usize>(), 600);
        assert!(routed.iter().enumerate().all(|(d, &n)| (d == 1) == (n == 0)), "{routed:?}");
        assert_ne!(full_seen, 0, "600 records over 3 peers fill a batch");
    }
}
