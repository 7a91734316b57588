//! What the benches share: the worker's path without syscalls, over the
//! recurring flows of the drain benchmark (4 exporters, 30 records per
//! datagram, every datagram in one buffer as a receive batch holds them).
//! `core`'s `ingest_to_shard` times it; `icount` counts its instructions.
//! Also the record every flow bench builds its flows from ([`record`]).
// Each bench target uses its own part of this module.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use nfstitch::collect::worker::RECV_BATCH;
use nfstitch::flow::{FlowRecord, KeySpec, Shard, ShardConfig};
use nfstitch::ingest::{Ingest, WireRecords};
use nfstitch::wire::{encode, HeaderFields, RecordFields};

pub const S: u64 = 1_000_000_000;
pub const T0: u64 = 1_700_000_000 * S;

pub const EXPORTER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1));

/// Record `i` of `EXPORTER`: 10.0.x.y -> 192.168.0.1:443, TCP, 3 packets.
pub fn record(i: u64) -> FlowRecord {
    FlowRecord {
        exporter: EXPORTER,
        engine_type: 0,
        engine_id: 0,
        sampling: 0,
        src_addr: Ipv4Addr::from(0x0a00_0000 | (i as u32 >> 8)).into(),
        dst_addr: Ipv4Addr::from(0xc0a8_0001).into(),
        nexthop: Ipv4Addr::from(0).into(),
        input: 1,
        output: 2,
        packets: 3,
        octets: 1500,
        first_ns: T0,
        last_ns: T0,
        src_port: 1024 + (i & 0xff) as u16 * 97,
        dst_port: 443,
        tcp_flags: 0x18,
        proto: 6,
        tos: 0,
        src_as: 0,
        dst_as: 0,
        src_mask: 24,
        dst_mask: 24,
        end_reason: 0,
    }
}

/// A shard configuration with the collector's default key and timeouts.
pub fn default_cfg(max_flows: usize) -> ShardConfig {
    ShardConfig { key: KeySpec::default(), linger_ns: 310 * S, idle_ns: 1860 * S, max_flows }
}

/// `flows` recurring flows as datagrams in one buffer, merged batch by batch
/// into one shard with the collector's default timeouts (nothing ends).
pub struct ReceivePath {
    /// (exporter, offset, length) of each datagram in `buf`.
    dgs: Vec<(IpAddr, usize, usize)>,
    buf: Vec<u8>,
    pub shard: Shard,
    ingest: Ingest,
    wire: WireRecords,
    segs: Vec<(usize, u64)>,
    next: usize,
    now: u64,
    /// Flows emitted so far (none while the flows recur).
    pub emitted: usize,
}

impl ReceivePath {
    pub fn new(flows: u32) -> Self {
        let (mut dgs, mut buf) = (Vec::new(), Vec::new());
        let mut seq = [0u32; 4];
        for d in 0..flows.div_ceil(30) {
            let e = (d % 4) as usize;
            let recs: Vec<RecordFields> = (0..30)
                .map(|r| {
                    let f = d * 30 + r;
                    RecordFields {
                        src_addr: Ipv4Addr::from(0x0a00_0000 | f).into(),
                        dst_addr: Ipv4Addr::from(0xc0a8_0000 | f.wrapping_mul(7919) & 0xffff)
                            .into(),
                        src_port: 1024 + (f % 50_000) as u16,
                        dst_port: 443,
                        packets: 10,
                        octets: 1000,
                        first: 1000,
                        last: 2000,
                        proto: 6,
                        tcp_flags: 0x18,
                        ..Default::default()
                    }
                })
                .collect();
            let h = HeaderFields {
                sys_uptime: 5000,
                unix_secs: 1_700_000_000,
                flow_sequence: seq[e],
                ..Default::default()
            };
            let off = buf.len();
            let len = encode(&h, &recs, &mut buf);
            seq[e] += 30;
            dgs.push((IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + e as u8)), off, len));
        }
        let mut shard = Shard::new(default_cfg(1 << 22), T0);
        shard.reserve(flows as usize);
        ReceivePath {
            dgs,
            buf,
            shard,
            ingest: Ingest::new(false, false),
            wire: WireRecords::default(),
            segs: Vec::new(),
            next: 0,
            now: T0,
            emitted: 0,
        }
    }

    /// Check, count and note the next [`RECV_BATCH`] datagrams (`Ingest::wire`); with
    /// `merge`, merge their records into the shard read in place
    /// (`Shard::apply_segments`), as the worker does. Returns the records noted.
    pub fn batch(&mut self, merge: bool) -> usize {
        for _ in 0..RECV_BATCH {
            let (ex, off, len) = self.dgs[self.next];
            self.next = (self.next + 1) % self.dgs.len();
            self.now += 1000;
            let _ = self.ingest.wire(ex, &self.buf[off..off + len], off, &mut self.wire);
            self.segs.push((self.wire.len(), self.now));
        }
        let noted = self.wire.len();
        if merge {
            let mut out = Vec::new();
            self.shard.apply_segments(&self.wire.view(&self.buf), &self.segs, &mut out);
            self.emitted += out.len();
        }
        self.wire.clear();
        self.segs.clear();
        noted
    }

    /// Datagrams in the cycle (every flow once).
    pub fn datagrams(&self) -> usize {
        self.dgs.len()
    }
}
