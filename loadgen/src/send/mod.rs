//! Live sending: exporters split over threads, each exporter with its own
//! UDP socket (its own source address), datagrams made just before they are
//! due and sent with `sendmmsg` batches, paced against a monotonic clock.
//!
//! Ownership: thread `j` owns exporters `e` with `e mod threads == j`, their
//! sockets, generators and truth, one histogram and its send buffers. Nothing
//! is shared while running; results merge after the join.
//!
//! Pacing: datagram `g` (round robin over exporters) is due at
//! `t0 + g / pps`. A batch (one exporter's next few datagrams, spanning at most
//! ~200 us of schedule) leaves when its first datagram is due: the thread
//! sleeps while far from that deadline and spins over the last stretch. A
//! late thread does not sleep, so it catches up in bursts; how late each batch
//! left is recorded in an HdrHistogram. No allocation per datagram: slots,
//! the slice list and the sendmmsg arrays are reused. Each socket is
//! connected to the target ([`crate::udp`]): no route lookup per datagram.
//! With UDP GSO (the default, where the kernel has it; `--no-gso` turns it
//! off) a batch's consecutive equal-length datagrams leave as one
//! segmented send; batches, pacing and counts are the same either way.
//!
//! Bounds: `--count` (the plan), and the `--duration` deadline: no batch
//! starts after it. Then each exporter cuts its open sessions and sends what
//! its router holds, unpaced, for at most [`DRAIN_GRACE`]; what is still
//! held then is never sent (nor counted), so the wall time stays bounded.
//!
//! `--pool N` ([`crate::pool`]): the pools are made before the clock starts
//! (one builder thread per sending thread), then each thread cycles its
//! exporters' shares with the same schedule, batches and pacing, patching
//! the few header and record fields of each datagram just before its batch
//! leaves.
//!
//! This module sets runs up (sockets, models or pools, threads) and merges
//! what the threads did; [`paced`] is the one paced loop both kinds of run
//! share, over a source of batches ([`sources`]: the live model, a pool
//! share); [`report`] is what a run did and how it prints.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::config::{Config, Mode, Plan, DEFAULT_DURATION};
use crate::pool::{self, Pool};
use crate::router::ExporterGen;
use crate::truth::{CorruptCounts, ExporterTruth, PoolTruth, Truth};
use crate::udp::Gso;
use crate::{exporter_setup, finish_truth};

mod paced;
mod report;
mod sources;

use paced::{batch_size, run_thread, BatchSource, Lane, Run};
pub use report::{GsoReport, PoolReport, SendReport};
use sources::PoolShare;

/// After the `--duration` deadline, the routers' caches are flushed for at most this long.
pub const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// The address exporter `e` binds (port chosen by the kernel).
fn bind_addr(cfg: &Config, e: usize) -> SocketAddr {
    let ip = match cfg.target.ip() {
        IpAddr::V4(t) if t.is_loopback() => IpAddr::V4(crate::exporter_ip(cfg, e)),
        IpAddr::V6(t) if t.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

/// Send a run to `cfg.target`. Refuses non-loopback targets unless
/// `cfg.allow_remote`, before any socket exists.
pub fn run_live(cfg: &Config) -> Result<(Truth, SendReport, Plan)> {
    let now_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    if let Some(n) = cfg.pool {
        return run_pool(cfg, n, now_ns);
    }
    let plan = Plan::new(cfg, Mode::Live, now_ns)?;
    check_target(cfg)?;
    let mut per_thread: Vec<Vec<Lane<ExporterGen>>> =
        (0..cfg.threads).map(|_| Vec::new()).collect();
    for e in 0..plan.exporters {
        let sock = bind_exporter(cfg, e)?;
        let local = sock.local_addr().context("exporter socket address")?;
        let setup = exporter_setup(cfg, &plan, e, cfg.truth_connections, local.ip(), local.port());
        let gso = Gso::probe(&sock, cfg.gso);
        per_thread[e % cfg.threads].push(Lane::new(e, sock, gso, ExporterGen::new(&setup)));
    }
    let (lanes, mut report) = send(cfg, &plan, per_thread, plan.deadline, plan.total)?;
    let gens: Vec<ExporterGen> = lanes.into_iter().map(|l| l.src).collect();
    let truth = finish_truth(&gens, cfg.truth_connections);
    report.count_sent(&truth);
    Ok((truth, report, plan))
}

/// Send `per_thread`'s lanes, each list on a thread of its own, from 20 ms
/// from now until their sources run out or `run_for` has passed. Returns
/// the lanes (in exporter order) and the report, but for the counts of what
/// was sent, which the run's truth has ([`SendReport::count_sent`]).
fn send<S: BatchSource + Send>(
    cfg: &Config,
    plan: &Plan,
    per_thread: Vec<Vec<Lane<S>>>,
    run_for: Option<Duration>,
    planned: Option<u64>,
) -> Result<(Vec<Lane<S>>, SendReport)> {
    let t0 = Instant::now() + Duration::from_millis(20);
    let run = Run {
        cfg,
        plan,
        b: batch_size(cfg, plan),
        planned: planned.is_some(),
        t0,
        deadline: run_for.map(|d| t0 + d),
    };
    let outs = on_threads(per_thread, "sender", |j, lanes| run_thread(j, lanes, &run));
    let mut report = SendReport::new(cfg, planned);
    report.gso.exporters = plan.exporters;
    let mut all = Vec::with_capacity(plan.exporters);
    let mut last = None;
    for out in outs {
        let (lanes, out) = out?;
        all.extend(lanes);
        report.lateness.add(&out.hist);
        report.bytes_sent += out.bytes;
        report.cut_by_deadline |= out.cut_by_deadline;
        report.unsent_records += out.unsent_records;
        report.pin_failures.extend(out.pin_failed);
        report.gso.sockets += out.gso_sockets;
        report.gso.sends += out.gso_sends;
        report.gso.datagrams += out.gso_datagrams;
        last = last.max(out.last_send);
    }
    all.sort_by_key(|l| l.e);
    report.elapsed = last.map_or(Duration::ZERO, |l| l.saturating_duration_since(t0));
    Ok((all, report))
}

/// Checked again here, next to the sockets: nothing leaves the host by accident.
fn check_target(cfg: &Config) -> Result<()> {
    if !cfg.allow_remote && !cfg.target.ip().is_loopback() {
        bail!(
            "--target {} is not a loopback address; pass --allow-remote to send there",
            cfg.target
        );
    }
    Ok(())
}

/// `f(j, item)` for every item on a scoped thread of its own; the results in
/// item order (a panic in one is re-raised, naming `what`).
fn on_threads<T: Send, R: Send>(
    items: Vec<T>,
    what: &str,
    f: impl Fn(usize, T) -> R + Sync,
) -> Vec<R> {
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> =
            items.into_iter().enumerate().map(|(j, it)| s.spawn(move || f(j, it))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("{what} thread panicked")))
            .collect()
    })
}

/// Exporter `e`'s socket, connected to the target (see [`crate::udp`]).
fn bind_exporter(cfg: &Config, e: usize) -> Result<UdpSocket> {
    let bind = bind_addr(cfg, e);
    let sock = UdpSocket::bind(bind).with_context(|| {
        format!("exporter {e}: cannot bind {bind} (each exporter uses its own 127.0.1.x address; try --same-src-ip)")
    })?;
    sock.connect(cfg.target)
        .with_context(|| format!("exporter {e}: cannot connect to {}", cfg.target))?;
    Ok(sock)
}

/// `--pool n`: make the pool (before the clock starts), then cycle it until
/// `--count` or the `--duration` deadline.
fn run_pool(cfg: &Config, n: u64, now_ns: u64) -> Result<(Truth, SendReport, Plan)> {
    cfg.validate(Mode::Live)?;
    // The pool is a planned run of n datagrams; the run's own bounds are
    // --count and --duration.
    let pool_cfg = Config { count: Some(n), duration: None, ..cfg.clone() };
    let plan = Plan::new(&pool_cfg, Mode::Live, now_ns)?;
    check_target(cfg)?;
    let run_for = match (cfg.count, cfg.duration) {
        (None, None) => Some(DEFAULT_DURATION),
        (_, d) => d,
    };
    let k = plan.exporters as u64;
    let quota = |e: usize| cfg.count.map(|c| c / k + ((e as u64) < c % k) as u64);
    let mut per_thread: Vec<Vec<(usize, UdpSocket)>> =
        (0..cfg.threads).map(|_| Vec::new()).collect();
    for e in 0..plan.exporters {
        per_thread[e % cfg.threads].push((e, bind_exporter(cfg, e)?));
    }
    let build_start = Instant::now();
    let built: Vec<Result<Vec<Lane<PoolShare>>>> =
        on_threads(per_thread, "pool builder", |_, socks| {
            socks
                .into_iter()
                .map(|(e, sock)| {
                    let local = sock.local_addr().context("exporter socket address")?;
                    let setup = exporter_setup(cfg, &plan, e, false, local.ip(), local.port());
                    let mut gen = ExporterGen::new(&setup);
                    let pool = Pool::build(&mut gen, |i| plan.tick_ns(i * k + e as u64));
                    let truth = ExporterTruth::new(local.ip(), local.port(), e as u8);
                    let gso = Gso::probe(&sock, cfg.gso);
                    Ok(Lane::new(e, sock, gso, PoolShare { pool, truth, quota: quota(e) }))
                })
                .collect()
        });
    let per_thread: Vec<Vec<Lane<PoolShare>>> = built.into_iter().collect::<Result<_>>()?;
    let shares = || per_thread.iter().flatten().map(|l| (l.e, &l.src.pool));
    let records = shares().map(|(_, p)| p.sums().records).sum::<u64>();
    // Distinct keys are counted from v5 records only.
    let flows = (records <= pool::COUNT_FLOWS_UP_TO && cfg.version == 5)
        .then(|| pool::distinct_flows(shares()));
    let pool_truth = PoolTruth { datagrams: shares().map(|(_, p)| p.len()).sum(), records, flows };
    let build = build_start.elapsed();

    let (lanes, mut report) = send(cfg, &plan, per_thread, run_for, cfg.count)?;
    let mut corrupt = Vec::with_capacity(lanes.len());
    let exporters: Vec<ExporterTruth> = lanes
        .into_iter()
        .map(|l| {
            let PoolShare { pool, mut truth, .. } = l.src;
            let mut c = CorruptCounts::default();
            pool.sent(&mut truth, &mut c);
            corrupt.push(c);
            truth
        })
        .collect();
    let mut truth = Truth::from_parts(exporters, &corrupt, None);
    truth.pool = Some(pool_truth);
    report.count_sent(&truth);
    report.pool = Some(PoolReport { datagrams: pool_truth.datagrams, records, flows, build });
    Ok((truth, report, plan))
}
