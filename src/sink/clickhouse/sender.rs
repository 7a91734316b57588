//! The sender thread (`clickhouse`) and the state it shares with the sink.
//!
//! The sender owns the network: it takes the oldest pending batch (in memory
//! or in the spool, by sequence number), creates the table when needed and
//! POSTs the batch. A batch leaves the queue or the spool only once the
//! server answered 200 (at-least-once: a batch whose answer is lost is sent
//! again); a delivered spool file is deleted. On failure the batch stays
//! where it is and the next attempt waits a backoff of 100 ms doubling to
//! 10 s; the first failure of an outage and the recovery are logged, the
//! failures in between only counted.
//!
//! A *permanent* error ([`PostError::is_permanent`]: wrong password, no
//! grant, unknown database, a table that is not ours) does not pass by
//! itself: the sender then retries only every [`PERMANENT_RETRY`] (a person
//! fixing the server side is picked up without a restart), sets the
//! `permanent_error` gauge, counts `permanent_errors`, and logs the error
//! when it starts, when its text changes, and every
//! [`PERMANENT_REMINDER`] while it lasts. Batches stay where they are
//! (memory, then the spool up to `--spool-max-bytes`), so fixing the cause
//! delivers everything held.
//!
//! Before the first insert and again after any failure (a restarted or
//! upgraded server may have lost the table), the sender asks the server for
//! its version and the type of the table's `src_addr` (`ddl::probe_sql`):
//! the table's schema is that of the existing table, else the one for the
//! server's version ([`Schema::for_server`]). It then creates the table
//! (`CREATE TABLE IF NOT EXISTS`, with `--clickhouse-ttl` on the native
//! schema) and, with `--clickhouse-rollups`, the rollup views. A refused
//! probe or CREATE does not stop the insert (the table may exist and this
//! user may not be allowed DDL).
//!
//! The table's columns are read from `system.columns`; a table made by an
//! earlier release gets the columns it lacks (`migrate`), and every insert
//! names the columns the table has, each encoded for its type there
//! (`migrate::Plan`): a value that an older, narrower column cannot hold is
//! counted (`values_clamped`) and the column named once in the log.
//!
//! The writer encodes a batch before the sender knows the table (at start
//! the native schema; after the probe, the table's, which the sender leaves
//! in [`State::schema`]); a batch of another format (the other schema, or
//! a spool file of an earlier release: the file name says which) is
//! rewritten for the table's columns before it is sent, so no batch is
//! ever read with the wrong row layout.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::ddl::{create_table_sql, probe_answer, probe_sql, rollup_sql};
use super::http::{Client, PostError};
use super::migrate::{clamp_note, migrate, old_rollups, Clamped, Plans};
use super::schema::{Format, Schema, COLUMNS};
use super::spool::SpoolEntry;

/// Retry backoff: starts here, doubles per failure ...
pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// ... up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Retry interval after a permanent error.
pub(super) const PERMANENT_RETRY: Duration = Duration::from_secs(60);
/// A permanent error still there is logged again this often.
const PERMANENT_REMINDER: Duration = Duration::from_secs(600);

/// A sealed batch in memory.
pub(super) struct Batch {
    pub(super) seq: u64,
    pub(super) rows: usize,
    /// The format its rows were encoded in.
    pub(super) format: Format,
    pub(super) data: Arc<Vec<u8>>,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Batch {{ seq: {}, rows: {} }}", self.seq, self.rows)
    }
}

/// What the sink reports (see [`FlowSink::counters`](crate::sink::FlowSink::counters)).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counters {
    pub(super) rows_inserted: u64,
    pub(super) batches_inserted: u64,
    pub(super) insert_errors: u64,
    pub(super) retries: u64,
    pub(super) rows_spooled: u64,
    pub(super) rows_dropped: u64,
    pub(super) spool_bad_files: u64,
    /// Flows not kept because the spool was at `--spool-max-bytes`.
    pub(super) dropped_flows: u64,
    /// Attempts that failed with a permanent error.
    pub(super) permanent_errors: u64,
    /// Values an existing table's columns could not hold (narrower or
    /// missing columns of an earlier release), written clamped or not at all.
    pub(super) values_clamped: u64,
}

/// Everything the writer side and the sender share, under one mutex.
#[derive(Debug)]
pub(super) struct State {
    /// Sealed batches in memory, oldest first.
    pub(super) queue: VecDeque<Batch>,
    pub(super) queued_rows: usize,
    /// Spooled batches on disk, by sequence.
    pub(super) spool: BTreeMap<u64, SpoolEntry>,
    pub(super) spool_rows: u64,
    /// Bytes of the spool files in `spool` (bounded by `--spool-max-bytes`).
    pub(super) spool_bytes: u64,
    /// The batch being sent (it stays in `queue` / `spool` until delivered).
    pub(super) in_flight: Option<u64>,
    /// No attempt before this.
    pub(super) next_attempt: Instant,
    pub(super) backoff: Duration,
    /// The last attempt failed (the next one is a retry).
    pub(super) failing: bool,
    /// Failed attempts in the current outage.
    pub(super) outage_errors: u64,
    /// The last attempt failed with a permanent error: its text.
    pub(super) permanent: Option<String>,
    /// When the permanent error was last logged.
    pub(super) permanent_logged: Option<Instant>,
    /// Retry interval after a permanent error ([`PERMANENT_RETRY`]).
    pub(super) permanent_retry: Duration,
    /// Attempts finished (delivered or failed), for `close` to wait on one.
    pub(super) attempts: u64,
    /// The last batch to spool did not fit under `--spool-max-bytes`.
    pub(super) spool_full: bool,
    /// The sender must end.
    pub(super) stop: bool,
    /// The schema the writer encodes new batches in: the table's, once the
    /// sender has probed it.
    pub(super) schema: Schema,
    pub(super) c: Counters,
}

/// The state and the condition variable both sides wait on (the sender for
/// work or its next attempt, `close` for the queue to empty).
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) st: Mutex<State>,
    pub(super) cv: Condvar,
}

impl State {
    /// Take a spool entry out of the books (its file is the caller's).
    pub(super) fn unspool(&mut self, seq: u64) -> Option<SpoolEntry> {
        let e = self.spool.remove(&seq)?;
        self.spool_rows -= e.rows as u64;
        self.spool_bytes -= (e.rows * e.format.row_size()) as u64;
        Some(e)
    }
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking sender must not take the writer down with it.
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Job {
    Mem(Arc<Vec<u8>>),
    Disk(PathBuf),
}

/// What the sender knows of the table and how it makes it.
pub(super) struct Table {
    name: String,
    ttl: Option<Duration>,
    rollups: bool,
    /// `--clickhouse-cluster`: `name` is a `Distributed` table over the
    /// shards' local tables (see `cluster`).
    cluster: Option<Cluster>,
    /// The table's schema, once probed.
    schema: Option<Schema>,
    /// How each format's rows go into the table's columns.
    plans: Plans,
    /// Columns already named in the log for values they could not hold.
    clamp_warned: Vec<&'static str>,
    /// Rollup views of an earlier release were named in the log.
    old_views_warned: bool,
    /// The probe's answer of the last decision (logged when it changes).
    said: Option<String>,
    /// What the server refused while the inserts worked (logged when it changes).
    refused: Option<String>,
}

impl Table {
    /// `name`, made with `ttl` (native schema only), with `rollups` the
    /// rollup views, and with `cluster` over the cluster's shards.
    pub(super) fn new(
        name: &str,
        ttl: Option<Duration>,
        rollups: bool,
        cluster: Option<Cluster>,
    ) -> Table {
        Table {
            name: name.to_string(),
            ttl,
            rollups,
            cluster,
            schema: None,
            plans: Plans::default(),
            clamp_warned: Vec::new(),
            old_views_warned: false,
            said: None,
            refused: None,
        }
    }

    /// Probe the server, create the table (and the rollup views) in its
    /// schema; no CREATE while the schema is unknown (the insert then goes
    /// in the batch's schema: the table may exist). `Err` only for a failure
    /// without an answer (the insert would fail the same way); what the
    /// server refused comes back as text.
    fn prepare(&mut self, client: &Client) -> Result<Option<String>, PostError> {
        let mut refused = Vec::new();
        // A user who may not read system.columns may still ask the version.
        let answer = match client.query(&probe_sql(&self.name)) {
            Err(PostError::Http(c, m)) => {
                refused.push(format!("table probe: HTTP {c}: {m}"));
                client.query("SELECT version() FORMAT TSV")
            }
            other => other,
        };
        match answer {
            Ok(answer) => match probe_answer(&answer) {
                Ok(s) => {
                    let line = answer.lines().next().unwrap_or("");
                    let (version, ty) = line.split_once('\t').unwrap_or((line, ""));
                    let said = match ty {
                        "" => format!("ClickHouse {version}, no table {} yet", self.name),
                        ty => format!("ClickHouse {version}, table {} (src_addr {ty})", self.name),
                    };
                    if self.said.as_deref() != Some(said.as_str()) {
                        eprintln!("nfstitch: clickhouse: {said}: the {s:?} schema");
                        if s == Schema::Legacy && self.ttl.is_some() {
                            eprintln!(
                                "nfstitch: clickhouse: --clickhouse-ttl needs the native schema \
                                 (ClickHouse 20.3 or later); {} gets no TTL",
                                self.name
                            );
                        }
                        self.said = Some(said);
                    }
                    self.schema = Some(s);
                }
                Err(why) => refused.push(format!("version probe: {why}")),
            },
            Err(PostError::Http(c, m)) => refused.push(format!("version probe: HTTP {c}: {m}")),
            Err(e) => return Err(e),
        }
        let Some(schema) = self.schema else {
            return Ok(Some(refused.join("; ")));
        };
        // A table of an earlier release gets the new columns (before the
        // rollup views, which read them); the inserts name the columns it
        // has, in their types.
        let columns = if let Some(cluster) = &self.cluster {
            cluster.prepare(client, &self.name, schema, self.ttl, self.rollups, &mut refused)?;
            migrate(client, &self.name, schema, true, &mut refused)?
        } else {
            client.ddl(&create_table_sql(&self.name, schema, self.ttl), &mut refused)?;
            let columns = migrate(client, &self.name, schema, false, &mut refused)?;
            if self.rollups {
                for sql in rollup_sql(&self.name, schema) {
                    client.ddl(&sql, &mut refused)?;
                }
                for view in old_rollups(client, &self.name, schema) {
                    if !self.old_views_warned {
                        eprintln!(
                            "nfstitch: clickhouse: the rollup view {view} was made by a release \
                             before IPv6: it sums every IPv6 address pair under 0.0.0.0; drop it \
                             (DROP TABLE {view}) and the next start makes it with IPv6 pairs apart"
                        );
                    }
                }
                self.old_views_warned = true;
            }
            columns
        };
        self.plans.reset(columns, schema);
        Ok((!refused.is_empty()).then(|| refused.join("; ")))
    }

    /// The insert of `data` (rows of `format`): the statement and the rows
    /// for the table's columns (the batch itself when they match). `Err`:
    /// the table has a column the sink cannot write.
    fn insert(
        &mut self,
        format: Format,
        data: &Arc<Vec<u8>>,
        clamped: &mut Clamped,
    ) -> Result<(String, Arc<Vec<u8>>), String> {
        let plan = self.plans.get(&self.name, format).as_ref().map_err(String::clone)?;
        if plan.is_identity() {
            return Ok((plan.insert.clone(), data.clone()));
        }
        let rows = plan.convert(data, clamped);
        let insert = plan.insert.clone();
        for col in &clamped.columns {
            if self.clamp_warned.contains(col) {
                continue;
            }
            self.clamp_warned.push(col);
            let have = self.plans.column_type(col);
            let want = COLUMNS
                .iter()
                .find(|c| c.name == *col)
                .and_then(|c| self.schema.and_then(|s| s.bare_type(c)));
            eprintln!(
                "nfstitch: clickhouse: {}",
                clamp_note(&self.name, col, have.as_deref(), want)
            );
        }
        Ok((insert, Arc::new(rows)))
    }
}

/// The sender thread: deliver the oldest batch, back off on failure.
pub(super) fn sender(shared: Arc<Shared>, client: Client, mut table: Table) {
    let mut need_create = true;
    loop {
        let (seq, rows, format, job) = {
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
            let (seq, rows, format, job) = match (mem, disk) {
                (Some(m), Some(d)) if d < m => {
                    let e = &st.spool[&d];
                    (d, e.rows, e.format, Job::Disk(e.path.clone()))
                }
                (Some(_), _) => {
                    let b = st.queue.front().expect("front");
                    (b.seq, b.rows, b.format, Job::Mem(b.data.clone()))
                }
                (None, Some(d)) => {
                    let e = &st.spool[&d];
                    (d, e.rows, e.format, Job::Disk(e.path.clone()))
                }
                (None, None) => unreachable!("pending"),
            };
            st.in_flight = Some(seq);
            if st.failing {
                st.c.retries += 1;
            }
            (seq, rows, format, job)
        };
        let data = match job {
            Job::Mem(d) => Ok(d),
            Job::Disk(path) => std::fs::read(&path).map(Arc::new).map_err(|e| (path, e)),
        };
        let data = match data {
            Ok(d) if d.len() == rows * format.row_size() => d,
            Ok(d) => {
                // Changed under us: skip it, keep the file for a person to look at.
                let mut st = shared.lock();
                if let Some(e) = st.unspool(seq) {
                    let to = e.path.with_extension("rowbinary.bad");
                    eprintln!(
                        "nfstitch: clickhouse: spool file {} changed size ({} bytes); moved to {}",
                        e.path.display(),
                        d.len(),
                        to.display()
                    );
                    let _ = std::fs::rename(&e.path, &to);
                    st.c.spool_bad_files += 1;
                    // Its rows leave the spool without being delivered.
                    st.c.rows_dropped += e.rows as u64;
                }
                st.in_flight = None;
                continue;
            }
            Err((path, e)) => {
                let mut st = shared.lock();
                st.in_flight = None;
                if e.kind() == io::ErrorKind::NotFound {
                    // Removed by someone else: those rows are gone from our hands.
                    if let Some(ent) = st.unspool(seq) {
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
        let mut clamped = Clamped::default();
        let res = (|| {
            if need_create {
                // The server answered: try the insert anyway (the table may
                // exist and this user may not be allowed DDL).
                create_err = table.prepare(&client)?;
                need_create = create_err.is_some();
            }
            let (insert, rows) =
                table.insert(format, &data, &mut clamped).map_err(PostError::Table)?;
            client.post(&insert, &rows)
        })();
        let mut st = shared.lock();
        if let Some(s) = table.schema {
            st.schema = s;
        }
        st.in_flight = None;
        st.attempts += 1;
        match res {
            Ok(()) => {
                if create_err.is_some() && create_err != table.refused {
                    // Inserts work, but a rollup view or a shard's table may be missing.
                    let text = client.scrub(create_err.as_deref().unwrap_or(""));
                    eprintln!(
                        "nfstitch: clickhouse: inserting, but the table setup was refused: {text}"
                    );
                    table.refused = create_err.take();
                }
                need_create = false;
                st.c.rows_inserted += rows as u64;
                st.c.values_clamped += clamped.values;
                st.c.batches_inserted += 1;
                if let Some(i) = st.queue.iter().position(|b| b.seq == seq) {
                    let b = st.queue.remove(i).expect("position");
                    st.queued_rows -= b.rows;
                } else if let Some(e) = st.unspool(seq) {
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
                st.permanent = None;
                st.failing = false;
                st.outage_errors = 0;
                st.backoff = BACKOFF_MIN;
                st.next_attempt = Instant::now();
            }
            Err(e) => {
                need_create = true;
                st.c.insert_errors += 1;
                st.outage_errors += 1;
                let extra = create_err.map(|c| format!(" (create table: {c})")).unwrap_or_default();
                let text = client.scrub(&format!("{e}{extra}"));
                if e.is_permanent() {
                    permanent(&mut st, rows, text);
                } else {
                    if !st.failing || st.permanent.is_some() {
                        eprintln!(
                            "nfstitch: clickhouse: insert of {rows} flows failed: {text}; \
                             keeping them and retrying with backoff"
                        );
                    }
                    st.permanent = None;
                    st.next_attempt = Instant::now() + st.backoff;
                    st.backoff = (st.backoff * 2).min(BACKOFF_MAX);
                }
                st.failing = true;
            }
        }
        drop(st);
        shared.cv.notify_all();
    }
}

/// An attempt failed with a permanent error: count it, log it when it is
/// new (or changed, or the reminder is due), retry slowly.
fn permanent(st: &mut State, rows: usize, text: String) {
    st.c.permanent_errors += 1;
    let now = Instant::now();
    let due = st.permanent_logged.is_none_or(|t| now.duration_since(t) >= PERMANENT_REMINDER);
    if st.permanent.as_deref() != Some(text.as_str()) || due {
        eprintln!(
            "nfstitch: clickhouse: PERMANENT ERROR: insert of {rows} flows failed: {text}; \
             this will not pass by itself (check the password, grants, database and table); \
             keeping flows ({} in memory, {} spooled, {} dropped at --spool-max-bytes) and \
             retrying every {}",
            st.queued_rows,
            st.spool_rows,
            st.c.dropped_flows,
            humantime::format_duration(st.permanent_retry)
        );
        st.permanent_logged = Some(now);
    }
    st.permanent = Some(text);
    st.next_attempt = now + st.permanent_retry;
}
