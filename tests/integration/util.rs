//! Helpers for driving the binaries: bounded runs, test data, synthetic captures.

#![allow(dead_code)]

use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nfstitch::capture::PcapWriter;
use nfstitch::wire::{encode, HeaderFields, RecordFields};
use serde_json::Value;

pub use crate::skip::skip;

pub const S: u64 = 1_000_000_000;

pub fn nfstitch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nfstitch"))
}

/// The shared public captures: `$NFSTITCH_TESTDATA` or `../shared/testdata`.
/// `None` when absent: the test then skips ([`skip`]: a failure under
/// `$NFSTITCH_REQUIRE_ALL`).
pub fn testdata() -> Option<PathBuf> {
    let dir = std::env::var_os("NFSTITCH_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata"));
    if dir.join("oracle.tsv").is_file() {
        Some(dir)
    } else {
        skip(&format!("test data not found at {} (set NFSTITCH_TESTDATA)", dir.display()));
        None
    }
}

#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Wait for a child, killing it after `limit`.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Run {
    let start = Instant::now();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run { status, stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() }
}

/// Run to completion (bounded to 60 s), capturing output.
pub fn run(cmd: &mut Command) -> Run {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    wait_bounded(child, Duration::from_secs(60))
}

/// Run and require success.
pub fn run_ok(cmd: &mut Command) -> Run {
    let r = run(cmd);
    assert!(r.status.success(), "failed: {:?}\nstderr:\n{}", cmd, r.stderr);
    r
}

/// Parse JSON lines.
pub fn jsonl(s: &str) -> Vec<Value> {
    s.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

pub fn flows(s: &str) -> Vec<Value> {
    jsonl(s).into_iter().filter(|v| v["type"] == "flow").collect()
}

pub fn sum(vals: &[Value], field: &str) -> u64 {
    vals.iter().map(|v| v[field].as_u64().unwrap()).sum()
}

/// Read `--stats-json`.
pub fn stats(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("stats file")).expect("stats json")
}

/// Assert conservation: sums over emitted flows equal the accepted records' sums.
pub fn assert_conserved(flows: &[Value], st: &Value) {
    for (f, s) in [("records", "records"), ("packets", "packets"), ("octets", "octets")] {
        assert_eq!(sum(flows, f), st[s].as_u64().unwrap(), "sum of flow {f} != accepted {s}");
    }
    assert_eq!(flows.len() as u64, st["flows_total"].as_u64().unwrap());
    // The live collector: every record accepted was applied to the shard
    // that owns its key (its own worker's or, routed, a peer's), none left
    // behind in a peer's inbox at shutdown.
    if let Some(workers) = st["workers"].as_array() {
        let applied: u64 = workers.iter().map(|w| w["applied_records"].as_u64().unwrap()).sum();
        assert_eq!(applied, st["records"].as_u64().unwrap(), "records != applied_records: {st}");
    }
}

/// One synthetic datagram to put in a capture.
pub struct Dg {
    pub ts_ns: u64,
    pub exporter: Ipv4Addr,
    pub bytes: Vec<u8>,
}

/// A record of a TCP connection 10.0.0.1:sport -> 10.0.0.2:80.
pub fn tcp(sport: u16, flags: u8, packets: u32) -> RecordFields {
    RecordFields {
        src_addr: 0x0a00_0001,
        dst_addr: 0x0a00_0002,
        src_port: sport,
        dst_port: 80,
        proto: 6,
        tcp_flags: flags,
        packets,
        octets: packets * 100,
        first: 1000,
        last: 2000,
        ..Default::default()
    }
}

/// Encode one datagram exported at `ts_ns` (uptime 1 h, the given sequence).
pub fn dg(ts_ns: u64, exporter: Ipv4Addr, seq: u32, recs: &[RecordFields]) -> Dg {
    let h = HeaderFields {
        sys_uptime: 3_600_000,
        unix_secs: (ts_ns / S) as u32,
        unix_nsecs: (ts_ns % S) as u32,
        flow_sequence: seq,
        ..Default::default()
    };
    let mut bytes = Vec::new();
    encode(&h, recs, &mut bytes);
    Dg { ts_ns, exporter, bytes }
}

/// Write a pcap of the datagrams (to port 2055) into `dir`.
pub fn write_pcap(dir: &Path, name: &str, dgs: &[Dg]) -> PathBuf {
    let path = dir.join(name);
    let f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut w = PcapWriter::new(f).unwrap();
    for d in dgs {
        w.write_udp(d.ts_ns, (d.exporter, 40000), (Ipv4Addr::new(127, 0, 0, 1), 2055), &d.bytes)
            .unwrap();
    }
    w.into_inner().unwrap();
    path
}
