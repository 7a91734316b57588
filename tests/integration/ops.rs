//! Operations: Prometheus metrics, rotating files, the config file.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::collect::{send, start, traffic, Collector};
use crate::util::*;

fn wait_line(c: &Collector, prefix: &str) -> String {
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

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// The value of one sample line `name{labels} value` summed over matching lines.
fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
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
