//! Micro-benchmarks of the restitching core, in records per second:
//! v5 decode, shard upsert at 10k / 1M / 10M active flows (one record at a
//! time and a datagram's 30 at a time), timer wheel, the worker's ingest path
//! (a receive batch decoded and merged, at 3k / 100k / 1M flows), and the
//! writer's formatting of flows (JSON lines, CSV) in flows per second.
//!
//! `cargo bench --bench core` measures; `cargo test --benches` runs each once.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
// loadgen's seeded generator: the same inputs on every run.
use loadgen::rng::SplitMix64;
use nfstitch::flow::{FlowRecord, KeySpec, Shard, ShardConfig};
use nfstitch::timer::{ArrayLinks, Wheel};
use nfstitch::wire::{encode, Datagram, HeaderFields, RecordFields};

mod common;
use common::{record, ReceivePath, EXPORTER, S, T0};
use nfstitch::collect::worker::RECV_BATCH;

fn decode(c: &mut Criterion) {
    let mut rng = SplitMix64::new(1);
    let recs: Vec<RecordFields> = (0..30)
        .map(|_| RecordFields {
            src_addr: rng.next_u64() as u32,
            dst_addr: rng.next_u64() as u32,
            packets: 10,
            octets: 1000,
            first: 1000,
            last: 2000,
            proto: 6,
            ..Default::default()
        })
        .collect();
    let mut buf = Vec::new();
    encode(
        &HeaderFields { sys_uptime: 5000, unix_secs: 1_700_000_000, ..Default::default() },
        &recs,
        &mut buf,
    );
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(30));
    g.bench_function("v5_30_records_to_flowrecords", |b| {
        b.iter(|| {
            let d = Datagram::parse(black_box(&buf)).unwrap();
            let h = d.header();
            let mut octets = 0;
            for r in d.records() {
                octets += FlowRecord::from_wire(EXPORTER, &h, &r, false).octets;
            }
            octets
        })
    });
    g.finish();
}

fn shard_upsert(c: &mut Criterion) {
    let mut g = c.benchmark_group("shard_upsert");
    g.sample_size(10);
    const BATCH: u64 = 10_000;
    for active in [10_000u64, 1_000_000, 10_000_000] {
        let mut shard = Shard::new(common::default_cfg(active as usize), T0);
        let mut out = Vec::new();
        for i in 0..active {
            shard.apply(T0, &record(i), &mut out);
        }
        assert_eq!(shard.len() as u64, active);
        let mut rng = SplitMix64::new(7);
        let mut now = T0;
        g.throughput(Throughput::Elements(BATCH));
        g.bench_function(format!("update_existing/{active}_flows"), |b| {
            b.iter_batched(
                || (0..BATCH).map(|_| rng.next_u64() % active).collect::<Vec<u64>>(),
                |keys| {
                    now += 1_000_000;
                    shard.advance(now, &mut out);
                    for k in keys {
                        shard.apply(now, &record(k), &mut out);
                    }
                    out.clear();
                },
                BatchSize::LargeInput,
            )
        });
        // The collector's path: a datagram's 30 records applied together
        // (keys hashed and buckets and slots prefetched as a batch).
        g.bench_function(format!("update_existing_batched/{active}_flows"), |b| {
            b.iter_batched(
                || (0..BATCH).map(|_| record(rng.next_u64() % active)).collect::<Vec<FlowRecord>>(),
                |recs| {
                    now += 1_000_000;
                    shard.advance(now, &mut out);
                    for d in recs.chunks(30) {
                        shard.apply_batch(now, d, &mut out);
                    }
                    out.clear();
                },
                BatchSize::LargeInput,
            )
        });
        // New flows into a full shard: insert + evict the oldest.
        let mut next = active;
        g.bench_function(format!("create_and_evict/{active}_flows"), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    shard.apply(now, &record(next), &mut out);
                    next += 1;
                }
                out.clear();
            })
        });
    }
    g.finish();
}

fn wheel(c: &mut Criterion) {
    let mut g = c.benchmark_group("wheel");
    const N: u64 = 100_000;
    g.throughput(Throughput::Elements(N));
    g.bench_function("insert_then_advance_100k_over_31min", |b| {
        let mut rng = SplitMix64::new(3);
        let mut links = ArrayLinks::with_ids(N as usize);
        for at in &mut links.at {
            *at = 1 + rng.next_u64() % 1_860_000;
        }
        b.iter(|| {
            let mut w = Wheel::new(0);
            for id in 0..N as u32 {
                let at = links.at[id as usize];
                w.insert(&mut links, id, at).unwrap();
            }
            let (mut t, mut n) = (0, 0);
            while !w.is_empty() {
                t += 1000;
                w.advance(t, &mut links);
                while w.pop_fired(&mut links).is_some() {
                    n += 1;
                }
            }
            n
        })
    });
    g.finish();
}

/// The writer's work per emitted flow: one row formatted and written.
fn output(c: &mut Criterion) {
    use nfstitch::output::{FlowRow, Format, Output, TimeFormat};
    let mut shard = Shard::new(
        ShardConfig { key: KeySpec::default(), linger_ns: S, idle_ns: S, max_flows: 1 << 20 },
        T0,
    );
    let mut flows = Vec::new();
    for i in 0..1000 {
        shard.apply(T0 + i * 1_000_000, &record(i), &mut flows);
    }
    shard.flush(T0 + 5 * S, &mut flows);
    let mut g = c.benchmark_group("output");
    g.throughput(Throughput::Elements(flows.len() as u64));
    for (name, format) in [("jsonl", Format::Jsonl), ("csv", Format::Csv)] {
        let mut out = Output::new(
            format,
            TimeFormat::Rfc3339,
            Box::new(std::io::BufWriter::new(std::io::sink())),
        );
        g.bench_function(format!("{name}_flow_rows"), |b| {
            b.iter(|| {
                for f in &flows {
                    out.write(&FlowRow(black_box(f))).unwrap();
                }
            })
        });
    }
    g.finish();
}

/// The worker's per-datagram path without the syscalls: a receive batch of
/// 64 datagrams (30 records each, 4 exporters, recurring flows as the drain
/// benchmark sends them) decoded and merged into one shard, the way `collect`
/// does it (`Ingest::wire`, then `Shard::apply_segments` over the records
/// read in place from the buffer the datagrams lie in). 3k flows fit in
/// the caches (the compute floor), 100k is the drain benchmark's table, 1M
/// misses the caches.
fn ingest_to_shard(c: &mut Criterion) {
    let mut g = c.benchmark_group("ingest_to_shard");
    g.throughput(Throughput::Elements((RECV_BATCH * 30) as u64));
    for flows in [3_000u32, 100_000, 1_000_000] {
        let mut path = ReceivePath::new(flows);
        g.bench_function(format!("receive_batch_64x30/{flows}_flows"), |b| {
            b.iter(|| path.batch(true))
        });
        // Recurring flows, 31 min idle: nothing ends; every flow seen is held.
        assert_eq!(path.emitted, 0);
        assert!(path.shard.len() <= path.datagrams() * 30);
        // The same batches checked, counted and noted by `Ingest::wire` but
        // not merged: what `receive_batch` costs beyond the shard.
        g.bench_function(format!("ingest_only_64x30/{flows}_flows"), |b| {
            b.iter(|| path.batch(false))
        });
    }
    g.finish();
}

criterion_group!(benches, decode, shard_upsert, wheel, output, ingest_to_shard);
criterion_main!(benches);
