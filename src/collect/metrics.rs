//! `--metrics ADDR:PORT`: Prometheus text exposition (format 0.0.4) of every
//! counter, per worker and per exporter, and latency histogram summaries,
//! on the address given (the flag has no default: the endpoint is off unless
//! asked for, and listens only where it is told, e.g. 127.0.0.1:9100).
//!
//! It reads the snapshots the workers publish about once a second, never the
//! workers' live state, on its own thread, one connection at a time.
//!
//! # Bounds
//! Every connection has an overall deadline ([`CONN_DEADLINE`]) for reading
//! the request and writing the response, not a per-read timeout (a client
//! that sends one byte a second would reset that forever). Reads and writes
//! wait in slices of at most [`SLICE`], and between slices the thread checks
//! the collector's stop flag: a slow or stuck client delays other scrapes by
//! at most the deadline, and shutdown by at most a slice.
//!
//! # Why `httparse` and not an HTTP server crate
//! The request is parsed by `httparse` (hyper's parser: no dependencies, no
//! `unsafe` needed here, widely used and maintained). The connection handling
//! stays here because the bounds above are the point, and the small
//! synchronous server crates do not give them: `tiny_http` 0.12 (checked
//! with `cargo info` and its source) sets no read or write timeout, runs each
//! connection on a pool thread that grows without limit and is never joined,
//! and owns the sockets, so a slow client holds a thread for ever and no
//! deadline can be imposed from outside; the servers that do have timeouts
//! (hyper and what builds on it) bring an async runtime to a collector that
//! has none.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::gauges::Snapshot;
use super::handoff::Shared;
use crate::flow::EndReason;
use crate::hist::Latency;
use crate::ingest::{Counters, Overflow, SeqTotals, REJECT_REASONS};

/// Longest one connection may take, from accept to the last byte of the response.
pub const CONN_DEADLINE: Duration = Duration::from_secs(2);
/// Longest wait between two looks at the stop flag.
pub const SLICE: Duration = Duration::from_millis(50);
/// Largest request (line and headers) read.
const MAX_REQUEST: usize = 8192;
/// Most request headers parsed.
const MAX_HEADERS: usize = 64;

/// Bind the listener now (so a bad address fails at start), serve on a thread
/// until the collector stops.
pub fn spawn(addr: SocketAddr, shared: Arc<Shared>) -> Result<std::thread::JoinHandle<()>> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("--metrics: cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    eprintln!("nfstitch: metrics on http://{}/metrics", listener.local_addr()?);
    Ok(std::thread::Builder::new().name("metrics".into()).spawn(move || {
        while !shared.stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    // An error is the client's (gone, too slow, malformed): it
                    // ends that connection only.
                    let _ = serve(&stream, &shared, Instant::now() + CONN_DEADLINE);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    })?)
}

/// Read one request and answer it, all before `deadline`.
fn serve(s: &TcpStream, shared: &Shared, deadline: Instant) -> io::Result<()> {
    s.set_nonblocking(false)?;
    let stop = &shared.stop;
    let mut req = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    // The request target, or None for a request that is malformed, too
    // large, or cut short by the client.
    let target = loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut r = httparse::Request::new(&mut headers);
        match r.parse(&req) {
            Ok(httparse::Status::Complete(_)) => break r.path.map(str::to_owned),
            Ok(httparse::Status::Partial) if req.len() < MAX_REQUEST => {}
            _ => break None,
        }
        let n = bounded(s, deadline, stop, |mut s| s.read(&mut buf))?;
        if n == 0 {
            break None;
        }
        req.extend_from_slice(&buf[..n]);
    };
    let (status, body, ctype) = match target.as_deref() {
        Some(t) if t == "/metrics" || t.starts_with("/metrics?") => {
            ("200 OK", render(shared), "text/plain; version=0.0.4; charset=utf-8")
        }
        Some(_) => ("404 Not Found", "see /metrics\n".to_string(), "text/plain"),
        None => ("400 Bad Request", "see /metrics\n".to_string(), "text/plain"),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut left = resp.as_bytes();
    while !left.is_empty() {
        match bounded(s, deadline, stop, |mut s| s.write(left))? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => left = &left[n..],
        }
    }
    Ok(())
}

/// Run `op` (one read or one write on `s`) waiting at most a [`SLICE`] at a
/// time, until it does something, `deadline` passes (`TimedOut`) or `stop`
/// is set (`Interrupted`).
fn bounded<T>(
    s: &TcpStream,
    deadline: Instant,
    stop: &AtomicBool,
    mut op: impl FnMut(&TcpStream) -> io::Result<T>,
) -> io::Result<T> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let slice = Some(left.min(SLICE));
        s.set_read_timeout(slice)?;
        s.set_write_timeout(slice)?;
        match op(s) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            r => return r,
        }
    }
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
    // v9/IPFIX: the `templated` counters of --stats-json, per worker.
    let named: Vec<Vec<(&str, u64)>> = snaps.iter().map(|s| s.templated.named()).collect();
    for (k, key) in crate::ingest::TemplatedCounters::NAMES.iter().enumerate() {
        let name = format!("nfstitch_templated_{}_total", key.trim_end_matches("_total"));
        let help = format!("v9/IPFIX: {key} (README, Counters: templated).");
        f.head(&name, "counter", &help);
        for (i, n) in named.iter().enumerate() {
            f.sample(&name, &w(i), n[k].1);
        }
    }
    f.head(
        "nfstitch_templated_rejected_total",
        "counter",
        "v9/IPFIX sets, templates and records skipped inside accepted datagrams, by reason.",
    );
    for (i, s) in snaps.iter().enumerate() {
        for (r, name) in crate::ingest::SET_REASONS.iter().enumerate() {
            f.sample(
                "nfstitch_templated_rejected_total",
                &[("worker", i.to_string()), ("reason", name.to_string())],
                s.templated.rejects[r],
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
    let mut overflow = Overflow::default();
    for s in &snaps {
        overflow.add(&s.overflow);
    }
    for (name, help, v) in [
        (
            "nfstitch_exporters_overflow_total",
            "Datagrams from sources past the exporter cap (not per exporter, not sequence-tracked).",
            overflow.exporters,
        ),
        (
            "nfstitch_engines_overflow_total",
            "Datagrams of engines past the per-exporter or total stream cap (not sequence-tracked).",
            overflow.engines,
        ),
    ] {
        f.head(name, "counter", help);
        f.sample(name, &[], v);
    }
    // Sequence state is one table for every worker: read once.
    let seq = shared.seq.totals();
    let per_stream: [Getter<SeqTotals>; 4] = [
        (
            "nfstitch_seq_lost_records_total",
            "Records missing per the exporter's flow_sequence.",
            |t| t.lost_records,
        ),
        ("nfstitch_seq_restarts_total", "Exporter restarts seen in flow_sequence.", |t| t.restarts),
        (
            "nfstitch_seq_late_datagrams_total",
            "Datagrams that arrived after a later one (a gap they fill is not lost).",
            |t| t.late_datagrams,
        ),
        (
            "nfstitch_seq_duplicate_datagrams_total",
            "Datagrams whose every record was seen before.",
            |t| t.duplicate_datagrams,
        ),
    ];
    for (name, help, get) in per_stream {
        f.head(name, "counter", help);
        for ((ip, stream), t) in &seq {
            let [a, b] = stream.labels();
            let labels = [("exporter", ip.to_string()), a, b];
            f.sample(name, &labels, get(t));
        }
    }

    sinks(&mut f, shared);
    f.head(
        "nfstitch_reopen_failures_total",
        "counter",
        "SIGHUPs whose -o path could not be opened (output stayed on the old file).",
    );
    f.sample("nfstitch_reopen_failures_total", &[], shared.reopen_failures.load(Ordering::Relaxed));

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

/// The extra sinks' counters: `nfstitch_sink_<name>_total` (counters) and
/// `nfstitch_sink_<name>` (gauges), labelled by sink.
fn sinks(f: &mut Family<'_>, shared: &Shared) {
    let sinks = shared.sink_counters.lock().map(|s| s.clone()).unwrap_or_default();
    /// Is it a gauge, and its samples: (sink, value).
    type Samples<'a> = (bool, Vec<(&'a str, u64)>);
    // One family per metric name.
    let mut fams: BTreeMap<String, Samples<'_>> = BTreeMap::new();
    for s in &sinks {
        for (k, v) in &s.counters {
            let gauge = s.gauges.contains(k);
            let name = format!("nfstitch_sink_{k}{}", if gauge { "" } else { "_total" });
            fams.entry(name).or_insert((gauge, Vec::new())).1.push((s.name, *v));
        }
    }
    for (name, (gauge, samples)) in fams {
        let kind = if gauge { "gauge" } else { "counter" };
        let key = name.trim_start_matches("nfstitch_sink_");
        let help = format!("Sink figure {key}, see README \"ClickHouse\".");
        f.head(&name, kind, &help);
        for (sink, v) in samples {
            f.sample(&name, &[("sink", sink.to_string())], v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (the accepted server end, the client end) of a loopback connection.
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        (l.accept().unwrap().0, c)
    }

    fn answer(req: &[u8]) -> String {
        let (s, mut c) = pair();
        c.write_all(req).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let shared = Shared::new(Vec::new());
        serve(&s, &shared, Instant::now() + CONN_DEADLINE).unwrap();
        drop(s);
        let mut resp = String::new();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.read_to_string(&mut resp).unwrap();
        resp
    }

    #[test]
    fn requests_get_their_status() {
        assert!(answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert!(answer(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert!(answer(b"GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(answer(b"\x01\x02 nonsense\r\n\r\n").starts_with("HTTP/1.1 400"));
        assert!(answer(b"GET /metrics HTTP/1.1\r\nHost").starts_with("HTTP/1.1 400"), "cut short");
    }

    #[test]
    fn a_silent_client_ends_at_the_deadline_or_the_stop_flag() {
        let shared = Shared::new(Vec::new());
        let (s, _c) = pair();
        let t = Instant::now();
        let e = serve(&s, &shared, t + Duration::from_millis(300)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

        let (s, _c) = pair();
        let t = Instant::now();
        std::thread::scope(|sc| {
            sc.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                shared.stop.store(true, Ordering::SeqCst);
            });
            let e = serve(&s, &shared, t + Duration::from_secs(60)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::Interrupted);
        });
        assert!(t.elapsed() < Duration::from_secs(2), "stop took {:?}", t.elapsed());
    }
}
