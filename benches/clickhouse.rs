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
//! - `clickhouse/sink_cpu` (not a criterion loop: one table printed): the
//!   sink as `collect` runs it, 400k flows in batches of 50k, after one
//!   warm-up batch (so the table's schema is known), for each of: the legacy
//!   schema into the real server (18.16), and both schemas into a stand-in
//!   server on loopback that answers the version of an 18.16 or a 26.x
//!   server and takes every insert (a ClickHouse 20.3+ server was not
//!   available: this measures the sink's side, encoding and sending, not
//!   the server's insert). Per run: rows per second (the first flow handed
//!   to the last insert answered), and the CPU time of the writer thread
//!   (the caller of `flows`, encoding) and of the sender thread (`clickhouse`:
//!   probe, rewriting for the table, HTTP) per million rows, from the
//!   threads' `schedstat` (`nfstitch::platform::thread_cpu_ns`). Three runs
//!   each, side by side, the median printed with the spread.
//!
//! `cargo bench --bench clickhouse` measures; `cargo test --benches` runs each once.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
                    .args([insert_sql("flows", schema), iters.to_string()])
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

/// A stand-in ClickHouse on loopback: answers a query with `version()` with
/// `version` (and no table), every other request 200, after reading it whole.
struct StandIn {
    url: String,
    stop: Arc<AtomicBool>,
    port: u16,
    h: Option<std::thread::JoinHandle<()>>,
}

impl StandIn {
    fn start(version: &'static str) -> StandIn {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let h = std::thread::spawn(move || {
            let mut body = vec![0u8; 1 << 20];
            for conn in l.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut b).unwrap_or(0) == 0 {
                        break;
                    }
                    head.push(b[0]);
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                let mut left: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while left > 0 {
                    let n = s.read(&mut body[..left.min(1 << 20)]).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    left -= n;
                }
                let answer = if head.contains("version%28%29") || head.contains("version()") {
                    format!("{version}\t\n")
                } else {
                    String::new()
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        StandIn { url: format!("http://127.0.0.1:{port}/"), stop, port, h: Some(h) }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.h.take() {
            let _ = h.join();
        }
    }
}

/// One run of the sink: rows per second, and the writer's and the sender's
/// CPU in ms per million rows.
fn sink_run(url: &str, table: &str, flows: &[Flow], n: usize) -> (f64, f64, f64) {
    use nfstitch::platform::{current_thread_cpu_ns, thread_cpu_ns};
    let spool = tempfile::tempdir().unwrap();
    let cfg = ClickHouseConfig {
        url: ClickHouseUrl::new(url),
        password: None,
        table: table.to_string(),
        batch_rows: BATCH,
        batch_interval: Duration::from_secs(1),
        max_buffered_rows: 1_000_000,
        spool_dir: spool.path().join("spool"),
        spool_max_bytes: nfstitch::cli::DEFAULT_SPOOL_MAX_BYTES,
        ca: None,
        ttl: None,
        rollups: false,
        cluster: None,
    };
    let mut sink = ClickHouseSink::new(cfg).unwrap();
    let inserted =
        |s: &ClickHouseSink| s.counters().iter().find(|c| c.0 == "rows_inserted").unwrap().1;
    let wait = |s: &ClickHouseSink, want: u64| {
        let t = Instant::now();
        while inserted(s) < want {
            assert!(t.elapsed() < Duration::from_secs(120), "not inserted: {s:?}");
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    // Warm-up: one flow, sealed by time, so the sender knows the table.
    sink.flows(&flows[..1]).unwrap();
    sink.tick(Instant::now() + Duration::from_secs(2)).unwrap();
    wait(&sink, 1);
    let (w0, s0) = (current_thread_cpu_ns().unwrap(), thread_cpu_ns("clickhouse").unwrap());
    let t = Instant::now();
    for _ in 0..n / flows.len() {
        sink.flows(flows).unwrap();
    }
    let w1 = current_thread_cpu_ns().unwrap();
    wait(&sink, 1 + n as u64);
    let secs = t.elapsed().as_secs_f64();
    let s1 = thread_cpu_ns("clickhouse").unwrap();
    sink.close().unwrap();
    let per_m = |ns: u64| ns as f64 / 1e6 / (n as f64 / 1e6);
    (n as f64 / secs, per_m(w1 - w0), per_m(s1 - s0))
}

/// Batch size of the sink runs (the `--clickhouse-batch` default).
const BATCH: usize = 50_000;

fn sink_cpu(_: &mut Criterion) {
    // Criterion's name filter (the first argument that is not a flag).
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !"clickhouse/sink_cpu".contains(f.as_str())) {
        return;
    }
    const N: usize = 8 * BATCH;
    // `cargo test --benches` (no --bench): one round.
    let runs = if std::env::args().any(|a| a == "--bench") { 3 } else { 1 };
    let flows: Vec<Flow> = (0..10_000).map(flow).collect();
    let legacy_fake = StandIn::start("18.16.1");
    let native_fake = StandIn::start("26.9.2.1");
    let table = format!("nfstitch_bench_cpu_{}", std::process::id());
    let real = server();
    if let Err(why) = &real {
        skip::skip(&format!("clickhouse/sink_cpu into 18.16: {why}"));
    }
    let mut cases: Vec<(&str, String)> = Vec::new();
    if let Ok(u) = &real {
        cases.push(("legacy schema -> ClickHouse 18.16.1 (HTTP, loopback)", u.clone()));
    }
    cases.push(("legacy schema -> stand-in (sink side only)", legacy_fake.url.clone()));
    cases.push(("native schema -> stand-in (sink side only)", native_fake.url.clone()));
    eprintln!(
        "clickhouse/sink_cpu: {N} flows, batches of {BATCH}, {runs} run(s) each, median [min, max]"
    );
    let mut results: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); cases.len()];
    // Side by side: one run of every case, then the next round.
    for _ in 0..runs {
        for (i, (_, url)) in cases.iter().enumerate() {
            if real.as_deref() == Ok(url.as_str()) {
                query(url, &format!("DROP TABLE IF EXISTS {table}"));
            }
            results[i].push(sink_run(url, &table, &flows, N));
        }
    }
    if let Ok(u) = &real {
        query(u, &format!("DROP TABLE IF EXISTS {table}"));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    for ((name, _), r) in cases.iter().zip(results) {
        let (mut a, mut b, mut c): (Vec<f64>, Vec<f64>, Vec<f64>) = (
            r.iter().map(|x| x.0).collect(),
            r.iter().map(|x| x.1).collect(),
            r.iter().map(|x| x.2).collect(),
        );
        let (rate, rl, rh) = med(&mut a);
        let (w, wl, wh) = med(&mut b);
        let (sn, sl, sh) = med(&mut c);
        eprintln!(
            "clickhouse/sink_cpu: {name}: {:.0} rows/s [{:.0}, {:.0}]; writer {w:.0} ms CPU per 1M rows \
             [{wl:.0}, {wh:.0}]; sender {sn:.0} ms [{sl:.0}, {sh:.0}]",
            rate, rl, rh
        );
    }
}

criterion_group!(benches, encode, insert, chdb_load, sink_cpu);
criterion_main!(benches);
