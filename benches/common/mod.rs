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
    /// The same records as v9 (9) or IPFIX (10) datagrams, decoded by
    /// `Ingest::templated`; 5: v5 read in place.
    version: u16,
    out: Vec<nfstitch::flow::Flow>,
}

/// The fields of a v5 record as a v9/IPFIX template: (element id, length).
const V5_AS_TEMPLATE: [(u16, u16); 18] = [
    (8, 4),
    (12, 4),
    (15, 4),
    (10, 2),
    (14, 2),
    (2, 4),
    (1, 4),
    (22, 4),
    (21, 4),
    (7, 2),
    (11, 2),
    (6, 1),
    (4, 1),
    (5, 1),
    (16, 2),
    (17, 2),
    (9, 1),
    (13, 1),
];

/// A v5 datagram (`encode`d) re-encoded as v9 or IPFIX with the
/// [`V5_AS_TEMPLATE`] (template 256, sent along when `template`): the same
/// header times and sequence, the same records field for field.
fn as_templated(v5: &[u8], version: u16, template: bool) -> Vec<u8> {
    let be16 = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let count = be16(v5, 2) as usize;
    let mut out = Vec::new();
    out.extend_from_slice(&version.to_be_bytes());
    if version == 9 {
        out.extend_from_slice(&(count as u16 + template as u16).to_be_bytes());
        out.extend_from_slice(&v5[4..12]); // uptime, unix secs
        out.extend_from_slice(&v5[16..20]); // sequence
        out.extend_from_slice(&[0; 4]); // source id
    } else {
        out.extend_from_slice(&[0, 0]); // length, set below
        out.extend_from_slice(&v5[8..12]);
        out.extend_from_slice(&v5[16..20]);
        out.extend_from_slice(&[0; 4]);
    }
    if template {
        out.extend_from_slice(&(if version == 9 { 0u16 } else { 2 }).to_be_bytes());
        out.extend_from_slice(&(8 + 4 * V5_AS_TEMPLATE.len() as u16).to_be_bytes());
        out.extend_from_slice(&256u16.to_be_bytes());
        out.extend_from_slice(&(V5_AS_TEMPLATE.len() as u16).to_be_bytes());
        for (id, len) in V5_AS_TEMPLATE {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    // The v5 record layout, field by field, in template order.
    let offsets: [(usize, usize); 18] = [
        (0, 4),
        (4, 4),
        (8, 4),
        (12, 2),
        (14, 2),
        (16, 4),
        (20, 4),
        (24, 4),
        (28, 4),
        (32, 2),
        (34, 2),
        (37, 1),
        (38, 1),
        (39, 1),
        (40, 2),
        (42, 2),
        (44, 1),
        (45, 1),
    ];
    let rec_len: usize = offsets.iter().map(|o| o.1).sum();
    out.extend_from_slice(&256u16.to_be_bytes());
    out.extend_from_slice(&((4 + rec_len * count) as u16).to_be_bytes());
    for r in 0..count {
        let rec = &v5[24 + 48 * r..24 + 48 * (r + 1)];
        for (at, len) in offsets {
            out.extend_from_slice(&rec[at..at + len]);
        }
    }
    if version == 10 {
        let n = out.len() as u16;
        out[2..4].copy_from_slice(&n.to_be_bytes());
    }
    out
}

impl ReceivePath {
    pub fn new(flows: u32) -> Self {
        Self::with_version(flows, 5)
    }

    /// [`ReceivePath::new`] with the datagrams as NetFlow `version` (5, 9 or
    /// 10): the same records; v9/IPFIX datagrams carry the template in the
    /// first datagram of each exporter in the cycle.
    pub fn with_version(flows: u32, version: u16) -> Self {
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
            let mut len = encode(&h, &recs, &mut buf);
            if version != 5 {
                let t = as_templated(&buf[off..], version, d < 4);
                buf.truncate(off);
                buf.extend_from_slice(&t);
                len = t.len();
            }
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
            version,
            out: Vec::new(),
        }
    }

    /// Check, count and note the next [`RECV_BATCH`] datagrams (`Ingest::wire`); with
    /// `merge`, merge their records into the shard read in place
    /// (`Shard::apply_segments`), as the worker does. Returns the records noted.
    pub fn batch(&mut self, merge: bool) -> usize {
        if self.version != 5 {
            return self.batch_templated(merge);
        }
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

    /// [`ReceivePath::batch`] for v9/IPFIX: decoded by `Ingest::templated`,
    /// each record the flow table takes applied to the shard, as the worker does.
    fn batch_templated(&mut self, merge: bool) -> usize {
        let mut noted = 0;
        for _ in 0..RECV_BATCH {
            let (ex, off, len) = self.dgs[self.next];
            self.next = (self.next + 1) % self.dgs.len();
            self.now += 1000;
            let now = self.now;
            let (shard, out) = (&mut self.shard, &mut self.out);
            let _ = self.ingest.templated(ex, now, &self.buf[off..off + len], &mut |_, fr, ok| {
                noted += 1;
                if merge && ok {
                    shard.apply(now, fr, out);
                }
            });
        }
        self.emitted += self.out.len();
        self.out.clear();
        noted
    }

    /// Datagrams in the cycle (every flow once).
    pub fn datagrams(&self) -> usize {
        self.dgs.len()
    }
}
