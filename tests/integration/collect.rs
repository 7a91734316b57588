//! The live collector on real sockets (127.0.0.1, port 0, every wait bounded).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// A running collector.
pub struct Collector {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: mpsc::Receiver<String>,
    pub out: PathBuf,
    pub stats: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn start(args: &[&str]) -> Collector {
    spawn(nfstitch(), args, Stdio::null())
}

/// Start `cmd` (the binary, or a wrapper that execs it with the arguments it
/// is given) as a collector on 127.0.0.1, port 0, its stdout to `stdout`.
pub fn spawn(mut cmd: Command, args: &[&str], stdout: Stdio) -> Collector {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flows.jsonl");
    let stats = dir.path().join("stats.json");
    cmd.args(["collect", "--listen", "127.0.0.1:0", "--stats-interval", "0"]);
    if !args.contains(&"-o") {
        cmd.arg("-o").arg(&out);
    }
    let mut child = cmd
        .arg("--stats-json")
        .arg(&stats)
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("collector did not say where it listens");
        if let Some(rest) = line.strip_prefix("nfstitch: listening on ") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    Collector { child, addr, stderr: rx, out, stats, _dir: dir }
}

pub fn signal(child: &Child, sig: &str) {
    let st =
        std::process::Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
    assert!(st.success());
}

impl Collector {
    /// Everything the collector wrote on stderr that was not read yet, up to
    /// its end: after the process exited, the reader thread may still hold
    /// the last lines (waits at most 10 s for the pipe to close).
    pub fn rest_of_stderr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut lines = Vec::new();
        while let Ok(line) =
            self.stderr.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            lines.push(line);
        }
        lines.join("\n")
    }

    /// SIGTERM, wait (bounded), return (flows, stats, stderr).
    pub fn stop(mut self) -> (Vec<Value>, Value, String) {
        signal(&self.child, "-TERM");
        let status = wait_exit(&mut self.child, Duration::from_secs(30), "collector did not stop");
        let stderr = self.rest_of_stderr();
        assert!(status.success(), "collector failed: {status}\n{stderr}");
        // JSON lines unless the test chose another format or a rotation directory.
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let flows = if text.starts_with('{') { flows(&text) } else { Vec::new() };
        (flows, stats(&self.stats), stderr)
    }
}

/// A test that fails before the collector stopped must not leave it running.
impl Drop for Collector {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Wait (bounded) for `child` to exit; panics with `what` at the deadline.
pub fn wait_exit(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(start.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` datagrams from exporter `e` (127.0.1.e), 30 records each, over `keys` flows.
pub fn traffic(exporters: u8, per_exporter: u32, keys: u32) -> Vec<Dg> {
    let t0 = 1_700_000_000 * S;
    let mut v = Vec::new();
    for i in 0..per_exporter {
        for e in 1..=exporters {
            let recs: Vec<_> = (0..30)
                .map(|j| {
                    let k = (i * 30 + j) % keys;
                    let mut r = tcp(
                        1024 + (k % 60000) as u16,
                        if j % 7 == 0 { 0x11 } else { 0x10 },
                        1 + k % 13,
                    );
                    r.src_addr = 0x0a00_0000 | (k / 60000);
                    r
                })
                .collect();
            v.push(dg(t0 + i as u64 * 1000, Ipv4Addr::new(127, 0, 1, e), i * 30, &recs));
        }
    }
    v
}

/// Send each datagram from its exporter's address; returns datagrams sent.
pub fn send(dgs: &[Dg], to: SocketAddr) -> u64 {
    let mut socks = std::collections::HashMap::new();
    for d in dgs {
        let s = socks
            .entry(d.exporter)
            .or_insert_with(|| UdpSocket::bind((d.exporter, 0)).expect("bind exporter address"));
        s.send_to(&d.bytes, to).unwrap();
    }
    dgs.len() as u64
}

fn totals(dgs: &[Dg]) -> (u64, u64, u64) {
    let mut t = (0, 0, 0);
    for d in dgs {
        let dd = nfstitch::wire::Datagram::parse(&d.bytes).unwrap();
        for r in dd.records() {
            t.0 += 1;
            t.1 += r.packets() as u64;
            t.2 += r.octets() as u64;
        }
    }
    t
}

/// A flow's identity and sums, for comparing sets.
fn flow_set(flows: &[Value]) -> BTreeSet<String> {
    flows
        .iter()
        .map(|f| {
            let k = [
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
                "first",
                "last",
            ];
            k.iter().map(|n| f[*n].to_string()).collect::<Vec<_>>().join(" ")
        })
        .collect()
}

#[test]
fn live_equals_sent_and_equals_replay() {
    let dgs = traffic(4, 50, 3000);
    // No reservation: each shard's table doubles (incrementally) from 1024
    // buckets to 8192 while the 6000 flows arrive.
    let c = start(&["--workers", "2", "--rcvbuf", "8000000", "--reserve-flows", "0"]);
    let sent = send(&dgs, c.addr);
    // Loopback delivery is synchronous and shutdown reads what is queued: no wait needed.
    let (flows, st, _) = c.stop();
    let (recs, pkts, octs) = totals(&dgs);
    assert_eq!(st["datagrams"].as_u64().unwrap() + st["kernel_drops"].as_u64().unwrap(), sent);
    assert_eq!(st["kernel_drops"], 0, "no drops expected with an 8 MB buffer at this volume");
    assert_eq!(
        (st["records"].as_u64(), st["packets"].as_u64(), st["octets"].as_u64()),
        (Some(recs), Some(pkts), Some(octs))
    );
    assert_conserved(&flows, &st);
    assert_eq!(st["exporters"].as_array().unwrap().len(), 4);
    assert_eq!(st["seq_lost_records"], 0);

    // The same datagrams as a capture, replayed: the same set of flows.
    let dir = tempfile::tempdir().unwrap();
    let pcap = write_pcap(dir.path(), "same.pcap", &dgs);
    let r = run_ok(nfstitch().args(["replay", "-q"]).arg(&pcap));
    let replayed = crate::util::flows(&r.stdout);
    assert_eq!(flow_set(&flows), flow_set(&replayed));
}

#[test]
fn worker_counts_give_the_same_flows() {
    let dgs = traffic(3, 40, 2000);
    let mut sets = Vec::new();
    // Receive coalescing on (the default) and off give the same flows too.
    for (w, co) in [("1", "1ms"), ("2", "0"), ("4", "1ms"), ("1", "0")] {
        let c = start(&["--workers", w, "--rcvbuf", "8000000", "--rx-coalesce", co]);
        let sent = send(&dgs, c.addr);
        let (flows, st, _) = c.stop();
        assert_eq!(st["datagrams"].as_u64().unwrap(), sent, "{w} workers");
        assert_conserved(&flows, &st);
        assert_eq!(st["workers"].as_array().unwrap().len(), w.parse::<usize>().unwrap());
        sets.push(flow_set(&flows));
    }
    assert_eq!(sets[0], sets[1]);
    assert_eq!(sets[0], sets[2]);
    assert_eq!(sets[0], sets[3]);
}

/// The startup line about the receive buffer: (bytes per socket, whole line).
fn rcvbuf_line(c: &Collector) -> (usize, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = c
            .stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the collector says what receive buffer it got");
        if let Some(i) = line.find("receive buffer ") {
            let got = line[i + 15..].split_whitespace().next().unwrap().parse().unwrap();
            return (got, line);
        }
    }
}

#[test]
fn the_default_receive_buffer_absorbs_a_stall() {
    // With no flag, each socket asks for 32 MiB: a worker stopped for a
    // while (here: SIGSTOP while 5000 full datagrams, about 11.5 MB of
    // kernel memory, arrive) loses nothing. The kernel's own default (208
    // KiB) holds about 90 of them.
    let mut dgs = traffic(1, 5001, 5000);
    let last = dgs.pop().unwrap();
    let c = start(&["--workers", "1"]);
    let (got, line) = rcvbuf_line(&c);
    const DEFAULT: usize = 32 << 20;
    if got < DEFAULT {
        // Unprivileged under a low net.core.rmem_max: the collector must say
        // so, with the line that fixes it.
        assert!(
            line.contains("warning") && line.contains("sysctl -w net.core.rmem_max=33554432"),
            "{line}"
        );
        let _ = c.stop();
        return skip(&format!("receive buffer capped at {got} bytes here (not root?)"));
    }
    assert!(!line.contains("warning"), "{line}");
    signal(&c.child, "-STOP");
    let mut sent = send(&dgs, c.addr);
    signal(&c.child, "-CONT");
    std::thread::sleep(Duration::from_millis(200));
    sent += send(std::slice::from_ref(&last), c.addr);
    let (flows, st, _) = c.stop();
    assert_eq!(st["kernel_drops"].as_u64(), Some(0), "{st}");
    assert_eq!(
        st["datagrams"].as_u64().unwrap() + st["unread_at_shutdown"].as_u64().unwrap(),
        sent
    );
    assert_eq!(st["seq_lost_records"].as_u64(), Some(0), "{st}");
    assert_conserved(&flows, &st);
}

#[test]
fn a_restart_appends_to_the_output() {
    // systemd restarts the collector with the same -o: the first run's rows
    // stay, the second run's follow under a fresh CSV header block.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flows.csv");
    let out_arg = out.to_str().unwrap();
    let mut totals = Vec::new();
    for run in 0..2u8 {
        let c = start(&["--workers", "1", "--format", "csv", "-o", out_arg]);
        send(&traffic(1 + run, 10, 50), c.addr);
        let (_, st, _) = c.stop();
        totals.push((st["flows_total"].as_u64().unwrap(), st["records"].as_u64().unwrap()));
    }
    let text = std::fs::read_to_string(&out).unwrap();
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("type,")).collect();
    assert_eq!(headers.len(), 2, "one header block per run:\n{text}");
    let columns: Vec<&str> = headers[0].split(',').collect();
    let records_col = columns.iter().position(|c| *c == "records").unwrap();
    let rows: Vec<Vec<&str>> =
        text.lines().filter(|l| l.starts_with("flow,")).map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == columns.len()), "every row parses:\n{text}");
    assert_eq!(rows.len() as u64, totals[0].0 + totals[1].0, "both runs' flows are there");
    let records: u64 = rows.iter().map(|r| r[records_col].parse::<u64>().unwrap()).sum();
    assert_eq!(records, totals[0].1 + totals[1].1, "and their records");
}

#[test]
fn overload_is_counted_exactly() {
    // Stop the collector, overflow a small receive buffer, resume, stop.
    let mut dgs = traffic(1, 3001, 5000);
    let last = dgs.pop().unwrap();
    let c = start(&["--workers", "1", "--rcvbuf", "65536"]);
    signal(&c.child, "-STOP");
    let mut sent = send(&dgs, c.addr);
    signal(&c.child, "-CONT");
    // One more after the resume: its sequence number reveals the tail loss.
    // Sent five times, 200 ms apart: on a loaded machine the resumed worker
    // may not have drained its buffer before the first copy arrives, and one
    // copy must get in; the others are duplicates, which fill no gap.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(200));
        sent += send(std::slice::from_ref(&last), c.addr);
    }
    let (flows, st, _) = c.stop();
    let accepted = st["datagrams"].as_u64().unwrap();
    let drops = st["kernel_drops"].as_u64().unwrap();
    let unread = st["unread_at_shutdown"].as_u64().unwrap();
    let dups = st["seq_duplicate_datagrams"].as_u64().unwrap();
    assert!(drops > 0, "the buffer should have overflowed");
    assert_eq!(
        accepted + drops + unread,
        sent,
        "sent == accepted + kernel_drops + unread_at_shutdown"
    );
    assert_conserved(&flows, &st);
    // The sequence numbers show the same loss, in records (30 per
    // datagram): the distinct datagrams that never got in.
    let distinct_sent = dgs.len() as u64 + 1;
    let distinct_in = accepted - dups;
    assert_eq!(st["seq_lost_records"].as_u64().unwrap(), (distinct_sent - distinct_in) * 30);
}

#[test]
fn sigterm_mid_stream_keeps_every_accepted_record() {
    let dgs = traffic(2, 4000, 50_000);
    let c = start(&["--workers", "2", "--rcvbuf", "8000000"]);
    let addr = c.addr;
    let sender = std::thread::spawn(move || {
        let socks: Vec<UdpSocket> =
            (1..=2).map(|e| UdpSocket::bind((Ipv4Addr::new(127, 0, 1, e), 0)).unwrap()).collect();
        let mut sent = 0u64;
        for chunk in dgs.chunks(40) {
            for d in chunk {
                let s = &socks[d.exporter.octets()[3] as usize - 1];
                if s.send_to(&d.bytes, addr).is_ok() {
                    sent += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        sent
    });
    std::thread::sleep(Duration::from_millis(300));
    let (flows, st, _) = c.stop();
    let sent = sender.join().unwrap();
    let accepted = st["datagrams"].as_u64().unwrap();
    assert!(accepted > 0 && accepted < sent, "stopped mid-stream: {accepted} of {sent}");
    assert_conserved(&flows, &st);
    assert!(flows.iter().all(|f| f["end_reason"] == "shutdown"));
}

#[test]
fn quiet_collector_emits_by_timer_and_flushes() {
    // Linger 1 s: a FIN flow must be written within a few seconds with no more traffic.
    let c = start(&["--workers", "1", "--linger", "1s", "--flush-interval", "100ms"]);
    let d = dg(1_700_000_000 * S, Ipv4Addr::new(127, 0, 1, 1), 0, &[tcp(7, 0x01, 3)]);
    send(std::slice::from_ref(&d), c.addr);
    let start = Instant::now();
    let out = c.out.clone();
    let written = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if !text.is_empty() {
            break text;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "flow not written by timer");
        std::thread::sleep(Duration::from_millis(50));
    };
    let f = flows(&written);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["end_reason"], "fin");
    let (_, st, _) = c.stop();
    assert_eq!(st["flows"]["fin"], 1);
}

#[test]
fn bad_collect_flags_fail_clearly() {
    for (args, needle) in [
        (vec!["collect", "--workers", "0"], "--workers"),
        (vec!["collect", "--cpus", "x-1"], "--cpus"),
        (vec!["collect", "--listen", "nonsense"], "--listen"),
        (vec!["collect", "--rx-coalesce", "1s"], "--rx-coalesce"),
        (vec!["collect", "--rx-coalesce", "soon"], "--rx-coalesce"),
    ] {
        let r = run(nfstitch().args(&args));
        assert!(!r.status.success(), "{args:?} succeeded");
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn ipv6_and_several_listen_addresses() {
    if UdpSocket::bind("[::1]:0").is_err() {
        return skip("no IPv6 loopback (::1)");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.jsonl");
    let st_path = dir.path().join("s.json");
    let mut child = nfstitch()
        .args([
            "collect",
            "--listen",
            "[::1]:0",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--stats-interval",
            "0",
            "-o",
        ])
        .arg(&out)
        .arg("--stats-json")
        .arg(&st_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    while addrs.len() < 2 {
        let line = lines.next().expect("listening lines").unwrap();
        if let Some(rest) = line.strip_prefix("nfstitch: listening on ") {
            addrs.push(rest.split_whitespace().next().unwrap().parse().unwrap());
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let d = crate::util::dg(1_700_000_000 * S, Ipv4Addr::new(127, 0, 0, 1), 0, &[tcp(1, 0x10, 5)]);
    let v6 = UdpSocket::bind("[::1]:0").unwrap();
    v6.send_to(&d.bytes, addrs[0]).unwrap();
    let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
    v4.send_to(&d.bytes, addrs[1]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, "-TERM");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = stats(&st_path);
    assert_eq!(st["datagrams"], 2);
    let exporters: Vec<&str> = st["exporters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["exporter"].as_str().unwrap())
        .collect();
    assert!(exporters.contains(&"::1") && exporters.contains(&"127.0.0.1"), "{exporters:?}");
    let f = flows(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(f.len(), 2, "one flow per exporter under the default key");
}

/// Shutdown with a slow peer. One exporter (so one worker, B, receives
/// everything; about half its records belong to the other worker, A's,
/// shard), every record dumped to stdout, and nobody reads stdout for 35 s:
/// the writer blocks, B blocks on its full writer queue with records for A
/// still to route, and SIGTERM finds A idle. A waits for B however long
/// that takes (it says so after 10 s); once stdout is read again, B hands
/// over its last records and A applies them: every accepted record is in a
/// flow, applied once (a worker that gave up waiting after 30 s left them
/// unapplied, and could leave B waiting on its full inbox forever).
#[test]
fn shutdown_waits_for_a_slow_peer() {
    let dgs = traffic(1, 2000, 3000);
    let mut c = spawn(
        nfstitch(),
        &["--workers", "2", "--dump", "--rcvbuf", "8000000", "-o", "/dev/stdout"],
        Stdio::piped(),
    );
    let mut stdout = c.child.stdout.take().unwrap();
    let sent = send(&dgs, c.addr);
    std::thread::sleep(Duration::from_millis(300));
    signal(&c.child, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(35);
    let mut waiting = None;
    while Instant::now() < deadline {
        if let Ok(line) = c.stderr.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if line.contains("still waiting for 1 peers") {
                waiting = Some(line);
            }
        }
    }
    assert!(waiting.is_some(), "the waiting worker says so");
    assert!(c.child.try_wait().unwrap().is_none(), "held by its output, still running");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    let status = wait_exit(&mut c.child, Duration::from_secs(60), "collector did not stop");
    let stderr = c.rest_of_stderr();
    assert!(status.success(), "collector failed: {status}\n{stderr}");
    let text = reader.join().unwrap();
    let st = stats(&c.stats);
    let accepted = st["datagrams"].as_u64().unwrap();
    let unread = st["unread_at_shutdown"].as_u64().unwrap();
    assert_eq!(accepted + unread + st["kernel_drops"].as_u64().unwrap(), sent, "{st}");
    let workers = st["workers"].as_array().unwrap();
    assert!(workers.iter().any(|w| w["datagrams"] == 0), "one worker received nothing: {st}");
    let records = st["records"].as_u64().unwrap();
    assert_eq!(
        jsonl(&text).iter().filter(|r| r["type"] == "record").count() as u64,
        records,
        "every accepted record dumped"
    );
    assert_conserved(&flows(&text), &st);
}
