//! The writer thread: owns the output. It pops batches from every worker's
//! queue, formats and writes them, flushes on size (the buffered writer) and
//! on an interval (a quiet collector still writes promptly), reopens the
//! output file on SIGHUP, and prints the periodic stats line.
//!
//! At the end it sorts every worker's final flush together by (first, key),
//! so shutdown output is identical for any number of workers (D8).
//! An output error stops the collector: it is returned, never retried
//! forever, with the rows the OS accepted before it (see
//! [`crate::output::written`]): the rest is counted unwritten. A SIGHUP
//! whose path cannot be opened is not an output error: the rows keep going
//! to the file opened before, with a warning, and the next SIGHUP retries.

use std::fs::OpenOptions;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::clock::wall_ns;
use super::handoff::{DumpRec, DumpRow, Shared, SinkCounters, ToWriter};
use crate::config::Pipeline;
use crate::flow::Flow;
use crate::hist::Latency;
use crate::output::rotate::Rotator;
use crate::output::{
    Buffered, ConnRow, FlowRow, HeaderRow, Output, RecordRow, RowCounts, TemplatedHeaderRow,
    TemplatedRecordRow,
};
use crate::pair::Conn;
use crate::sink::FlowSink;

/// Writer settings.
#[derive(Debug)]
pub struct WriterConfig {
    /// `--rotate`: the output is a series of interval files.
    pub rotator: Option<Rotator>,
    /// Extra destinations for flows (ClickHouse).
    pub sinks: Vec<Box<dyn FlowSink>>,
    pub pipeline: Pipeline,
    pub flush_interval: Duration,
    /// Zero: no periodic line.
    pub stats_interval: Duration,
}

/// What the writer did.
#[derive(Debug, Default, Clone)]
pub struct WriterStats {
    /// Rows handed to the output.
    pub rows: u64,
    /// Of those, the rows the OS accepted (all of them unless it failed).
    pub written: RowCounts,
    /// SIGHUP reopens of `-o PATH` done, and those whose path could not be
    /// opened (the output stayed on the file opened before).
    pub reopens: u64,
    pub reopen_failures: u64,
    /// A flow's end (its deadline, eviction or shutdown time) to the writer writing it.
    pub flow_end_to_written: Latency,
    /// Dump rows lost when the output failed: the rest of the batch in
    /// hand, and the record rows handed to the output that the OS never
    /// accepted (still buffered).
    pub lost_dump_rows: u64,
    /// Each extra sink's counters, by sink name.
    pub sinks: Vec<(&'static str, Vec<(&'static str, u64)>)>,
}

/// Longest the writer parks: sinks, rotation, SIGHUP and the stats line get
/// their turn at least this often.
const IDLE_WAKE: Duration = Duration::from_millis(50);

/// Run the writer until every worker has finished (or the output failed).
/// Its statistics come back in both cases: up to the failure, if any.
pub fn run(
    shared: Arc<Shared>,
    mut cfg: WriterConfig,
    mut out: Output,
) -> (WriterStats, Result<()>) {
    let _ = shared.writer_thread.set(std::thread::current());
    let mut stats = WriterStats::default();
    let mut res = write_loop(&shared, &mut cfg, &mut out, &mut stats);
    for sink in &cfg.sinks {
        stats.sinks.push((sink.name(), sink.counters()));
    }
    // What reached the OS: after a successful flush everything handed to
    // the output; after an output error (the output then refuses every
    // write), what it had accepted before. A Zeek log ends with `#close`.
    let flushed = if res.is_ok() { out.close().and_then(|()| out.flush()) } else { out.flush() };
    if res.is_ok() {
        if let Err(e) = flushed {
            res = Err(e).context("writing output");
        }
    }
    let handed = out.handed();
    stats.rows = handed.rows;
    stats.written = out.written();
    stats.lost_dump_rows += handed.records - stats.written.records;
    shared.flows_written.store(stats.written.flows, Ordering::SeqCst);
    let end = match cfg.rotator.as_mut() {
        // The writer stopped early (output or sink failure): the interval
        // file misses the rest of its interval and keeps its temporary name.
        Some(r) if res.is_err() => {
            for tmp in r.abandon(out.into_writer()) {
                eprintln!("nfstitch: incomplete output left as {}", tmp.display());
            }
            Ok(())
        }
        Some(r) => r.finish(out.into_writer()),
        None => out.finish(),
    };
    if res.is_ok() {
        if let Err(e) = end {
            res = Err(e).context("writing output");
        }
    }
    if res.is_err() {
        shared.writer_failed.store(true, Ordering::SeqCst);
        shared.stop_all();
    }
    // How far the output got (rows: flows, and with --dump headers and records).
    let lost = handed.rows - stats.written.rows;
    let written = stats.written.rows;
    let why = format!("output failed after {written} rows written ({lost} more were buffered)");
    (stats, res.map_err(|e| e.context(why)))
}

fn write_loop(
    shared: &Shared,
    cfg: &mut WriterConfig,
    out: &mut Output,
    stats: &mut WriterStats,
) -> Result<()> {
    let mut finals: Vec<Flow> = Vec::new();
    let mut final_conns: Vec<Conn> = Vec::new();
    let mut last_flush = Instant::now();
    let mut last_stats = Instant::now();
    let mut last_publish = Instant::now();
    let mut prev = (0u64, 0u64);
    let n = shared.mailboxes.len();
    loop {
        // Read `finished` before popping: if all were finished then, the
        // queues hold everything they will ever hold once drained.
        let all_finished = shared.finished.load(Ordering::SeqCst) == n;
        let mut got = false;
        for mb in &shared.mailboxes {
            while let Some(mut msg) = mb.to_writer.pop() {
                got = true;
                if let ToWriter::Flows(flows) = &msg {
                    for sink in cfg.sinks.iter_mut() {
                        sink.flows(flows).with_context(|| format!("{} sink", sink.name()))?;
                    }
                }
                if let ToWriter::Conns(conns) = &msg {
                    conn_sinks(&mut cfg.sinks, conns)?;
                }
                write_msg(
                    &mut msg,
                    out,
                    (&mut finals, &mut final_conns),
                    &mut stats.flow_end_to_written,
                    &mut stats.lost_dump_rows,
                )
                .context("writing output")?;
                // Hand the emptied batch back (dropped if the worker has enough).
                match msg {
                    ToWriter::Flows(mut v) => {
                        v.clear();
                        let _ = mb.spent_flows.push(v);
                    }
                    ToWriter::Dump(mut v) => {
                        v.clear();
                        let _ = mb.spent_dump.push(v);
                    }
                    ToWriter::Final(_) | ToWriter::Conns(_) | ToWriter::FinalConns(_) => {}
                }
            }
        }
        if let Some(r) = cfg.rotator.as_mut() {
            let wall = wall_ns();
            if r.due(wall) {
                let next = r.open(wall).context("--rotate: cannot open the next file")?;
                let done = out.replace_writer(next).context("writing output")?;
                r.finish(done).context("--rotate: cannot finish a file")?;
            }
            shared.reopen.store(false, Ordering::SeqCst); // rotation replaces SIGHUP reopen
        } else if shared.reopen.swap(false, Ordering::SeqCst) {
            if let Some(path) = &cfg.pipeline.output {
                if reopen(path, out)? {
                    stats.reopens += 1;
                } else {
                    stats.reopen_failures += 1;
                    shared.reopen_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let now = Instant::now();
        for sink in cfg.sinks.iter_mut() {
            sink.tick(now).with_context(|| format!("{} sink", sink.name()))?;
        }
        if last_flush.elapsed() >= cfg.flush_interval {
            out.flush().context("writing output")?;
            last_flush = Instant::now();
        }
        if last_publish.elapsed() >= Duration::from_secs(1) {
            last_publish = Instant::now();
            if let Ok(mut l) = shared.writer_latency.lock() {
                l.clone_from(&stats.flow_end_to_written);
            }
            publish_sinks(shared, &cfg.sinks);
        }
        if !cfg.stats_interval.is_zero() && last_stats.elapsed() >= cfg.stats_interval {
            let secs = last_stats.elapsed().as_secs_f64();
            last_stats = Instant::now();
            prev = stats_line(shared, secs, prev);
        }
        if all_finished && !got {
            break;
        }
        if !got {
            // Park until a worker pushes (it unparks us) or the next periodic
            // duty: no polling while the collector only stitches.
            shared.writer_parked.store(true, Ordering::SeqCst);
            let pending = shared.mailboxes.iter().any(|m| !m.to_writer.is_empty())
                || shared.finished.load(Ordering::SeqCst) == n;
            if !pending {
                let flush_in = cfg.flush_interval.saturating_sub(last_flush.elapsed());
                std::thread::park_timeout(flush_in.clamp(Duration::from_millis(1), IDLE_WAKE));
            }
            shared.writer_parked.store(false, Ordering::SeqCst);
        }
    }
    finals.sort_unstable_by_key(|f| (f.first_ns, f.key));
    for f in &finals {
        out.write(&FlowRow(f)).context("writing output")?;
    }
    final_conns.sort_by_key(Conn::order);
    for c in &final_conns {
        out.write(&ConnRow(c)).context("writing output")?;
    }
    out.flush().context("writing output")?;
    let written = wall_ns();
    for f in &finals {
        stats.flow_end_to_written.record(written.saturating_sub(f.end_ns));
    }
    for c in &final_conns {
        stats.flow_end_to_written.record(written.saturating_sub(c.end_ns()));
    }
    conn_sinks(&mut cfg.sinks, &final_conns)?;
    for sink in cfg.sinks.iter_mut() {
        sink.flows(&finals).with_context(|| format!("{} sink", sink.name()))?;
        sink.close().with_context(|| format!("{} sink", sink.name()))?;
    }
    Ok(())
}

/// `--pair`: the sinks still get every flow (both directions of each
/// connection), as without it.
fn conn_sinks(sinks: &mut [Box<dyn FlowSink>], conns: &[Conn]) -> Result<()> {
    if sinks.is_empty() || conns.is_empty() {
        return Ok(());
    }
    let flows: Vec<Flow> =
        conns.iter().flat_map(|c| std::iter::once(c.orig).chain(c.resp)).collect();
    for sink in sinks.iter_mut() {
        sink.flows(&flows).with_context(|| format!("{} sink", sink.name()))?;
    }
    Ok(())
}

/// The sinks' counters, for `/metrics`.
fn publish_sinks(shared: &Shared, sinks: &[Box<dyn FlowSink>]) {
    if sinks.is_empty() {
        return;
    }
    let now: Vec<SinkCounters> = sinks
        .iter()
        .map(|s| SinkCounters { name: s.name(), counters: s.counters(), gauges: s.gauges() })
        .collect();
    if let Ok(mut c) = shared.sink_counters.lock() {
        *c = now;
    }
}

/// Write one message. If the output fails inside a dump batch, the batch's
/// rows whose record row was not handed over are added to `lost_dump`.
fn write_msg(
    msg: &mut ToWriter,
    out: &mut Output,
    (finals, final_conns): (&mut Vec<Flow>, &mut Vec<Conn>),
    hist: &mut Latency,
    lost_dump: &mut u64,
) -> io::Result<()> {
    match msg {
        ToWriter::Flows(flows) => {
            for f in flows.iter() {
                out.write(&FlowRow(f))?;
            }
            let written = wall_ns();
            for f in flows.iter() {
                hist.record(written.saturating_sub(f.end_ns));
            }
        }
        ToWriter::Dump(rows) => {
            for (k, r) in rows.iter().enumerate() {
                if let Err(e) = write_dump_row(out, r) {
                    *lost_dump += (rows.len() - k) as u64;
                    return Err(e);
                }
            }
        }
        ToWriter::Final(flows) => finals.append(flows),
        ToWriter::Conns(conns) => {
            for c in conns.iter() {
                out.write(&ConnRow(c))?;
            }
            let written = wall_ns();
            for c in conns.iter() {
                hist.record(written.saturating_sub(c.end_ns()));
            }
        }
        ToWriter::FinalConns(conns) => final_conns.append(conns),
    }
    Ok(())
}

/// One dump row: its datagram's header row first (before the first record),
/// then the record row.
fn write_dump_row(out: &mut Output, r: &DumpRow) -> io::Result<()> {
    let (ts, exporter, index) = (r.ts, r.exporter, r.index);
    match &r.rec {
        DumpRec::V5 { header, rec } => {
            if index == 0 {
                out.write(&HeaderRow { ts, exporter, header })?;
            }
            out.write(&RecordRow { ts, exporter, header, index, rec })
        }
        DumpRec::Templated { header, rec } => {
            if index == 0 {
                out.write(&TemplatedHeaderRow { ts, exporter, header })?;
            }
            out.write(&TemplatedRecordRow { ts, header, index, rec })
        }
    }
}

/// SIGHUP: reopen `-o PATH` (after logrotate moved it), appending. Rows
/// handed before go to the old file, flushed and closed first; rows after
/// go to the new one. A path that cannot be opened (its directory is gone,
/// it is a directory now, a full inode table) is no reason to stop
/// collecting: the rows keep going to the old file, a warning says so, and
/// `Ok(false)` has it counted (`reopen_failures`); the next SIGHUP tries
/// again. Only a failure to write the old file is an output error.
fn reopen(path: &std::path::Path, out: &mut Output) -> Result<bool> {
    let f = match OpenOptions::new().create(true).append(true).open(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "nfstitch: warning: SIGHUP: cannot reopen -o {}: {e}; still writing to the \
                 file opened before (send SIGHUP again to retry)",
                path.display()
            );
            return Ok(false);
        }
    };
    let old = out.replace_writer(Box::new(Buffered::new(f))).context("writing output")?;
    old.finish().context("writing output")?;
    eprintln!("nfstitch: SIGHUP: reopened -o {}", path.display());
    Ok(true)
}

/// The one-line periodic report. Returns the new (datagrams, records) totals.
fn stats_line(shared: &Shared, secs: f64, prev: (u64, u64)) -> (u64, u64) {
    let sum = |f: fn(&super::gauges::Gauges) -> u64| -> u64 {
        shared.mailboxes.iter().map(|m| f(&m.gauges)).sum()
    };
    let dg = sum(|g| g.datagrams.load(Ordering::Relaxed));
    let rec = sum(|g| g.records.load(Ordering::Relaxed));
    eprintln!(
        "nfstitch: {:.0} datagrams/s {:.0} records/s, active {}, flows {}, rejected {}, kernel drops {}, seq lost {}, queue stalls {}",
        (dg - prev.0) as f64 / secs,
        (rec - prev.1) as f64 / secs,
        sum(|g| g.active_flows.load(Ordering::Relaxed)),
        sum(|g| g.flows.load(Ordering::Relaxed)),
        sum(|g| g.rejected.load(Ordering::Relaxed)),
        sum(|g| g.kernel_drops.load(Ordering::Relaxed)),
        shared.seq.sum().lost_records,
        sum(|g| g.queue_stalls.load(Ordering::Relaxed)),
    );
    (dg, rec)
}
