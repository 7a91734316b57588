//! Tests of the ClickHouse sink: schema and row layout, spool files, and
//! the sink's delivery, retries and spooling against a stand-in server that
//! fails on demand (the real server is tested in tests/integration/clickhouse.rs).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::cluster::{distributed_tables_sql, local_table, parse_replicas, replicas_sql, Replica};
use super::ddl::{probe_answer, probe_sql};
use super::http::PostError;
use super::migrate::{alter_sql, missing, parse_columns, Clamped, Plan};
use super::schema::{Format, COLUMNS, LEGACY1_ROW_SIZE};
use super::url::percent_decode;
use super::*;
use crate::flow::{EndReason, FlowRecord, KeySpec};
use crate::sink::FlowSink;

fn flow(i: u32) -> Flow {
    let t = 1_700_000_000_123_456_789u64 + i as u64;
    let rec = FlowRecord {
        exporter: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        engine_type: 1,
        engine_id: 2,
        sampling: (1 << 14) | 100,
        src_addr: Ipv4Addr::from(0x0a00_0001 + i).into(),
        dst_addr: Ipv4Addr::from(0x0a00_0002).into(),
        nexthop: Ipv4Addr::from(0x0a00_00fe).into(),
        input: 3,
        output: 4,
        packets: 5,
        octets: 500,
        first_ns: t,
        last_ns: t + 1,
        src_port: 1024,
        dst_port: 80,
        tcp_flags: 0x12,
        proto: 6,
        tos: 7,
        src_as: 65001,
        dst_as: 65002,
        src_mask: 24,
        dst_mask: 16,
        end_reason: 0,
    };
    Flow {
        key: KeySpec::default().key_of(&rec),
        rec,
        records: 3,
        packets: 10 + i as u64,
        octets: 1000,
        tcp_flags: 0x13,
        first_ns: t,
        last_ns: t + 5_000_000_000,
        start_ns: t + 7_000_000_000,
        seen_ns: t + 8_000_000_000,
        end_ns: t + 9_000_000_000,
        end_reason: EndReason::Idle,
        exporter_end_reason: 0,
    }
}

/// Bytes of a legacy row.
const ROW_SIZE: usize = Schema::Legacy.row_size();

/// The RowBinary width of a ClickHouse type (codec, default and all).
fn width(ty: &str) -> usize {
    match ty.split(" CODEC(").next().unwrap().split(" DEFAULT ").next().unwrap() {
        "UInt8" => 1,
        "UInt16" => 2,
        "UInt32" | "DateTime" => 4,
        "UInt64" | "DateTime64(9)" => 8,
        "FixedString(16)" | "IPv6" => 16,
        t if t.starts_with("Enum8(") => 1,
        t => panic!("no width for {t}"),
    }
}

#[test]
fn columns_match_the_json_fields_and_the_row_size() {
    let names = |s: Schema| s.columns().map(|(c, _)| c.name).collect::<Vec<_>>().join(",");
    let common =
        "exporter,engine_type,engine_id,src_addr,src_port,dst_addr,dst_port,proto,records,\
         packets,octets,tcp_flags,first,last,end_reason,start,end,input,output,nexthop,tos,\
         src_as,dst_as,src_mask,dst_mask,sampling_mode,sampling_interval,time,exporter_end_reason";
    assert_eq!(names(Schema::Native), common);
    assert_eq!(names(Schema::Legacy), format!("{common},src_addr6,dst_addr6,nexthop6"));
    for s in [Schema::Legacy, Schema::Native] {
        let w: usize =
            COLUMNS.iter().filter_map(|c| s.column_type(c, true)).map(|t| width(&t)).sum();
        assert_eq!(w, s.row_size(), "{s:?}");
        // The encoder's kind of every column is what the server's type says.
        for (c, t) in s.columns() {
            assert_eq!(schema::Ty::of_server(t.sql, c.class()), Some(t.ty), "{}", c.name);
        }
    }
    // 111 + 4 x 2 (ifIndex, AS: UInt32) + 1 (exporter_end_reason) + 3 x 16;
    // 147 + 8 + 1.
    assert_eq!((Schema::Legacy.row_size(), Schema::Native.row_size()), (168, 156));
    assert_eq!((Format::Legacy1.row_size(), Format::Native1.row_size()), (LEGACY1_ROW_SIZE, 147));
    let c = create_table_sql("db.t1", Schema::Legacy, Some(Duration::from_secs(86400)));
    assert!(c.starts_with("CREATE TABLE IF NOT EXISTS `db`.`t1` (`exporter` FixedString(16), "));
    assert!(c.contains(", `input` UInt32, `output` UInt32, "), "{c}");
    assert!(c.contains(", `src_as` UInt32, `dst_as` UInt32, "), "{c}");
    assert!(c.contains(", `src_addr6` FixedString(16) DEFAULT IPv4ToIPv6(`src_addr`), "), "{c}");
    assert!(c.contains(", `exporter_end_reason` Enum8('' = 0, 'idle' = 1, "), "{c}");
    assert!(c.ends_with("ORDER BY (`time`, `exporter`, `src_addr`, `dst_addr`)"), "{c}");
    let i = insert_sql("t", Schema::Legacy);
    assert!(i.starts_with("INSERT INTO `t` (`exporter`, `engine_type`, "));
    assert!(i.ends_with(", `time`, `exporter_end_reason`, `src_addr6`, `dst_addr6`, `nexthop6`) FORMAT RowBinary"), "{i}");
    let i = insert_sql("t", Schema::Native);
    assert!(i.ends_with(", `time`, `exporter_end_reason`) FORMAT RowBinary"), "{i}");
}

/// The legacy row of releases before IPv6 (`UInt16` ifIndex and AS, no
/// `exporter_end_reason`, no `*6`), written by hand as they wrote it: what
/// their spool files hold.
fn legacy1_row(f: &Flow, b: &mut Vec<u8>) {
    let v4 = |a: IpAddr| match a {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(_) => 0,
    };
    let mapped = |a: IpAddr| match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    let r = &f.rec;
    b.extend_from_slice(&mapped(r.exporter));
    b.extend_from_slice(&[r.engine_type, r.engine_id]);
    b.extend_from_slice(&v4(r.src_addr).to_le_bytes());
    b.extend_from_slice(&r.src_port.to_le_bytes());
    b.extend_from_slice(&v4(r.dst_addr).to_le_bytes());
    b.extend_from_slice(&r.dst_port.to_le_bytes());
    b.push(r.proto);
    for v in [f.records, f.packets, f.octets] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.push(f.tcp_flags);
    b.extend_from_slice(&f.first_ns.to_le_bytes());
    b.extend_from_slice(&f.last_ns.to_le_bytes());
    b.push(match f.end_reason {
        EndReason::Fin => 1,
        EndReason::Idle => 2,
        EndReason::Evicted => 3,
        EndReason::Shutdown => 4,
    });
    b.extend_from_slice(&f.start_ns.to_le_bytes());
    b.extend_from_slice(&f.end_ns.to_le_bytes());
    b.extend_from_slice(&(r.input as u16).to_le_bytes());
    b.extend_from_slice(&(r.output as u16).to_le_bytes());
    b.extend_from_slice(&v4(r.nexthop).to_le_bytes());
    b.push(r.tos);
    b.extend_from_slice(&(r.src_as as u16).to_le_bytes());
    b.extend_from_slice(&(r.dst_as as u16).to_le_bytes());
    b.extend_from_slice(&[r.src_mask, r.dst_mask, (r.sampling >> 14) as u8]);
    b.extend_from_slice(&(r.sampling & 0x3fff).to_le_bytes());
    b.extend_from_slice(&((f.start_ns / 1_000_000_000) as u32).to_le_bytes());
}

#[test]
fn rowbinary_layout_of_one_flow() {
    let f = flow(0);
    let mut b = Vec::new();
    encode_row(Schema::Legacy, &f, &mut b);
    assert_eq!(b.len(), ROW_SIZE);
    let mut off = 0;
    let mut take = |n: usize| {
        let s = &b[off..off + n];
        off += n;
        s.to_vec()
    };
    let u = |v: Vec<u8>| v.iter().rev().fold(0u64, |a, &x| a << 8 | x as u64);
    let mapped = |a: [u8; 4]| Ipv4Addr::from(a).to_ipv6_mapped().octets().to_vec();
    assert_eq!(take(16), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]);
    assert_eq!(take(1), [1]); // engine_type
    assert_eq!(take(1), [2]); // engine_id
    assert_eq!(take(4), [1, 0, 0, 10]); // src_addr 10.0.0.1, UInt32 LE
    assert_eq!(u(take(2)), 1024);
    assert_eq!(u(take(4)), 0x0a00_0002);
    assert_eq!(u(take(2)), 80);
    assert_eq!(take(1), [6]);
    assert_eq!(u(take(8)), 3); // records
    assert_eq!(u(take(8)), 10); // packets
    assert_eq!(u(take(8)), 1000); // octets
    assert_eq!(take(1), [0x13]); // tcp_flags
    assert_eq!(u(take(8)), f.first_ns);
    assert_eq!(u(take(8)), f.last_ns);
    assert_eq!(take(1), [2]); // end_reason idle
    assert_eq!(u(take(8)), f.start_ns);
    assert_eq!(u(take(8)), f.end_ns);
    assert_eq!(u(take(4)), 3); // input
    assert_eq!(u(take(4)), 4); // output
    assert_eq!(u(take(4)), 0x0a00_00fe);
    assert_eq!(take(1), [7]); // tos
    assert_eq!(u(take(4)), 65001);
    assert_eq!(u(take(4)), 65002);
    assert_eq!(take(2), [24, 16]); // masks
    assert_eq!(take(1), [1]); // sampling_mode deterministic
    assert_eq!(u(take(2)), 100);
    assert_eq!(u(take(4)), f.start_ns / 1_000_000_000); // time
    assert_eq!(take(1), [0]); // exporter_end_reason none
    assert_eq!(take(16), mapped([10, 0, 0, 1])); // src_addr6
    assert_eq!(take(16), mapped([10, 0, 0, 2])); // dst_addr6
    assert_eq!(take(16), mapped([10, 0, 0, 254])); // nexthop6
    assert_eq!(off, ROW_SIZE);

    // IPv6, 32-bit ifIndex and AS, a flowEndReason.
    let mut g = f;
    let v6 = |x: u16| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, x);
    g.rec.exporter = IpAddr::V6(v6(1));
    g.rec.src_addr = IpAddr::V6(v6(2));
    g.rec.dst_addr = IpAddr::V6(v6(3));
    g.rec.nexthop = IpAddr::V6(v6(4));
    (g.rec.input, g.rec.output, g.rec.src_as, g.rec.dst_as) =
        (70_000, 1 << 31, 4_200_000_000, 65536);
    g.end_reason = EndReason::Shutdown;
    g.exporter_end_reason = 3;
    let mut b = Vec::new();
    encode_row(Schema::Legacy, &g, &mut b);
    assert_eq!(&b[..16], &v6(1).octets());
    assert_eq!(b[18..22], [0; 4], "an IPv6 src_addr is 0 in the UInt32 column");
    assert_eq!(b[16 + 2 + 4 + 2 + 4 + 2 + 1 + 24 + 1 + 16], 4);
    let at = 16 + 2 + 4 + 2 + 4 + 2 + 1 + 24 + 1 + 16 + 1 + 16;
    let u32at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    assert_eq!((u32at(at), u32at(at + 4)), (70_000, 1 << 31));
    assert_eq!((u32at(at + 13), u32at(at + 17)), (4_200_000_000, 65536));
    let end = ROW_SIZE - 49;
    assert_eq!(b[end], 3, "exporter_end_reason end_of_flow");
    assert_eq!(b[end + 1..end + 17], v6(2).octets());
    assert_eq!(b[end + 17..end + 33], v6(3).octets());
    assert_eq!(b[end + 33..], v6(4).octets());
    // The old layout, by hand, is what the Legacy1 format says.
    let mut old = Vec::new();
    legacy1_row(&f, &mut old);
    assert_eq!(old.len(), Format::Legacy1.row_size());
}

#[test]
fn urls_and_ca_files_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    fn client(u: &str, ca: Option<&Path>) -> anyhow::Result<http::Client> {
        http::Client::new(&ClickHouseUrl::new(u), None, ca)
    }
    let ok = |u: &str| client(u, None).map(|c| format!("{c:?}"));
    assert_eq!(ok("http://127.0.0.1:8123/").unwrap(), "http://127.0.0.1:8123/");
    assert_eq!(ok("https://ch.example:8443/").unwrap(), "https://ch.example:8443/");
    // No password in messages.
    assert_eq!(
        ok("http://u:s3cret@[::1]:9/x?database=db").unwrap(),
        "http://u:***@[::1]:9/x?database=db"
    );
    assert!(ok("http://ch?user=a").is_ok());
    for bad in ["ftp://ch/", "ch:8123", "http://:8123/", "http://h:x/", "http://h:99999/"] {
        let e = ok(bad).unwrap_err().to_string();
        assert!(e.starts_with("--clickhouse "), "{bad}: {e}");
        let with_pw = bad.replacen("//", "//u:s3cret@", 1).replace("ch:", "u:s3cret@ch:");
        let e = format!("{:#}", ok(&with_pw).unwrap_err());
        assert!(e.starts_with("--clickhouse ") && !e.contains("s3cret"), "{with_pw}: {e}");
    }
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let ca = |u: &str, f: &Path| client(u, Some(f)).unwrap_err().to_string();
    let e = ca("https://h/", &not_pem);
    assert!(e.starts_with("--clickhouse-ca ") && e.contains("no certificate"), "{e}");
    let e = ca("https://h/", &dir.path().join("missing.pem"));
    assert!(e.starts_with("--clickhouse-ca ") && e.contains("cannot read"), "{e}");
    let e = ca("http://u:p@h/", &not_pem);
    assert_eq!(e, "--clickhouse-ca is for https:// URLs; --clickhouse is http://u:***@h/");
}

#[test]
fn post_errors_say_what_failed() {
    let url = |u: String| ClickHouseUrl::new(u);
    let closed =
        http::Client::new(&url(format!("http://127.0.0.1:{}/", closed_port())), None, None)
            .unwrap();
    let e = closed.post("SELECT 1", b"").unwrap_err().to_string();
    assert!(e.starts_with("cannot connect: "), "{e}");
    let fake = Fake::start(1);
    let client = http::Client::new(&url(fake.url.clone()), None, None).unwrap();
    let e = client.post("SELECT 1", b"").unwrap_err().to_string();
    assert_eq!(e, "HTTP 500: Code: fake");
    client.post("SELECT 1", b"").unwrap();
}

#[test]
fn auth_and_url_parameters_reach_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(0);
    let url = fake.url.replace("http://", "http://user:pass@") + "x?database=db";
    let mut s = ClickHouseSink::new(cfg(url, dir.path(), 10, 20)).unwrap();
    s.flows(&[flow(0)]).unwrap();
    s.close().unwrap();
    assert_eq!(counter(&s, "rows_inserted"), 1);
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.len(), 4, "probe, CREATE, columns and INSERT");
    assert!(seen[0].line.contains("query=SELECT version(), (SELECT any(type) FROM system.columns WHERE database = currentDatabase() AND table = 't' AND name = 'src_addr') FORMAT TSV "), "{}", seen[0].line);
    for r in seen.iter() {
        assert!(r.line.starts_with("POST /x?database=db&query="), "{}", r.line);
        // base64("user:pass")
        assert!(r.head.contains("\r\nauthorization: basic dxnlcjpwyxnz\r\n"), "{}", r.head);
        assert!(r.head.contains("\r\ncontent-type: application/octet-stream\r\n"), "{}", r.head);
    }
}

#[test]
fn spool_files_come_back_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let row = |s, i| {
        let mut b = Vec::new();
        encode_row(s, &flow(i), &mut b);
        b
    };
    let rows = |s, n| (0..n).flat_map(|i| row(s, i)).collect::<Vec<u8>>();
    let old = |n| {
        let mut b = Vec::new();
        (0..n).for_each(|i| legacy1_row(&flow(i), &mut b));
        b
    };
    for (seq, s) in [(12u64, Schema::Native), (3, Schema::Legacy), (7, Schema::Native)] {
        write_spool_file(dir.path(), seq, Format::of(s), &rows(s, seq as u32)).unwrap();
    }
    // Left by a release before IPv6: untagged legacy, "native".
    std::fs::write(dir.path().join("batch-000000000001.rowbinary"), old(2)).unwrap();
    let mut n1 = Vec::new();
    let plan = Plan::new("t", Format::Legacy1, Some(&native1_columns()), Schema::Native).unwrap();
    n1.extend(plan.convert(&old(4), &mut Clamped::default()));
    std::fs::write(dir.path().join("batch-000000000002.native.rowbinary"), &n1).unwrap();
    // 111 bytes: one old legacy row, not whole native rows.
    std::fs::write(dir.path().join("batch-000000000009.native2.rowbinary"), old(1)).unwrap();
    std::fs::write(dir.path().join("batch-000000000010.legacy2.rowbinary"), []).unwrap();
    std::fs::write(dir.path().join("batch-000000000011.v9.rowbinary"), [0]).unwrap();
    std::fs::write(dir.path().join("unrelated.txt"), "x").unwrap();
    let (found, bad) = scan_spool(dir.path()).unwrap();
    assert_eq!(bad, 1);
    let got: Vec<(u64, usize, Format)> =
        found.iter().map(|(s, e)| (*s, e.rows, e.format)).collect();
    assert_eq!(
        got,
        [
            (1, 2, Format::Legacy1),
            (2, 4, Format::Native1),
            (3, 3, Format::Legacy),
            (7, 7, Format::Native),
            (12, 12, Format::Native)
        ]
    );
    assert_eq!(found[&3].path, dir.path().join("batch-000000000003.legacy2.rowbinary"));
    assert_eq!(std::fs::read(&found[&3].path).unwrap(), rows(Schema::Legacy, 3));
    assert_eq!(found[&7].path, dir.path().join("batch-000000000007.native2.rowbinary"));
    assert_eq!(std::fs::read(&found[&7].path).unwrap(), rows(Schema::Native, 7));
    assert!(dir.path().join("batch-000000000009.native2.rowbinary.bad").exists());
    // A tag this release does not know is left alone.
    assert!(dir.path().join("batch-000000000011.v9.rowbinary").exists());
    assert!(!dir.path().join("batch-000000000010.legacy2.rowbinary").exists());
    let (none, _) = scan_spool(&dir.path().join("missing")).unwrap();
    assert!(none.is_empty());
}

fn cfg(url: String, dir: &Path, batch: usize, buffer: usize) -> ClickHouseConfig {
    ClickHouseConfig {
        url: ClickHouseUrl::new(url),
        password: None,
        spool_max_bytes: u64::MAX,
        table: "t".into(),
        batch_rows: batch,
        batch_interval: Duration::from_millis(10),
        max_buffered_rows: buffer,
        spool_dir: dir.to_path_buf(),
        ca: None,
        ttl: None,
        rollups: false,
        cluster: None,
    }
}

fn counter(s: &ClickHouseSink, name: &str) -> u64 {
    s.counters().into_iter().find(|c| c.0 == name).unwrap().1
}

fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn batch_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".rowbinary"))
                .count()
        })
        .unwrap_or(0)
}

/// A request the stand-in saw.
struct Req {
    /// The request line, percent-decoded.
    line: String,
    /// The request line and the headers, lowercased.
    head: String,
    body: Vec<u8>,
    /// Answered 200.
    ok: bool,
}

type Seen = Arc<Mutex<Vec<Req>>>;

/// A stand-in ClickHouse: answers the first `fail` requests with 500
/// (chunked) or the answer given, the rest with 200, and records every request.
struct Fake {
    url: String,
    seen: Seen,
    stop: Arc<AtomicBool>,
    port: u16,
    h: Option<JoinHandle<()>>,
}

impl Fake {
    fn start(fail: usize) -> Fake {
        Fake::answering(
            fail,
            b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n\
              6\r\nCode: \r\n4\r\nfake\r\n0\r\n\r\n",
        )
    }

    fn answering(fail: usize, failure: &'static [u8]) -> Fake {
        Fake::probed(fail, failure, "18.16.1\t\n")
    }

    /// Like [`Fake::answering`]; a successful probe (a query with
    /// `version()`) is answered with `probe`.
    fn probed(fail: usize, failure: &'static [u8], probe_answer: &'static str) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let h = std::thread::spawn(move || {
            let mut n = 0;
            for conn in l.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let mut s = conn.unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    let k = s.read(&mut chunk).unwrap();
                    assert!(k > 0, "client closed early");
                    buf.extend_from_slice(&chunk[..k]);
                };
                let head = String::from_utf8(buf[..head_end].to_vec()).unwrap().to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                while buf.len() < head_end + len {
                    let k = s.read(&mut chunk).unwrap();
                    assert!(k > 0);
                    buf.extend_from_slice(&chunk[..k]);
                }
                let raw = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let line = percent_decode(raw.lines().next().unwrap());
                n += 1;
                let body = buf[head_end..].to_vec();
                let probe = line.contains("version()");
                seen2.lock().unwrap().push(Req { line, head, body, ok: n > fail });
                let answer = if n <= fail {
                    failure.to_vec()
                } else if probe {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{probe_answer}",
                        probe_answer.len()
                    )
                    .into_bytes()
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec()
                };
                s.write_all(&answer).unwrap();
            }
        });
        Fake { url: format!("http://127.0.0.1:{port}/"), seen, stop, port, h: Some(h) }
    }

    fn inserts(&self) -> Vec<Vec<u8>> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|r| r.ok && r.line.contains("query=INSERT"))
            .map(|r| r.body.clone())
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.h.take() {
            let _ = h.join();
        }
    }
}

/// Compare delivered bytes with the expected rows without printing megabytes.
fn assert_rows(got: Vec<Vec<u8>>, n: u32) {
    let got = got.concat();
    let want = encoded(n);
    assert_eq!(got.len(), want.len(), "delivered bytes");
    let first_diff = got.iter().zip(&want).position(|(a, b)| a != b);
    assert_eq!(
        first_diff,
        None,
        "first differing byte (row {:?})",
        first_diff.map(|i| i / ROW_SIZE)
    );
}

fn encoded(n: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for i in 0..n {
        encode_row(Schema::Legacy, &flow(i), &mut b);
    }
    b
}

#[test]
fn server_down_buffers_then_spools_and_close_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let mut s = ClickHouseSink::new(cfg(url.clone(), &spool, 10, 20)).unwrap();
    assert!(!spool.exists(), "the spool directory is made only when needed");
    let flows: Vec<Flow> = (0..105).map(flow).collect();
    s.flows(&flows).unwrap();
    // 10 sealed batches: 2 fit in memory, 8 are spooled; 5 rows wait in the open batch.
    assert_eq!(counter(&s, "rows_buffered"), 25);
    assert_eq!(counter(&s, "rows_spooled"), 80);
    assert_eq!(counter(&s, "rows_pending_spool"), 80);
    assert_eq!(batch_files(&spool), 8);
    let t = Instant::now();
    while counter(&s, "insert_errors") < 2 {
        assert!(t.elapsed() < Duration::from_secs(10), "the sender never tried");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(counter(&s, "retries") >= 1);
    // The open batch is sealed by time (it goes to the spool: memory is full).
    s.tick(Instant::now() + Duration::from_millis(20)).unwrap();
    assert_eq!(counter(&s, "rows_buffered"), 20);
    assert_eq!(counter(&s, "rows_pending_spool"), 85);

    s.set_close_timeout(Duration::from_millis(300));
    let t = Instant::now();
    s.close().unwrap();
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2), "{took:?}");
    assert_eq!(counter(&s, "rows_inserted"), 0);
    assert_eq!(counter(&s, "rows_buffered"), 0);
    assert_eq!(counter(&s, "rows_pending_spool"), 105);
    assert_eq!(counter(&s, "rows_spooled"), 105);
    assert_eq!(counter(&s, "rows_dropped"), 0);
    assert_eq!(batch_files(&spool), 11);
    drop(s);

    // The next run finds them, and delivers them oldest first once a server answers.
    let fake = Fake::start(0);
    let mut s = ClickHouseSink::new(cfg(fake.url.clone(), &spool, 10, 20)).unwrap();
    assert_eq!(counter(&s, "rows_pending_spool"), 105);
    s.flows(&[flow(105)]).unwrap();
    s.close().unwrap();
    assert_eq!(counter(&s, "rows_inserted"), 106);
    assert_eq!(counter(&s, "batches_inserted"), 12);
    assert_eq!(counter(&s, "rows_pending_spool"), 0);
    assert_eq!(batch_files(&spool), 0);
    assert_rows(fake.inserts(), 106);
}

#[test]
fn failures_are_retried_with_backoff_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    // Two attempts fail whole (probe, version; no CREATE with the schema
    // unknown; insert); in the third the probe fails, the version and the
    // rest work.
    let fake = Fake::start(7);
    let mut s = ClickHouseSink::new(cfg(fake.url.clone(), dir.path(), 10, 20)).unwrap();
    let flows: Vec<Flow> = (0..100).map(flow).collect();
    s.flows(&flows).unwrap();
    assert_eq!(counter(&s, "rows_spooled"), 80);
    let t = Instant::now();
    s.close().unwrap();
    // close() retries at once, then after the 100 ms backoff.
    assert!(t.elapsed() >= Duration::from_millis(100), "{:?}", t.elapsed());
    assert_eq!(counter(&s, "rows_inserted"), 100);
    assert_eq!(counter(&s, "batches_inserted"), 10);
    assert_eq!(counter(&s, "insert_errors"), 2);
    assert_eq!(counter(&s, "retries"), 2);
    assert_eq!(counter(&s, "rows_pending_spool"), 0);
    assert_eq!(counter(&s, "rows_buffered"), 0);
    assert_eq!(batch_files(dir.path()), 0);
    // Oldest first: memory batches 1-2, then spooled 3-10, so in flow order.
    assert_rows(fake.inserts(), 100);
    let seen = fake.seen.lock().unwrap();
    let lines: Vec<&str> = seen.iter().map(|r| r.line.as_str()).collect();
    assert!(lines[0].starts_with("POST /?query=SELECT version(), (SELECT any(type) "), "{lines:?}");
    assert!(lines[1].starts_with("POST /?query=SELECT version() FORMAT TSV "), "{lines:?}");
    assert!(lines[2].starts_with("POST /?query=INSERT INTO `t` (`exporter`, "), "{lines:?}");
    let create = "POST /?query=CREATE TABLE IF NOT EXISTS `t` (`exporter` FixedString(16), ";
    assert!(lines[8].starts_with(create), "{lines:?}");
    assert!(lines[9].starts_with("POST /?query=SELECT name, type FROM system.columns "));
    assert!(lines[10].starts_with("POST /?query=INSERT INTO `t` (`exporter`, "));
    assert!(lines[10].ends_with(", `nexthop6`) FORMAT RowBinary HTTP/1.1"), "{}", lines[10]);
    // After success no more CREATE (and none before the schema was known).
    assert_eq!(seen.iter().filter(|r| r.line.contains("CREATE")).count(), 1);
}

#[test]
fn bad_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(ClickHouseSink::new(cfg("ftp://h/".into(), dir.path(), 1, 1)).is_err());
    let mut c = cfg("http://h/".into(), dir.path(), 1, 1);
    c.table = "t; DROP".into();
    assert!(ClickHouseSink::new(c).is_err());
    assert!(ClickHouseSink::new(cfg("http://h/".into(), dir.path(), 2, 1)).is_err());
}

/// What ClickHouse 18.16 answers to a wrong password (checked against one;
/// newer servers say `Code: 516` and 401 or 403).
const WRONG_PASSWORD: &[u8] = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 96\r\n\r\n\
    Code: 193, e.displayText() = DB::Exception: Wrong password for user default, e.what() = DB::Excep";

#[test]
fn errors_are_told_permanent_or_transient() {
    let http = |code: u16, msg: &str| PostError::Http(code, msg.to_string());
    for (e, permanent) in [
        (http(401, ""), true),
        (http(403, "Code: 497. DB::Exception: u: Not enough privileges"), true),
        (http(500, "Code: 193, e.displayText() = DB::Exception: Wrong password for user x"), true),
        (http(516, "Code: 516. DB::Exception: default: Authentication failed"), true),
        (http(500, "Code: 81, e.displayText() = DB::Exception: Database nope doesn't exist"), true),
        (
            http(404, "Code: 60, e.displayText() = DB::Exception: Table default.t doesn't exist"),
            true,
        ),
        (http(500, "Code: 33, e.displayText() = DB::Exception: Cannot read all data"), true),
        (http(400, "Code: 62. DB::Exception: Syntax error"), true),
        (http(500, "Code: 252, e.displayText() = DB::Exception: Too many parts (300)"), false),
        (http(400, "Code: 241. DB::Exception: Memory limit (total) exceeded"), false),
        (http(500, "Code: 1000, e.displayText() = DB::Exception: something"), false),
        (http(503, ""), false),
        (http(429, ""), false),
        (http(408, ""), false),
        (PostError::Request("bad".into()), false),
    ] {
        assert_eq!(e.is_permanent(), permanent, "{e}");
    }
    assert_eq!(http(500, "Code: 193, e.displayText()").clickhouse_code(), Some(193));
    assert_eq!(http(500, "Code: 516. DB").clickhouse_code(), Some(516));
    assert_eq!(http(500, "no code").clickhouse_code(), None);
}

/// Waits (bounded) until `what` holds.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_permanent_error_is_retried_slowly_and_fixing_it_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    // The first attempt (probe, version and INSERT) is refused with 401; a
    // person fixes the password on the server; the next attempt works.
    let fake = Fake::answering(3, WRONG_PASSWORD);
    let mut s = ClickHouseSink::new(cfg(fake.url.clone(), dir.path(), 10, 20)).unwrap();
    s.set_permanent_retry(Duration::from_millis(800));
    let flows: Vec<Flow> = (0..50).map(flow).collect();
    s.flows(&flows).unwrap();
    wait_for("the permanent error", || counter(&s, "permanent_error") == 1);
    let t = Instant::now();
    assert_eq!(counter(&s, "permanent_errors"), 1);
    assert_eq!(counter(&s, "insert_errors"), 1);
    // No tight loop: a transient error would have been retried after 100,
    // 200 and 400 ms by now.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fake.seen.lock().unwrap().len(), 3, "requests within the retry interval");
    assert_eq!(counter(&s, "retries"), 0);
    // Held meanwhile: 20 in memory, 30 spooled.
    assert_eq!(counter(&s, "rows_buffered") + counter(&s, "rows_pending_spool"), 50);
    wait_for("the slow retry to deliver", || counter(&s, "rows_inserted") == 50);
    assert!(t.elapsed() >= Duration::from_millis(700), "{:?}", t.elapsed());
    assert_eq!(counter(&s, "permanent_error"), 0);
    assert_eq!(counter(&s, "retries"), 1);
    s.close().unwrap();
    assert_eq!(counter(&s, "permanent_errors"), 1);
    assert_eq!(counter(&s, "dropped_flows"), 0);
    assert_eq!(batch_files(dir.path()), 0);
    assert_rows(fake.inserts(), 50);
}

#[test]
fn close_gives_a_permanent_error_one_attempt_not_the_whole_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::answering(usize::MAX, WRONG_PASSWORD);
    let mut s = ClickHouseSink::new(cfg(fake.url.clone(), dir.path(), 10, 20)).unwrap();
    s.flows(&(0..15).map(flow).collect::<Vec<_>>()).unwrap();
    wait_for("the permanent error", || counter(&s, "permanent_error") == 1);
    let t = Instant::now();
    s.close().unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "close took {:?}", t.elapsed());
    assert_eq!(counter(&s, "permanent_errors"), 2, "one more attempt at close");
    assert_eq!(counter(&s, "rows_pending_spool"), 15);
    assert_eq!(batch_files(dir.path()), 2);
}

#[test]
fn the_spool_is_bounded_and_what_does_not_fit_is_counted_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let mut c = cfg(url, &spool, 10, 20);
    // Room for 5 batches of 10 flows, not 6 (the server never answered, so
    // batches are in the schema the sink starts with, the native one).
    const NATIVE: usize = Schema::Native.row_size();
    c.spool_max_bytes = (6 * 10 * NATIVE - 1) as u64;
    let mut s = ClickHouseSink::new(c.clone()).unwrap();
    s.flows(&(0..105).map(flow).collect::<Vec<_>>()).unwrap();
    // 10 batches sealed: 1-2 in memory, 3-7 spooled, 8-10 dropped; 5 open.
    assert_eq!(counter(&s, "rows_buffered"), 25);
    assert_eq!(counter(&s, "rows_pending_spool"), 50);
    assert_eq!(counter(&s, "spool_bytes"), (50 * NATIVE) as u64);
    assert_eq!(counter(&s, "dropped_flows"), 30);
    assert_eq!(batch_files(&spool), 5);
    s.set_close_timeout(Duration::from_millis(100));
    s.close().unwrap();
    // At close the open batch (5) still fits, the 20 in memory do not.
    let n = |k| counter(&s, k);
    assert_eq!((n("rows_pending_spool"), n("dropped_flows"), n("rows_inserted")), (55, 50, 0));
    assert_eq!(n("rows_pending_spool") + n("dropped_flows") + n("rows_inserted"), 105);
    assert_eq!(n("rows_dropped"), 0);
    let on_disk: u64 =
        std::fs::read_dir(&spool).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert_eq!(on_disk, (55 * NATIVE) as u64);
    assert!(on_disk <= c.spool_max_bytes);
    drop(s);

    // The next run delivers what was kept, in order: flows 20..70 and 100..105.
    let fake = Fake::start(0);
    let mut s =
        ClickHouseSink::new(ClickHouseConfig { url: ClickHouseUrl::new(fake.url.clone()), ..c })
            .unwrap();
    s.close().unwrap();
    assert_eq!(counter(&s, "rows_inserted"), 55);
    assert_eq!(counter(&s, "spool_bytes"), 0);
    let all = encoded(105);
    let want = [&all[20 * ROW_SIZE..70 * ROW_SIZE], &all[100 * ROW_SIZE..]].concat();
    assert!(fake.inserts().concat() == want, "flows 20..70 and 100..105 delivered in order");
}

#[test]
fn an_outside_password_is_sent_as_basic_auth_with_the_urls_user() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(0);
    let mut c = cfg(fake.url.replace("http://", "http://bob@"), dir.path(), 10, 20);
    c.password = Some(Password::new("pa:ss", "test"));
    let mut s = ClickHouseSink::new(c).unwrap();
    s.flows(&[flow(0)]).unwrap();
    s.close().unwrap();
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.len(), 4, "probe, CREATE, columns and INSERT");
    for r in seen.iter() {
        // base64("bob:pa:ss")
        assert!(r.head.contains("\r\nauthorization: basic ym9ionbhonnz\r\n"), "{}", r.head);
    }
}

#[test]
fn the_server_version_or_the_existing_table_picks_the_schema() {
    use Schema::{Legacy, Native};
    for (v, s) in [
        ("18.16.1", Some(Legacy)),
        ("19.17.4.11", Some(Legacy)),
        ("20.2.1.2120", Some(Legacy)),
        ("20.3.1.1", Some(Native)),
        ("24.8.4.13-lts", Some(Native)),
        ("26.9.2.1\n", Some(Native)),
        ("100.1", Some(Native)),
        ("", None),
        ("18", None),
        ("x.1.2", None),
        ("Code: 193", None),
    ] {
        assert_eq!(Schema::for_server(v), s, "{v:?}");
    }
    // The existing table wins over the version: a server upgraded under a
    // legacy table keeps getting legacy rows.
    for (answer, s) in [
        ("18.16.1\t\n", Ok(Legacy)),
        ("26.9.2.1\t\n", Ok(Native)),
        ("26.9.2.1\tUInt32\n", Ok(Legacy)),
        ("26.9.2.1\tIPv6\n", Ok(Native)),
        ("26.9.2.1\tString\n", Ok(Native)),
        ("26.9.2.1", Ok(Native)),
    ] {
        assert_eq!(probe_answer(answer), s, "{answer:?}");
    }
    assert!(probe_answer("oops\t\n").unwrap_err().contains("not a ClickHouse version"));
    assert_eq!(
        probe_sql("db.t"),
        "SELECT version(), (SELECT any(type) FROM system.columns WHERE database = 'db' \
         AND table = 't' AND name = 'src_addr') FORMAT TSV"
    );
}

#[test]
fn the_native_table_has_native_types_codecs_and_the_ttl() {
    let day = Duration::from_secs(86_400);
    let n = create_table_sql("db.t", Schema::Native, Some(30 * day));
    for part in [
        "CREATE TABLE IF NOT EXISTS `db`.`t` (`exporter` IPv6 CODEC(ZSTD(1)), ",
        "`src_addr` IPv6 CODEC(ZSTD(1)), ",
        "`packets` UInt64 CODEC(T64, ZSTD(1)), ",
        "`first` DateTime64(9) CODEC(Delta, ZSTD(1)), ",
        "`end_reason` Enum8('fin' = 1, 'idle' = 2, 'evicted' = 3, 'shutdown' = 4), ",
        "`time` DateTime CODEC(DoubleDelta, ZSTD(1)), ",
        "`exporter_end_reason` Enum8('' = 0, 'idle' = 1, 'active' = 2, 'end_of_flow' = 3, \
         'forced_end' = 4, 'lack_of_resources' = 5, 'reserved' = 127)) ENGINE = MergeTree PARTITION BY toYYYYMMDD(`time`) \
         ORDER BY (`time`, `exporter`, `src_addr`, `dst_addr`) TTL `time` + INTERVAL 2592000 SECOND \
         SETTINGS ttl_only_drop_parts = 1",
    ] {
        assert!(n.contains(part), "{part}\nnot in\n{n}");
    }
    assert!(!create_table_sql("t", Schema::Native, None).contains("TTL"));
    assert!(n.contains("`input` UInt32 CODEC(ZSTD(1)), "), "{n}");
    assert!(n.contains("`src_as` UInt32 CODEC(ZSTD(1)), "), "{n}");
    assert!(!n.contains("src_addr6"), "{n}");
    let l = create_table_sql("t", Schema::Legacy, Some(30 * day));
    assert!(!l.contains("TTL") && !l.contains("CODEC") && l.contains("`src_addr` UInt32, "), "{l}");
}

/// The columns of a legacy table made by a release before IPv6 (its
/// `CREATE TABLE`), as `system.columns` lists them.
fn legacy1_columns() -> Vec<(String, String)> {
    let end = "Enum8('fin' = 1, 'idle' = 2, 'evicted' = 3, 'shutdown' = 4)";
    let mode = "Enum8('none' = 0, 'deterministic' = 1, 'random' = 2, 'reserved' = 3)";
    [
        ("exporter", "FixedString(16)"),
        ("engine_type", "UInt8"),
        ("engine_id", "UInt8"),
        ("src_addr", "UInt32"),
        ("src_port", "UInt16"),
        ("dst_addr", "UInt32"),
        ("dst_port", "UInt16"),
        ("proto", "UInt8"),
        ("records", "UInt64"),
        ("packets", "UInt64"),
        ("octets", "UInt64"),
        ("tcp_flags", "UInt8"),
        ("first", "UInt64"),
        ("last", "UInt64"),
        ("end_reason", end),
        ("start", "UInt64"),
        ("end", "UInt64"),
        ("input", "UInt16"),
        ("output", "UInt16"),
        ("nexthop", "UInt32"),
        ("tos", "UInt8"),
        ("src_as", "UInt16"),
        ("dst_as", "UInt16"),
        ("src_mask", "UInt8"),
        ("dst_mask", "UInt8"),
        ("sampling_mode", mode),
        ("sampling_interval", "UInt16"),
        ("time", "DateTime"),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), t.to_string()))
    .collect()
}

/// The same for the native schema of those releases.
fn native1_columns() -> Vec<(String, String)> {
    legacy1_columns()
        .into_iter()
        .map(|(n, t)| {
            let t = match n.as_str() {
                "exporter" | "src_addr" | "dst_addr" | "nexthop" => "IPv6".to_string(),
                "first" | "last" | "start" | "end" => "DateTime64(9)".to_string(),
                _ => t,
            };
            (n, t)
        })
        .collect()
}

fn rows_of(s: Schema, flows: &[Flow]) -> Vec<u8> {
    let mut b = Vec::new();
    flows.iter().for_each(|f| encode_row(s, f, &mut b));
    b
}

/// A flow with IPv6 addresses, 32-bit ifIndex and AS and a flowEndReason.
fn flow6(i: u32) -> Flow {
    let mut f = flow(i);
    let v6 =
        |x: u32| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (x >> 16) as u16, x as u16));
    (f.rec.exporter, f.rec.src_addr, f.rec.dst_addr, f.rec.nexthop) =
        (v6(1), v6(100 + i), v6(2), v6(3));
    (f.rec.input, f.rec.output, f.rec.src_as, f.rec.dst_as) = (70_000 + i, 5, 4_200_000_000, 65001);
    f.exporter_end_reason = [0, 1, 2, 3, 4, 5, 200][i as usize % 7];
    f
}

#[test]
fn native_rows_hold_ipv6_and_plans_rewrite_them_for_the_other_schema() {
    let mut f = flow(0);
    let mut b = Vec::new();
    encode_row(Schema::Native, &f, &mut b);
    assert_eq!(b.len(), Schema::Native.row_size());
    let mapped = |a: [u8; 4]| Ipv4Addr::from(a).to_ipv6_mapped().octets();
    assert_eq!(b[..16], mapped([192, 0, 2, 1])); // exporter
    assert_eq!(b[18..34], mapped([10, 0, 0, 1])); // src_addr, network order
    assert_eq!(b[36..52], mapped([10, 0, 0, 2])); // dst_addr
                                                  // The same per-column encoder writes an IPv6 exporter as it is.
    let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0xcafe, 1);
    f.rec.exporter = IpAddr::V6(v6);
    b.clear();
    encode_row(Schema::Native, &f, &mut b);
    assert_eq!(b[..16], v6.octets());
    // A batch of either schema becomes the other's, byte for byte, IPv4
    // and IPv6 flows alike, nothing clamped (the legacy *6 columns hold
    // what the UInt32 ones cannot).
    let flows: Vec<Flow> = (0..50).map(|i| if i % 2 == 0 { flow(i) } else { flow6(i) }).collect();
    let (legacy, native) = (rows_of(Schema::Legacy, &flows), rows_of(Schema::Native, &flows));
    for (from, to, data, want) in [
        (Schema::Legacy, Schema::Native, &legacy, &native),
        (Schema::Native, Schema::Legacy, &native, &legacy),
    ] {
        let plan = Plan::new("t", Format::of(from), None, from).unwrap();
        assert!(plan.is_identity(), "unknown columns: the schema's own");
        let to_cols: Vec<(String, String)> =
            to.columns().map(|(c, t)| (c.name.to_string(), t.sql.to_string())).collect();
        let plan = Plan::new("t", Format::of(from), Some(&to_cols), to).unwrap();
        assert!(!plan.is_identity());
        assert_eq!(plan.insert, insert_sql("t", to));
        let mut clamped = Clamped::default();
        assert!(&plan.convert(data, &mut clamped) == want, "{from:?} -> {to:?}");
        assert_eq!(clamped.values, 0);
        let same = Plan::new("t", Format::of(to), Some(&to_cols), to).unwrap();
        assert!(same.is_identity());
    }
}

#[test]
fn an_old_table_gets_the_new_columns_and_what_its_old_columns_cannot_hold_is_counted() {
    // What the migration adds.
    let old = legacy1_columns();
    let add: Vec<&str> = missing(Schema::Legacy, &old).iter().map(|c| c.name).collect();
    assert_eq!(add, ["exporter_end_reason", "src_addr6", "dst_addr6", "nexthop6"]);
    let sql = alter_sql("db.t", Schema::Legacy, &missing(Schema::Legacy, &old), false).unwrap();
    assert!(sql.starts_with("ALTER TABLE `db`.`t` ADD COLUMN `exporter_end_reason` Enum8('' = 0, "));
    assert!(sql.ends_with(", ADD COLUMN `nexthop6` FixedString(16) DEFAULT IPv4ToIPv6(`nexthop`)"));
    let n1 = native1_columns();
    let add = missing(Schema::Native, &n1);
    assert_eq!(add.iter().map(|c| c.name).collect::<Vec<_>>(), ["exporter_end_reason"]);
    let sql = alter_sql("t", Schema::Native, &add, false).unwrap();
    assert!(sql.ends_with("'reserved' = 127)"), "{sql}");
    assert!(alter_sql("t", Schema::Native, &add, true).unwrap().ends_with("'reserved' = 127)"));
    assert_eq!(alter_sql("t", Schema::Native, &[], false), None);
    // system.columns' answer (TSV escapes the quotes of the enums).
    let answer = "input\tUInt16\nend_reason\tEnum8(\\'fin\\' = 1)\n";
    assert_eq!(
        parse_columns(answer),
        [("input".into(), "UInt16".into()), ("end_reason".into(), "Enum8('fin' = 1)".into())]
    );

    // Migrated: the old UInt16 columns stay, the new ones are there.
    let mut migrated = old.clone();
    migrated.extend(
        missing(Schema::Legacy, &old)
            .iter()
            .map(|c| (c.name.to_string(), Schema::Legacy.bare_type(c).unwrap().to_string())),
    );
    let flows: Vec<Flow> = (0..14).map(|i| if i % 2 == 0 { flow(i) } else { flow6(i) }).collect();
    let data = rows_of(Schema::Legacy, &flows);
    let plan = Plan::new("t", Format::Legacy, Some(&migrated), Schema::Legacy).unwrap();
    let mut clamped = Clamped::default();
    let out = plan.convert(&data, &mut clamped);
    // Seven IPv6 flows, each with an input over 65535 and a 32-bit src_as.
    assert_eq!(clamped.values, 7 * 2);
    assert_eq!(clamped.columns, ["input", "src_as"]);
    // Rows of the migrated table's width: 168 - 4 x 2.
    assert_eq!(out.len(), flows.len() * (ROW_SIZE - 8));
    let row = &out[(ROW_SIZE - 8)..2 * (ROW_SIZE - 8)];
    let at = 16 + 2 + 4 + 2 + 4 + 2 + 1 + 24 + 1 + 16 + 1 + 16;
    assert_eq!(row[at..at + 2], [0xff, 0xff], "input 70001 clamped to 65535");
    assert_eq!(row[at + 2..at + 4], 5u16.to_le_bytes(), "output 5 fits");
    assert_eq!(row[ROW_SIZE - 8 - 48 - 1], 1, "exporter_end_reason idle");
    assert_eq!(row[ROW_SIZE - 8 - 48..ROW_SIZE - 8 - 32], ipv6_of(&flows[1].rec.src_addr));

    // Not migrated (the ALTER was refused): IPv6 addresses and reasons are lost too.
    let plan = Plan::new("t", Format::Legacy, Some(&old), Schema::Legacy).unwrap();
    let mut clamped = Clamped::default();
    let out = plan.convert(&data, &mut clamped);
    assert_eq!(out.len(), flows.len() * LEGACY1_ROW_SIZE);
    let mut want = Vec::new();
    flows.iter().for_each(|f| legacy1_row(f, &mut want));
    // The old row: what releases before IPv6 wrote, but clamped, not cut.
    let mut want_clamped = want.clone();
    for (i, f) in flows.iter().enumerate() {
        let at = i * LEGACY1_ROW_SIZE + 16 + 2 + 4 + 2 + 4 + 2 + 1 + 24 + 1 + 16 + 1 + 16;
        let c = |v: u32| (v.min(65535) as u16).to_le_bytes();
        want_clamped[at..at + 2].copy_from_slice(&c(f.rec.input));
        want_clamped[at + 2..at + 4].copy_from_slice(&c(f.rec.output));
        want_clamped[at + 9..at + 11].copy_from_slice(&c(f.rec.src_as));
        want_clamped[at + 11..at + 13].copy_from_slice(&c(f.rec.dst_as));
    }
    assert!(out == want_clamped);
    // Per IPv6 flow: input, src_as, src/dst/nexthop addresses, the exporter's
    // reason (not 0 for 5 of the 7).
    let reasons = flows.iter().filter(|f| f.exporter_end_reason != 0).count() as u64;
    assert_eq!(clamped.values, 7 * 5 + reasons);
    assert_eq!(
        clamped.columns,
        ["src_addr", "dst_addr", "input", "nexthop", "src_as", "exporter_end_reason"]
    );
    // A column of ours in a type the sink cannot write: refused, not guessed.
    let mut odd = old.clone();
    odd[3].1 = "String".into();
    let e = Plan::new("t", Format::Legacy, Some(&odd), Schema::Legacy).unwrap_err();
    assert!(e.contains("column `src_addr` of t is String"), "{e}");
}

fn ipv6_of(a: &IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

#[test]
fn spool_files_of_releases_before_ipv6_are_delivered() {
    let dir = tempfile::tempdir().unwrap();
    // What an earlier release left: untagged legacy files, flows 0..30.
    for (seq, range) in [(1u64, 0..20u32), (2, 20..30)] {
        let mut b = Vec::new();
        range.for_each(|i| legacy1_row(&flow(i), &mut b));
        std::fs::write(dir.path().join(format!("batch-{seq:012}.rowbinary")), b).unwrap();
    }
    let fake = Fake::probed(0, b"", "26.9.2.1\t\n");
    let mut c = cfg(fake.url.clone(), dir.path(), 10, 20);
    c.ttl = Some(Duration::from_secs(30 * 86_400));
    let mut s = ClickHouseSink::new(c).unwrap();
    assert_eq!(counter(&s, "spool_bytes"), (30 * LEGACY1_ROW_SIZE) as u64);
    s.flows(&(30..45).map(flow).collect::<Vec<_>>()).unwrap();
    s.close().unwrap();
    assert_eq!(counter(&s, "rows_inserted"), 45);
    assert_eq!(counter(&s, "values_clamped"), 0);
    assert_eq!(batch_files(dir.path()), 0);
    let want = rows_of(Schema::Native, &(0..45).map(flow).collect::<Vec<_>>());
    assert!(fake.inserts().concat() == want, "every flow as a native row, in order");
    let seen = fake.seen.lock().unwrap();
    let create = seen.iter().find(|r| r.line.contains("CREATE TABLE")).unwrap();
    assert!(create.line.contains("`src_addr` IPv6 CODEC(ZSTD(1))"), "{}", create.line);
    assert!(create.line.contains(" TTL `time` + INTERVAL 2592000 SECOND "), "{}", create.line);
}

#[test]
fn cluster_tables_are_named_and_sharded_by_the_exporter() {
    let r = parse_replicas("1\t127.0.0.1\tnfstitch_shard1\n2\t::1\t\n").unwrap();
    assert_eq!(
        r,
        [
            Replica { shard: 1, host: "127.0.0.1".into(), database: "nfstitch_shard1".into() },
            Replica { shard: 2, host: "::1".into(), database: String::new() },
        ]
    );
    assert!(parse_replicas("1\tx\n").is_err() && parse_replicas("x\th\t\n").is_err());
    assert_eq!(parse_replicas(""), Ok(vec![]));
    assert_eq!(local_table("t", "nfstitch_shard1"), "nfstitch_shard1.t_local");
    assert_eq!(local_table("t", ""), "t_local");
    assert_eq!(local_table("db.t", "nfstitch_shard1"), "db.t_local", "an explicit database wins");
    let sql = distributed_tables_sql("t", Schema::Native, "c1", true);
    assert_eq!(sql.len(), 3);
    assert!(sql[0].starts_with("CREATE TABLE IF NOT EXISTS `t` (`exporter` IPv6, "), "{}", sql[0]);
    assert!(!sql[0].contains("CODEC"), "{}", sql[0]);
    assert!(
        sql[0].ends_with(" ENGINE = Distributed('c1', '', 't_local', cityHash64(`exporter`))"),
        "{}",
        sql[0]
    );
    assert!(
        sql[1].starts_with(
            "CREATE TABLE IF NOT EXISTS `t_1m` (`time` DateTime, `exporter` IPv6, `proto` UInt8, \
             `src_addr` IPv6, `dst_addr` IPv6, `flows` UInt64, `packets` UInt64, `octets` UInt64)"
        ),
        "{}",
        sql[1]
    );
    assert!(sql[2].contains("Distributed('c1', '', 't_local_1h', "), "{}", sql[2]);
    let sql = distributed_tables_sql("db.t", Schema::Legacy, "c1", true);
    assert_eq!(sql.len(), 3);
    assert!(
        sql[0].contains("`src_addr` UInt32, ")
            && sql[0].contains(", `nexthop6` FixedString(16)) ")
            && !sql[0].contains("DEFAULT")
            && sql[0].contains("Distributed('c1', 'db', 't_local', ")
    );
    // The rollups' columns: those of `rollup_sql`'s views, IPv6 pairs apart.
    assert!(sql[2].contains(
        "(`time` DateTime, `exporter` FixedString(16), `proto` UInt8, `src_addr` UInt32, \
         `dst_addr` UInt32, `src_addr6` FixedString(16), `dst_addr6` FixedString(16), `flows` "
    ));
    let view = &rollup_sql("db.t_local", Schema::Legacy)[1];
    assert!(
        view.contains(
            "AS SELECT toStartOfHour(`time`) AS `time`, `exporter`, `proto`, \
        `src_addr`, `dst_addr`, `src_addr6`, `dst_addr6`, count() AS `flows`"
        ),
        "{view}"
    );
    assert!(replicas_sql("c1").contains("WHERE cluster = 'c1' ORDER BY shard_num, replica_num"));
}
