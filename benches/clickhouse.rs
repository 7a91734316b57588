//! The ClickHouse sink, in flows per second:
//! - `clickhouse/encode_rowbinary`: the writer thread's cost per flow, one
//!   flow encoded as a RowBinary row (10k flows per iteration);
//! - `clickhouse/insert_200k_flows`: end to end against a real server, a fresh
//!   sink taking 200k flows (4 batches of the default 50k) and `close`
//!   returning once the server has answered every insert (no spool). This is
//!   the server's insert rate more than the sink's: the sender sends one
//!   batch at a time, one connection per batch.
//!
//! The server is `$NFSTITCH_CLICKHOUSE_URL` (default `http://127.0.0.1:8123/`,
//! the one `.ci/clickhouse.sh start` runs); without one answering, the insert
//! bench is left out with a note (a failure under `$NFSTITCH_REQUIRE_ALL`,
//! which `.ci/run` sets: the integration tests' skip rule). It inserts
//! into `nfstitch_bench_<pid>`, dropped at the end.
//!
//! `cargo bench --bench clickhouse` measures; `cargo test --benches` runs each once.

use std::hint::black_box;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use nfstitch::flow::{EndReason, Flow, KeySpec};
use nfstitch::sink::clickhouse::{
    encode_row, ClickHouseConfig, ClickHouseSink, ClickHouseUrl, Schema,
};
use nfstitch::sink::FlowSink;

mod common;
use common::{record, T0};
#[path = "../tests/integration/skip.rs"]
mod skip;

/// Flow `i`, made of [`record`] `i`: ended by a FIN 2 ms after it began.
fn flow(i: u32) -> Flow {
    let rec = record(u64::from(i));
    let t = T0 + u64::from(i) * 1000;
    Flow {
        key: KeySpec::default().key_of(&rec),
        rec,
        records: 2,
        packets: 6,
        octets: 3000,
        tcp_flags: 0x1b,
        first_ns: t,
        last_ns: t + 1_000_000,
        start_ns: t,
        seen_ns: t + 1_000_000,
        end_ns: t + 2_000_000,
        end_reason: EndReason::Fin,
    }
}

fn encode(c: &mut Criterion) {
    let flows: Vec<Flow> = (0..10_000).map(flow).collect();
    let mut g = c.benchmark_group("clickhouse");
    g.throughput(Throughput::Elements(flows.len() as u64));
    for (name, schema) in
        [("encode_rowbinary", Schema::Legacy), ("encode_rowbinary_native", Schema::Native)]
    {
        let mut out = Vec::with_capacity(flows.len() * schema.row_size());
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for f in &flows {
                    encode_row(schema, black_box(f), &mut out);
                }
                out.len()
            })
        });
    }
    g.finish();
}

/// The server's URL when something listens on its port, else why not.
fn server() -> Result<String, String> {
    let url = std::env::var("NFSTITCH_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8123/".to_string());
    let uri: ureq::http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let host = uri.host().unwrap_or("");
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    let addr = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("{url}: cannot resolve {host}"))?;
    TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("no ClickHouse on {url} ({e}); run .ci/clickhouse.sh start"))?;
    Ok(url)
}

fn query(url: &str, sql: &str) {
    let r = ureq::post(url).query("query", sql).send_empty();
    if let Err(e) = r {
        eprintln!("clickhouse bench: {sql}: {e}");
    }
}

fn insert(c: &mut Criterion) {
    let url = match server() {
        Ok(u) => u,
        Err(why) => return skip::skip(&format!("clickhouse/insert_200k_flows: {why}")),
    };
    const N: usize = 200_000;
    let table = format!("nfstitch_bench_{}", std::process::id());
    query(&url, &format!("DROP TABLE IF EXISTS {table}"));
    let flows: Vec<Flow> = (0..10_000).map(flow).collect();
    let spool = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("clickhouse");
    // One iteration takes about a second: the same few iterations per sample.
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("insert_200k_flows", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let cfg = ClickHouseConfig {
                    url: ClickHouseUrl::new(url.clone()),
                    password: None,
                    table: table.clone(),
                    batch_rows: 50_000,
                    batch_interval: Duration::from_secs(1),
                    max_buffered_rows: 1_000_000,
                    spool_dir: spool.path().join("spool"),
                    spool_max_bytes: nfstitch::cli::DEFAULT_SPOOL_MAX_BYTES,
                    ca: None,
                    ttl: None,
                    rollups: false,
                    cluster: None,
                };
                let t = Instant::now();
                let mut sink = ClickHouseSink::new(cfg).unwrap();
                for _ in 0..N / flows.len() {
                    sink.flows(&flows).unwrap();
                }
                sink.close().unwrap();
                total += t.elapsed();
                let inserted = sink.counters().iter().find(|c| c.0 == "rows_inserted").unwrap().1;
                assert_eq!(inserted, N as u64, "not every flow was inserted: {sink:?}");
            }
            total
        })
    });
    g.finish();
    query(&url, &format!("DROP TABLE IF EXISTS {table}"));
}

criterion_group!(benches, encode, insert);
criterion_main!(benches);
