//! The ClickHouse sink against a real ClickHouse server: restarted in the
//! middle of the run, every flow emitted is in the table exactly once; over
//! HTTPS with the server's certificate as `--clickhouse-ca`, likewise; with
//! a CA that did not sign the server's certificate, nothing is inserted and
//! the failure shows (message, counters, spool); with a wrong password, a
//! permanent error that keeps every flow in the spool, and the next run with
//! the right password delivers them all. Flows as v9/IPFIX make them (IPv6
//! addresses, 32-bit ifIndex and AS, the exporter's flowEndReason; no input
//! makes them yet, so they go straight into the sink) read back exactly from
//! the legacy schema, its rollups, a cluster and the `dist/` queries; a
//! table made by a release before them gets the new columns and keeps
//! working, what its narrow columns cannot hold counted.
//!
//! The server is the one `.ci/clickhouse.sh start` runs: HTTP on
//! 127.0.0.1:8123 (or `$NFSTITCH_CLICKHOUSE_URL`), HTTPS on 127.0.0.1:8443
//! (or `$NFSTITCH_CLICKHOUSE_HTTPS_URL`) with the self-signed certificate
//! `$CLICKHOUSE_DIR/server.crt` (or `$NFSTITCH_CLICKHOUSE_CA`); the restart
//! test stops and starts it with the same script, so the tests take turns.
//! Skips (with "SKIP: ...") when clickhouse-server is not installed or nothing
//! answers on the URL; under `$NFSTITCH_REQUIRE_ALL` (`.ci/run`) a skip is a failure.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nfstitch::flow::{exporter_end_reason_name, EndReason, Flow, FlowRecord, KeySpec};
use nfstitch::sink::clickhouse::{ClickHouseConfig, ClickHouseSink, ClickHouseUrl};
use nfstitch::sink::FlowSink;
use serde_json::Value;

use crate::collect::{send, start, traffic};
use crate::skip::skip;

fn url() -> String {
    let mut u = std::env::var("NFSTITCH_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8123/".to_string());
    if !u.ends_with('/') && !u.contains('?') {
        u.push('/');
    }
    u
}

fn https_url() -> String {
    let mut u = std::env::var("NFSTITCH_CLICKHOUSE_HTTPS_URL")
        .unwrap_or_else(|_| "https://127.0.0.1:8443/".to_string());
    if !u.ends_with('/') && !u.contains('?') {
        u.push('/');
    }
    u
}

/// The certificate `.ci/clickhouse.sh start` made for the server.
fn ca_file() -> PathBuf {
    std::env::var_os("NFSTITCH_CLICKHOUSE_CA").map(PathBuf::from).unwrap_or_else(|| {
        let dir =
            std::env::var_os("CLICKHOUSE_DIR").unwrap_or_else(|| "/tmp/nfstitch-clickhouse".into());
        PathBuf::from(dir).join("server.crt")
    })
}

/// The server is shared and one test restarts it: one test at a time.
fn take_turns() -> MutexGuard<'static, ()> {
    static SERVER: Mutex<()> = Mutex::new(());
    SERVER.lock().unwrap_or_else(|e| e.into_inner())
}

/// The tools and the server answering on `url`, or why not.
fn ready(url: &str) -> Result<(), String> {
    if !on_path("clickhouse-server") {
        return Err("clickhouse-server not installed (run .ci/clickhouse.sh install)".into());
    }
    if !on_path("curl") {
        return Err("curl not installed".into());
    }
    if !up(url) {
        return Err(format!("no ClickHouse answers on {url} (run .ci/clickhouse.sh start)"));
    }
    Ok(())
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/clickhouse.sh")
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
        || PathBuf::from("/usr/sbin").join(cmd).is_file()
}

/// curl, bounded, trusting the server's certificate for https.
fn curl(url: &str, max_time: &str) -> Command {
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", max_time]);
    if url.starts_with("https://") {
        c.arg("--cacert").arg(ca_file());
    }
    c
}

/// Run one query over HTTP(S) (curl, bounded): Ok(body) on HTTP 200.
fn ch(url: &str, sql: &str) -> Result<String, String> {
    let out = curl(url, "20")
        .args(["-w", "\n%{http_code}", "--data-binary", sql, url])
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    if out.status.success() && code == "200" {
        Ok(body.to_string())
    } else {
        Err(format!("HTTP {code}: {body}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn up(url: &str) -> bool {
    curl(url, "2")
        .arg(format!("{url}ping"))
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "Ok.")
}

fn script_cmd(arg: &str) {
    let st = Command::new("timeout")
        .args(["120", "bash"])
        .arg(script())
        .arg(arg)
        .status()
        .expect("run .ci/clickhouse.sh");
    assert!(st.success(), ".ci/clickhouse.sh {arg} failed: {st}");
}

/// Starts the server again if the test stopped it and then failed.
struct Restart {
    stopped: bool,
}

impl Drop for Restart {
    fn drop(&mut self) {
        if self.stopped {
            let _ =
                Command::new("timeout").args(["120", "bash"]).arg(script()).arg("start").status();
        }
    }
}

fn count(url: &str, table: &str) -> u64 {
    ch(url, &format!("SELECT count() FROM {table}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A flow's identity and sums as text (ClickHouse and JSON alike).
pub fn ident(f: &Value) -> String {
    [
        "exporter",
        "src_addr",
        "src_port",
        "dst_addr",
        "dst_port",
        "proto",
        "records",
        "packets",
        "octets",
        "tcp_flags",
        "end_reason",
    ]
    .iter()
    .map(|k| match &f[*k] {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    })
    .collect::<Vec<_>>()
    .join(" ")
}

/// A table name no other run uses.
fn fresh_table() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("t_{}_{nanos}", std::process::id())
}

#[test]
fn clickhouse_gets_every_flow_across_a_server_restart() {
    let _turn = take_turns();
    let url = url();
    if let Err(why) = ready(&url) {
        return skip(&why);
    }
    let table = fresh_table();
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().join("spool");
    let c = start(&[
        "--workers",
        "2",
        "--rcvbuf",
        "8000000",
        "--linger",
        "0s",
        "--clickhouse",
        &url,
        "--clickhouse-table",
        &table,
        "--clickhouse-interval",
        "200ms",
        "--clickhouse-batch",
        "500",
        "--clickhouse-buffer",
        "1000",
        "--spool-dir",
        spool_dir.to_str().unwrap(),
    ]);
    let mut restart = Restart { stopped: false };

    // 1. Server up: FIN flows (linger 0) reach the table while the collector runs.
    let mut sent = send(&traffic(2, 200, 3000), c.addr);
    wait_until("the first rows in ClickHouse", Duration::from_secs(30), || count(&url, &table) > 0);

    // 2. Server down: flows pile up in memory (1000), then in the spool.
    let mut can_restart = script().is_file();
    if can_restart {
        script_cmd("stop");
        restart.stopped = true;
        can_restart = !up(&url);
    }
    if !can_restart {
        eprintln!("NOTE: {url} is not the server .ci/clickhouse.sh runs; no restart in this run");
    }
    sent += send(&traffic(3, 300, 5000), c.addr);
    if can_restart {
        // Let the collector emit and fail to insert (first try, then backoff).
        std::thread::sleep(Duration::from_millis(1500));
    }
    let before_restart = Instant::now();
    if restart.stopped {
        script_cmd("start");
        restart.stopped = false;
    }
    assert!(up(&url));

    // 3. Server back: the sink delivers what it kept while the collector still runs.
    let mut saw_recovery = !can_restart;
    let t = Instant::now();
    while !saw_recovery && t.elapsed() < Duration::from_secs(40) {
        if let Ok(line) = c.stderr.recv_timeout(Duration::from_millis(200)) {
            eprintln!("collector: {line}");
            saw_recovery |= line.contains("clickhouse: inserting again");
        }
    }
    assert!(saw_recovery, "the sink did not deliver again after the server came back");
    let recovered_after = before_restart.elapsed();
    sent += send(&traffic(2, 100, 2000), c.addr);
    std::thread::sleep(Duration::from_millis(500));

    // 4. SIGTERM: the shutdown flush goes to ClickHouse too.
    let (flows, st, stderr) = c.stop();
    eprintln!("collector stderr:\n{stderr}");
    let ch_stats = &st["sinks"]["clickhouse"];
    eprintln!("sent {sent} datagrams; stats.sinks.clickhouse = {ch_stats}");
    eprintln!("delivering again {recovered_after:?} after the restart began");
    let total = st["flows_total"].as_u64().unwrap();
    assert_eq!(flows.len() as u64, total);
    assert_eq!(st["datagrams"].as_u64().unwrap() + st["kernel_drops"].as_u64().unwrap(), sent);
    let n = |k: &str| ch_stats[k].as_u64().unwrap_or_else(|| panic!("no counter {k}: {ch_stats}"));
    assert_eq!(n("rows_inserted"), total, "rows_inserted == flows_total");
    assert_eq!(n("rows_buffered"), 0);
    assert_eq!(n("rows_pending_spool"), 0);
    assert_eq!(n("rows_dropped"), 0);
    if can_restart {
        assert!(n("insert_errors") >= 1, "the server was down: {ch_stats}");
        assert!(n("rows_spooled") > 0, "more than --clickhouse-buffer flows while down");
    }

    assert_table_holds(&url, &table, &flows, &st);
    let _ = ch(&url, &format!("DROP TABLE IF EXISTS {table}"));
}

/// The exporters of [`mixed_flows`] (no collector of these tests has them).
pub const MIXED_EXPORTERS: [&str; 2] = ["2001:db8:ff::1", "192.0.2.77"];

/// `n` flows as v9/IPFIX records make them: two in three IPv6 (with
/// ifIndex and AS over 16 bits), one in three IPv4 (values that fit 16
/// bits), every flowEndReason (0 to 5, and 200: `reserved`); times in the
/// last minutes.
pub fn mixed_flows(n: u32) -> Vec<Flow> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let t0 = now - 120_000_000_000;
    let a6 = |x: u16, y: u32| {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, x, 0, 0, 0, (y >> 16) as u16, y as u16))
    };
    let a4 = |y: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + y));
    (0..n)
        .map(|i| {
            let v6 = i % 3 != 0;
            let t = t0 + u64::from(i) * 1_000_000_007;
            let rec = FlowRecord {
                exporter: MIXED_EXPORTERS[usize::from(!v6)].parse().unwrap(),
                engine_type: 0,
                engine_id: 0,
                sampling: 0,
                src_addr: if v6 { a6(1, i) } else { a4(i) },
                dst_addr: if v6 { a6(2, i * 7) } else { a4(1000 + i) },
                nexthop: if v6 { a6(3, 1) } else { a4(254) },
                input: if v6 { 70_000 + i } else { i },
                output: if v6 { 1 << 31 } else { 2 },
                packets: 1,
                octets: 100,
                first_ns: t,
                last_ns: t + 5_000_000,
                src_port: 40_000 + i as u16,
                dst_port: 443,
                tcp_flags: 0x18,
                proto: if i % 2 == 0 { 6 } else { 17 },
                tos: 0,
                src_as: if v6 { 4_200_000_000 } else { 65001 },
                dst_as: if v6 { 65_536 + i } else { 65002 },
                src_mask: 48,
                dst_mask: 64,
                end_reason: 0,
            };
            Flow {
                key: KeySpec::default().key_of(&rec),
                rec,
                records: 1 + u64::from(i % 4),
                packets: 10 + u64::from(i),
                octets: 1000 * u64::from(i + 1),
                tcp_flags: 0x1b,
                first_ns: t,
                last_ns: t + 9_000_000,
                start_ns: t + 1_000,
                seen_ns: t + 10_000_000,
                end_ns: t + 11_000_000,
                end_reason: EndReason::ALL[i as usize % 4],
                exporter_end_reason: [0, 1, 2, 3, 4, 5, 200][i as usize % 7],
            }
        })
        .collect()
}

/// An address as ClickHouse prints it with the IPv4-mapped prefix cut.
fn addr_text(a: IpAddr) -> String {
    a.to_string()
}

/// A flow of [`mixed_flows`] as [`mixed_sql`] reads it back: addresses,
/// ports, protocol, ifIndex, AS (each clamped to `max` when the column is
/// narrower), reasons, counters and times in ns; with `legacy`, the
/// `UInt32` address columns too (IPv4, or 0.0.0.0 for IPv6).
pub fn mixed_text(f: &Flow, max: u32, legacy: bool) -> String {
    let r = &f.rec;
    let mut v = vec![
        addr_text(r.exporter),
        addr_text(r.src_addr),
        addr_text(r.dst_addr),
        addr_text(r.nexthop),
    ];
    v.extend([r.src_port, r.dst_port].map(|x| x.to_string()));
    v.push(r.proto.to_string());
    v.extend([r.input, r.output, r.src_as, r.dst_as].map(|x| x.min(max).to_string()));
    v.push(exporter_end_reason_name(f.exporter_end_reason).to_string());
    v.push(f.end_reason.as_str().to_string());
    v.extend([f.records, f.packets, f.octets].map(|x| x.to_string()));
    v.extend([f.first_ns, f.last_ns, f.start_ns, f.end_ns].map(|x| x.to_string()));
    if legacy {
        let v4 = |a: IpAddr| match a {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(_) => "0.0.0.0".to_string(),
        };
        v.extend([v4(r.src_addr), v4(r.dst_addr), v4(r.nexthop)]);
    }
    v.join(" ")
}

/// The `SELECT` list that reads a row as [`mixed_text`] writes it (TSV:
/// tabs become spaces), in the legacy schema (ClickHouse 18.16) or the
/// native one.
pub fn mixed_sql(legacy: bool) -> String {
    let ip = |c: &str| {
        if legacy {
            format!("replaceOne(IPv6NumToString({c}), '::ffff:', '')")
        } else {
            format!("replaceOne(toString({c}), '::ffff:', '')")
        }
    };
    let ns = |c: &str| if legacy { c.to_string() } else { format!("toUnixTimestamp64Nano({c})") };
    let (s, d, n) = if legacy {
        ("src_addr6", "dst_addr6", "nexthop6")
    } else {
        ("src_addr", "dst_addr", "nexthop")
    };
    let mut cols = vec![ip("exporter"), ip(s), ip(d), ip(n)];
    cols.extend(
        "src_port dst_port proto input output src_as dst_as exporter_end_reason end_reason \
         records packets octets"
            .split_whitespace()
            .map(str::to_string),
    );
    cols.extend(["first", "last", "start", "end"].map(ns));
    if legacy {
        cols.extend(["src_addr", "dst_addr", "nexthop"].map(|c| format!("IPv4NumToString({c})")));
    }
    cols.join(", ")
}

/// `WHERE` (or, `negate`d, `WHERE NOT`) a row is one of [`mixed_flows`]
/// (legacy schema).
pub fn mixed_where(negate: bool) -> String {
    let e: Vec<String> = MIXED_EXPORTERS
        .iter()
        .map(|e| {
            let e = if e.contains(':') { e.to_string() } else { format!("::ffff:{e}") };
            format!("IPv6StringToNum('{e}')")
        })
        .collect();
    format!("WHERE exporter {}IN ({})", if negate { "NOT " } else { "" }, e.join(", "))
}

/// A sink of this library (what `collect` runs) on `url`'s `table`.
pub fn lib_sink(url: &str, table: &str, spool: &Path, cluster: Option<&str>) -> ClickHouseSink {
    ClickHouseSink::new(ClickHouseConfig {
        url: ClickHouseUrl::new(url),
        password: None,
        table: table.to_string(),
        batch_rows: 25,
        batch_interval: Duration::from_millis(200),
        max_buffered_rows: 1000,
        spool_dir: spool.to_path_buf(),
        spool_max_bytes: 1 << 30,
        ca: None,
        ttl: None,
        rollups: true,
        cluster: cluster.map(str::to_string),
    })
    .unwrap()
}

/// A sink counter.
pub fn sink_counter(s: &ClickHouseSink, name: &str) -> u64 {
    s.counters().into_iter().find(|c| c.0 == name).unwrap_or_else(|| panic!("no {name}")).1
}

/// The rows of [`mixed_flows`] in `table` read back exactly as `flows`
/// (values clamped to `max`).
fn assert_mixed_rows(url: &str, table: &str, flows: &[Flow], max: u32) {
    let sql = format!("SELECT {} FROM {table} {} FORMAT TSV", mixed_sql(true), mixed_where(false));
    let got = sorted_rows(url, &sql);
    let got: Vec<String> = got.iter().map(|l| l.replace('\t', " ")).collect();
    let mut want: Vec<String> = flows.iter().map(|f| mixed_text(f, max, true)).collect();
    want.sort();
    assert_eq!(got.len(), want.len(), "rows of the mixed flows in {table}");
    let differ = got.iter().zip(&want).position(|(a, b)| a != b);
    assert!(differ.is_none(), "row differs: {:?}", differ.map(|i| (&got[i], &want[i])));
}

/// The table holds exactly the flows of the JSON output: count, sums, flows
/// per end reason, and each flow once (rows of [`mixed_flows`] left out).
fn assert_table_holds(url: &str, table: &str, flows: &[Value], st: &Value) {
    let total = st["flows_total"].as_u64().unwrap();
    let only = mixed_where(true);
    let row = ch(
        url,
        &format!(
            "SELECT count(), sum(records), sum(packets), sum(octets) FROM {table} {only} FORMAT TSV"
        ),
    )
    .unwrap();
    let got: Vec<u64> = row.split_whitespace().map(|x| x.parse().unwrap()).collect();
    eprintln!("ClickHouse: count, sum(records), sum(packets), sum(octets) = {got:?}");
    assert_eq!(
        got,
        [
            total,
            st["records"].as_u64().unwrap(),
            st["packets"].as_u64().unwrap(),
            st["octets"].as_u64().unwrap()
        ]
    );
    let by_reason = ch(
        url,
        &format!("SELECT end_reason, count() FROM {table} {only} GROUP BY end_reason FORMAT TSV"),
    )
    .unwrap();
    let by_reason: BTreeMap<String, u64> = by_reason
        .lines()
        .map(|l| {
            let (r, n) = l.split_once('\t').unwrap();
            (r.to_string(), n.parse().unwrap())
        })
        .collect();
    for (r, v) in st["flows"].as_object().unwrap() {
        assert_eq!(by_reason.get(r).copied().unwrap_or(0), v.as_u64().unwrap(), "{r} flows");
    }
    let rows = ch(
        url,
        &format!(
            "SELECT replaceOne(IPv6NumToString(exporter), '::ffff:', ''), IPv4NumToString(src_addr), \
             src_port, IPv4NumToString(dst_addr), dst_port, proto, records, packets, octets, \
             tcp_flags, end_reason FROM {table} {only} FORMAT TSV"
        ),
    )
    .unwrap();
    let mut from_ch: Vec<String> = rows.lines().map(|l| l.replace('\t', " ")).collect();
    let mut from_json: Vec<String> = flows.iter().map(ident).collect();
    from_ch.sort();
    from_json.sort();
    assert_eq!(from_ch.len(), from_json.len());
    assert!(from_ch == from_json, "the table's flows differ from the JSON output's");
}

/// A collector inserting over https with `ca` (None: the built-in roots).
fn https_collector(
    url: &str,
    table: &str,
    ca: Option<&std::path::Path>,
    spool: &std::path::Path,
) -> crate::collect::Collector {
    let mut args = vec!["--clickhouse-batch", "500"];
    if let Some(ca) = ca {
        args.extend(["--clickhouse-ca", ca.to_str().unwrap()]);
    }
    ch_collector(url, table, spool, &args)
}

/// A collector (2 workers, FIN flows out at once) inserting into `table`,
/// batches sealed every 200 ms, spooling to `spool`; `extra` flags added.
pub fn ch_collector(
    url: &str,
    table: &str,
    spool: &std::path::Path,
    extra: &[&str],
) -> crate::collect::Collector {
    let mut args = vec![
        "--workers",
        "2",
        "--linger",
        "0s",
        "--clickhouse",
        url,
        "--clickhouse-table",
        table,
        "--clickhouse-interval",
        "200ms",
        "--spool-dir",
        spool.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    start(&args)
}

#[test]
fn clickhouse_over_https_with_the_servers_ca_gets_every_flow() {
    let _turn = take_turns();
    let url = https_url();
    let ca = ca_file();
    if !ca.is_file() {
        return skip(&format!(
            "no server certificate at {} (run .ci/clickhouse.sh start)",
            ca.display()
        ));
    }
    if let Err(why) = ready(&url) {
        return skip(&why);
    }
    let table = fresh_table();
    let spool = tempfile::tempdir().unwrap();
    let c = https_collector(&url, &table, Some(&ca), &spool.path().join("spool"));
    let sent = send(&traffic(2, 200, 3000), c.addr);
    wait_until("the first rows over https", Duration::from_secs(30), || count(&url, &table) > 0);
    let (flows, st, stderr) = c.stop();
    let ch_stats = &st["sinks"]["clickhouse"];
    eprintln!("sent {sent} datagrams; stats.sinks.clickhouse = {ch_stats}");
    assert!(!stderr.contains("clickhouse: insert of"), "an insert failed:\n{stderr}");
    let total = st["flows_total"].as_u64().unwrap();
    assert!(total > 0);
    let n = |k: &str| ch_stats[k].as_u64().unwrap_or_else(|| panic!("no counter {k}: {ch_stats}"));
    assert_eq!(n("rows_inserted"), total, "rows_inserted == flows_total");
    assert_eq!(n("insert_errors"), 0);
    assert_eq!(n("rows_pending_spool"), 0);
    assert_eq!(n("rows_dropped"), 0);
    assert_table_holds(&url, &table, &flows, &st);
    let _ = ch(&url, &format!("DROP TABLE IF EXISTS {table}"));
}

#[test]
fn clickhouse_over_https_refuses_a_server_its_ca_did_not_sign() {
    let _turn = take_turns();
    let url = https_url();
    if let Err(why) = ready(&url) {
        return skip(&why);
    }
    // No --clickhouse-ca: the built-in (Mozilla) roots, which do not know the
    // self-signed certificate; and a real CA file that did not sign it.
    let bundle = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    let mut cases: Vec<Option<&std::path::Path>> = vec![None];
    if bundle.is_file() {
        cases.push(Some(bundle));
    } else {
        skip(&format!("no {}: the wrong-CA case does not run", bundle.display()));
    }
    // Each run ends with close's 10 s of retries: run the cases side by side.
    std::thread::scope(|s| {
        for ca in cases {
            let url = &url;
            s.spawn(move || {
                let table = fresh_table() + if ca.is_some() { "_bundle" } else { "_roots" };
                let spool = tempfile::tempdir().unwrap();
                let spool_dir = spool.path().join("spool");
                let c = https_collector(url, &table, ca, &spool_dir);
                send(&traffic(1, 50, 500), c.addr);
                let (flows, st, stderr) = c.stop();
                let what = format!("--clickhouse-ca {ca:?}");
                let ch_stats = &st["sinks"]["clickhouse"];
                eprintln!("{what}: stats.sinks.clickhouse = {ch_stats}");
                let total = st["flows_total"].as_u64().unwrap();
                assert!(total > 0 && flows.len() as u64 == total);
                // Visible: the failure is logged with its cause ...
                let line = stderr
                    .lines()
                    .find(|l| l.contains("clickhouse: insert of") && l.contains("failed"))
                    .unwrap_or_else(|| panic!("{what}: no insert failure logged:\n{stderr}"));
                eprintln!("{what}: {line}");
                assert!(
                    line.contains("certificate") || line.contains("UnknownIssuer"),
                    "{what}: {line}"
                );
                // ... counted, and nothing is lost: every flow waits in the spool.
                let n = |k: &str| ch_stats[k].as_u64().unwrap();
                assert!(n("insert_errors") >= 1, "{what}: {ch_stats}");
                assert_eq!(n("rows_inserted"), 0, "{what}");
                assert_eq!(n("rows_pending_spool"), total, "{what}");
                assert_eq!(n("rows_dropped"), 0, "{what}");
                assert!(
                    stderr.contains(&format!("clickhouse: {total} flows not delivered; kept in")),
                    "{what}:\n{stderr}"
                );
                assert!(spool_dir.read_dir().unwrap().count() > 0);
                // The server never saw the table: not even CREATE got through.
                let exists =
                    ch(url, &format!("EXISTS TABLE {table}")).map(|s| s.trim().to_string());
                assert_eq!(exists.as_deref(), Ok("0"), "{what}");
            });
        }
    });
}

#[test]
fn clickhouse_ca_comes_from_flags_and_config_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("nfstitch.toml");
    let toml = "clickhouse = \"https://ch:8443/\"\nclickhouse_ca = \"/etc/ch-ca.pem\"\n\
                clickhouse_ttl = \"30d\"\nclickhouse_rollups = true\nclickhouse_cluster = \"c1\"\n";
    std::fs::write(&cfg, toml).unwrap();
    let r = crate::util::run_ok(
        crate::util::nfstitch().args(["collect", "--dry-run", "--config"]).arg(&cfg),
    );
    assert!(
        r.stdout.contains("ca: Some(\n") && r.stdout.contains("\"/etc/ch-ca.pem\""),
        "{}",
        r.stdout
    );
    for part in [
        "ttl: Some(\n                2592000s,",
        "rollups: true,",
        "cluster: Some(\n                \"c1\",",
    ] {
        assert!(r.stdout.contains(part), "{part} not in\n{}", r.stdout);
    }
    let r = crate::util::run(crate::util::nfstitch().args([
        "collect",
        "--dry-run",
        "--clickhouse",
        "http://ch:8123/",
        "--clickhouse-ca",
        "/etc/ch-ca.pem",
    ]));
    assert!(!r.status.success(), "{}", r.stdout);
    assert!(r.stderr.contains("--clickhouse-ca is for https:// URLs"), "{}", r.stderr);
}

#[test]
fn clickhouse_wrong_password_is_permanent_and_the_right_one_delivers_everything() {
    let _turn = take_turns();
    let url = url();
    if let Err(why) = ready(&url) {
        return skip(&why);
    }
    if url.contains('@') || url.contains("password=") {
        return skip("NFSTITCH_CLICKHOUSE_URL carries credentials; this test brings its own");
    }
    let table = fresh_table();
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "wrong-password\n").unwrap();
    let run = |extra: &[&str]| ch_collector(&url, &table, &spool_dir, extra);
    // The server's default user has no password: any password is wrong (HTTP 401, Code 193).
    let c = run(&["--clickhouse-password-file", pw.to_str().unwrap()]);
    send(&traffic(1, 50, 500), c.addr);
    let t = Instant::now();
    let (flows, first, stderr) = c.stop();
    assert!(t.elapsed() < Duration::from_secs(8), "a permanent error must not hold shutdown");
    let ch_stats = &first["sinks"]["clickhouse"];
    let n = |k: &str| ch_stats[k].as_u64().unwrap();
    let total = first["flows_total"].as_u64().unwrap();
    assert!(total > 0 && flows.len() as u64 == total);
    let line = stderr
        .lines()
        .find(|l| l.contains("clickhouse: PERMANENT ERROR"))
        .unwrap_or_else(|| panic!("no permanent error logged:\n{stderr}"));
    assert!(line.contains("HTTP 401") && line.contains("Wrong password"), "{line}");
    assert!(!stderr.contains("wrong-password"), "{stderr}");
    assert!(n("permanent_errors") >= 1 && n("permanent_error") == 1, "{ch_stats}");
    assert_eq!((n("rows_inserted"), n("rows_pending_spool"), n("dropped_flows")), (0, total, 0));
    assert_eq!(count(&url, &table), 0);

    // The password fixed (the default user's is empty): the spool is delivered first.
    let c = run(&[]);
    let (_, st, stderr) = c.stop();
    let ch_stats = &st["sinks"]["clickhouse"];
    assert_eq!(ch_stats["rows_inserted"].as_u64(), Some(total), "{ch_stats}\n{stderr}");
    assert_eq!(ch_stats["permanent_errors"].as_u64(), Some(0));
    assert_eq!(count(&url, &table), total);
    assert_table_holds(&url, &table, &flows, &first);
}

/// Rows of a TSV answer, sorted.
fn sorted_rows(url: &str, sql: &str) -> Vec<String> {
    let mut v: Vec<String> = ch(url, sql).unwrap().lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn clickhouse_rollups_sum_the_flows_per_minute_and_per_hour() {
    let _turn = take_turns();
    let url = url();
    if let Err(why) = ready(&url) {
        return skip(&why);
    }
    let table = fresh_table();
    let dir = tempfile::tempdir().unwrap();
    let c = ch_collector(&url, &table, &dir.path().join("spool"), &["--clickhouse-rollups"]);
    send(&traffic(3, 100, 1000), c.addr);
    let (flows, st, stderr) = c.stop();
    let total = st["flows_total"].as_u64().unwrap();
    assert!(total > 0 && flows.len() as u64 == total);
    let ch_stats = &st["sinks"]["clickhouse"];
    assert_eq!(ch_stats["rows_inserted"].as_u64(), Some(total), "{ch_stats}\n{stderr}");
    // 18.16: the legacy schema, said once.
    assert!(stderr.contains(&format!("no table {table} yet: the Legacy schema")), "{stderr}");
    let key = "exporter, proto, src_addr, dst_addr";
    for (suffix, bucket) in [("_1m", "toStartOfMinute"), ("_1h", "toStartOfHour")] {
        let view = format!("{table}{suffix}");
        let sums = ch(
            &url,
            &format!("SELECT sum(flows), sum(packets), sum(octets) FROM {view} FORMAT TSV"),
        )
        .unwrap();
        let want = [st["flows_total"].clone(), st["packets"].clone(), st["octets"].clone()];
        let want: Vec<String> = want.iter().map(|v| v.to_string()).collect();
        assert_eq!(sums.trim().split('\t').collect::<Vec<_>>(), want, "{view}");
        // Bucket by bucket, key by key, what the flow table says.
        let from_view = sorted_rows(
            &url,
            &format!(
                "SELECT time, {key}, sum(flows), sum(packets), sum(octets) FROM {view} \
                 GROUP BY time, {key} FORMAT TSV"
            ),
        );
        let from_table = sorted_rows(
            &url,
            &format!(
                "SELECT {bucket}(time) AS t, {key}, count(), sum(packets), sum(octets) FROM {table} \
                 GROUP BY t, {key} FORMAT TSV"
            ),
        );
        assert!(from_view.len() > 1, "{view}: {from_view:?}");
        assert!(from_view == from_table, "{view} differs from {table}");
        // Summing: once merged, one row per bucket and key.
        ch(&url, &format!("OPTIMIZE TABLE {view} FINAL")).unwrap();
        assert_eq!(count(&url, &view), from_table.len() as u64, "{view} after merging");
    }
    // The example queries the package ships run, and find the flows.
    for q in example_queries(&table) {
        let rows = ch(&url, &q).unwrap_or_else(|e| panic!("{q}\n{e}"));
        assert!(!rows.trim().is_empty(), "no rows:\n{q}");
    }
    for t in [format!("{table}_1m"), format!("{table}_1h"), table] {
        let _ = ch(&url, &format!("DROP TABLE IF EXISTS {t}"));
    }
}

/// The two-shard cluster `.ci/clickhouse.sh` defines on its one server: each
/// shard's replica is the server itself with its own default database.
const CLUSTER: &str = "nfstitch_two_shards";
const SHARD_DBS: [&str; 2] = ["nfstitch_shard1", "nfstitch_shard2"];

/// The sum of `key` over stats files, as JSON (for `assert_table_holds`).
fn summed(stats: &[&Value]) -> Value {
    let n = |k: &str| stats.iter().map(|s| s[k].as_u64().unwrap()).sum::<u64>();
    let mut by_reason = serde_json::Map::new();
    for s in stats {
        for (r, v) in s["flows"].as_object().unwrap() {
            let old = by_reason.get(r).and_then(Value::as_u64).unwrap_or(0);
            by_reason.insert(r.clone(), (old + v.as_u64().unwrap()).into());
        }
    }
    serde_json::json!({
        "flows_total": n("flows_total"), "records": n("records"),
        "packets": n("packets"), "octets": n("octets"), "flows": by_reason,
    })
}

#[test]
fn clickhouse_cluster_puts_two_collectors_flows_on_both_shards_once() {
    let _turn = take_turns();
    let url = url();
    if let Err(why) = ready(&url) {
        return skip(&why);
    }
    let shards = ch(
        &url,
        &format!("SELECT count() FROM system.clusters WHERE cluster = '{CLUSTER}' FORMAT TSV"),
    );
    if shards.as_deref().map(str::trim) != Ok("2") {
        return skip(&format!("no cluster {CLUSTER} on {url} (start it with .ci/clickhouse.sh)"));
    }
    // The databases are the operator's; the sink makes tables, not databases.
    for db in SHARD_DBS {
        ch(&url, &format!("CREATE DATABASE IF NOT EXISTS {db}")).unwrap();
    }
    let table = fresh_table();
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--clickhouse-cluster", CLUSTER, "--clickhouse-rollups"];
    let a = ch_collector(&url, &table, &dir.path().join("a"), &flags);
    let b = ch_collector(&url, &table, &dir.path().join("b"), &flags);
    // Six exporters, three for each collector.
    let (to_a, to_b): (Vec<_>, Vec<_>) =
        traffic(6, 60, 600).into_iter().partition(|d| d.exporter.octets()[3] <= 3);
    send(&to_a, a.addr);
    send(&to_b, b.addr);
    // A third writer with IPv4 and IPv6 flows of two more exporters.
    let mixed = mixed_flows(60);
    let mut c = lib_sink(&url, &table, &dir.path().join("c"), Some(CLUSTER));
    c.flows(&mixed).unwrap();
    c.close().unwrap();
    assert_eq!(sink_counter(&c, "rows_inserted"), 60);
    assert_eq!(sink_counter(&c, "values_clamped"), 0);
    let (flows_a, st_a, err_a) = a.stop();
    let (flows_b, st_b, err_b) = b.stop();
    for (st, err) in [(&st_a, &err_a), (&st_b, &err_b)] {
        let c = &st["sinks"]["clickhouse"];
        assert_eq!(c["rows_inserted"], st["flows_total"], "{c}\n{err}");
    }
    let flows: Vec<Value> = flows_a.into_iter().chain(flows_b).collect();
    let st = summed(&[&st_a, &st_b]);
    let total = st["flows_total"].as_u64().unwrap();
    // The Distributed table forwards in the background: wait for all of it.
    wait_until("every flow on the shards", Duration::from_secs(30), || {
        count(&url, &table) >= total + 60
    });
    assert_table_holds(&url, &table, &flows, &st);
    assert_mixed_rows(&url, &table, &mixed, u32::MAX);
    let local = |db: &str| format!("{db}.{table}_local");
    let per_shard: Vec<u64> = SHARD_DBS.iter().map(|db| count(&url, &local(db))).collect();
    eprintln!("flows per shard: {per_shard:?} of {total} + 60");
    assert!(per_shard.iter().all(|&n| n > 0), "both shards hold flows: {per_shard:?}");
    assert_eq!(per_shard.iter().sum::<u64>(), total + 60, "each flow on one shard, once");
    // One exporter's flows stay together.
    let split = ch(
        &url,
        &format!(
            "SELECT count() FROM (SELECT DISTINCT exporter FROM {}) \
             WHERE exporter IN (SELECT exporter FROM {}) FORMAT TSV",
            local(SHARD_DBS[0]),
            local(SHARD_DBS[1])
        ),
    )
    .unwrap();
    assert_eq!(split.trim(), "0", "an exporter on both shards");
    // Rollups: on each shard, read through the Distributed views.
    let sums = ch(&url, &format!("SELECT sum(flows), sum(octets) FROM {table}_1m FORMAT TSV"));
    let mixed_octets: u64 = mixed.iter().map(|f| f.octets).sum();
    let octets = st["octets"].as_u64().unwrap() + mixed_octets;
    assert_eq!(sums.unwrap().trim(), format!("{}\t{octets}", total + 60));
    let pairs = ch(
        &url,
        &format!(
            "SELECT uniqExact(src_addr6, dst_addr6) FROM {table}_1m {} FORMAT TSV",
            mixed_where(false)
        ),
    );
    assert_eq!(pairs.unwrap().trim(), "60", "IPv6 pairs apart in the rollups");
    let mut drops = vec![format!("{table}_1m"), format!("{table}_1h"), table.clone()];
    for db in SHARD_DBS {
        drops.extend(["_1m", "_1h", ""].map(|s| format!("{}{s}", local(db))));
    }
    for t in drops {
        let _ = ch(&url, &format!("DROP TABLE IF EXISTS {t}"));
    }
}

/// The example queries `dist/` ships, for `table`.
fn example_queries(table: &str) -> Vec<String> {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist/clickhouse-queries.sql");
    let text = std::fs::read_to_string(&examples).unwrap();
    let queries: Vec<String> = text
        .split("\n;\n")
        .filter(|q| q.contains("SELECT"))
        .map(|q| q.replace("nfstitch_flows", table) + " FORMAT TSV")
        .collect();
    assert_eq!(queries.len(), 6, "{}", examples.display());
    queries
}

/// The rollup views of `table` sum what the table holds, bucket by bucket,
/// key by key (`key`: the views' key columns after `time`).
fn assert_rollups_match(url: &str, table: &str, key: &str) {
    for (suffix, bucket) in [("_1m", "toStartOfMinute"), ("_1h", "toStartOfHour")] {
        let view = format!("{table}{suffix}");
        let from_view = sorted_rows(
            url,
            &format!(
                "SELECT time, {key}, sum(flows), sum(packets), sum(octets) FROM {view} \
                 GROUP BY time, {key} FORMAT TSV"
            ),
        );
        let from_table = sorted_rows(
            url,
            &format!(
                "SELECT {bucket}(time) AS t, {key}, count(), sum(packets), sum(octets) FROM {table} \
                 GROUP BY t, {key} FORMAT TSV"
            ),
        );
        assert!(from_view.len() > 1, "{view}: {from_view:?}");
        assert!(from_view == from_table, "{view} differs from {table}");
    }
}

#[test]
fn clickhouse_legacy_schema_holds_ipv6_flows_32_bit_values_and_exporter_reasons() {
    let _turn = take_turns();
    let url = url();
    if let Err(why) = ready(&url) {
        return skip(&why);
    }
    let table = fresh_table();
    let dir = tempfile::tempdir().unwrap();
    let flows = mixed_flows(90);
    let mut s = lib_sink(&url, &table, &dir.path().join("spool"), None);
    s.flows(&flows).unwrap();
    s.close().unwrap();
    assert_eq!(sink_counter(&s, "rows_inserted"), 90);
    assert_eq!(sink_counter(&s, "values_clamped"), 0);
    assert_eq!(sink_counter(&s, "rows_dropped"), 0);
    // 18.16: the legacy schema, its new columns in their types.
    let types = sorted_rows(
        &url,
        &format!(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() \
             AND table = '{table}' AND name IN ('input', 'src_as', 'src_addr', 'src_addr6', \
             'exporter_end_reason') FORMAT TSV"
        ),
    );
    assert_eq!(types.len(), 5, "{types:?}");
    assert!(types[0].starts_with("exporter_end_reason\tEnum8("), "{types:?}");
    assert_eq!(
        types[1..],
        ["input\tUInt32", "src_addr\tUInt32", "src_addr6\tFixedString(16)", "src_as\tUInt32"]
    );
    // Every row, IPv4 and IPv6, with every value as the flow had it.
    assert_mixed_rows(&url, &table, &flows, u32::MAX);
    // The rollups keep IPv6 pairs apart and sum what the table holds.
    let key = "exporter, proto, src_addr, dst_addr, src_addr6, dst_addr6";
    assert_rollups_match(&url, &table, key);
    let pairs = ch(&url, &format!("SELECT uniqExact(src_addr6, dst_addr6) FROM {table}_1m"));
    assert_eq!(pairs.unwrap().trim(), "90");
    // The example queries run and show the IPv6 flows.
    let mut shown = String::new();
    for q in example_queries(&table) {
        let rows = ch(&url, &q).unwrap_or_else(|e| panic!("{q}\n{e}"));
        assert!(!rows.trim().is_empty(), "no rows:\n{q}");
        shown += &rows;
    }
    for text in ["2001:db8:1::", "10.0.0.", "end_of_flow", "lack_of_resources", "reserved"] {
        assert!(shown.contains(text), "{text} not in the example queries' answers:\n{shown}");
    }
    for t in [format!("{table}_1m"), format!("{table}_1h"), table] {
        let _ = ch(&url, &format!("DROP TABLE IF EXISTS {t}"));
    }
}

/// The legacy `CREATE TABLE` of releases before IPv6 (as they ran it).
const OLD_LEGACY_TABLE: &str = "CREATE TABLE IF NOT EXISTS `{table}` (`exporter` FixedString(16), \
    `engine_type` UInt8, `engine_id` UInt8, `src_addr` UInt32, `src_port` UInt16, \
    `dst_addr` UInt32, `dst_port` UInt16, `proto` UInt8, `records` UInt64, `packets` UInt64, \
    `octets` UInt64, `tcp_flags` UInt8, `first` UInt64, `last` UInt64, \
    `end_reason` Enum8('fin' = 1, 'idle' = 2, 'evicted' = 3, 'shutdown' = 4), `start` UInt64, \
    `end` UInt64, `input` UInt16, `output` UInt16, `nexthop` UInt32, `tos` UInt8, \
    `src_as` UInt16, `dst_as` UInt16, `src_mask` UInt8, `dst_mask` UInt8, \
    `sampling_mode` Enum8('none' = 0, 'deterministic' = 1, 'random' = 2, 'reserved' = 3), \
    `sampling_interval` UInt16, `time` DateTime) ENGINE = MergeTree \
    PARTITION BY toYYYYMMDD(`time`) ORDER BY (`time`, `exporter`, `src_addr`, `dst_addr`)";

/// A rollup view of releases before IPv6.
const OLD_ROLLUP: &str = "CREATE MATERIALIZED VIEW IF NOT EXISTS `{table}{suffix}` \
    ENGINE = SummingMergeTree PARTITION BY toYYYYMMDD(`time`) \
    ORDER BY (`time`, `exporter`, `proto`, `src_addr`, `dst_addr`) AS SELECT \
    {bucket}(`time`) AS `time`, `exporter`, `proto`, `src_addr`, `dst_addr`, count() AS `flows`, \
    sum(`packets`) AS `packets`, sum(`octets`) AS `octets` FROM `{table}` \
    GROUP BY `time`, `exporter`, `proto`, `src_addr`, `dst_addr`";

#[test]
fn clickhouse_table_of_an_earlier_release_gets_the_new_columns_and_keeps_working() {
    let _turn = take_turns();
    let url = url();
    if let Err(why) = ready(&url) {
        return skip(&why);
    }
    let table = fresh_table();
    ch(&url, &OLD_LEGACY_TABLE.replace("{table}", &table)).unwrap();
    for (suffix, bucket) in [("_1m", "toStartOfMinute"), ("_1h", "toStartOfHour")] {
        ch(
            &url,
            &OLD_ROLLUP
                .replace("{table}", &table)
                .replace("{suffix}", suffix)
                .replace("{bucket}", bucket),
        )
        .unwrap();
    }
    // A row an earlier release inserted.
    ch(
        &url,
        &format!(
            "INSERT INTO {table} (exporter, src_addr, dst_addr, nexthop, input, src_as, packets, \
             end_reason, time) VALUES (IPv6StringToNum('::ffff:192.0.2.1'), \
             IPv4StringToNum('10.9.8.7'), IPv4StringToNum('10.9.8.6'), 0, 7, 65001, 5, 'fin', now())"
        ),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let flows = mixed_flows(60);
    let v6 = flows.iter().filter(|f| f.rec.src_addr.is_ipv6()).count() as u64;
    for run in 0..2 {
        // Twice: the second run finds the columns there.
        let batch = &flows[run * 30..run * 30 + 30];
        let mut s = lib_sink(&url, &table, &dir.path().join("spool"), None);
        s.flows(batch).unwrap();
        s.close().unwrap();
        assert_eq!(sink_counter(&s, "rows_inserted"), 30);
        assert_eq!(sink_counter(&s, "rows_dropped") + sink_counter(&s, "insert_errors"), 0);
        // input, output, src_as and dst_as of each IPv6 flow do not fit UInt16.
        let v6_here = batch.iter().filter(|f| f.rec.src_addr.is_ipv6()).count() as u64;
        assert_eq!(sink_counter(&s, "values_clamped"), 4 * v6_here, "run {run}");
    }
    assert!(v6 > 0);
    // The new columns are there; the old narrow ones kept their types.
    let types = sorted_rows(
        &url,
        &format!(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() \
             AND table = '{table}' AND name IN ('input', 'src_as', 'src_addr6', 'nexthop6', \
             'exporter_end_reason') FORMAT TSV"
        ),
    );
    assert_eq!(types.len(), 5, "{types:?}");
    assert_eq!(
        [&types[1], &types[2], &types[3], &types[4]],
        [
            "input\tUInt16",
            "nexthop6\tFixedString(16)",
            "src_addr6\tFixedString(16)",
            "src_as\tUInt16"
        ]
    );
    // Every new row, clamped where the old columns are narrow; IPv6 whole.
    assert_mixed_rows(&url, &table, &flows, u32::from(u16::MAX));
    // The old row reads its address in the new column too (its DEFAULT).
    let old = ch(
        &url,
        &format!(
            "SELECT IPv6NumToString(src_addr6), IPv6NumToString(dst_addr6), exporter_end_reason, \
             input FROM {table} WHERE packets = 5 FORMAT TSV"
        ),
    )
    .unwrap();
    assert_eq!(old, "::ffff:10.9.8.7\t::ffff:10.9.8.6\t\t7\n");
    // The rollup views of the earlier release still sum every row (IPv6
    // pairs under 0.0.0.0 there: the sink says so, see README).
    let sums = ch(&url, &format!("SELECT sum(flows) FROM {table}_1m FORMAT TSV")).unwrap();
    assert_eq!(sums.trim(), "61");
    for t in [format!("{table}_1m"), format!("{table}_1h"), table] {
        let _ = ch(&url, &format!("DROP TABLE IF EXISTS {t}"));
    }
}
