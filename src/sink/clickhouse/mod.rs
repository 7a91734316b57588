//! ClickHouse sink: batches finished flows as RowBinary and inserts them over
//! ClickHouse's HTTP interface (`--clickhouse URL`).
//!
//! Two threads share the work:
//! - the **writer thread** (the [`FlowSink`](super::FlowSink) calls) only
//!   encodes flows into the current batch (111 bytes a row in the legacy
//!   schema, 147 in the native one; no allocation per flow) and seals it when it holds `batch_rows` flows or its oldest flow is
//!   `batch_interval` old. A sealed batch goes to the in-memory queue, or, when
//!   the queue already holds `max_buffered_rows` flows, to a spool file. It
//!   never touches the network, so a slow or dead server cannot stall it.
//! - the **sender thread** (`clickhouse`) delivers the oldest batch (memory or
//!   spool, by sequence number) with one HTTP POST
//!   `INSERT INTO table (...) FORMAT RowBinary`. Before its first insert and
//!   again after any failure it asks the server which schema the table has
//!   or gets (`schema`: legacy for ClickHouse before 20.3, native from
//!   20.3 on) and creates the table (`CREATE TABLE IF NOT EXISTS`) and, with
//!   `--clickhouse-rollups`, the per-minute and per-hour rollup views. A failed batch stays where
//!   it is and is retried after a backoff of 100 ms doubling to 10 s; a
//!   delivered spool file is deleted.
//!
//! Nothing is lost silently: at [`close`](super::FlowSink::close) the sink
//! tries to deliver everything for up to 10 s (after a permanent error, one
//! attempt), then writes what is left to the spool, where the next run (same
//! `--spool-dir`) finds and delivers it first.
//!
//! The spool is bounded: a batch that would take the spool files past
//! `spool_max_bytes` (`--spool-max-bytes`) is dropped, not written, and its
//! flows counted in `dropped_flows` (what is spooled stays, and is delivered
//! in order; at shutdown, batches still in memory that do not fit). So at any time every flow handed to the sink is
//! inserted, buffered, spooled, or counted dropped (`dropped_flows`, or
//! `rows_dropped` when the disk failed us).
//!
//! Errors are transient (server down, overloaded: back off, up to 10 s) or
//! permanent (wrong password, unknown database, a table that is not ours:
//! retried every minute, logged loudly, `permanent_error` gauge); see
//! `sender`. Delivery is at-least-once: a batch whose insert succeeded on the
//! server but whose answer never arrived (server killed mid-request, hung
//! past the timeouts) is sent again.
//!
//! Spool files are `batch-<seq>.rowbinary` (raw RowBinary rows of
//! [`COLUMNS`] in the legacy schema; `batch-<seq>.native.rowbinary` in the
//! native one; written to a `.tmp` name and renamed), so any ClickHouse
//! client can load one by hand into a table of that schema:
//! `clickhouse-client -q 'INSERT INTO t (cols...) FORMAT RowBinary' < batch-….rowbinary`.
//! One spool directory per collector.
//!
//! `http://` or `https://` (rustls; `--clickhouse-ca FILE` trusts only that
//! PEM's CAs instead of Mozilla's roots). `user:password@` in the URL is sent
//! as HTTP basic auth; URL parameters (`?database=db&user=u`) are passed on.
//!
//! The parts, one job each:
//! - `schema`: the columns of both schemas, one flow as one RowBinary row;
//! - `ddl`: the SQL (probe, CREATE TABLE, rollup views, INSERT);
//! - `cluster`: `--clickhouse-cluster`, the tables on every shard and the
//!   `Distributed` table over them;
//! - `url`: the URL and the password, and that neither prints with the password;
//! - `http`: the client (ureq), timeouts, what an error says and whether it is permanent;
//! - `spool`: the spool files;
//! - `sender`: the sender thread, its retries and the state it shares with
//!   the sink;
//! - this file: the settings and the sink itself (batching, sealing,
//!   spilling, `close`).

mod cluster;
mod ddl;
mod http;
mod migrate;
mod schema;
mod sender;
mod spool;
#[cfg(test)]
mod tests;
mod url;

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use self::cluster::Cluster;
pub use self::ddl::{create_table_sql, insert_sql, rollup_sql};
use self::schema::Format;
pub use self::schema::{encode_row, Schema};
use self::sender::{sender, Batch, Counters, Shared, State, Table, BACKOFF_MIN, PERMANENT_RETRY};
use self::spool::{scan_spool, write_spool_file, SpoolEntry};
pub use self::url::{ClickHouseUrl, Password};
use crate::flow::Flow;

/// The schema batches are encoded in until the sender has probed the table
/// (batches of the other schema are transcoded before they are sent).
const START_SCHEMA: Schema = Schema::Native;

/// How long `close` keeps trying before spooling what is left.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the ClickHouse sink (`--clickhouse*` flags).
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// HTTP interface URL, e.g. `http://127.0.0.1:8123/` or `https://ch:8443/`
    /// (prints without its password).
    pub url: ClickHouseUrl,
    /// The password, when it comes from outside the URL (a file or the
    /// environment; prints as `***`).
    pub password: Option<Password>,
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
    /// The spool files never take more than this; batches beyond it are
    /// dropped and counted (`dropped_flows`).
    pub spool_max_bytes: u64,
    /// `https://` only: trust only the CA certificates of this PEM file.
    pub ca: Option<PathBuf>,
    /// Native schema only: a new table drops days older than this.
    pub ttl: Option<Duration>,
    /// Also create the rollup views `<table>_1m` and `<table>_1h`.
    pub rollups: bool,
    /// Write through a `Distributed` table over this cluster's shards.
    pub cluster: Option<String>,
}

/// The ClickHouse sink (see the module docs).
pub struct ClickHouseSink {
    cfg: ClickHouseConfig,
    shared: Arc<Shared>,
    /// The batch being filled (RowBinary rows of `cur_schema`).
    cur: Vec<u8>,
    cur_schema: Schema,
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

impl ClickHouseConfig {
    /// Check the settings (the one place that does: the flags are checked
    /// with it, and [`ClickHouseSink::new`] again); messages name the flag
    /// to change. The URL is `http://` or `https://` with a host and a
    /// valid port, `https://` with `--clickhouse-ca` (the CA file itself is
    /// read when the sink starts: `--dry-run` does not need it).
    pub fn validate(&self) -> anyhow::Result<()> {
        http::check_url(&self.url, self.ca.is_some())?;
        if self.table.is_empty()
            || !self.table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            bail!("--clickhouse-table {:?}: use letters, digits, '_' and '.' only", self.table);
        }
        if self.batch_rows == 0 || self.max_buffered_rows < self.batch_rows {
            bail!("--clickhouse-batch must be at least 1 and at most --clickhouse-buffer");
        }
        if let Some(c) = &self.cluster {
            if c.is_empty() || !c.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bail!("--clickhouse-cluster {c:?}: use letters, digits and '_' only");
            }
        }
        if self.ttl.is_some_and(|t| t < Duration::from_secs(86_400)) {
            bail!("--clickhouse-ttl must be at least 1d: the table drops whole days");
        }
        Ok(())
    }
}

impl ClickHouseSink {
    pub fn new(cfg: ClickHouseConfig) -> anyhow::Result<Self> {
        cfg.validate()?;
        let client = http::Client::new(&cfg.url, cfg.password.as_ref(), cfg.ca.as_deref())?;
        // Batches left by an earlier run go first.
        let (spool, bad) = scan_spool(&cfg.spool_dir)
            .with_context(|| format!("--spool-dir {}", cfg.spool_dir.display()))?;
        let next_seq = spool.keys().next_back().map_or(1, |s| s + 1);
        let spool_rows: u64 = spool.values().map(|e| e.rows as u64).sum();
        let spool_bytes: u64 = spool.values().map(|e| (e.rows * e.format.row_size()) as u64).sum();
        if spool_rows > 0 {
            eprintln!(
                "nfstitch: clickhouse: {} flows in {} spool files in {} from an earlier run; delivering them first",
                spool_rows,
                spool.len(),
                cfg.spool_dir.display()
            );
        }
        if spool_bytes > cfg.spool_max_bytes {
            eprintln!(
                "nfstitch: clickhouse: the spool holds {spool_bytes} bytes, over --spool-max-bytes {}; \
                 new batches that do not fit are dropped until it drains",
                cfg.spool_max_bytes
            );
        }
        let shared = Arc::new(Shared {
            st: Mutex::new(State {
                queue: VecDeque::new(),
                queued_rows: 0,
                spool,
                spool_rows,
                spool_bytes,
                in_flight: None,
                next_attempt: Instant::now(),
                backoff: BACKOFF_MIN,
                failing: false,
                outage_errors: 0,
                permanent: None,
                permanent_logged: None,
                permanent_retry: PERMANENT_RETRY,
                attempts: 0,
                spool_full: false,
                stop: false,
                schema: START_SCHEMA,
                c: Counters { spool_bad_files: bad, ..Counters::default() },
            }),
            cv: Condvar::new(),
        });
        let sender = {
            let shared = shared.clone();
            let cluster = cfg
                .cluster
                .as_deref()
                .map(|name| Cluster::new(name, &cfg.url, cfg.password.as_ref(), cfg.ca.clone()));
            let table = Table::new(&cfg.table, cfg.ttl, cfg.rollups, cluster);
            std::thread::Builder::new()
                .name("clickhouse".into())
                .spawn(move || sender(shared, client, table))
                .context("starting the ClickHouse sender thread")?
        };
        let cap = cfg.batch_rows.min(1 << 16) * START_SCHEMA.row_size();
        Ok(ClickHouseSink {
            cfg,
            shared,
            cur: Vec::with_capacity(cap),
            cur_schema: START_SCHEMA,
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

    /// How long the sender waits after a permanent error (a minute by default).
    pub fn set_permanent_retry(&mut self, d: Duration) {
        self.shared.lock().permanent_retry = d;
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
        let format = Format::of(self.cur_schema);
        let data = {
            let mut st = self.shared.lock();
            if st.queued_rows + rows <= self.cfg.max_buffered_rows && !st.stop {
                st.queued_rows += rows;
                st.queue.push_back(Batch { seq, rows, format, data: Arc::new(data) });
                drop(st);
                self.shared.cv.notify_all();
                return Ok(());
            }
            data
        };
        self.spool(seq, rows, format, &data)
    }

    /// Write a batch to the spool, or, when it would take the spool past
    /// `spool_max_bytes`, drop it and count its flows in `dropped_flows`.
    fn spool(&self, seq: u64, rows: usize, format: Format, data: &[u8]) -> anyhow::Result<()> {
        {
            // Only this thread adds to the spool: what fits now still fits
            // when the file is written.
            let mut st = self.shared.lock();
            let max = self.cfg.spool_max_bytes;
            if st.spool_bytes + data.len() as u64 > max {
                if !st.spool_full {
                    eprintln!(
                        "nfstitch: clickhouse: spool full ({} bytes in {}, --spool-max-bytes {max}); \
                         dropping new batches, counted in dropped_flows, until it drains",
                        st.spool_bytes,
                        self.cfg.spool_dir.display()
                    );
                }
                st.spool_full = true;
                st.c.dropped_flows += rows as u64;
                return Ok(());
            }
            if st.spool_full {
                st.spool_full = false;
                eprintln!(
                    "nfstitch: clickhouse: the spool has room again; {} flows dropped so far",
                    st.c.dropped_flows
                );
            }
        }
        match write_spool_file(&self.cfg.spool_dir, seq, format, data) {
            Ok(path) => {
                let mut st = self.shared.lock();
                if st.c.rows_spooled == 0 {
                    eprintln!(
                        "nfstitch: clickhouse: memory buffer full ({} flows); spooling batches to {}",
                        st.queued_rows,
                        self.cfg.spool_dir.display()
                    );
                }
                st.spool.insert(seq, SpoolEntry { rows, path, format });
                st.spool_rows += rows as u64;
                st.spool_bytes += data.len() as u64;
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
        // A batch that could not be sealed is counted dropped by `spool`; the
        // queue is still spooled (or counted), whatever happened to it.
        let sealed = self.seal();
        let left: Vec<Batch> = {
            let mut st = self.shared.lock();
            st.stop = true;
            st.queued_rows = 0;
            st.queue.drain(..).collect()
        };
        self.shared.cv.notify_all();
        let mut first_err = sealed.err();
        for b in left {
            if let Err(e) = self.spool(b.seq, b.rows, b.format, &b.data) {
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
        for (i, f) in flows.iter().enumerate() {
            if self.cur_rows == 0 {
                self.cur_since = Instant::now();
                // A new batch is in the table's schema, once the sender knows it.
                self.cur_schema = self.shared.lock().schema;
            }
            encode_row(self.cur_schema, f, &mut self.cur);
            self.cur_rows += 1;
            if self.cur_rows >= self.cfg.batch_rows {
                if let Err(e) = self.seal() {
                    // The sealed batch is counted by `spool`; the flows of
                    // this call not yet encoded are lost with it.
                    self.shared.lock().c.rows_dropped += (flows.len() - i - 1) as u64;
                    return Err(e);
                }
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
        // A failed seal (its batch counted dropped) must not cost the queue:
        // deliver and spool the rest, then report the first error.
        let sealed = self.seal();
        let deadline = Instant::now() + self.close_timeout;
        {
            let mut st = self.shared.lock();
            // After a permanent error, one more attempt (it may be fixed) is
            // all: the rest would fail the same way.
            let attempts = st.attempts;
            // Try at once, then back off as usual until the deadline.
            st.next_attempt = Instant::now();
            st.backoff = BACKOFF_MIN;
            self.shared.cv.notify_all();
            loop {
                let now = Instant::now();
                if (st.queue.is_empty() && st.spool.is_empty())
                    || now >= deadline
                    || (st.permanent.is_some() && st.attempts > attempts)
                {
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
        let res = sealed.and(self.spool_leftovers());
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
            ("spool_bytes", st.spool_bytes),
            ("dropped_flows", c.dropped_flows),
            ("permanent_errors", c.permanent_errors),
            ("permanent_error", st.permanent.is_some() as u64),
            ("values_clamped", c.values_clamped),
        ]
    }

    fn gauges(&self) -> &'static [&'static str] {
        &["rows_buffered", "rows_pending_spool", "spool_bytes", "permanent_error"]
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
