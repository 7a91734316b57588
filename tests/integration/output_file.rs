//! The collector's `-o` file: output errors counted against what the OS
//! accepted (a full disk, a file-size limit, a closed pipe), and SIGHUP's
//! reopen (logrotate), also when the path cannot be opened.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::collect::{send, signal, spawn, start, traffic, wait_exit, Collector};
use crate::ops::{http_get, metric_sum, wait_line};
use crate::util::*;

/// The --stats-json of a collector whose output failed with `why`, and the
/// rows the OS accepted before the failure (from `writer_error`).
fn failure_stats(path: &Path, why: &str) -> (Value, u64) {
    let st: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("stats-json written")).unwrap();
    let error = st["writer_error"].as_str().unwrap();
    assert!(error.contains(why), "{st}");
    let written = error
        .split("output failed after ")
        .nth(1)
        .and_then(|r| r.split_once(" rows written"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("rows written in {error:?}"));
    (st, written)
}

#[test]
fn output_errors_end_the_collector_with_a_message() {
    // Disk full while running: flows end by timer (FIN + 10 ms linger), the
    // writer's flush fails, and the collector stops by itself, non-zero.
    let mut c = start(&[
        "--workers",
        "2",
        "--linger",
        "10ms",
        "--flush-interval",
        "100ms",
        "-o",
        "/dev/full",
    ]);
    send(&traffic(2, 20, 500), c.addr);
    let status = wait_exit(&mut c.child, Duration::from_secs(20), "collector hung on a full disk");
    let stderr = c.rest_of_stderr();
    assert!(!status.success(), "exit {status} on a full disk");
    assert!(stderr.contains("writing output"), "{stderr}");
    assert!(stderr.contains("No space left"), "{stderr}");
    assert!(
        stderr.contains("output failed after") && stderr.contains("flows emitted in all"),
        "{stderr}"
    );
    // The report and --stats-json still come out, with the failure and the
    // loss in them. /dev/full accepts no byte: every flow emitted is
    // unwritten, those the writer had buffered included.
    assert!(stderr.contains("OUTPUT FAILED"), "{stderr}");
    let (st, written) = failure_stats(&c.stats, "No space left");
    assert_eq!(written, 0, "{st}");
    let emitted = st["flows_total"].as_u64().unwrap();
    assert!(emitted > 0, "{st}");
    assert_eq!(st["unwritten_flows"].as_u64(), Some(emitted), "{st}");
    // The writer's own figures up to the failure are in the report too.
    assert!(st["latency"]["flow_end_to_written"]["count"].as_u64().is_some(), "{st}");
    assert_eq!(st["unwritten_dump_rows"].as_u64(), Some(0), "{st}");
    let seen = ["datagrams", "kernel_drops", "unread_at_shutdown"]
        .iter()
        .map(|k| st[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(seen, 40, "every datagram sent is accounted for: {st}");

    // The same with every header and record dumped: no record row reached
    // the disk, so every one is counted unwritten (dropped, queued, the rest
    // of the batch in hand, or buffered).
    let mut c =
        start(&["--workers", "1", "--no-stitch", "--flush-interval", "100ms", "-o", "/dev/full"]);
    send(&traffic(2, 20, 500), c.addr);
    let status = wait_exit(&mut c.child, Duration::from_secs(20), "dump hung on a full disk");
    assert!(!status.success(), "exit {status} on a full disk");
    let (st, written) = failure_stats(&c.stats, "No space left");
    assert_eq!(written, 0, "{st}");
    assert_eq!(st["records"].as_u64(), Some(1200), "{st}");
    assert_eq!(st["unwritten_dump_rows"].as_u64(), Some(1200), "{st}");

    // A closed pipe at shutdown: stdout's reader is gone before the final flush.
    let mut child = nfstitch()
        .args(["collect", "--listen", "127.0.0.1:0", "--stats-interval", "0", "--workers", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .strip_prefix("nfstitch: listening on ")
        .and_then(|r| r.split_whitespace().next())
        .expect("listening line")
        .parse()
        .unwrap();
    send(&traffic(1, 20, 500), addr);
    drop(child.stdout.take()); // close the pipe's read end
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "-TERM");
    let status = wait_exit(&mut child, Duration::from_secs(20), "collector hung on a closed pipe");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(!status.success(), "exit {status} on a closed pipe");
    assert!(rest.contains("writing output"), "{rest}");
}

/// The complete lines of a JSON lines file (a torn last line left out), parsed.
fn complete_rows(path: &Path) -> (Vec<Value>, bool) {
    let text = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&text);
    let torn = !text.is_empty() && !text.ends_with('\n');
    let rows = text.split_inclusive('\n').filter(|l| l.ends_with('\n')).collect::<String>();
    (jsonl(&rows), torn)
}

/// A file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored: the write that crosses
/// it is cut short, the next fails with EFBIG) hits the final flush: the
/// flows counted unwritten are exactly those whose row is not complete in
/// the file, the rows the writer still had buffered included.
#[test]
fn a_file_size_limit_counts_exactly_the_flows_not_in_the_file() {
    // `ulimit -f` counts 512- or 1024-byte blocks, by shell: 20 or 40 KiB.
    let mut sh = Command::new("sh");
    sh.args(["-c", "trap '' XFSZ; ulimit -f 40 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_nfstitch"));
    let mut c = spawn(sh, &["--workers", "2", "--rcvbuf", "8000000"], Stdio::null());
    send(&traffic(2, 40, 1000), c.addr);
    signal(&c.child, "-TERM");
    let status = wait_exit(&mut c.child, Duration::from_secs(30), "collector hung at the limit");
    let stderr = c.rest_of_stderr();
    assert!(!status.success(), "exit {status} past the file-size limit:\n{stderr}");
    let (st, written) = failure_stats(&c.stats, "File too large");
    let (rows, torn) = complete_rows(&c.out);
    let size = std::fs::metadata(&c.out).unwrap().len();
    assert!(size == 20 << 10 || size == 40 << 10, "cut at the limit: {size} bytes");
    let in_file = rows.iter().filter(|r| r["type"] == "flow").count() as u64;
    let emitted = st["flows_total"].as_u64().unwrap();
    assert!(in_file > 0 && in_file < emitted && torn, "{in_file} of {emitted} flows, torn {torn}");
    assert_eq!(written, rows.len() as u64, "rows written: the complete rows in the file");
    assert_eq!(st["unwritten_flows"].as_u64(), Some(emitted - in_file), "{st}");
}

/// A FIN record (ended 10 ms after it arrives with `--linger 10ms`) per
/// source port, 30 to a datagram, from 127.0.1.1.
fn fin_flows(ports: std::ops::Range<u16>, seq: u32) -> Vec<Dg> {
    let recs: Vec<_> = ports.map(|p| tcp(p, 0x11, 2)).collect();
    recs.chunks(30)
        .enumerate()
        .map(|(i, c)| {
            let seq = seq + 30 * i as u32;
            dg(1_700_000_000 * S, Ipv4Addr::new(127, 0, 1, 1), seq, c)
        })
        .collect()
}

/// Wait (bounded) until the collector's /metrics counts `n` flows ended by FIN.
fn wait_fin_flows(metrics: SocketAddr, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = http_get(metrics, "/metrics");
        if metric_sum(&resp, "nfstitch_flows_total", "reason=\"fin\"") as u64 == n {
            return;
        }
        assert!(Instant::now() < deadline, "never {n} FIN flows:\n{resp}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A collector that ends FIN flows at once and flushes only when it must
/// (so rows sit in its buffer until a reopen or the end flushes them).
/// Returns it, its /metrics address and its output path (in `dir`, which
/// outlives the collector's own temporary directory).
fn start_for_reopen(dir: &Path) -> (Collector, SocketAddr, PathBuf) {
    let out = dir.join("flows.jsonl");
    let c = start(&[
        "--workers",
        "2",
        "--linger",
        "10ms",
        "--flush-interval",
        "1h",
        "--metrics",
        "127.0.0.1:0",
        "-o",
        out.to_str().unwrap(),
    ]);
    let url = wait_line(&c, "nfstitch: metrics on http://");
    let metrics = url.trim_end_matches("/metrics").parse().unwrap();
    (c, metrics, out)
}

/// Source ports of the flow rows of a file whose every line is complete.
fn ports(path: &Path) -> Vec<u64> {
    let (rows, torn) = complete_rows(path);
    assert!(!torn, "{} ends with a torn line", path.display());
    let mut p: Vec<u64> = rows
        .iter()
        .filter(|r| r["type"] == "flow")
        .map(|r| r["src_port"].as_u64().unwrap())
        .collect();
    p.sort_unstable();
    p
}

/// logrotate's way: rename the file, SIGHUP, more traffic. The rows handed
/// to the output before the reopen (still buffered: no interval flush in an
/// hour) end in the old file, complete; the rows after, in the new one; no
/// row lost or written twice.
#[test]
fn sighup_moves_the_output_without_losing_or_doubling_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let (c, metrics, out) = start_for_reopen(dir.path());
    send(&fin_flows(1000..1060, 0), c.addr);
    wait_fin_flows(metrics, 60);
    let old = out.with_extension("jsonl.1");
    std::fs::rename(&out, &old).unwrap();
    signal(&c.child, "-HUP");
    wait_line(&c, "nfstitch: SIGHUP: reopened -o ");
    let mut later = fin_flows(2000..2060, 60);
    // And one flow that is still open at the end (emitted at shutdown).
    later.push(dg(1_700_000_000 * S, Ipv4Addr::new(127, 0, 1, 1), 120, &[tcp(3000, 0x10, 5)]));
    send(&later, c.addr);
    let (_, st, _) = c.stop();
    assert_eq!(ports(&old), (1000..1060).collect::<Vec<_>>(), "the old file: the first 60");
    let mut want: Vec<u64> = (2000..2060).collect();
    want.push(3000);
    assert_eq!(ports(&out), want, "the new file: the rest");
    assert_eq!(st["flows_total"].as_u64(), Some(121), "{st}");
    assert_eq!((st["reopens"].as_u64(), st["reopen_failures"].as_u64()), (Some(1), Some(0)));
}

/// A SIGHUP whose path cannot be opened (it is a directory now) does not
/// stop the collector: it warns, counts `reopen_failures`, keeps writing to
/// the old file, and the next SIGHUP, once the path can be opened, moves
/// the output. Every row is in exactly one of the two files.
#[test]
fn a_failed_reopen_keeps_the_old_file_and_the_next_sighup_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, metrics, out) = start_for_reopen(dir.path());
    send(&fin_flows(1000..1060, 0), c.addr);
    wait_fin_flows(metrics, 60);
    let old = out.with_extension("jsonl.1");
    std::fs::rename(&out, &old).unwrap();
    std::fs::create_dir(&out).unwrap();
    signal(&c.child, "-HUP");
    let warning = wait_line(&c, "nfstitch: warning: SIGHUP: cannot reopen -o ");
    assert!(warning.contains("still writing to the file opened before"), "{warning}");
    send(&fin_flows(1100..1160, 60), c.addr);
    wait_fin_flows(metrics, 120);
    assert!(c.child.try_wait().unwrap().is_none(), "the collector keeps running");
    std::fs::remove_dir(&out).unwrap();
    signal(&c.child, "-HUP");
    wait_line(&c, "nfstitch: SIGHUP: reopened -o ");
    send(&fin_flows(2000..2060, 120), c.addr);
    wait_fin_flows(metrics, 180);
    let (_, st, stderr) = c.stop();
    let want: Vec<u64> = (1000..1060).chain(1100..1160).collect();
    assert_eq!(ports(&old), want, "the old file: everything before the reopen that worked");
    assert_eq!(ports(&out), (2000..2060).collect::<Vec<_>>(), "the new file: the rest");
    assert_eq!(st["flows_total"].as_u64(), Some(180), "{st}");
    assert_eq!((st["reopens"].as_u64(), st["reopen_failures"].as_u64()), (Some(1), Some(1)));
    assert!(stderr.contains("SIGHUP: 1 reopens of the output failed"), "{stderr}");
}
