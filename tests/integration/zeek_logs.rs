//! Zeek conventions of every Zeek log nfstitch writes: a `ts` column (flows:
//! their `first`, appended after every existing column), `#open` and
//! `#close` lines around each header block, and a real Zeek log reader
//! from PyPI (the Zeek Analysis Tools' `ZeekLogReader` and
//! `LogToDataFrame`, `.ci/zat.sh`) parsing the flow log and `--pair`'s
//! conn log into typed columns indexed by `ts`.
//!
//! The Python is `$NFSTITCH_ZAT_PYTHON`, else `/opt/nfstitch-zat/bin/python`;
//! without it the reader part skips through [`skip`].

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::util::{nfstitch, run_ok, skip, testdata};

/// The zat virtual environment's Python, when its log reader imports there.
fn zat_python() -> Option<PathBuf> {
    let py = std::env::var_os("NFSTITCH_ZAT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/nfstitch-zat/bin/python"));
    let ok = Command::new(&py)
        .args(["-c", "from zat import zeek_log_reader, log_to_dataframe"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(&format!("no zat at {} (run .ci/zat.sh, or set NFSTITCH_ZAT_PYTHON)", py.display()));
    }
    ok.then_some(py)
}

/// Reads one log with zat both ways; prints JSON: the rows as the reader
/// yields them (typed values as text), and the data frame's index name,
/// column dtypes, and its `ts` index as ns.
const READER: &str = r#"
import json, sys
from zat import zeek_log_reader
from zat.log_to_dataframe import LogToDataFrame
path = sys.argv[1]
rows = [{k: str(v) for k, v in r.items()} for r in zeek_log_reader.ZeekLogReader(path).readrows()]
df = LogToDataFrame().create_dataframe(path)
print(json.dumps({
    "rows": rows,
    "index": df.index.name,
    "dtypes": {c: str(t) for c, t in df.dtypes.items()},
    "ts_ns": [int(t.value) for t in df.index],
}))
"#;

fn read_with_zat(py: &PathBuf, log: &std::path::Path) -> Value {
    let out = Command::new("timeout").arg("120").arg(py).args(["-c", READER]).arg(log).output();
    let out = out.expect("run zat");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "zat failed: {}", String::from_utf8_lossy(&out.stderr));
    // zat prints a progress line of its own before our JSON.
    let json = stdout.lines().rev().find(|l| l.starts_with('{')).expect("zat's JSON line");
    serde_json::from_str(json).unwrap()
}

/// Header blocks: `#open` before `#fields`, every block closed by `#close`
/// (the last line of the file), and in the flow block `ts` appended after
/// every column of today's schema (so no column moved).
#[test]
fn zeek_logs_open_close_and_ts() {
    let Some(data) = testdata() else { return };
    let f = data.join("logstash-codec-netflow/netflow5.dat");
    let out =
        run_ok(nfstitch().args(["replay", "-q", "--dump", "--format", "zeek"]).arg(&f)).stdout;
    let lines: Vec<&str> = out.lines().collect();
    let (mut open, mut blocks, mut paths) = (false, 0, Vec::new());
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("#separator") {
            assert!(!open, "line {i}: a new block before #close");
            open = true;
            blocks += 1;
        } else if let Some(p) = l.strip_prefix("#path\t") {
            paths.push(p.to_string());
            assert!(lines[i + 1].starts_with("#open\t"), "#open after #path: {}", lines[i + 1]);
            let stamp = &lines[i + 1][6..];
            assert_eq!(stamp.len(), 19, "{stamp}");
            assert!(stamp.starts_with("2015-05-02-18-"), "the capture clock: {stamp}");
            assert!(lines[i + 2].starts_with("#fields\t"));
        } else if l.starts_with("#close\t") {
            assert!(open, "line {i}: #close outside a block");
            open = false;
        }
    }
    assert!(!open && lines.last().unwrap().starts_with("#close\t"), "the log ends closed");
    assert!(blocks >= 3 && paths.contains(&"nfstitch_flows".to_string()), "{paths:?}");
    let fields = |path: &str| -> Vec<String> {
        let at = lines.iter().position(|l| *l == format!("#path\t{path}")).unwrap();
        lines[at + 2].split('\t').skip(1).map(str::to_string).collect()
    };
    let flow = fields("nfstitch_flows");
    let csv = run_ok(nfstitch().args(["replay", "-q", "--format", "csv"]).arg(&f)).stdout;
    let csv_cols: Vec<&str> = csv.lines().next().unwrap().split(',').skip(1).collect();
    assert_eq!(flow[..csv_cols.len()], csv_cols[..], "existing columns keep their positions");
    assert_eq!(flow[csv_cols.len()..], ["ts"], "ts appended");
    assert_eq!(fields("nfstitch_headers")[0], "ts");
    assert_eq!(fields("nfstitch_records")[0], "ts");
}

/// zat reads the flow log and the conn log: every row, typed, indexed by
/// `ts` (the flow's first; the connection's first).
#[test]
fn zat_reads_flow_and_conn_logs() {
    let Some(data) = testdata() else { return };
    let Some(py) = zat_python() else { return };
    let f = data.join("logstash-codec-netflow/netflow5.dat");
    let dir = tempfile::tempdir().unwrap();
    let key = ["--key", "proto,src,sport,dst,dport"];
    let flows = dir.path().join("flows.log");
    let conns = dir.path().join("conn.log");
    let json = dir.path().join("flows.jsonl");
    for (extra, out) in
        [(vec!["--format", "zeek"], &flows), (vec!["--format", "zeek", "--pair"], &conns)]
    {
        run_ok(nfstitch().args(["replay", "-q"]).args(key).args(extra).arg("-o").arg(out).arg(&f));
    }
    run_ok(
        nfstitch()
            .args(["replay", "-q", "--time-format", "epoch"])
            .args(key)
            .arg("-o")
            .arg(&json)
            .arg(&f),
    );

    let v = read_with_zat(&py, &flows);
    assert_eq!(v["index"], "ts");
    assert_eq!(v["rows"].as_array().unwrap().len(), 6);
    assert_eq!(v["dtypes"]["packets"], "UInt64");
    assert_eq!(v["dtypes"]["first"], "datetime64[ns]");
    let want: Vec<u64> = crate::util::jsonl(&std::fs::read_to_string(&json).unwrap())
        .iter()
        .map(|r| (r["first"].as_f64().unwrap() * 1e3).round() as u64)
        .collect();
    let got: Vec<u64> = v["ts_ns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t.as_f64().unwrap() / 1e6).round() as u64)
        .collect();
    assert_eq!(got, want, "ts is each flow's first (ms)");

    let v = read_with_zat(&py, &conns);
    assert_eq!(v["index"], "ts");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "three TCP connections: {rows:?}");
    for c in ["uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "duration"] {
        assert!(v["dtypes"].get(c).is_some(), "conn.log column {c}: {}", v["dtypes"]);
    }
    assert_eq!(v["dtypes"]["orig_pkts"], "UInt64");
    assert_eq!(v["dtypes"]["duration"], "timedelta64[ns]");
    let pkts: u64 = rows
        .iter()
        .map(|r| {
            r["orig_pkts"].as_str().unwrap().parse::<u64>().unwrap()
                + r["resp_pkts"].as_str().unwrap().parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(pkts, 230, "every packet of the capture in one connection");
    assert!(rows
        .iter()
        .all(|r| r["proto"] == "tcp" && r["uid"].as_str().unwrap().starts_with('C')));
}
