//! The ClickHouse sink's failures through the real binary, against a stand-in
//! server on 127.0.0.1 (no real ClickHouse needed): the password never shows
//! (`--dry-run`, error messages), a server that answers 401 is a permanent
//! error (logged, in `/metrics` and `--stats-json`, retried slowly, not in a
//! tight loop), and the spool stays under `--spool-max-bytes` with every flow
//! accounted for (inserted + spooled + dropped = emitted).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::collect::{send, start, traffic};
use crate::ops::{http_get, metric_sum, promtool_check, wait_line};
use crate::util::{nfstitch, run};

const SECRET: &str = "s3cret-Pw";

#[test]
fn dry_run_and_errors_never_print_the_clickhouse_password() {
    let dir = tempfile::tempdir().unwrap();
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, format!("{SECRET}\n")).unwrap();
    let cfg = dir.path().join("nfstitch.toml");
    let url = format!("http://nfstitch:{SECRET}@127.0.0.1:8123/?database=db&password={SECRET}");
    std::fs::write(&cfg, format!("clickhouse = \"{url}\"\n")).unwrap();
    let dry = |args: &[&str], env: Option<&str>| {
        let mut cmd = nfstitch();
        cmd.args(["collect", "--dry-run"]).args(args).env_remove("NFSTITCH_CLICKHOUSE_PASSWORD");
        if let Some(v) = env {
            cmd.env("NFSTITCH_CLICKHOUSE_PASSWORD", v);
        }
        let r = run(&mut cmd);
        assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET), "{r:?}");
        r
    };
    // The URL's password, on the command line and in the config file.
    for args in [&["--clickhouse", url.as_str()][..], &["--config", cfg.to_str().unwrap()]] {
        let r = dry(args, None);
        assert!(r.status.success(), "{}", r.stderr);
        assert!(
            r.stdout.contains("\"http://nfstitch:***@127.0.0.1:8123/?database=db&password=***\""),
            "{}",
            r.stdout
        );
    }
    // From the file, and from the environment: the source shows, not the password.
    let f = pw_file.to_str().unwrap();
    let r = dry(&["--clickhouse", "http://127.0.0.1:8123/", "--clickhouse-password-file", f], None);
    assert!(r.stdout.contains(&format!("\"*** (from --clickhouse-password-file {f})\"")), "{r:?}");
    let r = dry(&["--clickhouse", "http://127.0.0.1:8123/"], Some(SECRET));
    assert!(r.stdout.contains("\"*** (from NFSTITCH_CLICKHOUSE_PASSWORD)\""), "{r:?}");
    // Errors that name the URL.
    for bad in [format!("ftp://u:{SECRET}@h/"), format!("http://u:{SECRET}@h:99999/")] {
        let mut cmd = nfstitch();
        cmd.args(["collect", "--listen", "127.0.0.1:0", "--clickhouse", &bad]);
        let r = run(cmd.arg("--spool-dir").arg(dir.path().join("spool")));
        assert!(!r.status.success());
        assert!(r.stderr.contains("--clickhouse") && r.stderr.contains("u:***@h"), "{r:?}");
        assert!(!r.stderr.contains(SECRET), "{}", r.stderr);
    }
}

/// A stand-in server that answers every request 401 the way ClickHouse
/// does, and counts the requests and what they sent as `Authorization`.
pub struct Refuser {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    h: Option<std::thread::JoinHandle<()>>,
}

impl Refuser {
    pub fn start() -> Refuser {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let h = std::thread::spawn(move || {
            for conn in l.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                if let Some(auth) = read_request(&mut s) {
                    seen2.lock().unwrap().push(auth);
                }
                let body = "Code: 516. DB::Exception: nfstitch: Authentication failed: \
                            password is incorrect or there is no user with such name";
                let _ = write!(
                    s,
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Refuser { addr, seen, stop, h: Some(h) }
    }
}

/// Read one request (head and a Content-Length body); its Authorization header.
fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let auth = head.lines().find_map(|l| l.strip_prefix("authorization: ")).unwrap_or("");
    Some(auth.to_string())
}

impl Drop for Refuser {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.h.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn a_server_answering_401_is_a_permanent_error_and_the_spool_stays_bounded() {
    let server = Refuser::start();
    let dir = tempfile::tempdir().unwrap();
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, format!("{SECRET}\n")).unwrap();
    let spool = dir.path().join("spool");
    // Room for two batches of 100 flows (156 bytes each: the server never
    // said its version, so batches stay in the native schema the sink
    // starts with).
    const ROW: u64 = nfstitch::sink::clickhouse::Schema::Native.row_size() as u64;
    assert_eq!(ROW, 156);
    let max = 2 * 100 * ROW;
    let url = format!("http://nfstitch@{}/", server.addr);
    let c = start(&[
        "--workers",
        "2",
        "--linger",
        "0s",
        "--metrics",
        "127.0.0.1:0",
        "--clickhouse",
        &url,
        "--clickhouse-password-file",
        pw_file.to_str().unwrap(),
        "--clickhouse-batch",
        "100",
        "--clickhouse-buffer",
        "100",
        "--clickhouse-interval",
        "100ms",
        "--spool-dir",
        spool.to_str().unwrap(),
        "--spool-max-bytes",
        &max.to_string(),
    ]);
    let metrics: SocketAddr =
        wait_line(&c, "nfstitch: metrics on http://").trim_end_matches("/metrics").parse().unwrap();
    // FIN flows (linger 0) reach the sink while the collector runs.
    send(&traffic(2, 100, 2000), c.addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    let gauge = "nfstitch_sink_permanent_error";
    let body = loop {
        let body = http_get(metrics, "/metrics");
        if metric_sum(&body, gauge, "sink=\"clickhouse\"") == 1.0
            && metric_sum(&body, "nfstitch_sink_dropped_flows_total", "clickhouse") > 0.0
        {
            break body;
        }
        assert!(Instant::now() < deadline, "no permanent error and drops in /metrics:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.contains("# TYPE nfstitch_sink_permanent_error gauge"), "{body}");
    assert!(body.contains("# TYPE nfstitch_sink_permanent_errors_total counter"), "{body}");
    assert!(metric_sum(&body, "nfstitch_sink_spool_bytes", "clickhouse") <= max as f64);
    promtool_check(body.split_once("\r\n\r\n").map_or(&*body, |(_, b)| b));
    // One attempt (the table probe, the version, no CREATE without it, and
    // INSERT), then nothing for a minute: not a tight loop (backoff would
    // have tried again at 0.1, 0.3, 0.7, 1.5 s).
    std::thread::sleep(Duration::from_secs(2));
    let requests = server.seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "requests before shutdown: {requests:?}");
    // The password from the file went as basic auth with the URL's user.
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("nfstitch:{SECRET}"));
    let basic = format!("basic {creds}").to_lowercase();
    assert!(requests.iter().all(|a| *a == basic), "{requests:?} != {basic}");

    let t = Instant::now();
    let (flows, st, stderr) = c.stop();
    assert!(t.elapsed() < Duration::from_secs(8), "shutdown took {:?}", t.elapsed());
    let line = stderr
        .lines()
        .find(|l| l.contains("clickhouse: PERMANENT ERROR"))
        .unwrap_or_else(|| panic!("no permanent error logged:\n{stderr}"));
    assert!(line.contains("HTTP 401") && line.contains("Authentication failed"), "{line}");
    assert!(stderr.contains("clickhouse: spool full"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    let ch = &st["sinks"]["clickhouse"];
    let n = |k: &str| ch[k].as_u64().unwrap_or_else(|| panic!("no {k} in {ch}"));
    let total = st["flows_total"].as_u64().unwrap();
    assert_eq!(flows.len() as u64, total);
    assert!(n("permanent_errors") >= 2, "one at run time, one at close: {ch}");
    assert_eq!(n("permanent_error"), 1);
    assert_eq!(n("rows_inserted"), 0);
    assert!(n("dropped_flows") > 0, "{ch}");
    assert_eq!(n("rows_pending_spool") + n("dropped_flows") + n("rows_inserted"), total, "{ch}");
    assert_eq!(n("rows_dropped"), 0);
    let on_disk: u64 =
        std::fs::read_dir(&spool).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert_eq!(on_disk, n("rows_pending_spool") * ROW);
    assert_eq!(on_disk, n("spool_bytes"));
    assert!(on_disk <= max, "{on_disk} > {max}");
}
