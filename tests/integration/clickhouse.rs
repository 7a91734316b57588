//! The ClickHouse sink against a real ClickHouse server, restarted in the
//! middle of the run: every flow emitted is in the table exactly once.
//!
//! The server is the one `.ci/clickhouse.sh start` runs on 127.0.0.1:8123
//! (or `$NFSTITCH_CLICKHOUSE_URL`); the test stops and starts it with the same
//! script. Skips (with "SKIP: ...") when clickhouse-server is not installed or
//! nothing answers on the URL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::collect::{send, start, traffic};

fn url() -> String {
    let mut u = std::env::var("NFSTITCH_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8123/".to_string());
    if !u.ends_with('/') && !u.contains('?') {
        u.push('/');
    }
    u
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

/// Run one query over HTTP (curl, bounded): Ok(body) on HTTP 200.
fn ch(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}", "--data-binary", sql, url])
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
    Command::new("curl")
        .args(["-s", "--max-time", "2", &format!("{url}ping")])
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
fn ident(f: &Value) -> String {
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

#[test]
fn clickhouse_gets_every_flow_across_a_server_restart() {
    if !on_path("clickhouse-server") {
        eprintln!("SKIP: clickhouse-server not installed (run .ci/clickhouse.sh install)");
        return;
    }
    if !on_path("curl") {
        eprintln!("SKIP: curl not installed");
        return;
    }
    let url = url();
    if !up(&url) {
        eprintln!("SKIP: no ClickHouse answers on {url} (run .ci/clickhouse.sh start)");
        return;
    }
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let table = format!("t_{}_{nanos}", std::process::id());
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

    // The table holds exactly the flows of the JSON output: count, sums, and each flow once.
    let row = ch(
        &url,
        &format!("SELECT count(), sum(records), sum(packets), sum(octets) FROM {table} FORMAT TSV"),
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
        &url,
        &format!("SELECT end_reason, count() FROM {table} GROUP BY end_reason FORMAT TSV"),
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
        &url,
        &format!(
            "SELECT replaceOne(IPv6NumToString(exporter), '::ffff:', ''), IPv4NumToString(src_addr), \
             src_port, IPv4NumToString(dst_addr), dst_port, proto, records, packets, octets, \
             tcp_flags, end_reason FROM {table} FORMAT TSV"
        ),
    )
    .unwrap();
    let mut from_ch: Vec<String> = rows.lines().map(|l| l.replace('\t', " ")).collect();
    let mut from_json: Vec<String> = flows.iter().map(ident).collect();
    from_ch.sort();
    from_json.sort();
    assert_eq!(from_ch.len(), from_json.len());
    assert!(from_ch == from_json, "the table's flows differ from the JSON output's");

    let _ = ch(&url, &format!("DROP TABLE IF EXISTS {table}"));
}
