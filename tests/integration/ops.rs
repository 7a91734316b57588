//! Operations: Prometheus metrics, rotating files, the config file.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::collect::{send, signal, start, traffic, wait_exit, Collector};
use crate::util::*;

pub fn wait_line(c: &Collector, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = c
            .stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no stderr line starting with {prefix:?}"));
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
}

pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// The value of one sample line `name{labels} value` summed over matching lines.
pub fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name) && l.contains(label))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[test]
fn prometheus_metrics_scrape() {
    let c = start(&["--workers", "2", "--metrics", "127.0.0.1:0", "--rcvbuf", "4000000"]);
    let url = wait_line(&c, "nfstitch: metrics on http://");
    let addr: SocketAddr = url.trim_end_matches("/metrics").parse().unwrap();
    let dgs = traffic(3, 100, 1000);
    let sent = send(&dgs, c.addr);
    // Workers publish a snapshot about once a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let resp = http_get(addr, "/metrics");
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        let body = resp.split("\r\n\r\n").nth(1).unwrap().to_string();
        if metric_sum(&body, "nfstitch_datagrams_total", "") as u64 == sent {
            break body;
        }
        assert!(Instant::now() < deadline, "metrics never reached {sent} datagrams:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        metric_sum(&body, "nfstitch_exporter_datagrams_total", "exporter=\"127.0.1.2\"") as u64,
        100
    );
    assert_eq!(metric_sum(&body, "nfstitch_records_total", "") as u64, sent * 30);
    assert!(body
        .contains("nfstitch_latency_seconds{histogram=\"receive_to_applied\",quantile=\"0.99\"}"));
    assert!(body.contains("nfstitch_rejected_total{worker=\"0\",reason=\"bad_count\"} 0"));
    assert!(http_get(addr, "/other").starts_with("HTTP/1.1 404"));
    // promtool validates the exposition (Debian package `prometheus`).
    if Command::new("promtool").arg("--version").output().is_ok() {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
        let r = wait_bounded(child, Duration::from_secs(30));
        assert!(r.status.success(), "promtool check metrics failed:\n{}{}", r.stdout, r.stderr);
    } else {
        eprintln!(
            "SKIP: promtool not installed (apt-get install prometheus); exposition not validated"
        );
    }
    let (_, st, _) = c.stop();
    assert_eq!(st["datagrams"].as_u64().unwrap(), sent);
}

/// A client that sends its request one byte every 500 ms and never finishes
/// it (reconnecting whenever the collector cuts it off) holds neither a
/// scrape nor the shutdown: a scrape still gets through, and after SIGTERM
/// the collector exits in a few seconds, successfully, with its report.
#[test]
fn slow_metrics_client_delays_neither_scrapes_nor_shutdown() {
    let mut c = start(&["--workers", "2", "--metrics", "127.0.0.1:0"]);
    let url = wait_line(&c, "nfstitch: metrics on http://");
    let addr: SocketAddr = url.trim_end_matches("/metrics").parse().unwrap();
    let sent = send(&traffic(1, 10, 100), c.addr);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow_done = std::sync::Arc::clone(&done);
    let slow = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(30);
        let (mut connections, mut bytes) = (0u32, 0u32);
        while !slow_done.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < until {
            let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
                break; // the collector is gone
            };
            connections += 1;
            for b in b"GET /metrics HTTP/1.1\r\nHost: slow\r\n".iter().cycle() {
                if slow_done.load(std::sync::atomic::Ordering::SeqCst) || Instant::now() >= until {
                    break;
                }
                if s.write_all(&[*b]).is_err() {
                    break; // cut off: try again
                }
                bytes += 1;
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        (connections, bytes)
    });
    // The slow client is (or is about to be) the connection in service.
    std::thread::sleep(Duration::from_millis(1200));
    let t = Instant::now();
    let resp = http_get(addr, "/metrics");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(t.elapsed() < Duration::from_secs(4), "a scrape waited {:?}", t.elapsed());
    // SIGTERM while the slow client is mid-request.
    std::thread::sleep(Duration::from_millis(700));
    signal(&c.child, "-TERM");
    let t = Instant::now();
    let status = wait_exit(&mut c.child, Duration::from_secs(5), "collector held by a slow client");
    let took = t.elapsed();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (connections, bytes) = slow.join().unwrap();
    let stderr = c.rest_of_stderr();
    assert!(status.success(), "collector failed: {status}\n{stderr}");
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    assert!(connections >= 1 && bytes >= 2, "the slow client never got going");
    let st = stats(&c.stats);
    assert_eq!(st["datagrams"].as_u64().unwrap(), sent, "final report:\n{stderr}");
}

#[test]
fn rotating_files_are_complete_and_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let rot = dir.path().join("rot");
    let c = start(&[
        "--workers",
        "1",
        "--linger",
        "0s",
        "-o",
        rot.to_str().unwrap(),
        "--rotate",
        "1s",
        "--compress",
        "gzip",
    ]);
    let mut sent_flows = 0;
    for burst in 0..3u32 {
        let dgs: Vec<Dg> = (0..20u32)
            .map(|i| {
                let recs: Vec<_> =
                    (0..30).map(|j| tcp((burst * 1000 + i * 30 + j) as u16, 0x01, 2)).collect();
                dg(
                    1_700_000_000 * S,
                    std::net::Ipv4Addr::new(127, 0, 1, 1),
                    (burst * 20 + i) * 30,
                    &recs,
                )
            })
            .collect();
        sent_flows += 600;
        send(&dgs, c.addr);
        std::thread::sleep(Duration::from_millis(1100));
    }
    let (_, st, _) = c.stop();
    let mut names: Vec<String> = std::fs::read_dir(&rot)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 2, "expected several interval files: {names:?}");
    // nfstitch-YYYYmmddHHMM.jsonl.gz, with -N appended only for a second file of one minute.
    for n in &names {
        let stem = n
            .strip_prefix("nfstitch-")
            .and_then(|r| r.strip_suffix(".jsonl.gz"))
            .unwrap_or_else(|| panic!("bad name {n}"));
        let (stamp, dup) = stem.split_once('-').unwrap_or((stem, "0"));
        assert!(stamp.len() == 12 && stamp.bytes().all(|b| b.is_ascii_digit()), "bad stamp in {n}");
        assert!(dup.parse::<u32>().is_ok(), "bad suffix in {n}");
    }
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "temporary files left: {names:?}");
    let mut all = Vec::new();
    for n in &names {
        let bytes = nfstitch::output::rotate::read_file(&rot.join(n)).unwrap();
        all.extend(flows(&String::from_utf8(bytes).unwrap()));
    }
    assert_eq!(all.len(), sent_flows);
    assert_conserved(&all, &st);
    let r = run(nfstitch().args(["collect", "--rotate", "5m"]));
    assert!(!r.status.success() && r.stderr.contains("-o DIR"), "{}", r.stderr);
}

#[test]
fn config_file_mirrors_flags() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "workers = 1\nformat = \"csv\"\nlinger = \"1s\"\nmax_flows = 1000\ndump = false\n",
    )
    .unwrap();
    let out = dir.path().join("flows.csv");
    let c = start(&["--config", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let dgs = traffic(1, 5, 50);
    send(&dgs, c.addr);
    let (_, st, _) = c.stop();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("type,exporter,"),
        "csv from the config file: {}",
        &text[..text.len().min(80)]
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("flow,")).count() as u64,
        st["flows_total"].as_u64().unwrap()
    );
    assert_eq!(st["workers"].as_array().unwrap().len(), 1);

    // The shipped example validates; unknown keys and bad values fail clearly.
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/nfstitch.toml");
    let r = run_ok(nfstitch().args(["collect", "--dry-run", "--config"]).arg(&example));
    assert!(r.stdout.contains("rotate: Some("), "{}", r.stdout);
    std::fs::write(&cfg, "bogus = 1\n").unwrap();
    let r = run(nfstitch().arg("--config").arg(&cfg));
    assert!(!r.status.success() && r.stderr.contains("unknown key \"bogus\""), "{}", r.stderr);
    std::fs::write(&cfg, "linger = \"ten\"\n").unwrap();
    let r = run(nfstitch().args(["collect", "--config"]).arg(&cfg));
    assert!(!r.status.success() && r.stderr.contains("--linger"), "{}", r.stderr);
}
