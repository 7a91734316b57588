//! `--pool N`: a pool of datagrams made once from the model, then sent in a
//! loop with only the fields that keep the stream a valid, advancing export
//! rewritten in place.
//!
//! # Building
//! The pool is a planned run of `N` valid datagrams (exporter `e` makes its
//! share, `N / K` or one more, as [`crate::Plan::quota`] splits a count),
//! made by the usual router model before the sending starts: so every pool
//! datagram is full, every connection in it is finished, and with
//! `--corrupt-ratio` the malformed datagrams follow their valid one in the
//! pool as they would in a live run.
//!
//! # Cycling
//! Each exporter sends its share in order and starts again at its first
//! datagram. Before a valid datagram leaves, [`patch`] rewrites its header
//! (`flow_sequence`: the exporter's running sequence, continuous across
//! passes; `unix_secs`/`unix_nsecs`: the wall clock in whole ms;
//! `sys_uptime`: the wall clock on the exporter's boot clock) and shifts every
//! record's First and Last by the same uptime delta as the header, so each
//! record keeps its place relative to its export. v9 and IPFIX
//! (`--version 9|10`) are moved by `nfstitch::wire::template::encode::
//! move_message`: the header's export time, v9 sysUptime and sequence (v9:
//! one per datagram; IPFIX: the data records sent before it), and each flow
//! record's start and end by the same delta. The pool's first datagram of
//! each exporter carries its templates (and later ones their refreshes), so
//! every pass resends them before the data that needs them. Their other
//! datagrams are cycled in length order, so that equal-length ones leave
//! together as one UDP GSO send (with IPv6 in the mix lengths vary). A few loads and stores per
//! record; no allocation, no model work. Malformed datagrams are sent as
//! built. The flow keys recur every pass: that is the point (a fixed set of
//! recurring flows), and why the truth lists no connections in pool mode.
//!
//! # Truth
//! Counted from what was sent: the pool's per-exporter sums times the full
//! passes, plus the sums of the entries of the partial pass.

use nfstitch::wire::template::encode::move_message;
use nfstitch::wire::{HEADER_LEN, RECORD_LEN};

use crate::router::{DgStats, ExporterGen};
use crate::truth::{CorruptCounts, ExporterTruth};

/// Most datagrams `--pool` takes (about 1.5 GB at 30 records per datagram).
pub const MAX_POOL: u64 = 1_000_000;
/// Up to this many pool records, the distinct flow keys are counted for the report.
pub const COUNT_FLOWS_UP_TO: u64 = 3_000_000;

/// What one pool entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Valid(DgStats),
    /// A malformed datagram and its reason index.
    Corrupt(usize),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    off: usize,
    len: usize,
    kind: Kind,
    /// v9/IPFIX: the export time (ms) the datagram carries now.
    at_ms: u64,
    /// v9/IPFIX: template and options records, IPv6 flow records in it,
    /// and whether it carries the templates.
    templated: [u64; 4],
}

/// One exporter's share of the pool, its running sequence and position.
#[derive(Debug)]
pub struct Pool {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// Valid datagrams in the pool.
    valid: u64,
    /// Sums of the whole pool (valid datagrams only) and its malformed ones.
    sums: DgStats,
    corrupt: CorruptCounts,
    /// The exporter's boot, absolute ms (its uptime clock).
    boot_ms: u64,
    /// flow_sequence of the next valid datagram.
    seq: u32,
    /// Next entry to send.
    cursor: usize,
    /// Completed passes over the whole pool.
    passes: u64,
    /// Latest export time written (ms): export times never go back.
    last_ms: u64,
    /// 5, 9 or 10.
    version: u16,
}

impl Pool {
    /// Make `gen`'s whole (planned) run: datagram `k` of exporter `e` at
    /// router time `tick(k)`. `gen` must have a quota of at least one.
    pub fn build(gen: &mut ExporterGen, mut tick: impl FnMut(u64) -> u64) -> Pool {
        let mut bytes = Vec::new();
        let mut entries = Vec::new();
        let mut buf = Vec::with_capacity(nfstitch::wire::MAX_DATAGRAM_LEN);
        let mut bad = Vec::with_capacity(nfstitch::wire::MAX_DATAGRAM_LEN + 64);
        let mut sums = DgStats::default();
        let mut k = 0;
        let seq0 = gen.sequence();
        let counts = |g: &ExporterGen| {
            let t = &g.truth;
            [t.template_records, t.options_records, t.ipv6_records, t.template_datagrams]
        };
        loop {
            let before = counts(gen);
            let at_ns = tick(k);
            let Some(st) = gen.next_datagram(at_ns, &mut buf) else {
                break;
            };
            let after = counts(gen);
            k += 1;
            sums.records += st.records;
            sums.packets += st.packets;
            sums.octets += st.octets;
            entries.push(Entry {
                off: bytes.len(),
                len: buf.len(),
                kind: Kind::Valid(st),
                at_ms: at_ns / 1_000_000,
                templated: [0, 1, 2, 3].map(|i| after[i] - before[i]),
            });
            bytes.extend_from_slice(&buf);
            if let Some(reason) = gen.maybe_corrupt(&buf, &mut bad) {
                entries.push(Entry {
                    off: bytes.len(),
                    len: bad.len(),
                    kind: Kind::Corrupt(reason),
                    at_ms: 0,
                    templated: [0; 4],
                });
                bytes.extend_from_slice(&bad);
            }
        }
        assert!(k > 0, "an exporter's pool share is at least one datagram");
        let version = u16::from_be_bytes([bytes[0], bytes[1]]);
        if version != 5 && entries.iter().all(|e| matches!(e.kind, Kind::Valid(_))) {
            // v9/IPFIX datagrams differ in length (an IPv4 and an IPv6 data
            // set in the proportions of each one's records): in length order
            // (stable; the first, with the templates, stays first; not with
            // malformed ones, which follow their valid one) runs of equal
            // length leave as one UDP GSO send. Every record keeps its age at
            // export, so the order of a pass changes nothing else.
            entries[1..].sort_by_key(|e| e.len);
        }
        Pool {
            bytes,
            entries,
            valid: k,
            sums,
            corrupt: gen.corrupt,
            boot_ms: gen.boot_ms(),
            seq: seq0,
            cursor: 0,
            passes: 0,
            last_ms: 0,
            version,
        }
    }

    /// Valid datagrams in this share.
    pub fn len(&self) -> u64 {
        self.valid
    }

    /// Never true: a share holds at least one datagram.
    pub fn is_empty(&self) -> bool {
        self.valid == 0
    }

    /// Sums of this share's valid datagrams (one pass).
    pub fn sums(&self) -> DgStats {
        self.sums
    }

    /// The export version of the pool: 5, 9 or 10.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The records of this share, for counting distinct flow keys (v5 only).
    pub fn records(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.entries
            .iter()
            .filter(|e| matches!(e.kind, Kind::Valid(_)))
            .flat_map(|e| self.bytes[e.off + HEADER_LEN..e.off + e.len].chunks_exact(RECORD_LEN))
    }

    /// Take the next valid datagram and the malformed ones after it, patched
    /// for export at `now_ms`: their entry indices go to `out`.
    pub fn take_next(&mut self, now_ms: u64, out: &mut Vec<usize>) {
        let now_ms = now_ms.max(self.last_ms);
        self.last_ms = now_ms;
        let i = self.cursor;
        let e = self.entries[i];
        debug_assert!(matches!(e.kind, Kind::Valid(_)), "the cursor is on a valid datagram");
        let d = &mut self.bytes[e.off..e.off + e.len];
        let up = now_ms.wrapping_sub(self.boot_ms) as u32;
        if self.version == 5 {
            let count = ((e.len - HEADER_LEN) / RECORD_LEN) as u32;
            patch(d, self.seq, up, now_ms);
            self.seq = self.seq.wrapping_add(count);
        } else {
            let data_records = move_message(d, e.at_ms, now_ms, up, self.seq);
            self.entries[i].at_ms = now_ms;
            let step = if self.version == 9 { 1 } else { data_records };
            self.seq = self.seq.wrapping_add(step);
        }
        out.push(i);
        self.advance();
        while let Kind::Corrupt(_) = self.entries[self.cursor].kind {
            out.push(self.cursor);
            self.advance();
        }
    }

    #[inline]
    fn advance(&mut self) {
        self.cursor += 1;
        if self.cursor == self.entries.len() {
            self.cursor = 0;
            self.passes += 1;
        }
    }

    /// The bytes of entry `i`.
    #[inline]
    pub fn entry(&self, i: usize) -> &[u8] {
        let e = &self.entries[i];
        &self.bytes[e.off..e.off + e.len]
    }

    /// What was sent so far, as the truth counts it: `truth` gets the valid
    /// datagrams' sums, `corrupt` the malformed ones.
    pub fn sent(&self, truth: &mut ExporterTruth, corrupt: &mut CorruptCounts) {
        let p = self.passes;
        truth.datagrams = p * self.valid;
        truth.records = p * self.sums.records;
        truth.packets = p * self.sums.packets;
        truth.octets = p * self.sums.octets;
        *corrupt = self.corrupt.times(p);
        for e in &self.entries[..self.cursor] {
            match e.kind {
                Kind::Valid(st) => {
                    truth.datagrams += 1;
                    truth.records += st.records;
                    truth.packets += st.packets;
                    truth.octets += st.octets;
                }
                Kind::Corrupt(reason) => corrupt.add(reason),
            }
        }
        truth.corrupt = corrupt.total();
        let mut t = [0u64; 4];
        for e in &self.entries {
            for (x, y) in t.iter_mut().zip(e.templated) {
                *x += p * y;
            }
        }
        for e in &self.entries[..self.cursor] {
            for (x, y) in t.iter_mut().zip(e.templated) {
                *x += y;
            }
        }
        [
            truth.template_records,
            truth.options_records,
            truth.ipv6_records,
            truth.template_datagrams,
        ] = t;
    }
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Rewrite a valid v5 datagram `d` for export at `now_ms` (absolute ms) with
/// uptime `sys_uptime` and sequence `seq`; First and Last of every record
/// move by the header's uptime delta (mod 2^32, as uptimes wrap).
#[inline]
pub fn patch(d: &mut [u8], seq: u32, sys_uptime: u32, now_ms: u64) {
    let delta = sys_uptime.wrapping_sub(be32(d, 4));
    put32(d, 4, sys_uptime);
    put32(d, 8, (now_ms / 1000) as u32);
    put32(d, 12, (now_ms % 1000) as u32 * 1_000_000);
    put32(d, 16, seq);
    if delta != 0 {
        for r in d[HEADER_LEN..].chunks_exact_mut(RECORD_LEN) {
            let first = be32(r, 24).wrapping_add(delta);
            let last = be32(r, 28).wrapping_add(delta);
            put32(r, 24, first);
            put32(r, 28, last);
        }
    }
}

/// Distinct flow keys (exporter, addresses, ports, protocol) of the pools.
pub fn distinct_flows<'a>(pools: impl Iterator<Item = (usize, &'a Pool)>) -> u64 {
    let mut keys: Vec<u128> = Vec::new();
    for (e, p) in pools {
        keys.extend(p.records().map(|r| {
            (e as u128) << 104
                | (be32(r, 0) as u128) << 72
                | (be32(r, 4) as u128) << 40
                | (u16::from_be_bytes([r[32], r[33]]) as u128) << 24
                | (u16::from_be_bytes([r[34], r[35]]) as u128) << 8
                | r[38] as u128
        }));
    }
    keys.sort_unstable();
    keys.dedup();
    keys.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfstitch::wire::{encode, Datagram, HeaderFields, RecordFields};

    #[test]
    fn patch_moves_header_and_records_together() {
        let recs: Vec<RecordFields> = (0..3)
            .map(|i| RecordFields {
                packets: 1,
                octets: 40,
                first: 5_000 + i,
                last: 9_000 + i,
                ..Default::default()
            })
            .collect();
        let h = HeaderFields {
            sys_uptime: 10_000,
            unix_secs: 1_700_000_000,
            flow_sequence: 7,
            ..Default::default()
        };
        let mut d = Vec::new();
        encode(&h, &recs, &mut d);
        let before = Datagram::parse(&d).unwrap();
        let ages: Vec<u64> = before
            .records()
            .map(|r| before.header().export_ns() - before.header().uptime_to_ns(r.first()))
            .collect();
        // 2.5 s later, across the uptime wrap.
        let up = u32::MAX - 100;
        patch(&mut d, 1234, up, 1_700_000_002_500);
        let dg = Datagram::parse(&d).unwrap();
        let hh = dg.header();
        assert_eq!((hh.flow_sequence, hh.sys_uptime), (1234, up));
        assert_eq!(hh.export_ns(), 1_700_000_002_500 * 1_000_000);
        for (r, age) in dg.records().zip(ages) {
            assert_eq!(hh.export_ns() - hh.uptime_to_ns(r.first()), age, "same age");
            assert_eq!(r.last().wrapping_sub(r.first()), 4000, "same length");
            assert!(hh.uptime_to_ns(r.last()) <= hh.export_ns());
        }
        assert_eq!(
            d[HEADER_LEN..],
            {
                let mut e = Vec::new();
                let moved: Vec<RecordFields> = recs
                    .iter()
                    .map(|r| RecordFields {
                        first: r.first.wrapping_add(up.wrapping_sub(10_000)),
                        last: r.last.wrapping_add(up.wrapping_sub(10_000)),
                        ..*r
                    })
                    .collect();
                encode(&h, &moved, &mut e);
                e
            }[HEADER_LEN..],
            "only First and Last change in the records"
        );
    }
}
