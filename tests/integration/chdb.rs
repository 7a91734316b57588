//! The native schema against a modern ClickHouse engine: chDB (the
//! `chdb-core` Python package, ClickHouse 26.x in-process; `.ci/chdb.sh`
//! installs it in a virtual environment). Debian's server is 18.16, which
//! gets the legacy schema; this is where the native one's `CREATE TABLE`
//! (types, codecs, TTL) and the rows the sink writes for it are checked.
//!
//! A collector listening on 127.0.0.1 and [::1] (so flows from IPv4 and
//! IPv6 exporters: the exporter is the one address of a flow that can be
//! IPv6) sends to a stand-in server that refuses every request, so every
//! batch ends in the spool, in the native schema (the server never told its
//! version). chDB then runs the library's native `CREATE TABLE`, loads each
//! spool file with the sink's own `INSERT ... FORMAT RowBinary` (`FROM
//! INFILE`), and SQL reads every flow back: the addresses as text (IPv4
//! mapped and IPv6), the times to the nanosecond, counters, end reasons,
//! each flow of the JSON output once. Flows as v9/IPFIX make them (IPv6
//! addresses, 32-bit ifIndex and AS, every flowEndReason), spooled the same
//! way by the library's sink, read back exactly too, and the native rollup
//! views sum them.
//!
//! The Python is `$NFSTITCH_CHDB_PYTHON`, else `/opt/nfstitch-chdb/bin/python`;
//! without it (or without [::1]) the test skips through [`skip`].

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nfstitch::sink::clickhouse::{create_table_sql, insert_sql, rollup_sql, Schema};
use nfstitch::sink::FlowSink;
use serde_json::Value;

use crate::clickhouse::{ch_collector, ident, lib_sink, mixed_flows, mixed_sql, mixed_text};
use crate::clickhouse_failures::Refuser;
use crate::collect::{send, traffic};
use crate::skip::skip;

/// The chDB virtual environment's Python, when `import chdb` works there.
fn chdb_python() -> Result<PathBuf, String> {
    let py = std::env::var_os("NFSTITCH_CHDB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/nfstitch-chdb/bin/python"));
    let ok =
        Command::new(&py).args(["-c", "import chdb"]).output().is_ok_and(|o| o.status.success());
    if ok {
        Ok(py)
    } else {
        Err(format!("no chDB at {} (run .ci/chdb.sh, or set NFSTITCH_CHDB_PYTHON)", py.display()))
    }
}

/// Runs each statement in one chDB session; the answers, in order.
const RUNNER: &str = r#"
import sys
from chdb import session
s = session.Session()
for q in open(sys.argv[1]).read().split("\n;\n"):
    if q.strip():
        sys.stdout.write(str(s.query(q)))
    sys.stdout.write("\x1e")
"#;

fn chdb(py: &Path, dir: &Path, statements: &[String]) -> Vec<String> {
    let sql = dir.join("statements.sql");
    std::fs::write(&sql, statements.join("\n;\n")).unwrap();
    let out = Command::new("timeout")
        .arg("120")
        .arg(py)
        .args(["-c", RUNNER])
        .arg(&sql)
        .output()
        .expect("run chDB");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "chDB failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<String> = stdout.split('\x1e').map(str::to_string).collect();
    assert_eq!(answers.len(), statements.len() + 1, "{stdout}");
    answers
}

/// A flow as text, the JSON output's way: [`ident`] (addresses, ports,
/// counters, flags, end reason), then the next hop and the four times
/// (RFC 3339, ns).
fn json_flow(f: &Value) -> String {
    let more = ["nexthop", "first", "last", "start", "end"]
        .map(|k| f[k].as_str().unwrap_or_else(|| panic!("no {k} in {f}")).to_string());
    format!("{} {}", ident(f), more.join(" "))
}

/// The same text from the native table's columns.
const SQL_FLOW: &str = "concat_ws(' ', \
    replaceOne(toString(exporter), '::ffff:', ''), replaceOne(toString(src_addr), '::ffff:', ''), \
    toString(src_port), replaceOne(toString(dst_addr), '::ffff:', ''), toString(dst_port), \
    toString(proto), toString(records), toString(packets), toString(octets), \
    toString(tcp_flags), toString(end_reason), replaceOne(toString(nexthop), '::ffff:', ''), \
    concat(replaceOne(toString(first, 'UTC'), ' ', 'T'), 'Z'), \
    concat(replaceOne(toString(last, 'UTC'), ' ', 'T'), 'Z'), \
    concat(replaceOne(toString(start, 'UTC'), ' ', 'T'), 'Z'), \
    concat(replaceOne(toString(end, 'UTC'), ' ', 'T'), 'Z'))";

#[test]
fn chdb_reads_back_every_flow_the_sink_wrote_in_the_native_schema() {
    let py = match chdb_python() {
        Ok(p) => p,
        Err(why) => return skip(&why),
    };
    let Ok(v6) = UdpSocket::bind("[::1]:0") else {
        return skip("no IPv6 loopback (::1): the IPv6 exporter needs it");
    };
    let server = Refuser::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let url = format!("http://{}/", server.addr);
    let flags = ["--listen", "[::1]:0", "--clickhouse-batch", "100", "--clickhouse-buffer", "100"];
    let c = ch_collector(&url, "flows", &spool, &flags);
    // start() read the first "listening on" line; the other address is next.
    let other: SocketAddr = loop {
        let line = c.stderr.recv_timeout(Duration::from_secs(20)).expect("second listen line");
        if let Some(rest) = line.strip_prefix("nfstitch: listening on ") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    let (v4_addr, v6_addr) = if c.addr.is_ipv4() { (c.addr, other) } else { (other, c.addr) };
    send(&traffic(2, 40, 300), v4_addr);
    for d in traffic(1, 40, 300) {
        v6.send_to(&d.bytes, v6_addr).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let (flows, st, stderr) = c.stop();
    let ch = &st["sinks"]["clickhouse"];
    let total = st["flows_total"].as_u64().unwrap();
    assert_eq!(flows.len() as u64, total);
    assert_eq!(ch["rows_pending_spool"].as_u64(), Some(total), "{ch}\n{stderr}");
    let exporters: Vec<&str> = flows.iter().map(|f| f["exporter"].as_str().unwrap()).collect();
    assert!(exporters.contains(&"::1") && exporters.contains(&"127.0.1.2"), "{exporters:?}");

    // Every batch is a native spool file, whole native rows.
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&spool).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty());
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(name.starts_with("batch-") && name.ends_with(".native2.rowbinary"), "{name}");
        assert_eq!(std::fs::metadata(f).unwrap().len() % Schema::Native.row_size() as u64, 0);
    }

    let table = "flows";
    let insert = insert_sql(table, Schema::Native);
    let mut sql =
        vec![create_table_sql(table, Schema::Native, Some(Duration::from_secs(30 * 86_400)))];
    for f in &files {
        let from = format!(" FROM INFILE '{}' FORMAT RowBinary", f.display());
        sql.push(insert.replace(" FORMAT RowBinary", &from));
    }
    let n = sql.len();
    sql.push(format!(
        "SELECT count(), sum(records), sum(packets), sum(octets), uniqExact(exporter) FROM {table} FORMAT TSV"
    ));
    sql.push(format!("SELECT {SQL_FLOW} FROM {table} FORMAT TSV"));
    sql.push(format!(
        "SELECT name, type FROM system.columns WHERE table = '{table}' \
         AND name IN ('exporter', 'src_addr', 'first', 'end_reason') ORDER BY name FORMAT TSVRaw"
    ));
    sql.push(format!("SELECT engine_full FROM system.tables WHERE name = '{table}' FORMAT TSVRaw"));
    // Flows as v9/IPFIX make them, spooled by the library's sink (the
    // server refuses), into a table of their own with the rollup views.
    let mixed = mixed_flows(90);
    let mixed_spool = dir.path().join("mixed");
    let mut s = lib_sink(&url, "mixed", &mixed_spool, None);
    s.flows(&mixed).unwrap();
    s.set_close_timeout(Duration::from_millis(200));
    s.close().unwrap();
    let mut mixed_files: Vec<PathBuf> =
        std::fs::read_dir(&mixed_spool).unwrap().map(|e| e.unwrap().path()).collect();
    mixed_files.sort();
    assert!(!mixed_files.is_empty());
    sql.push(create_table_sql("mixed", Schema::Native, None));
    sql.extend(rollup_sql("mixed", Schema::Native));
    for f in &mixed_files {
        let from = format!(" FROM INFILE '{}' FORMAT RowBinary", f.display());
        sql.push(insert_sql("mixed", Schema::Native).replace(" FORMAT RowBinary", &from));
    }
    let m = sql.len();
    sql.push(format!("SELECT {} FROM mixed FORMAT TSV", mixed_sql(false)));
    sql.push(
        "SELECT sum(flows), sum(octets), uniqExact(src_addr, dst_addr) FROM mixed_1m FORMAT TSV"
            .to_string(),
    );
    let a = chdb(&py, dir.path(), &sql);
    eprintln!("chDB: count, sums, exporters = {}", a[n].trim());
    let sums: Vec<u64> = a[n].split_whitespace().map(|x| x.parse().unwrap()).collect();
    let distinct: std::collections::BTreeSet<&str> = exporters.iter().copied().collect();
    assert_eq!(
        sums,
        [
            total,
            st["records"].as_u64().unwrap(),
            st["packets"].as_u64().unwrap(),
            st["octets"].as_u64().unwrap(),
            distinct.len() as u64
        ]
    );
    let mut from_chdb: Vec<&str> = a[n + 1].lines().collect();
    let mut from_json: Vec<String> = flows.iter().map(json_flow).collect();
    from_chdb.sort_unstable();
    from_json.sort();
    eprintln!("first flow: chDB {:?}, JSON {:?}", from_chdb[0], from_json[0]);
    assert_eq!(from_chdb.len(), from_json.len());
    let differ = from_chdb.iter().zip(&from_json).position(|(a, b)| a != b);
    assert!(
        differ.is_none(),
        "flow {differ:?} differs: {:?}",
        differ.map(|i| (from_chdb[i], &from_json[i]))
    );
    assert!(from_chdb.iter().any(|l| l.starts_with("::1 ")), "an IPv6 exporter reads back");
    assert_eq!(
        a[n + 2].trim().replace('\t', " "),
        "end_reason Enum8('fin' = 1, 'idle' = 2, 'evicted' = 3, 'shutdown' = 4)\n\
         exporter IPv6\nfirst DateTime64(9)\nsrc_addr IPv6"
    );
    let engine = a[n + 3].trim();
    assert!(engine.contains("PARTITION BY toYYYYMMDD(time)"), "{engine}");
    assert!(engine.contains("TTL time + toIntervalSecond(2592000)"), "{engine}");

    // Every mixed row, IPv4 and IPv6, with every value as the flow had it.
    let mut got: Vec<String> = a[m].lines().map(|l| l.replace('\t', " ")).collect();
    let mut want: Vec<String> = mixed.iter().map(|f| mixed_text(f, u32::MAX, false)).collect();
    got.sort();
    want.sort();
    eprintln!("first mixed flow: chDB {:?}, want {:?}", got[0], want[0]);
    assert_eq!(got.len(), want.len());
    let differ = got.iter().zip(&want).position(|(a, b)| a != b);
    assert!(differ.is_none(), "mixed row differs: {:?}", differ.map(|i| (&got[i], &want[i])));
    assert!(got.iter().any(|l| l.contains(" 4200000000 ")), "32-bit AS");
    let octets: u64 = mixed.iter().map(|f| f.octets).sum();
    assert_eq!(a[m + 1].trim(), format!("90\t{octets}\t90"), "the rollup sums them, pairs apart");
}
