//! `--metrics ADDR:PORT`: Prometheus text exposition (format 0.0.4) of every
//! counter, per worker and per exporter, and latency histogram summaries.
//!
//! A small HTTP/1.1 responder on its own thread; it reads the snapshots the
//! workers publish about once a second, never the workers' live state.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::gauges::Snapshot;
use super::handoff::Shared;
use crate::flow::EndReason;
use crate::hist::Latency;
use crate::ingest::{Counters, REJECT_REASONS};

/// Bind the listener now (so a bad address fails at start), serve on a thread.
pub fn spawn(addr: SocketAddr, shared: Arc<Shared>) -> Result<std::thread::JoinHandle<()>> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("--metrics: cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    eprintln!("nfstitch: metrics on http://{}/metrics", listener.local_addr()?);
    Ok(std::thread::Builder::new().name("metrics".into()).spawn(move || {
        while !shared.stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = serve(stream, &shared);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    })?)
}

fn serve(mut s: TcpStream, shared: &Shared) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&req);
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let (status, body, ctype) = if path == "/metrics" || path.starts_with("/metrics?") {
        ("200 OK", render(shared), "text/plain; version=0.0.4; charset=utf-8")
    } else {
        ("404 Not Found", "see /metrics\n".to_string(), "text/plain")
    };
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    s.flush()
}

/// A counter: its name, its help text, and how to read it.
type Getter<T> = (&'static str, &'static str, fn(&T) -> u64);

/// One metric family: HELP, TYPE, then samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, String)], v: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ =
                    write!(self.out, "{k}=\"{}\"", val.replace('\\', "\\\\").replace('"', "\\\""));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {v}");
    }
}

/// The whole exposition.
pub fn render(shared: &Shared) -> String {
    let snaps: Vec<Snapshot> = shared
        .mailboxes
        .iter()
        .map(|m| m.snapshot.lock().map(|s| s.clone()).unwrap_or_default())
        .collect();
    let mut out = String::with_capacity(8192);
    let mut f = Family { out: &mut out };
    let w = |i: usize| vec![("worker", i.to_string())];

    let per_worker: [Getter<Snapshot>; 7] = [
        ("nfstitch_datagrams_total", "Accepted datagrams.", |s| s.counters.datagrams),
        ("nfstitch_records_total", "Records in accepted datagrams.", |s| s.counters.records),
        ("nfstitch_packets_total", "Sum of packets over accepted records.", |s| s.counters.packets),
        ("nfstitch_octets_total", "Sum of octets over accepted records.", |s| s.counters.octets),
        (
            "nfstitch_kernel_drops_total",
            "Datagrams the kernel dropped on the worker's sockets.",
            |s| s.kernel_drops,
        ),
        (
            "nfstitch_queue_stalls_total",
            "Waits on a full queue (backpressure, nothing dropped).",
            |s| s.queue_stalls,
        ),
        ("nfstitch_evictions_total", "Flows emitted early because the flow table was full.", |s| {
            s.flows[EndReason::Evicted as usize]
        }),
    ];
    for (name, help, get) in per_worker {
        f.head(name, "counter", help);
        for (i, s) in snaps.iter().enumerate() {
            f.sample(name, &w(i), get(s));
        }
    }
    f.head("nfstitch_active_flows", "gauge", "Flows held in the worker's shard.");
    for (i, s) in snaps.iter().enumerate() {
        f.sample("nfstitch_active_flows", &w(i), s.active_flows);
    }
    f.head("nfstitch_rejected_total", "counter", "Rejected datagrams by reason.");
    for (i, s) in snaps.iter().enumerate() {
        for (r, name) in REJECT_REASONS.iter().enumerate() {
            f.sample(
                "nfstitch_rejected_total",
                &[("worker", i.to_string()), ("reason", name.to_string())],
                s.counters.rejected[r],
            );
        }
    }
    f.head("nfstitch_flows_total", "counter", "Flows emitted by end reason.");
    for (i, s) in snaps.iter().enumerate() {
        for r in EndReason::ALL {
            f.sample(
                "nfstitch_flows_total",
                &[("worker", i.to_string()), ("reason", r.as_str().to_string())],
                s.flows[r as usize],
            );
        }
    }

    // Per exporter (summed over workers).
    let mut exp: BTreeMap<IpAddr, Counters> = BTreeMap::new();
    for s in &snaps {
        for (ip, c) in &s.exporters {
            exp.entry(*ip).or_default().add(c);
        }
    }
    let per_exporter: [Getter<Counters>; 4] = [
        ("nfstitch_exporter_datagrams_total", "Accepted datagrams per exporter.", |c| c.datagrams),
        ("nfstitch_exporter_records_total", "Records per exporter.", |c| c.records),
        ("nfstitch_exporter_octets_total", "Octets per exporter.", |c| c.octets),
        ("nfstitch_exporter_rejected_total", "Rejected datagrams per exporter.", |c| {
            c.rejected_total()
        }),
    ];
    for (name, help, get) in per_exporter {
        f.head(name, "counter", help);
        for (ip, c) in &exp {
            f.sample(name, &[("exporter", ip.to_string())], get(c));
        }
    }
    let mut seq: BTreeMap<(IpAddr, u8, u8), (u64, u64)> = BTreeMap::new();
    for s in &snaps {
        for (k, t) in &s.seq {
            let e = seq.entry(*k).or_default();
            e.0 += t.lost_records;
            e.1 += t.restarts;
        }
    }
    for (name, help, idx) in [
        ("nfstitch_seq_lost_records_total", "Records missing per the exporter's flow_sequence.", 0),
        ("nfstitch_seq_restarts_total", "Exporter restarts seen in flow_sequence.", 1),
    ] {
        f.head(name, "counter", help);
        for ((ip, et, ei), v) in &seq {
            let labels = [
                ("exporter", ip.to_string()),
                ("engine_type", et.to_string()),
                ("engine_id", ei.to_string()),
            ];
            f.sample(name, &labels, if idx == 0 { v.0 } else { v.1 });
        }
    }

    // Latency summaries (seconds).
    let mut rx = Latency::new();
    let mut export = Latency::new();
    for s in &snaps {
        rx.add(&s.receive_to_applied);
        export.add(&s.export_to_receive);
    }
    let written = shared.writer_latency.lock().map(|l| l.clone()).unwrap_or_default();
    f.head(
        "nfstitch_latency_seconds",
        "summary",
        "Latency: receive_to_applied, flow_end_to_written, export_to_receive (export_to_receive only meaningful when exporter and collector share a clock).",
    );
    for (name, h) in [
        ("receive_to_applied", &rx),
        ("flow_end_to_written", &written),
        ("export_to_receive", &export),
    ] {
        let s = h.summary();
        for (q, v) in [
            ("0.5", s.p50_us),
            ("0.9", s.p90_us),
            ("0.99", s.p99_us),
            ("0.999", s.p99_9_us),
            ("0.9999", s.p99_99_us),
        ] {
            f.sample(
                "nfstitch_latency_seconds",
                &[("histogram", name.to_string()), ("quantile", q.to_string())],
                v / 1e6,
            );
        }
        f.sample(
            "nfstitch_latency_seconds_sum",
            &[("histogram", name.to_string())],
            h.sum_ns() as f64 / 1e9,
        );
        f.sample("nfstitch_latency_seconds_count", &[("histogram", name.to_string())], s.count);
    }
    out
}
