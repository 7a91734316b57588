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

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use nfstitch::hist::Latency;
use nfstitch::platform::pin_current_thread;
use nfstitch::wire::MAX_DATAGRAM_LEN;

use crate::config::{Config, Mode, Plan, DEFAULT_DURATION};
use crate::pool::{self, Pool};
use crate::router::ExporterGen;
use crate::truth::{CorruptCounts, ExporterTruth, PoolTruth, Truth};
use crate::udp::{recycle, BatchSender, Gso};
use crate::{exporter_setup, finish_truth};

/// Spin (instead of sleeping) this close to a deadline.
const SPIN: Duration = Duration::from_micros(200);
/// A batch spans at most this much of one exporter's schedule.
const BATCH_SPAN_S: f64 = 200e-6;
/// Give up after the socket accepted nothing this many times in a row (1 ms apart).
const MAX_STALLS: u32 = 1000;
/// Errors of earlier datagrams (ICMP port unreachable, reported once each on
/// the connected socket) retried at once, in a row, before they count as a stall.
const MAX_REFUSED: u32 = 16;
/// After the `--duration` deadline, the routers' caches are flushed for at most this long.
pub const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// What a live run did.
#[derive(Debug, Clone)]
pub struct SendReport {
    pub target: SocketAddr,
    /// Target datagrams per second (0: unpaced).
    pub target_pps: u64,
    /// Planned valid datagrams (None: until the deadline).
    pub planned: Option<u64>,
    pub valid_sent: u64,
    pub corrupt_sent: u64,
    pub records_sent: u64,
    /// UDP payload bytes.
    pub bytes_sent: u64,
    /// From the start to the last send.
    pub elapsed: Duration,
    /// The `--duration` deadline stopped a planned run early.
    pub cut_by_deadline: bool,
    /// Records the routers still held when the flush after the deadline
    /// ran out of time ([`DRAIN_GRACE`]): never sent, not in the truth.
    pub unsent_records: u64,
    /// `--pool`: the pool that was cycled.
    pub pool: Option<PoolReport>,
    /// Lateness of each paced batch against its schedule (ns).
    pub lateness: Latency,
    /// Cpus a thread could not be pinned to.
    pub pin_failures: Vec<usize>,
    pub threads: usize,
    /// How UDP GSO went.
    pub gso: GsoReport,
}

/// UDP GSO in a live run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GsoReport {
    /// GSO was asked for (not `--no-gso`).
    pub wanted: bool,
    /// Exporter sockets still sending with GSO at the end.
    pub sockets: usize,
    pub exporters: usize,
    /// Segmented sends (messages of one or more datagrams) the kernel took.
    pub sends: u64,
    /// Datagrams in them.
    pub datagrams: u64,
}

/// `--pool`: how the pool was made and how often it went out.
#[derive(Debug, Clone, Copy)]
pub struct PoolReport {
    pub datagrams: u64,
    pub records: u64,
    /// Distinct flow keys in the pool (counted up to [`pool::COUNT_FLOWS_UP_TO`] records).
    pub flows: Option<u64>,
    /// Time to make the pool (before the sending clock started).
    pub build: Duration,
}

impl SendReport {
    /// Datagrams (valid and malformed) per second.
    pub fn achieved_pps(&self) -> f64 {
        (self.valid_sent + self.corrupt_sent) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Valid datagrams per second (what `--pps` paces).
    pub fn achieved_valid_pps(&self) -> f64 {
        self.valid_sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn records_per_s(&self) -> f64 {
        self.records_sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The target was missed by more than 5%.
    pub fn rate_missed(&self) -> bool {
        self.target_pps > 0 && self.achieved_valid_pps() < 0.95 * self.target_pps as f64
    }

    pub fn print(&self, w: &mut impl Write) -> io::Result<()> {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            w,
            "send: {} datagrams ({} malformed) to {} in {:.3} s with {} thread(s): {:.0} datagrams/s, \
             {:.0} records/s, {:.1} Mbit/s of UDP payload",
            self.valid_sent + self.corrupt_sent,
            self.corrupt_sent,
            self.target,
            secs,
            self.threads,
            self.achieved_pps(),
            self.records_per_s(),
            self.bytes_sent as f64 * 8.0 / secs / 1e6
        )?;
        if self.target_pps > 0 {
            writeln!(
                w,
                "send: target {} datagrams/s, achieved {:.0} ({:.1}%)",
                self.target_pps,
                self.achieved_valid_pps(),
                100.0 * self.achieved_valid_pps() / self.target_pps as f64
            )?;
            let s = self.lateness.summary();
            writeln!(
                w,
                "send lateness (us): p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  p99.99 {:.1}  max {:.1}  count {}",
                s.p50_us, s.p90_us, s.p99_us, s.p99_9_us, s.p99_99_us, s.max_us, s.count
            )?;
        } else {
            writeln!(w, "send: unpaced (--pps 0): no lateness measured")?;
        }
        let g = &self.gso;
        if !g.wanted {
            writeln!(w, "send: UDP GSO off (--no-gso): plain sendmmsg")?;
        } else {
            writeln!(
                w,
                "send: UDP GSO on {} of {} exporter sockets: {} sends carried {} datagrams ({:.1} per send)",
                g.sockets,
                g.exporters,
                g.sends,
                g.datagrams,
                g.datagrams as f64 / g.sends.max(1) as f64
            )?;
        }
        if let Some(p) = &self.pool {
            writeln!(
                w,
                "pool: {} datagrams ({} records{}) made in {:.3} s before sending, sent {:.2} times over \
                 with patched sequence, export time, uptime and First/Last",
                p.datagrams,
                p.records,
                p.flows.map(|f| format!(", {f} distinct flows")).unwrap_or_default(),
                p.build.as_secs_f64(),
                self.valid_sent as f64 / p.datagrams.max(1) as f64
            )?;
        }
        Ok(())
    }
}

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

/// One exporter in a sending thread.
struct Lane {
    e: usize,
    gen: ExporterGen,
    sock: UdpSocket,
    gso: Gso,
    /// Index of this exporter's next datagram.
    next_k: u64,
}

struct ThreadOut {
    gens: Vec<ExporterGen>,
    hist: Latency,
    valid: u64,
    corrupt: u64,
    records: u64,
    bytes: u64,
    last_send: Option<Instant>,
    cut_by_deadline: bool,
    unsent_records: u64,
    pin_failed: Option<usize>,
    /// Sockets still on GSO at the end; GSO sends and their datagrams.
    gso_sockets: usize,
    gso_sends: u64,
    gso_datagrams: u64,
}

impl ThreadOut {
    fn new(pin_failed: Option<usize>) -> Self {
        ThreadOut {
            gens: Vec::new(),
            hist: new_hist(),
            valid: 0,
            corrupt: 0,
            records: 0,
            bytes: 0,
            last_send: None,
            cut_by_deadline: false,
            unsent_records: 0,
            pin_failed,
            gso_sockets: 0,
            gso_sends: 0,
            gso_datagrams: 0,
        }
    }

    /// Take the GSO counts of the thread's sender and sockets.
    fn gso_from(&mut self, sb: &BatchSender, socks: impl Iterator<Item = Gso>) {
        (self.gso_sends, self.gso_datagrams) = sb.gso_stats();
        self.gso_sockets = socks.filter(|&g| g == Gso::On).count();
    }
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
    let threads = cfg.threads;
    let mut per_thread: Vec<Vec<Lane>> = (0..threads).map(|_| Vec::new()).collect();
    for e in 0..plan.exporters {
        let sock = bind_exporter(cfg, e)?;
        let local = sock.local_addr().context("exporter socket address")?;
        let setup = exporter_setup(cfg, &plan, e, cfg.truth_connections, local.ip(), local.port());
        let gso = Gso::probe(&sock, cfg.gso);
        per_thread[e % threads].push(Lane {
            e,
            gen: ExporterGen::new(&setup),
            sock,
            gso,
            next_k: 0,
        });
    }
    let t0 = Instant::now() + Duration::from_millis(20);
    let deadline = plan.deadline.map(|d| t0 + d);
    let outs =
        on_threads(per_thread, "sender", |j, lanes| run_thread(j, lanes, cfg, &plan, t0, deadline));
    let mut gens = Vec::new();
    let mut hist = new_hist();
    let mut report = new_report(cfg, plan.total);
    report.gso.exporters = plan.exporters;
    let mut last = None;
    for out in outs {
        let out = out?;
        add_gso(&mut report.gso, &out);
        gens.extend(out.gens);
        hist.add(&out.hist);
        report.valid_sent += out.valid;
        report.corrupt_sent += out.corrupt;
        report.records_sent += out.records;
        report.bytes_sent += out.bytes;
        report.cut_by_deadline |= out.cut_by_deadline;
        report.unsent_records += out.unsent_records;
        report.pin_failures.extend(out.pin_failed);
        last = last.max(out.last_send);
    }
    gens.sort_by_key(|g| g.index);
    report.lateness = hist;
    report.elapsed = last.map_or(Duration::ZERO, |l| l.saturating_duration_since(t0));
    Ok((finish_truth(&gens, cfg.truth_connections), report, plan))
}

fn new_report(cfg: &Config, planned: Option<u64>) -> SendReport {
    SendReport {
        target: cfg.target,
        target_pps: cfg.pps,
        planned,
        valid_sent: 0,
        corrupt_sent: 0,
        records_sent: 0,
        bytes_sent: 0,
        elapsed: Duration::ZERO,
        cut_by_deadline: false,
        unsent_records: 0,
        pool: None,
        lateness: new_hist(),
        pin_failures: Vec::new(),
        threads: cfg.threads,
        gso: GsoReport { wanted: cfg.gso, ..GsoReport::default() },
    }
}

fn add_gso(g: &mut GsoReport, out: &ThreadOut) {
    g.sockets += out.gso_sockets;
    g.sends += out.gso_sends;
    g.datagrams += out.gso_datagrams;
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

/// When datagram `g` (counted over all exporters) is due (None: unpaced),
/// and whether `deadline` ends the run before it goes.
fn schedule(
    cfg: &Config,
    t0: Instant,
    g: u64,
    deadline: Option<Instant>,
) -> (Option<Instant>, bool) {
    let due = (cfg.pps > 0).then(|| t0 + Duration::from_secs_f64(g as f64 / cfg.pps as f64));
    let past = deadline.is_some_and(|d| Instant::now() >= d || due.is_some_and(|due| due >= d));
    (due, past)
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

/// Pin the calling sending thread `j` as `--cpus` says; the cpu on failure.
fn pin(cfg: &Config, j: usize) -> Option<usize> {
    if cfg.cpus.is_empty() {
        return None;
    }
    let cpu = cfg.cpus[j % cfg.cpus.len()];
    (!pin_current_thread(cpu)).then_some(cpu)
}

/// One exporter's pool in a sending thread.
struct PoolLane {
    e: usize,
    sock: UdpSocket,
    gso: Gso,
    pool: Pool,
    truth: ExporterTruth,
    /// Valid datagrams this exporter sends in all (`--count`), if bounded.
    quota: Option<u64>,
    /// Index of this exporter's next datagram.
    next_k: u64,
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
    let deadline_after = match (cfg.count, cfg.duration) {
        (None, None) => Some(DEFAULT_DURATION),
        (_, d) => d,
    };
    let k = plan.exporters as u64;
    let quota = |e: usize| cfg.count.map(|c| c / k + ((e as u64) < c % k) as u64);
    let threads = cfg.threads;
    let mut per_thread: Vec<Vec<(usize, UdpSocket)>> = (0..threads).map(|_| Vec::new()).collect();
    for e in 0..plan.exporters {
        per_thread[e % threads].push((e, bind_exporter(cfg, e)?));
    }
    let build_start = Instant::now();
    let built: Vec<Result<Vec<PoolLane>>> = on_threads(per_thread, "pool builder", |_, socks| {
        socks
            .into_iter()
            .map(|(e, sock)| {
                let local = sock.local_addr().context("exporter socket address")?;
                let setup = exporter_setup(cfg, &plan, e, false, local.ip(), local.port());
                let mut gen = ExporterGen::new(&setup);
                let pool = Pool::build(&mut gen, |i| plan.tick_ns(i * k + e as u64));
                let truth = ExporterTruth::new(local.ip(), local.port(), e as u8);
                let gso = Gso::probe(&sock, cfg.gso);
                Ok(PoolLane { e, sock, gso, pool, truth, quota: quota(e), next_k: 0 })
            })
            .collect()
    });
    let per_thread: Vec<Vec<PoolLane>> = built.into_iter().collect::<Result<_>>()?;
    let lanes = || per_thread.iter().flatten();
    let records = lanes().map(|l| l.pool.sums().records).sum::<u64>();
    let flows = (records <= pool::COUNT_FLOWS_UP_TO)
        .then(|| pool::distinct_flows(lanes().map(|l| (l.e, &l.pool))));
    let pool_truth = PoolTruth { datagrams: lanes().map(|l| l.pool.len()).sum(), records, flows };
    let build = build_start.elapsed();

    let t0 = Instant::now() + Duration::from_millis(20);
    let deadline = deadline_after.map(|d| t0 + d);
    let outs = on_threads(per_thread, "sender", |j, lanes| {
        run_pool_thread(j, lanes, cfg, &plan, t0, deadline)
    });
    let mut report = new_report(cfg, cfg.count);
    report.gso.exporters = plan.exporters;
    let mut hist = new_hist();
    let mut last = None;
    let mut done: Vec<PoolLane> = Vec::new();
    for out in outs {
        let (lanes, out) = out?;
        done.extend(lanes);
        hist.add(&out.hist);
        report.bytes_sent += out.bytes;
        report.cut_by_deadline |= out.cut_by_deadline;
        report.pin_failures.extend(out.pin_failed);
        add_gso(&mut report.gso, &out);
        last = last.max(out.last_send);
    }
    done.sort_by_key(|l| l.e);
    let mut corrupt = Vec::with_capacity(done.len());
    let exporters: Vec<ExporterTruth> = done
        .into_iter()
        .map(|mut l| {
            let mut c = CorruptCounts::default();
            l.pool.sent(&mut l.truth, &mut c);
            corrupt.push(c);
            l.truth
        })
        .collect();
    let mut truth = Truth::from_parts(exporters, &corrupt, None);
    truth.pool = Some(pool_truth);
    report.valid_sent = truth.datagrams;
    report.corrupt_sent = truth.corrupt.total();
    report.records_sent = truth.records;
    report.lateness = hist;
    report.elapsed = last.map_or(Duration::ZERO, |l| l.saturating_duration_since(t0));
    report.pool = Some(PoolReport { datagrams: pool_truth.datagrams, records, flows, build });
    Ok((truth, report, plan))
}

/// Wall clock, ms since the epoch.
fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn run_pool_thread(
    j: usize,
    mut lanes: Vec<PoolLane>,
    cfg: &Config,
    plan: &Plan,
    t0: Instant,
    deadline: Option<Instant>,
) -> Result<(Vec<PoolLane>, ThreadOut)> {
    let mut out = ThreadOut::new(pin(cfg, j));
    let k = plan.exporters as u64;
    let b = batch_size(cfg, plan);
    let mut sb = BatchSender::new(2 * b);
    let mut store: Vec<&'static [u8]> = Vec::with_capacity(2 * b);
    let mut idx: Vec<usize> = Vec::with_capacity(2 * b);
    let g_of = |l: &PoolLane| l.next_k * k + l.e as u64;
    let left = |l: &PoolLane| l.quota.map_or(u64::MAX, |q| q - l.next_k);
    let next_lane = |lanes: &[PoolLane]| {
        (0..lanes.len()).filter(|&i| left(&lanes[i]) > 0).min_by_key(|&i| g_of(&lanes[i]))
    };
    while let Some(li) = next_lane(&lanes) {
        let lane = &mut lanes[li];
        let g0 = g_of(lane);
        let (due, past) = schedule(cfg, t0, g0, deadline);
        if past {
            out.cut_by_deadline = cfg.count.is_some();
            break;
        }
        if let Some(due) = due {
            wait_until(due);
            let late = Instant::now().saturating_duration_since(due);
            out.hist.record(late.as_nanos() as u64);
        }
        let nb = (b as u64).min(left(lane));
        let now_ms = wall_ms();
        idx.clear();
        for _ in 0..nb {
            lane.pool.take_next(now_ms, &mut idx);
        }
        lane.next_k += nb;
        let mut slices = recycle(std::mem::take(&mut store));
        slices.extend(idx.iter().map(|&i| lane.pool.entry(i)));
        out.bytes += slices.iter().map(|s| s.len() as u64).sum::<u64>();
        send_slices(&lane.sock, &mut lane.gso, &slices, &mut sb)?;
        store = recycle(slices);
        out.last_send = Some(Instant::now());
    }
    out.gso_from(&sb, lanes.iter().map(|l| l.gso));
    Ok((lanes, out))
}

fn new_hist() -> Latency {
    Latency::new()
}

/// Datagrams per batch: `--batch`, or fewer at low rates so one batch spans
/// at most ~200 us of an exporter's schedule.
fn batch_size(cfg: &Config, plan: &Plan) -> usize {
    if cfg.pps == 0 {
        return cfg.batch;
    }
    let per_exporter = cfg.pps as f64 / plan.exporters as f64;
    ((per_exporter * BATCH_SPAN_S) as usize).clamp(1, cfg.batch)
}

/// Sleep until close to `due`, then spin.
fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left > SPIN {
            std::thread::sleep(left - SPIN);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// The target a connected socket sends to, for messages.
fn peer(sock: &UdpSocket) -> String {
    sock.peer_addr().map_or_else(|_| "the target".to_string(), |a| a.to_string())
}

/// Send every slot, retrying while the kernel takes nothing for a moment.
fn send_all(
    sock: &UdpSocket,
    gso: &mut Gso,
    slots: &[Vec<u8>],
    store: &mut Vec<&'static [u8]>,
    sb: &mut BatchSender,
) -> Result<()> {
    let mut slices = recycle(std::mem::take(store));
    slices.extend(slots.iter().map(|v| v.as_slice()));
    send_slices(sock, gso, &slices, sb)?;
    *store = recycle(slices);
    Ok(())
}

/// Send every slice, retrying while the kernel takes nothing for a moment.
fn send_slices(
    sock: &UdpSocket,
    gso: &mut Gso,
    slices: &[&[u8]],
    sb: &mut BatchSender,
) -> Result<()> {
    let mut off = 0;
    let mut stalls = 0;
    let mut refused = 0;
    while off < slices.len() {
        match sb.send(sock, gso, &slices[off..]) {
            Ok(k) if k > 0 => {
                off += k;
                stalls = 0;
                refused = 0;
                continue;
            }
            Ok(_) => {}
            // Nobody listened to an earlier datagram: nothing of this call
            // was sent; the error is reported once, so try again at once.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && refused < MAX_REFUSED => {
                refused += 1;
                continue;
            }
            Err(e) if transient(&e) => {}
            Err(e) => return Err(e).with_context(|| format!("sending to {}", peer(sock))),
        }
        stalls += 1;
        if stalls > MAX_STALLS {
            bail!("sending to {}: the socket accepted nothing for {MAX_STALLS} ms", peer(sock));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Errors worth a retry: a full queue, an interrupted call, or an ICMP error
/// of an earlier datagram reported on this one.
fn transient(e: &io::Error) -> bool {
    const ENOBUFS: i32 = 105;
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused
    ) || (cfg!(target_os = "linux") && e.raw_os_error() == Some(ENOBUFS))
}

fn run_thread(
    j: usize,
    mut lanes: Vec<Lane>,
    cfg: &Config,
    plan: &Plan,
    t0: Instant,
    deadline: Option<Instant>,
) -> Result<ThreadOut> {
    let mut out = ThreadOut::new(pin(cfg, j));
    let k = plan.exporters as u64;
    let b = batch_size(cfg, plan);
    // Room for each valid datagram and a malformed one after it.
    let mut slots: Vec<Vec<u8>> =
        (0..2 * b).map(|_| Vec::with_capacity(MAX_DATAGRAM_LEN + 64)).collect();
    let mut sb = BatchSender::new(2 * b);
    let mut store: Vec<&'static [u8]> = Vec::with_capacity(2 * b);
    let g_of = |l: &Lane| l.next_k * k + l.e as u64;
    let next_lane = |lanes: &[Lane]| {
        (0..lanes.len()).filter(|&i| lanes[i].gen.has_more()).min_by_key(|&i| g_of(&lanes[i]))
    };
    while let Some(li) = next_lane(&lanes) {
        let lane = &mut lanes[li];
        let g0 = g_of(lane);
        let (due, past) = schedule(cfg, t0, g0, deadline);
        if past {
            out.cut_by_deadline = plan.total.is_some();
            break;
        }
        let n = fill(lane, &mut slots, b, k, plan, &mut out);
        if n == 0 {
            continue;
        }
        if let Some(due) = due {
            wait_until(due);
            let late = Instant::now().saturating_duration_since(due);
            out.hist.record(late.as_nanos() as u64);
        }
        send_all(&lane.sock, &mut lane.gso, &slots[..n], &mut store, &mut sb)?;
        out.last_send = Some(Instant::now());
    }
    // The end of the run: what each router still holds goes out now, a
    // batch per exporter in turn, for at most DRAIN_GRACE after the deadline.
    // Cutting the sessions (a pass over the router's waiting records) gets
    // half of that, shared by the exporters; what it cannot reach is dropped.
    let drain_end = deadline.map(|d| d.max(Instant::now()) + DRAIN_GRACE);
    let cut_end = drain_end.map(|e| e - DRAIN_GRACE / 2);
    let open: Vec<usize> = (0..lanes.len()).filter(|&i| lanes[i].gen.has_more()).collect();
    for (n, &i) in open.iter().enumerate() {
        let lane = &mut lanes[i];
        let now_ns = plan.tick_ns(g_of(lane));
        let share = cut_end.map(|end| {
            let now = Instant::now();
            now + end.saturating_duration_since(now) / (open.len() - n) as u32
        });
        out.unsent_records +=
            lane.gen.finish_until(now_ns, || share.is_some_and(|s| Instant::now() >= s));
    }
    'drain: loop {
        let mut any = false;
        for lane in lanes.iter_mut().filter(|l| l.gen.has_more()) {
            if drain_end.is_some_and(|end| Instant::now() >= end) {
                break 'drain;
            }
            let n = fill(lane, &mut slots, b, k, plan, &mut out);
            if n == 0 {
                continue;
            }
            any = true;
            send_all(&lane.sock, &mut lane.gso, &slots[..n], &mut store, &mut sb)?;
            out.last_send = Some(Instant::now());
        }
        if !any {
            break;
        }
    }
    out.unsent_records += lanes.iter().map(|l| l.gen.pending() as u64).sum::<u64>();
    out.gso_from(&sb, lanes.iter().map(|l| l.gso));
    out.gens = lanes.into_iter().map(|l| l.gen).collect();
    Ok(out)
}

/// Make up to `b` datagrams of `lane` (each maybe followed by a malformed
/// one) into `slots`; returns how many slots are filled.
fn fill(
    lane: &mut Lane,
    slots: &mut [Vec<u8>],
    b: usize,
    k: u64,
    plan: &Plan,
    out: &mut ThreadOut,
) -> usize {
    let mut n = 0;
    for _ in 0..b {
        let g = lane.next_k * k + lane.e as u64;
        let Some(st) = lane.gen.next_datagram(plan.tick_ns(g), &mut slots[n]) else {
            break;
        };
        lane.next_k += 1;
        out.valid += 1;
        out.records += st.records;
        out.bytes += slots[n].len() as u64;
        n += 1;
        let (made, rest) = slots.split_at_mut(n);
        if lane.gen.maybe_corrupt(&made[n - 1], &mut rest[0]).is_some() {
            out.corrupt += 1;
            out.bytes += rest[0].len() as u64;
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_shrinks_at_low_rates() {
        let plan = |cfg: &Config| Plan::new(cfg, Mode::Live, 1_700_000_000_000_000_000).unwrap();
        let slow = Config { pps: 2000, count: Some(10), ..Config::default() };
        assert_eq!(batch_size(&slow, &plan(&slow)), 1);
        let fast = Config { pps: 2_000_000, count: Some(10), ..Config::default() };
        assert_eq!(batch_size(&fast, &plan(&fast)), 32);
        let unpaced = Config { pps: 0, count: Some(10), batch: 64, ..Config::default() };
        assert_eq!(batch_size(&unpaced, &plan(&unpaced)), 64);
    }

    #[test]
    fn wait_until_is_bounded_and_on_time() {
        let due = Instant::now() + Duration::from_millis(3);
        wait_until(due);
        let now = Instant::now();
        assert!(now >= due && now - due < Duration::from_millis(50));
    }
}
