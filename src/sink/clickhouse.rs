//! ClickHouse sink: batches finished flows as RowBinary and inserts them over
//! ClickHouse's HTTP interface (`--clickhouse URL`).
//!
//! Two threads share the work:
//! - the **writer thread** (the [`FlowSink`](super::FlowSink) calls) only
//!   encodes flows into the current batch (111 bytes a row, no allocation per
//!   flow) and seals it when it holds `batch_rows` flows or its oldest flow is
//!   `batch_interval` old. A sealed batch goes to the in-memory queue, or, when
//!   the queue already holds `max_buffered_rows` flows, to a spool file. It
//!   never touches the network, so a slow or dead server cannot stall it.
//! - the **sender thread** (`clickhouse`) delivers the oldest batch (memory or
//!   spool, by sequence number) with one HTTP POST
//!   `INSERT INTO table (...) FORMAT RowBinary`. It creates the table
//!   (`CREATE TABLE IF NOT EXISTS`) before its first insert and again after any
//!   failure (a restarted server may have lost it). A failed batch stays where
//!   it is and is retried after a backoff of 100 ms doubling to 10 s; a
//!   delivered spool file is deleted.
//!
//! Nothing is lost silently: at [`close`](super::FlowSink::close) the sink
//! tries to deliver everything for up to 10 s, then writes what is left to
//! the spool, where the next run (same `--spool-dir`) finds and delivers it
//! first. Delivery is at-least-once: a batch whose insert succeeded on the
//! server but whose answer never arrived (server killed mid-request, hung
//! past the timeouts) is sent again.
//!
//! Spool files are `batch-<seq>.rowbinary` (raw RowBinary rows of
//! [`COLUMNS`], written to a `.tmp` name and renamed), so any ClickHouse
//! client can load one by hand:
//! `clickhouse-client -q 'INSERT INTO t (cols...) FORMAT RowBinary' < batch-….rowbinary`.
//! One spool directory per collector.
//!
//! Plain `http://` only (no TLS): the POST is written by hand over a
//! `TcpStream` (connect timeout 2 s, write 10 s, read 30 s), which keeps the
//! dependency tree as it is. `user:password@` in the URL is sent as HTTP basic
//! auth; URL parameters (`?database=db&user=u`) are passed on.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::flow::{EndReason, Flow};

/// Settings of the ClickHouse sink (`--clickhouse*` flags).
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// HTTP interface URL, e.g. `http://127.0.0.1:8123/`.
    pub url: String,
    /// Table name (created when missing).
    pub table: String,
    /// Insert when this many flows are buffered ...
    pub batch_rows: usize,
    /// ... or when the oldest buffered flow is this old.
    pub batch_interval: Duration,
    /// Flows held in memory while the server is down, before spilling to disk.
    pub max_buffered_rows: usize,
    /// Where undeliverable batches are spooled (replayed when the server is back).
    pub spool_dir: PathBuf,
}

/// The table's columns, in RowBinary order: name and ClickHouse type
/// (ClickHouse 18.16 and later). The names are those of the JSON output,
/// plus `time`, the second of `start`, for partitioning and ordering.
pub const COLUMNS: &[(&str, &str)] = &[
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
    ("end_reason", "Enum8('fin' = 1, 'idle' = 2, 'evicted' = 3, 'shutdown' = 4)"),
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
    ("sampling_mode", "Enum8('none' = 0, 'deterministic' = 1, 'random' = 2, 'reserved' = 3)"),
    ("sampling_interval", "UInt16"),
    ("time", "DateTime"),
];

/// Bytes of one RowBinary row: every column is fixed-width, so a spool
/// file's row count is its length / `ROW_SIZE`.
pub const ROW_SIZE: usize = 111;

/// Connect timeout of one HTTP request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of each write of the request body.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of each read of the answer (the server answers once the insert is done).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Retry backoff: starts here, doubles per failure ...
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// ... up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long `close` keeps trying before spooling what is left.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Error answers are cut to this many bytes.
const MAX_ANSWER: usize = 64 * 1024;

/// `db.table` → `` `db`.`table` ``.
fn quote_table(table: &str) -> String {
    table.split('.').map(|p| format!("`{p}`")).collect::<Vec<_>>().join(".")
}

/// The `CREATE TABLE IF NOT EXISTS` statement for `table`.
pub fn create_table_sql(table: &str) -> String {
    let cols: Vec<String> = COLUMNS.iter().map(|(n, t)| format!("`{n}` {t}")).collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({}) ENGINE = MergeTree \
         PARTITION BY toYYYYMMDD(`time`) ORDER BY (`time`, `exporter`, `src_addr`, `dst_addr`)",
        quote_table(table),
        cols.join(", ")
    )
}

/// The `INSERT` statement (columns named, so a table with extra columns that
/// have defaults still takes the rows).
pub fn insert_sql(table: &str) -> String {
    let cols: Vec<String> = COLUMNS.iter().map(|(n, _)| format!("`{n}`")).collect();
    format!("INSERT INTO {} ({}) FORMAT RowBinary", quote_table(table), cols.join(", "))
}

fn end_reason_code(r: EndReason) -> u8 {
    match r {
        EndReason::Fin => 1,
        EndReason::Idle => 2,
        EndReason::Evicted => 3,
        EndReason::Shutdown => 4,
    }
}

/// Append one flow as a RowBinary row of [`COLUMNS`] (little-endian integers,
/// the exporter as 16 IPv6 bytes, IPv4 mapped as `::ffff:a.b.c.d`).
pub fn encode_row(f: &Flow, out: &mut Vec<u8>) {
    let r = &f.rec;
    let exporter = match r.exporter {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    out.extend_from_slice(&exporter);
    out.push(r.engine_type);
    out.push(r.engine_id);
    out.extend_from_slice(&r.src_addr.to_le_bytes());
    out.extend_from_slice(&r.src_port.to_le_bytes());
    out.extend_from_slice(&r.dst_addr.to_le_bytes());
    out.extend_from_slice(&r.dst_port.to_le_bytes());
    out.push(r.proto);
    out.extend_from_slice(&f.records.to_le_bytes());
    out.extend_from_slice(&f.packets.to_le_bytes());
    out.extend_from_slice(&f.octets.to_le_bytes());
    out.push(f.tcp_flags);
    out.extend_from_slice(&f.first_ns.to_le_bytes());
    out.extend_from_slice(&f.last_ns.to_le_bytes());
    out.push(end_reason_code(f.end_reason));
    out.extend_from_slice(&f.start_ns.to_le_bytes());
    out.extend_from_slice(&f.end_ns.to_le_bytes());
    out.extend_from_slice(&r.input.to_le_bytes());
    out.extend_from_slice(&r.output.to_le_bytes());
    out.extend_from_slice(&r.nexthop.to_le_bytes());
    out.push(r.tos);
    out.extend_from_slice(&r.src_as.to_le_bytes());
    out.extend_from_slice(&r.dst_as.to_le_bytes());
    out.push(r.src_mask);
    out.push(r.dst_mask);
    out.push((r.sampling >> 14) as u8);
    out.extend_from_slice(&(r.sampling & 0x3fff).to_le_bytes());
    let secs = (f.start_ns / 1_000_000_000).min(u32::MAX as u64) as u32;
    out.extend_from_slice(&secs.to_le_bytes());
}

// ---------------------------------------------------------------- HTTP

/// Where to POST: parsed from an `http://[user[:pass]@]host[:port][/path][?params]` URL.
#[derive(Clone)]
struct Endpoint {
    /// `host:port` for connecting.
    host: String,
    port: u16,
    /// The `Host` header.
    authority: String,
    /// Path, then `?` and the URL's parameters followed by `&`, ready for `query=`.
    target_prefix: String,
    /// Basic auth, base64.
    auth: Option<String>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No credentials in debug output.
        write!(f, "http://{}{}", self.authority, self.target_prefix)
    }
}

fn parse_url(url: &str) -> anyhow::Result<Endpoint> {
    if url.starts_with("https://") {
        bail!("--clickhouse {url}: https is not supported; use ClickHouse's plain HTTP port (8123) on a trusted network or a local TLS proxy");
    }
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("--clickhouse {url}: not an http:// URL");
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            bail!("--clickhouse {url}: unclosed '[' in the host");
        };
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => bail!("--clickhouse {url}: bad host"),
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        bail!("--clickhouse {url}: no host");
    }
    let port = match port {
        None => 80,
        Some(p) => p.parse().with_context(|| format!("--clickhouse {url}: bad port {p:?}"))?,
    };
    let (path, params) = match tail.split_once('?') {
        Some((p, q)) => (p, q),
        None => (tail, ""),
    };
    let path = if path.is_empty() { "/" } else { path };
    let mut target_prefix = format!("{path}?");
    let params = params.trim_end_matches('&');
    if !params.is_empty() {
        target_prefix.push_str(params);
        target_prefix.push('&');
    }
    Ok(Endpoint {
        host,
        port,
        authority: hostport.to_string(),
        target_prefix,
        auth: userinfo.map(|u| base64(u.as_bytes())),
    })
}

fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (c.get(1).copied().unwrap_or(0) as u32) << 8
            | c.get(2).copied().unwrap_or(0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn url_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Why a POST failed.
#[derive(Debug)]
enum PostError {
    /// No connection: the request certainly did not reach the server.
    Connect(io::Error),
    /// The connection broke during the request or the answer.
    Io(io::Error),
    /// The server answered with an error.
    Http(u16, String),
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Connect(e) => write!(f, "cannot connect: {e}"),
            PostError::Io(e) => write!(f, "connection failed: {e}"),
            PostError::Http(code, msg) => write!(f, "HTTP {code}: {msg}"),
        }
    }
}

fn connect(ep: &Endpoint) -> Result<TcpStream, PostError> {
    let addrs = (ep.host.as_str(), ep.port)
        .to_socket_addrs()
        .map_err(PostError::Connect)?
        .collect::<Vec<_>>();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(PostError::Connect(last))
}

/// POST `body` with `query` in the URL; `Ok` on HTTP 200.
fn post(ep: &Endpoint, query: &str, body: &[u8]) -> Result<(), PostError> {
    let mut s = connect(ep)?;
    let io = PostError::Io;
    s.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(io)?;
    s.set_read_timeout(Some(READ_TIMEOUT)).map_err(io)?;
    let _ = s.set_nodelay(true);
    let mut head = format!(
        "POST {}query={} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\
         Content-Type: application/octet-stream\r\nConnection: close\r\nUser-Agent: nfstitch\r\n",
        ep.target_prefix,
        url_encode(query),
        ep.authority,
        body.len()
    );
    if let Some(a) = &ep.auth {
        head.push_str(&format!("Authorization: Basic {a}\r\n"));
    }
    head.push_str("\r\n");
    let sent = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body)).and_then(|_| s.flush());
    // Even when sending failed, the server may have answered why (then closed).
    let answer = read_answer(&mut s);
    match (sent, answer) {
        (_, Ok((200, _))) => Ok(()),
        (_, Ok((code, msg))) => Err(PostError::Http(code, msg)),
        (Err(e), Err(_)) | (Ok(()), Err(e)) => Err(PostError::Io(e)),
    }
}

/// Read an HTTP answer: (status, body text).
fn read_answer(s: &mut TcpStream) -> io::Result<(u16, String)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_ANSWER {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "HTTP header too long"));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed without an answer",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let code: u16 =
        status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad status line {status:?}"))
        })?;
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding")
                && v.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    let mut body = buf.split_off(head_end);
    // Read the body: to its length, to the last chunk, or to EOF; at most MAX_ANSWER.
    loop {
        let done = match (length, chunked) {
            (Some(n), _) => body.len() >= n,
            (None, true) => body.ends_with(b"0\r\n\r\n"),
            _ => false,
        };
        if done || body.len() > MAX_ANSWER {
            break;
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            // The status is what matters; a cut error text is still an error.
            Err(_) if code != 200 => break,
            Err(e) => return Err(e),
        }
    }
    if chunked {
        body = dechunk(&body);
    }
    let text = String::from_utf8_lossy(&body).trim().to_string();
    Ok((code, text))
}

fn dechunk(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = b;
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..i])
            .ok()
            .and_then(|h| usize::from_str_radix(h.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size else { break };
        rest = &rest[i + 2..];
        if size == 0 {
            break;
        }
        let take = size.min(rest.len());
        out.extend_from_slice(&rest[..take]);
        rest = rest.get(take + 2..).unwrap_or(&[]);
    }
    out
}

// ---------------------------------------------------------------- spool

fn spool_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("batch-{seq:012}.rowbinary"))
}

/// Write one batch as `batch-<seq>.rowbinary` (via a `.tmp` file and rename,
/// so a crash never leaves a half file under the real name).
fn write_spool_file(dir: &Path, seq: u64, data: &[u8]) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = spool_path(dir, seq);
    let tmp = path.with_extension("rowbinary.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[derive(Debug)]
struct SpoolEntry {
    rows: usize,
    path: PathBuf,
}

/// The spool files in `dir` by sequence number. Files whose length is not a
/// whole number of rows are renamed `*.bad` (and counted), empty ones removed.
fn scan_spool(dir: &Path) -> io::Result<(BTreeMap<u64, SpoolEntry>, u64)> {
    let mut found = BTreeMap::new();
    let mut bad = 0;
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((found, 0)),
        Err(e) => return Err(e),
    };
    for ent in rd {
        let ent = ent?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(seq) = name
            .strip_prefix("batch-")
            .and_then(|n| n.strip_suffix(".rowbinary"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let path = ent.path();
        let len = ent.metadata()?.len() as usize;
        if len == 0 {
            let _ = std::fs::remove_file(&path);
        } else if len % ROW_SIZE != 0 {
            let to = path.with_extension("rowbinary.bad");
            eprintln!(
                "nfstitch: clickhouse: spool file {} is not whole rows ({len} bytes); moved to {}",
                path.display(),
                to.display()
            );
            std::fs::rename(&path, &to)?;
            bad += 1;
        } else {
            found.insert(seq, SpoolEntry { rows: len / ROW_SIZE, path });
        }
    }
    Ok((found, bad))
}

// ---------------------------------------------------------------- shared state

/// A sealed batch in memory.
struct Batch {
    seq: u64,
    rows: usize,
    data: Arc<Vec<u8>>,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Batch {{ seq: {}, rows: {} }}", self.seq, self.rows)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    rows_inserted: u64,
    batches_inserted: u64,
    insert_errors: u64,
    retries: u64,
    rows_spooled: u64,
    rows_dropped: u64,
    spool_bad_files: u64,
}

#[derive(Debug)]
struct State {
    /// Sealed batches in memory, oldest first.
    queue: VecDeque<Batch>,
    queued_rows: usize,
    /// Spooled batches on disk, by sequence.
    spool: BTreeMap<u64, SpoolEntry>,
    spool_rows: u64,
    /// The batch being sent (it stays in `queue` / `spool` until delivered).
    in_flight: Option<u64>,
    /// No attempt before this.
    next_attempt: Instant,
    backoff: Duration,
    /// The last attempt failed (the next one is a retry).
    failing: bool,
    /// Failed attempts in the current outage.
    outage_errors: u64,
    /// The sender must end.
    stop: bool,
    c: Counters,
}

#[derive(Debug)]
struct Shared {
    st: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking sender must not take the writer down with it.
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Job {
    Mem(Arc<Vec<u8>>),
    Disk(PathBuf),
}

/// The sender thread: deliver the oldest batch, back off on failure.
fn sender(shared: Arc<Shared>, ep: Endpoint, table: String) {
    let insert = insert_sql(&table);
    let create = create_table_sql(&table);
    let mut need_create = true;
    loop {
        let (seq, rows, job) = {
            let mut st = shared.lock();
            loop {
                if st.stop {
                    return;
                }
                let pending = !st.queue.is_empty() || !st.spool.is_empty();
                let now = Instant::now();
                if pending && now >= st.next_attempt {
                    break;
                }
                let wait = if pending { st.next_attempt - now } else { Duration::from_secs(1) };
                st = shared.cv.wait_timeout(st, wait).unwrap_or_else(|e| e.into_inner()).0;
            }
            let mem = st.queue.front().map(|b| b.seq);
            let disk = st.spool.keys().next().copied();
            let (seq, rows, job) = match (mem, disk) {
                (Some(m), Some(d)) if d < m => {
                    let e = &st.spool[&d];
                    (d, e.rows, Job::Disk(e.path.clone()))
                }
                (Some(_), _) => {
                    let b = st.queue.front().expect("front");
                    (b.seq, b.rows, Job::Mem(b.data.clone()))
                }
                (None, Some(d)) => {
                    let e = &st.spool[&d];
                    (d, e.rows, Job::Disk(e.path.clone()))
                }
                (None, None) => unreachable!("pending"),
            };
            st.in_flight = Some(seq);
            if st.failing {
                st.c.retries += 1;
            }
            (seq, rows, job)
        };
        let data = match job {
            Job::Mem(d) => Ok(d),
            Job::Disk(path) => std::fs::read(&path).map(Arc::new).map_err(|e| (path, e)),
        };
        let data = match data {
            Ok(d) if d.len() == rows * ROW_SIZE => d,
            Ok(d) => {
                // Changed under us: skip it, keep the file for a person to look at.
                let mut st = shared.lock();
                if let Some(e) = st.spool.remove(&seq) {
                    st.spool_rows -= e.rows as u64;
                    let to = e.path.with_extension("rowbinary.bad");
                    eprintln!(
                        "nfstitch: clickhouse: spool file {} changed size ({} bytes); moved to {}",
                        e.path.display(),
                        d.len(),
                        to.display()
                    );
                    let _ = std::fs::rename(&e.path, &to);
                    st.c.spool_bad_files += 1;
                }
                st.in_flight = None;
                continue;
            }
            Err((path, e)) => {
                let mut st = shared.lock();
                st.in_flight = None;
                if e.kind() == io::ErrorKind::NotFound {
                    // Removed by someone else: those rows are gone from our hands.
                    if let Some(ent) = st.spool.remove(&seq) {
                        st.spool_rows -= ent.rows as u64;
                        st.c.rows_dropped += ent.rows as u64;
                    }
                    eprintln!("nfstitch: clickhouse: spool file {} vanished", path.display());
                } else {
                    eprintln!(
                        "nfstitch: clickhouse: cannot read spool file {}: {e}",
                        path.display()
                    );
                    st.next_attempt = Instant::now() + st.backoff;
                    st.backoff = (st.backoff * 2).min(BACKOFF_MAX);
                }
                continue;
            }
        };
        let mut create_err = None;
        let res = (|| {
            if need_create {
                match post(&ep, &create, b"") {
                    Ok(()) => need_create = false,
                    // The server answered: try the insert anyway (the table may
                    // exist and this user may not be allowed DDL).
                    Err(PostError::Http(c, m)) => create_err = Some(format!("HTTP {c}: {m}")),
                    Err(e) => return Err(e),
                }
            }
            post(&ep, &insert, &data)
        })();
        let mut st = shared.lock();
        st.in_flight = None;
        match res {
            Ok(()) => {
                need_create = false;
                st.c.rows_inserted += rows as u64;
                st.c.batches_inserted += 1;
                if let Some(i) = st.queue.iter().position(|b| b.seq == seq) {
                    let b = st.queue.remove(i).expect("position");
                    st.queued_rows -= b.rows;
                } else if let Some(e) = st.spool.remove(&seq) {
                    st.spool_rows -= e.rows as u64;
                    if let Err(err) = std::fs::remove_file(&e.path) {
                        eprintln!(
                            "nfstitch: clickhouse: cannot remove delivered spool file {}: {err}",
                            e.path.display()
                        );
                    }
                }
                if st.failing {
                    eprintln!(
                        "nfstitch: clickhouse: inserting again after {} failed attempts ({} flows in memory, {} spooled)",
                        st.outage_errors, st.queued_rows, st.spool_rows
                    );
                }
                st.failing = false;
                st.outage_errors = 0;
                st.backoff = BACKOFF_MIN;
                st.next_attempt = Instant::now();
            }
            Err(e) => {
                need_create = true;
                st.c.insert_errors += 1;
                st.outage_errors += 1;
                if !st.failing {
                    let extra =
                        create_err.map(|c| format!(" (create table: {c})")).unwrap_or_default();
                    eprintln!(
                        "nfstitch: clickhouse: insert of {rows} flows failed: {e}{extra}; \
                         keeping them and retrying with backoff"
                    );
                }
                st.failing = true;
                st.next_attempt = Instant::now() + st.backoff;
                st.backoff = (st.backoff * 2).min(BACKOFF_MAX);
            }
        }
        drop(st);
        shared.cv.notify_all();
    }
}

// ---------------------------------------------------------------- the sink

/// The ClickHouse sink (see the module docs).
pub struct ClickHouseSink {
    cfg: ClickHouseConfig,
    shared: Arc<Shared>,
    /// The batch being filled (RowBinary rows).
    cur: Vec<u8>,
    cur_rows: usize,
    cur_since: Instant,
    next_seq: u64,
    sender: Option<JoinHandle<()>>,
    close_timeout: Duration,
    closed: bool,
}

impl fmt::Debug for ClickHouseSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseSink")
            .field("table", &self.cfg.table)
            .field("cur_rows", &self.cur_rows)
            .field("counters", &super::FlowSink::counters(self))
            .finish()
    }
}

impl ClickHouseSink {
    pub fn new(cfg: ClickHouseConfig) -> anyhow::Result<Self> {
        let ep = parse_url(&cfg.url)?;
        if cfg.table.is_empty()
            || !cfg.table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            bail!("--clickhouse-table {:?}: use letters, digits, '_' and '.' only", cfg.table);
        }
        if cfg.batch_rows == 0 || cfg.max_buffered_rows < cfg.batch_rows {
            bail!("--clickhouse-batch must be at least 1 and at most --clickhouse-buffer");
        }
        // Batches left by an earlier run go first.
        let (spool, bad) = scan_spool(&cfg.spool_dir)
            .with_context(|| format!("--spool-dir {}", cfg.spool_dir.display()))?;
        let next_seq = spool.keys().next_back().map_or(1, |s| s + 1);
        let spool_rows: u64 = spool.values().map(|e| e.rows as u64).sum();
        if spool_rows > 0 {
            eprintln!(
                "nfstitch: clickhouse: {} flows in {} spool files in {} from an earlier run; delivering them first",
                spool_rows,
                spool.len(),
                cfg.spool_dir.display()
            );
        }
        let shared = Arc::new(Shared {
            st: Mutex::new(State {
                queue: VecDeque::new(),
                queued_rows: 0,
                spool,
                spool_rows,
                in_flight: None,
                next_attempt: Instant::now(),
                backoff: BACKOFF_MIN,
                failing: false,
                outage_errors: 0,
                stop: false,
                c: Counters { spool_bad_files: bad, ..Counters::default() },
            }),
            cv: Condvar::new(),
        });
        let sender = {
            let shared = shared.clone();
            let table = cfg.table.clone();
            std::thread::Builder::new()
                .name("clickhouse".into())
                .spawn(move || sender(shared, ep, table))
                .context("starting the ClickHouse sender thread")?
        };
        let cap = cfg.batch_rows.min(1 << 16) * ROW_SIZE;
        Ok(ClickHouseSink {
            cfg,
            shared,
            cur: Vec::with_capacity(cap),
            cur_rows: 0,
            cur_since: Instant::now(),
            next_seq,
            sender: Some(sender),
            close_timeout: CLOSE_TIMEOUT,
            closed: false,
        })
    }

    /// How long [`close`](super::FlowSink::close) tries to deliver (10 s by default).
    pub fn set_close_timeout(&mut self, d: Duration) {
        self.close_timeout = d;
    }

    /// Hand the current batch to the sender (memory) or, when memory is
    /// full, write it to the spool.
    fn seal(&mut self) -> anyhow::Result<()> {
        if self.cur_rows == 0 {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.cur_rows);
        let cap = self.cur.capacity();
        let data = std::mem::replace(&mut self.cur, Vec::with_capacity(cap));
        let seq = self.next_seq;
        self.next_seq += 1;
        let data = {
            let mut st = self.shared.lock();
            if st.queued_rows + rows <= self.cfg.max_buffered_rows && !st.stop {
                st.queued_rows += rows;
                st.queue.push_back(Batch { seq, rows, data: Arc::new(data) });
                drop(st);
                self.shared.cv.notify_all();
                return Ok(());
            }
            data
        };
        self.spool(seq, rows, &data)
    }

    fn spool(&self, seq: u64, rows: usize, data: &[u8]) -> anyhow::Result<()> {
        match write_spool_file(&self.cfg.spool_dir, seq, data) {
            Ok(path) => {
                let mut st = self.shared.lock();
                if st.c.rows_spooled == 0 {
                    eprintln!(
                        "nfstitch: clickhouse: memory buffer full ({} flows); spooling batches to {}",
                        st.queued_rows,
                        self.cfg.spool_dir.display()
                    );
                }
                st.spool.insert(seq, SpoolEntry { rows, path });
                st.spool_rows += rows as u64;
                st.c.rows_spooled += rows as u64;
                drop(st);
                self.shared.cv.notify_all();
                Ok(())
            }
            Err(e) => {
                self.shared.lock().c.rows_dropped += rows as u64;
                Err(e).with_context(|| {
                    format!(
                        "ClickHouse is not taking flows and {rows} flows cannot be spooled to {}",
                        self.cfg.spool_dir.display()
                    )
                })
            }
        }
    }

    /// Stop the sender and spool everything still in memory (without delivering).
    fn spool_leftovers(&mut self) -> anyhow::Result<()> {
        self.seal()?;
        let left: Vec<Batch> = {
            let mut st = self.shared.lock();
            st.stop = true;
            st.queued_rows = 0;
            st.queue.drain(..).collect()
        };
        self.shared.cv.notify_all();
        let mut first_err = None;
        for b in left {
            if let Err(e) = self.spool(b.seq, b.rows, &b.data) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl super::FlowSink for ClickHouseSink {
    fn flows(&mut self, flows: &[Flow]) -> anyhow::Result<()> {
        for f in flows {
            if self.cur_rows == 0 {
                self.cur_since = Instant::now();
            }
            encode_row(f, &mut self.cur);
            self.cur_rows += 1;
            if self.cur_rows >= self.cfg.batch_rows {
                self.seal()?;
            }
        }
        Ok(())
    }

    fn tick(&mut self, now: Instant) -> anyhow::Result<()> {
        if self.cur_rows > 0
            && now.saturating_duration_since(self.cur_since) >= self.cfg.batch_interval
        {
            self.seal()?;
        }
        Ok(())
    }

    fn close(&mut self) -> anyhow::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.seal()?;
        let deadline = Instant::now() + self.close_timeout;
        {
            let mut st = self.shared.lock();
            // Try at once, then back off as usual until the deadline.
            st.next_attempt = Instant::now();
            st.backoff = BACKOFF_MIN;
            self.shared.cv.notify_all();
            loop {
                let now = Instant::now();
                if (st.queue.is_empty() && st.spool.is_empty()) || now >= deadline {
                    break;
                }
                st = self
                    .shared
                    .cv
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        let in_flight = self.shared.lock().in_flight;
        if let Some(seq) = in_flight {
            eprintln!(
                "nfstitch: clickhouse: batch {seq} was still being sent at the deadline; \
                 it is spooled too and may be inserted twice"
            );
        }
        let res = self.spool_leftovers();
        // The sender ends at once unless it is inside a request (then it ends
        // with its timeouts); never wait on it past a short bound.
        if let Some(h) = self.sender.take() {
            let until = Instant::now() + Duration::from_millis(200);
            while !h.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
        let st = self.shared.lock();
        if st.spool_rows > 0 {
            eprintln!(
                "nfstitch: clickhouse: {} flows not delivered; kept in {} ({} files), delivered by the next run",
                st.spool_rows,
                self.cfg.spool_dir.display(),
                st.spool.len()
            );
        }
        res
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let st = self.shared.lock();
        let c = st.c;
        vec![
            ("rows_inserted", c.rows_inserted),
            ("batches_inserted", c.batches_inserted),
            ("insert_errors", c.insert_errors),
            ("retries", c.retries),
            ("rows_buffered", (st.queued_rows + self.cur_rows) as u64),
            ("rows_spooled", c.rows_spooled),
            ("rows_pending_spool", st.spool_rows),
            ("rows_dropped", c.rows_dropped),
            ("spool_bad_files", c.spool_bad_files),
        ]
    }

    fn name(&self) -> &'static str {
        "clickhouse"
    }
}

impl Drop for ClickHouseSink {
    fn drop(&mut self) {
        if !self.closed {
            // The collector is ending on an error: keep what we hold on disk.
            self.closed = true;
            if let Err(e) = self.spool_leftovers() {
                eprintln!("nfstitch: clickhouse: {e:#}");
            }
        }
        self.shared.lock().stop = true;
        self.shared.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::flow::{FlowRecord, KeySpec};
    use crate::sink::FlowSink;

    fn flow(i: u32) -> Flow {
        let t = 1_700_000_000_123_456_789u64 + i as u64;
        let rec = FlowRecord {
            exporter: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            engine_type: 1,
            engine_id: 2,
            sampling: (1 << 14) | 100,
            src_addr: 0x0a00_0001 + i,
            dst_addr: 0x0a00_0002,
            nexthop: 0x0a00_00fe,
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
        }
    }

    fn width(ty: &str) -> usize {
        match ty {
            "UInt8" => 1,
            "UInt16" => 2,
            "UInt32" | "DateTime" => 4,
            "UInt64" => 8,
            "FixedString(16)" => 16,
            t if t.starts_with("Enum8(") => 1,
            t => panic!("no width for {t}"),
        }
    }

    #[test]
    fn columns_match_the_json_fields_and_the_row_size() {
        let names: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
        assert_eq!(
            names.join(","),
            "exporter,engine_type,engine_id,src_addr,src_port,dst_addr,dst_port,proto,records,\
             packets,octets,tcp_flags,first,last,end_reason,start,end,input,output,nexthop,tos,\
             src_as,dst_as,src_mask,dst_mask,sampling_mode,sampling_interval,time"
        );
        assert_eq!(COLUMNS.iter().map(|c| width(c.1)).sum::<usize>(), ROW_SIZE);
        let c = create_table_sql("db.t1");
        assert!(c.starts_with("CREATE TABLE IF NOT EXISTS `db`.`t1` (`exporter` FixedString(16), "));
        assert!(c.ends_with("ORDER BY (`time`, `exporter`, `src_addr`, `dst_addr`)"), "{c}");
        assert!(insert_sql("t").starts_with("INSERT INTO `t` (`exporter`, `engine_type`, "));
        assert!(insert_sql("t").ends_with(", `time`) FORMAT RowBinary"));
    }

    #[test]
    fn rowbinary_layout_of_one_flow() {
        let f = flow(0);
        let mut b = Vec::new();
        encode_row(&f, &mut b);
        assert_eq!(b.len(), ROW_SIZE);
        let mut off = 0;
        let mut take = |n: usize| {
            let s = &b[off..off + n];
            off += n;
            s.to_vec()
        };
        let u = |v: Vec<u8>| v.iter().rev().fold(0u64, |a, &x| a << 8 | x as u64);
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
        assert_eq!(u(take(2)), 3); // input
        assert_eq!(u(take(2)), 4); // output
        assert_eq!(u(take(4)), 0x0a00_00fe);
        assert_eq!(take(1), [7]); // tos
        assert_eq!(u(take(2)), 65001);
        assert_eq!(u(take(2)), 65002);
        assert_eq!(take(2), [24, 16]); // masks
        assert_eq!(take(1), [1]); // sampling_mode deterministic
        assert_eq!(u(take(2)), 100);
        assert_eq!(u(take(4)), f.start_ns / 1_000_000_000); // time
        assert_eq!(off, ROW_SIZE);

        let mut g = f;
        g.rec.exporter = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        g.end_reason = EndReason::Shutdown;
        let mut b = Vec::new();
        encode_row(&g, &mut b);
        assert_eq!(&b[..16], &Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
        assert_eq!(b[16 + 2 + 4 + 2 + 4 + 2 + 1 + 24 + 1 + 16], 4);
    }

    #[test]
    fn urls() {
        let e = parse_url("http://127.0.0.1:8123/").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.target_prefix.as_str()), ("127.0.0.1", 8123, "/?"));
        assert!(e.auth.is_none());
        let e = parse_url("http://u:p@[::1]:9/x?database=db&").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9));
        assert_eq!(e.authority, "[::1]:9");
        assert_eq!(e.target_prefix, "/x?database=db&");
        assert_eq!(e.auth.as_deref(), Some("dTpw"));
        let e = parse_url("http://ch?user=a").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.target_prefix.as_str()), ("ch", 80, "/?user=a&"));
        assert!(parse_url("https://ch/").is_err());
        assert!(parse_url("http://:8123/").is_err());
        assert!(parse_url("http://h:x/").is_err());
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(url_encode("INSERT INTO `t` (a)"), "INSERT%20INTO%20%60t%60%20%28a%29");
        assert_eq!(dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), b"hello world");
    }

    #[test]
    fn spool_files_come_back_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let row = |i| {
            let mut b = Vec::new();
            encode_row(&flow(i), &mut b);
            b
        };
        for seq in [12u64, 3, 7] {
            let data: Vec<u8> = (0..seq as u32).flat_map(row).collect();
            write_spool_file(dir.path(), seq, &data).unwrap();
        }
        std::fs::write(dir.path().join("batch-000000000009.rowbinary"), [1, 2, 3]).unwrap();
        std::fs::write(dir.path().join("batch-000000000010.rowbinary"), []).unwrap();
        std::fs::write(dir.path().join("unrelated.txt"), "x").unwrap();
        let (found, bad) = scan_spool(dir.path()).unwrap();
        assert_eq!(bad, 1);
        let got: Vec<(u64, usize)> = found.iter().map(|(s, e)| (*s, e.rows)).collect();
        assert_eq!(got, [(3, 3), (7, 7), (12, 12)]);
        assert_eq!(
            std::fs::read(&found[&3].path).unwrap(),
            (0..3).flat_map(row).collect::<Vec<_>>()
        );
        assert!(dir.path().join("batch-000000000009.rowbinary.bad").exists());
        assert!(!dir.path().join("batch-000000000010.rowbinary").exists());
        let (none, _) = scan_spool(&dir.path().join("missing")).unwrap();
        assert!(none.is_empty());
    }

    fn cfg(url: String, dir: &Path, batch: usize, buffer: usize) -> ClickHouseConfig {
        ClickHouseConfig {
            url,
            table: "t".into(),
            batch_rows: batch,
            batch_interval: Duration::from_millis(10),
            max_buffered_rows: buffer,
            spool_dir: dir.to_path_buf(),
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
                rd.filter(|e| {
                    e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".rowbinary")
                })
                .count()
            })
            .unwrap_or(0)
    }

    /// Requests seen: (request line, body, answered 200).
    type Seen = Arc<Mutex<Vec<(String, Vec<u8>, bool)>>>;

    /// A stand-in ClickHouse: answers the first `fail` requests with 500
    /// (chunked), the rest with 200, and records every (request line, body).
    struct Fake {
        url: String,
        seen: Seen,
        stop: Arc<AtomicBool>,
        port: u16,
        h: Option<JoinHandle<()>>,
    }

    impl Fake {
        fn start(fail: usize) -> Fake {
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
                    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    while buf.len() < head_end + len {
                        let k = s.read(&mut chunk).unwrap();
                        assert!(k > 0);
                        buf.extend_from_slice(&chunk[..k]);
                    }
                    let line = head.lines().next().unwrap().to_string();
                    n += 1;
                    seen2.lock().unwrap().push((line, buf[head_end..].to_vec(), n > fail));
                    let answer: &[u8] = if n <= fail {
                        b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n\
                          6\r\nCode: \r\n4\r\nfake\r\n0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                    };
                    s.write_all(answer).unwrap();
                }
            });
            Fake { url: format!("http://127.0.0.1:{port}/"), seen, stop, port, h: Some(h) }
        }

        fn inserts(&self) -> Vec<Vec<u8>> {
            let seen = self.seen.lock().unwrap();
            seen.iter()
                .filter(|(l, _, ok)| *ok && l.contains("query=INSERT"))
                .map(|(_, b, _)| b.clone())
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
            encode_row(&flow(i), &mut b);
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
        // create+insert fail, create+insert fail, create fails but insert works.
        let fake = Fake::start(5);
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
        assert!(seen[0].0.starts_with("POST /?query=CREATE%20TABLE%20IF%20NOT%20EXISTS%20%60t%60"));
        assert!(seen[1].0.starts_with("POST /?query=INSERT%20INTO%20%60t%60%20%28%60exporter%60"));
        assert!(seen[1].0.ends_with("FORMAT%20RowBinary HTTP/1.1"));
        // After success no more CREATE.
        assert_eq!(seen.iter().filter(|(l, _, _)| l.contains("CREATE")).count(), 3);
    }

    /// Manual measurement against a real server:
    /// `cargo test --release --lib throughput_against -- --ignored --nocapture`
    /// (`$NFSTITCH_CLICKHOUSE_URL`, default `http://127.0.0.1:8123/`).
    #[test]
    #[ignore = "needs a ClickHouse server; prints rows/s"]
    fn throughput_against_a_real_server() {
        let url = std::env::var("NFSTITCH_CLICKHOUSE_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:8123/".to_string());
        let dir = tempfile::tempdir().unwrap();
        let table = format!("nfstitch_bench_{}", std::process::id());
        let mut c = cfg(url.clone(), dir.path(), 50_000, 1_000_000);
        c.table = table.clone();
        let n: u32 = 2_000_000;
        let chunk: Vec<Flow> = (0..10_000).map(flow).collect();
        let mut s = ClickHouseSink::new(c).unwrap();
        let t = Instant::now();
        for _ in 0..n / 10_000 {
            s.flows(&chunk).unwrap();
        }
        let writer = t.elapsed();
        s.close().unwrap();
        let total = t.elapsed();
        assert_eq!(counter(&s, "rows_inserted"), n as u64);
        eprintln!(
            "{n} flows: writer thread {writer:?} ({:.0} flows/s encoded), delivered in {total:?} \
             ({:.0} rows/s inserted, {} batches, {} rows went through the spool)",
            n as f64 / writer.as_secs_f64(),
            n as f64 / total.as_secs_f64(),
            counter(&s, "batches_inserted"),
            counter(&s, "rows_spooled")
        );
        post(&parse_url(&url).unwrap(), &format!("DROP TABLE {table}"), b"").unwrap();
    }

    #[test]
    fn bad_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ClickHouseSink::new(cfg("https://h/".into(), dir.path(), 1, 1)).is_err());
        let mut c = cfg("http://h/".into(), dir.path(), 1, 1);
        c.table = "t; DROP".into();
        assert!(ClickHouseSink::new(c).is_err());
        assert!(ClickHouseSink::new(cfg("http://h/".into(), dir.path(), 2, 1)).is_err());
    }
}
