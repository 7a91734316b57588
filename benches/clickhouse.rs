//! The ClickHouse sink, in flows per second:
//! - `clickhouse/encode_rowbinary`: the writer thread's cost per flow, one
//!   flow encoded as a RowBinary row (10k flows per iteration);
//! - `clickhouse/insert_200k_flows`: end to end against a real server, a fresh
//!   sink taking 200k flows (4 batches of the default 50k) and `close`
//!   returning once the server has answered every insert (no spool). This is
//!   the server's insert rate more than the sink's: the sender sends one
//!   batch at a time, one connection per batch.
//!
//! - `clickhouse/chdb_load_{legacy,native}`: the two schemas side by side on
//!   one modern engine, chDB (ClickHouse 26.x in-process, `.ci/chdb.sh`):
//!   200k flows encoded by the sink in each schema, loaded with the sink's
//!   `INSERT ... FORMAT RowBinary` (`FROM INFILE`) into a fresh table made by
//!   the sink's `CREATE TABLE`; only the insert is timed (Python's start and
//!   the CREATE are not). It also prints the bytes per row on disk after a
//!   merge. The Python is `$NFSTITCH_CHDB_PYTHON` or
//!   `/opt/nfstitch-chdb/bin/python`; without it, a skip like the server's.
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
    create_table_sql, encode_row, insert_sql, ClickHouseConfig, ClickHouseSink, ClickHouseUrl,
    Schema,
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
        exporter_end_reason: 0,
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

/// Loads `argv[2]` (RowBinary) `argv[4]` times into a fresh table made by
/// `argv[1]` with the INSERT `argv[3]`; prints the seconds the inserts took
/// and the bytes per row on disk after merging the last load.
const CHDB_LOAD: &str = r#"
import sys, time
from chdb import session
ddl, data, insert, iters = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = session.Session()
total = 0.0
for _ in range(iters):
    s.query("DROP TABLE IF EXISTS flows")
    s.query(ddl)
    t = time.perf_counter()
    s.query(insert.replace(" FORMAT RowBinary", f" FROM INFILE '{data}' FORMAT RowBinary"))
    total += time.perf_counter() - t
s.query("OPTIMIZE TABLE flows FINAL")
size = float(str(s.query("SELECT sum(data_compressed_bytes) / sum(rows) FROM system.parts WHERE table = 'flows' AND active FORMAT TSV")))
print(f"{total} {size}")
"#;

fn chdb_load(c: &mut Criterion) {
    let py = std::env::var_os("NFSTITCH_CHDB_PYTHON")
        .unwrap_or_else(|| "/opt/nfstitch-chdb/bin/python".into());
    let has_chdb = std::process::Command::new(&py)
        .args(["-c", "import chdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_chdb {
        return skip::skip("clickhouse/chdb_load: no chDB (run .ci/chdb.sh)");
    }
    const N: u32 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("clickhouse");
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(u64::from(N)));
    for (name, schema) in
        [("chdb_load_legacy", Schema::Legacy), ("chdb_load_native", Schema::Native)]
    {
        let data = dir.path().join(format!("{name}.rowbinary"));
        let mut rows = Vec::with_capacity(N as usize * schema.row_size());
        (0..N).for_each(|i| encode_row(schema, &flow(i), &mut rows));
        std::fs::write(&data, rows).unwrap();
        let ddl = create_table_sql("flows", schema, None);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let out = std::process::Command::new(&py)
                    .args(["-c", CHDB_LOAD, &ddl])
                    .arg(&data)
                    .args([insert_sql("flows"), iters.to_string()])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
                let (secs, per_row) = text.trim().split_once(' ').unwrap();
                eprintln!("{name}: {per_row} bytes per row on disk");
                Duration::from_secs_f64(secs.parse().unwrap())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode, insert, chdb_load);
criterion_main!(benches);
