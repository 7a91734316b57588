//! `nfstitch collect` (what plain `nfstitch` runs): the live multi-core
//! collector, in the shape of ARCHITECTURE.md. It takes its options already
//! validated ([`crate::config::Collect`]).
//!
//! Threads: N pinned [`worker`]s, each owning one SO_REUSEPORT socket per
//! `--listen` address and one flow shard; one [`writer`] owning the output;
//! one signal thread. Queues between them: [`handoff`].
//!
//! Shutdown (SIGINT/SIGTERM): workers stop polling, read what is already
//! queued in their sockets, hand off their last cross-shard batches, drain
//! their inboxes until every worker is done sending (no time limit: see
//! `Worker::shutdown` for why the wait is finite), flush every flow once
//! (`shutdown`), and the writer writes the sorted final flush, the report is
//! printed, exit 0. SIGHUP reopens `-o PATH` (a path that cannot be opened
//! is warned about and counted, and the old file kept).

pub mod clock;
pub mod gauges;
pub mod handoff;
pub mod metrics;
pub mod push;
pub mod route;
pub mod worker;
pub mod writer;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

// The validated options live in `config`; re-exported for embedders
// (`nfstitch-demo` builds one by hand).
pub use crate::config::Collect;
use crate::config::{Pipeline, MAX_WORKERS};
use crate::flow::{Shard, ShardStats};
use crate::hist::Latency;
use crate::ingest::state::{Board, Publisher, SAVE_EVERY};
use crate::ingest::{Counters, Ingest, Overflow};
use crate::platform::{self, ReuseportSocket};
use crate::results::{finish_report, open_output, Existing};
use crate::stats::{Report, TemplateStateReport, WorkerReport};
use clock::wall_ns;
use handoff::{Mailbox, Shared, ToWriter};
use worker::{Worker, WorkerConfig};
use writer::WriterConfig;

/// Bind one socket per (worker, listen address). Port 0 is resolved by the
/// first bind, so every worker joins the same reuseport group.
fn bind_all(cfg: &Collect) -> Result<Vec<Vec<ReuseportSocket>>> {
    let mut per_worker: Vec<Vec<ReuseportSocket>> = (0..cfg.workers).map(|_| Vec::new()).collect();
    for &addr in &cfg.listen {
        let mut addr = addr;
        for socks in per_worker.iter_mut() {
            let s = ReuseportSocket::bind(addr, cfg.rcvbuf)
                .with_context(|| format!("--listen: cannot bind {addr}"))?;
            addr = s.local_addr()?;
            socks.push(s);
        }
        eprintln!("nfstitch: listening on {addr} ({} workers)", cfg.workers);
    }
    // Linux reports twice the size set (it counts its bookkeeping).
    let got = per_worker[0].first().map(|s| s.rcvbuf()).transpose()?.unwrap_or(0) / 2;
    match cfg.rcvbuf {
        None => eprintln!("nfstitch: receive buffer {got} bytes per socket (the kernel's default)"),
        Some(want) if got >= want => {
            eprintln!("nfstitch: receive buffer {got} bytes per socket")
        }
        Some(want) => eprintln!(
            "nfstitch: warning: receive buffer {got} bytes per socket, not the {want} asked \
             (--rcvbuf): capped by net.core.rmem_max ({}); a burst or stall overflows it \
             sooner. Raise the cap with: sysctl -w net.core.rmem_max={want}",
            platform::rmem_max().map_or("unknown".to_string(), |m| m.to_string())
        ),
    }
    Ok(per_worker)
}

/// Run the collector until SIGINT/SIGTERM. Returns the final report.
pub fn run(cfg: &Collect) -> Result<Report> {
    start(cfg, true)?.wait()
}

/// A running collector (see [`start`]).
#[derive(Debug)]
pub struct Running {
    cfg: Collect,
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    handles: Vec<std::thread::JoinHandle<worker::WorkerResult>>,
    writer: std::thread::JoinHandle<(writer::WriterStats, Result<()>)>,
    signals: Option<(signal_hook::iterator::Handle, std::thread::JoinHandle<()>)>,
    metrics: Option<std::thread::JoinHandle<()>>,
    /// `--state-dir`: what was loaded; the templates are saved into it at the end.
    state: Option<TemplateStateReport>,
    /// `--state-dir`: the templates saved while running, and the thread that saves them.
    saver: Option<(Arc<Board>, std::thread::JoinHandle<()>)>,
}

/// Start the collector's threads and return at once. With `signals`,
/// SIGINT/SIGTERM stop it and SIGHUP reopens the output (what the binary
/// does); without, the embedding program calls [`Running::stop`].
///
/// Fails if `cfg.workers` is outside 1..=[`MAX_WORKERS`] (routing keeps
/// one bit per worker in a `u64`); [`Collect::from_args`] already rejects
/// such a `--workers`, so only a library caller can meet this error.
pub fn start(cfg: &Collect, signals: bool) -> Result<Running> {
    if !(1..=MAX_WORKERS).contains(&cfg.workers) {
        bail!("workers must be 1..={MAX_WORKERS}, got {}", cfg.workers);
    }
    let p = &cfg.pipeline;
    let mut rotator = cfg
        .rotate
        .clone()
        .map(crate::output::rotate::Rotator::new)
        .transpose()
        .context("--rotate: cannot create the output directory")?;
    let out = match &mut rotator {
        None => open_output(p, Existing::Append)?,
        Some(r) => crate::output::Output::new(p.format, p.time_format, r.open(wall_ns())?),
    };
    let mut polls = Vec::new();
    let mut mailboxes = Vec::new();
    for _ in 0..cfg.workers {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), mio::Token(usize::MAX))?;
        mailboxes.push(Mailbox::new(waker));
        polls.push(poll);
    }
    let shared = Arc::new(Shared::new(mailboxes));
    // Signals first: from "listening on" on, SIGTERM is a clean stop.
    let signals = if signals {
        let mut signals =
            Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
        let sig_handle = signals.handle();
        let sig_shared = Arc::clone(&shared);
        let sig_thread = std::thread::Builder::new().name("signals".into()).spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    sig_shared.reopen.store(true, Ordering::SeqCst);
                } else {
                    sig_shared.stop_all();
                }
            }
        })?;
        Some((sig_handle, sig_thread))
    } else {
        None
    };

    let sockets = bind_all(cfg)?;
    let addrs = sockets[0].iter().map(|s| s.local_addr()).collect::<std::io::Result<Vec<_>>>()?;
    let metrics = cfg.metrics.map(|a| metrics::spawn(a, Arc::clone(&shared))).transpose()?;

    // Everything that can fail comes before the first thread starts.
    let mut sinks: Vec<Box<dyn crate::sink::FlowSink>> = Vec::new();
    if let Some(ch) = &cfg.clickhouse {
        sinks.push(Box::new(crate::sink::clickhouse::ClickHouseSink::new(ch.clone())?));
    }
    // v9/IPFIX templates saved by the last run: every worker starts with them.
    let mut loaded = crate::wire::template::Decoder::default();
    let state =
        p.state_dir.as_deref().map(|dir| TemplateStateReport::load(dir, loaded.cache_mut()));
    let board = p.state_dir.as_ref().map(|_| Arc::new(Board::new(cfg.workers)));
    let cores = platform::core_ids();
    let now = wall_ns();
    let mut handles = Vec::new();
    for (id, (socks, poll)) in sockets.into_iter().zip(polls).enumerate() {
        let mut ingest = Ingest::new(p.lenient, p.scale_sampling)
            .with_allow(p.allow.clone())
            .with_hold(p.hold)
            .with_templates(loaded.cache())
            .with_seq(shared.seq.clone());
        if let Some(b) = &board {
            ingest = ingest.with_publisher(Publisher::new(Arc::clone(b), id));
        }
        let wcfg = WorkerConfig {
            id,
            sockets: socks,
            shard: Shard::new(p.shard_config(cfg.workers), now),
            ingest,
            key: p.key,
            stitch: p.stitch,
            dump: p.dump,
            rx_coalesce: cfg.rx_coalesce,
            reserve: cfg.reserve_flows.div_ceil(cfg.workers),
            pairer: p.pair.then(|| {
                let sc = p.shard_config(cfg.workers);
                crate::pair::Pairer::new(sc.idle_ns, sc.max_flows)
            }),
        };
        let w = Worker::new(Arc::clone(&shared), poll, wcfg)?;
        let core = match &cfg.cpus {
            Some(list) => Some(list[id % list.len()]),
            None => cores.get(id % cores.len().max(1)).copied(),
        };
        handles.push(std::thread::Builder::new().name(format!("worker-{id}")).spawn(
            move || {
                if let Some(c) = core {
                    if !platform::pin_current_thread(c) {
                        eprintln!("nfstitch: warning: could not pin worker {id} to core {c}");
                    }
                }
                w.run()
            },
        )?);
    }
    let wcfg = WriterConfig {
        rotator,
        sinks,
        pipeline: p.clone(),
        flush_interval: cfg.flush_interval,
        stats_interval: cfg.stats_interval,
    };
    let wshared = Arc::clone(&shared);
    let writer = std::thread::Builder::new()
        .name("writer".into())
        .spawn(move || writer::run(wshared, wcfg, out))?;
    let saver = match (board, &p.state_dir) {
        (Some(b), Some(dir)) => Some((Arc::clone(&b), spawn_saver(b, dir, &shared)?)),
        _ => None,
    };
    Ok(Running { cfg: cfg.clone(), shared, addrs, handles, writer, signals, metrics, state, saver })
}

/// The thread that saves the templates the workers publish on `board` into
/// `dir` while the collector runs (at most once per [`SAVE_EVERY`], only
/// when they changed), until the collector stops; the final save is
/// [`Running::wait`]'s. A failure is warned about once, counted, retried.
fn spawn_saver(
    board: Arc<Board>,
    dir: &std::path::Path,
    shared: &Arc<Shared>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (dir, shared) = (dir.to_path_buf(), Arc::clone(shared));
    std::thread::Builder::new().name("template-saver".into()).spawn(move || {
        let step = std::time::Duration::from_millis(50);
        let mut warned = false;
        let mut last = std::time::Instant::now();
        while !shared.stop.load(Ordering::Relaxed) {
            std::thread::sleep(step);
            if last.elapsed() < SAVE_EVERY {
                continue;
            }
            if let Some(res) = board.save_if_changed(&dir) {
                last = std::time::Instant::now();
                if let (Err(e), false) = (res, warned) {
                    warned = true;
                    eprintln!(
                        "nfstitch: warning: could not save templates to {} while running \
                         (retried; counted in template_state.periodic_save_failures): {e}",
                        dir.display()
                    );
                }
            }
        }
    })
}

impl Running {
    /// The bound address of each `--listen` (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stop receiving, flush every flow once, and return the final report.
    pub fn stop(self) -> Result<Report> {
        self.shared.stop_all();
        self.wait()
    }

    /// Wait until stopped (by a signal or [`Running::stop`]), then report.
    pub fn wait(self) -> Result<Report> {
        let Running { cfg, shared, addrs: _, handles, writer, signals, metrics, mut state, saver } =
            self;
        let cfg = &cfg;
        let p = &cfg.pipeline;
        let results: Vec<_> =
            handles.into_iter().map(|h| h.join().expect("worker panicked")).collect();
        // The saver stops with the workers, before the final save.
        if let Some((board, thread)) = saver {
            let _ = thread.join();
            if let Some(st) = &mut state {
                (st.periodic_saves, st.periodic_save_failures) = board.saves();
            }
        }
        if let Some(st) = &mut state {
            let caches: Vec<_> =
                results.iter().map(|r| r.ingest.templated.decoder.cache()).collect();
            st.save(&caches);
        }
        let (written, res) = writer.join().expect("writer panicked");
        if let Some((handle, thread)) = signals {
            handle.close();
            let _ = thread.join();
        }
        if let Some(m) = metrics {
            let _ = m.join();
        }
        let e = match res {
            Ok(()) => return report(cfg, p, results, written, None, state),
            Err(e) => e,
        };
        // Say how much is lost: every flow the shards emitted whose row the
        // OS did not accept (never handed to the output, or still in its
        // buffer); the dump rows the workers dropped once it had failed or
        // that still sat in its queues.
        // (With --pair the rows are connections.)
        let emitted: u64 = results
            .iter()
            .map(|r| r.pair.map_or_else(|| r.shard.flows_total(), |s| s.conns()))
            .sum();
        let flows = emitted.saturating_sub(shared.flows_written.load(Ordering::SeqCst));
        // (and those of the dump batch the writer had in hand or had buffered).
        let mut rows: u64 =
            results.iter().map(|r| r.unwritten_rows).sum::<u64>() + written.lost_dump_rows;
        for mb in &shared.mailboxes {
            while let Some(msg) = mb.to_writer.pop() {
                if let ToWriter::Dump(d) = msg {
                    rows += d.len() as u64;
                }
            }
        }
        // The report and --stats-json still come out, with the failure in
        // them: the counters are what an operator needs to see what was lost.
        let lost = WriterFailure { error: format!("{e:#}"), flows, rows };
        if let Err(r) = report(cfg, p, results, written, Some(&lost), state) {
            eprintln!("nfstitch: {r:#}");
        }
        Err(e.context(format!(
            "{emitted} flows emitted in all, {flows} of them (and {rows} dump rows) \
             left unwritten after the failure: the output is incomplete"
        )))
    }
}

/// Why the writer failed, and what it left unwritten.
#[derive(Debug)]
struct WriterFailure {
    error: String,
    flows: u64,
    rows: u64,
}

fn report(
    cfg: &Collect,
    p: &Pipeline,
    results: Vec<worker::WorkerResult>,
    written: writer::WriterStats,
    failed: Option<&WriterFailure>,
    state: Option<TemplateStateReport>,
) -> Result<Report> {
    let mut counters = Counters::default();
    let mut shards = ShardStats::default();
    let mut exporters = Vec::new();
    let mut overflow = Overflow::default();
    let mut workers = Vec::new();
    let mut templated = crate::ingest::TemplatedCounters::default();
    let mut per_templated = Vec::new();
    let mut held_now = 0;
    for r in &results {
        templated.add(&r.ingest.templated.counters);
        per_templated.extend(r.ingest.exporter_templated());
        held_now += r.ingest.templated.hold.sets();
        counters.add(&r.ingest.counters);
        shards.add(&r.shard);
        exporters.extend(r.ingest.exporter_counters());
        overflow.add(&r.ingest.overflow);
        workers.push(WorkerReport {
            worker: r.id,
            datagrams: r.ingest.counters.datagrams,
            records: r.ingest.counters.records,
            rejected: r.ingest.counters.rejected_total(),
            flows: r.shard.flows_total(),
            applied_records: r.shard.records,
            kernel_drops: r.kernel_drops,
            unread_at_shutdown: r.unread_at_shutdown,
            queue_stalls: r.queue_stalls,
            writer_stalls: r.writer_stalls,
        });
    }
    // Every worker's Ingest shares one sequence table: take it from any.
    let seq = results.first().map(|r| r.ingest.seq.clone()).unwrap_or_default();
    let mut report = Report::new(&counters, &exporters, &seq, &overflow, &shards, 0)
        .with_templated(&templated, held_now, &per_templated);
    report.template_state = state;
    if p.pair {
        let mut pair = crate::pair::PairStats::default();
        for s in results.iter().filter_map(|r| r.pair.as_ref()) {
            pair.add(s);
        }
        report = report.with_pair(Some(&pair));
    }
    report.kernel_drops = Some(workers.iter().map(|w| w.kernel_drops).sum());
    report.unread_at_shutdown = Some(workers.iter().map(|w| w.unread_at_shutdown).sum());
    report.queue_stalls = Some(workers.iter().map(|w| w.queue_stalls + w.writer_stalls).sum());
    report.workers = Some(workers);
    report.reopens = Some(written.reopens);
    report.reopen_failures = Some(written.reopen_failures);
    let mut rx = Latency::new();
    let mut export = Latency::new();
    for r in &results {
        rx.add(&r.receive_to_applied);
        export.add(&r.export_to_receive);
    }
    let hists = [
        ("receive_to_applied", &rx),
        ("flow_end_to_written", &written.flow_end_to_written),
        ("export_to_receive", &export),
    ];
    if !written.sinks.is_empty() {
        report.sinks = Some(
            written
                .sinks
                .iter()
                .map(|(name, c)| (*name, c.iter().map(|(k, v)| (*k, *v)).collect()))
                .collect(),
        );
    }
    report.latency = Some(hists.iter().map(|(n, h)| (*n, h.summary())).collect());
    if let Some(lost) = failed {
        report.writer_error = Some(lost.error.clone());
        report.unwritten_flows = Some(lost.flows);
        report.unwritten_dump_rows = Some(lost.rows);
    }
    // The report first: a failing --histogram-dir must not cost it.
    finish_report(p, &report)?;
    if let Some(dir) = &cfg.histogram_dir {
        crate::hist::write_dir(dir, &hists)
            .with_context(|| format!("--histogram-dir: cannot write to {}", dir.display()))?;
    }
    Ok(report)
}
