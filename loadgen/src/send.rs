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
//! the slice list and the sendmmsg arrays are reused.
//!
//! Bounds: `--count` (the plan), and the `--duration` deadline: at the
//! deadline each exporter cuts its open sessions and sends what its router
//! holds, unpaced, so the truth stays complete.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use nfstitch::hist::Latency;
use nfstitch::net::{pin_current_thread, send_batch, SendBatch};
use nfstitch::wire::MAX_DATAGRAM_LEN;

use crate::config::{Config, Mode, Plan};
use crate::router::ExporterGen;
use crate::truth::Truth;
use crate::{exporter_setup, finish_truth};

/// Spin (instead of sleeping) this close to a deadline.
const SPIN: Duration = Duration::from_micros(200);
/// A batch spans at most this much of one exporter's schedule.
const BATCH_SPAN_S: f64 = 200e-6;
/// Give up after the socket accepted nothing this many times in a row (1 ms apart).
const MAX_STALLS: u32 = 1000;

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
    /// Lateness of each paced batch against its schedule (ns).
    pub lateness: Latency,
    /// Cpus a thread could not be pinned to.
    pub pin_failures: Vec<usize>,
    pub threads: usize,
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
    pin_failed: Option<usize>,
}

/// Send a run to `cfg.target`. Refuses non-loopback targets unless
/// `cfg.allow_remote`, before any socket exists.
pub fn run_live(cfg: &Config) -> Result<(Truth, SendReport, Plan)> {
    let now_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let plan = Plan::new(cfg, Mode::Live, now_ns)?;
    // Checked again here, next to the sockets: nothing leaves the host by accident.
    if !cfg.allow_remote && !cfg.target.ip().is_loopback() {
        bail!(
            "--target {} is not a loopback address; pass --allow-remote to send there",
            cfg.target
        );
    }
    let threads = cfg.threads;
    let mut per_thread: Vec<Vec<Lane>> = (0..threads).map(|_| Vec::new()).collect();
    for e in 0..plan.exporters {
        let bind = bind_addr(cfg, e);
        let sock = UdpSocket::bind(bind).with_context(|| {
            format!("exporter {e}: cannot bind {bind} (each exporter uses its own 127.0.1.x address; try --same-src-ip)")
        })?;
        let local = sock.local_addr().context("exporter socket address")?;
        let setup = exporter_setup(cfg, &plan, e, cfg.truth_connections, local.ip(), local.port());
        per_thread[e % threads].push(Lane { e, gen: ExporterGen::new(&setup), sock, next_k: 0 });
    }
    let t0 = Instant::now() + Duration::from_millis(20);
    let deadline = plan.deadline.map(|d| t0 + d);
    let outs: Vec<Result<ThreadOut>> = std::thread::scope(|s| {
        let handles: Vec<_> = per_thread
            .into_iter()
            .enumerate()
            .map(|(j, lanes)| {
                let plan = &plan;
                s.spawn(move || run_thread(j, lanes, cfg, plan, t0, deadline))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("sender thread panicked")).collect()
    });
    let mut gens = Vec::new();
    let mut hist = new_hist();
    let mut report = SendReport {
        target: cfg.target,
        target_pps: cfg.pps,
        planned: plan.total,
        valid_sent: 0,
        corrupt_sent: 0,
        records_sent: 0,
        bytes_sent: 0,
        elapsed: Duration::ZERO,
        cut_by_deadline: false,
        lateness: new_hist(),
        pin_failures: Vec::new(),
        threads,
    };
    let mut last = None;
    for out in outs {
        let out = out?;
        gens.extend(out.gens);
        hist.add(&out.hist);
        report.valid_sent += out.valid;
        report.corrupt_sent += out.corrupt;
        report.records_sent += out.records;
        report.bytes_sent += out.bytes;
        report.cut_by_deadline |= out.cut_by_deadline;
        report.pin_failures.extend(out.pin_failed);
        last = last.max(out.last_send);
    }
    gens.sort_by_key(|g| g.index);
    report.lateness = hist;
    report.elapsed = last.map_or(Duration::ZERO, |l| l.saturating_duration_since(t0));
    Ok((finish_truth(&gens, cfg.truth_connections), report, plan))
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

/// Reuse a slice list's allocation for slices of another lifetime (the
/// in-place collect of an empty vector keeps its buffer).
fn recycle<'b>(mut v: Vec<&[u8]>) -> Vec<&'b [u8]> {
    v.clear();
    v.into_iter().map(|_| -> &'b [u8] { unreachable!("the vector is empty") }).collect()
}

/// Send every slot, retrying while the kernel takes nothing for a moment.
fn send_all(
    sock: &UdpSocket,
    dest: SocketAddr,
    slots: &[Vec<u8>],
    store: &mut Vec<&'static [u8]>,
    sb: &mut SendBatch,
) -> Result<()> {
    let mut slices = recycle(std::mem::take(store));
    slices.extend(slots.iter().map(|v| v.as_slice()));
    let mut off = 0;
    let mut stalls = 0;
    while off < slices.len() {
        match send_batch(sock, dest, &slices[off..], sb) {
            Ok(k) if k > 0 => {
                off += k;
                stalls = 0;
                continue;
            }
            Ok(_) => {}
            Err(e) if transient(&e) => {}
            Err(e) => return Err(e).with_context(|| format!("sending to {dest}")),
        }
        stalls += 1;
        if stalls > MAX_STALLS {
            bail!("sending to {dest}: the socket accepted nothing for {MAX_STALLS} ms");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    *store = recycle(slices);
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
    let pin_failed = match cfg.cpus.is_empty() {
        true => None,
        false => {
            let cpu = cfg.cpus[j % cfg.cpus.len()];
            (!pin_current_thread(cpu)).then_some(cpu)
        }
    };
    let k = plan.exporters as u64;
    let b = batch_size(cfg, plan);
    // Room for each valid datagram and a malformed one after it.
    let mut slots: Vec<Vec<u8>> =
        (0..2 * b).map(|_| Vec::with_capacity(MAX_DATAGRAM_LEN + 64)).collect();
    let mut sb = SendBatch::new(2 * b);
    let mut store: Vec<&'static [u8]> = Vec::with_capacity(2 * b);
    let mut out = ThreadOut {
        gens: Vec::new(),
        hist: new_hist(),
        valid: 0,
        corrupt: 0,
        records: 0,
        bytes: 0,
        last_send: None,
        cut_by_deadline: false,
        pin_failed,
    };
    let g_of = |l: &Lane| l.next_k * k + l.e as u64;
    let next_lane = |lanes: &[Lane]| {
        (0..lanes.len()).filter(|&i| lanes[i].gen.has_more()).min_by_key(|&i| g_of(&lanes[i]))
    };
    while let Some(li) = next_lane(&lanes) {
        let lane = &mut lanes[li];
        let g0 = g_of(lane);
        let due = (cfg.pps > 0).then(|| t0 + Duration::from_secs_f64(g0 as f64 / cfg.pps as f64));
        if let Some(d) = deadline {
            if Instant::now() >= d || due.is_some_and(|due| due >= d) {
                out.cut_by_deadline = plan.total.is_some();
                break;
            }
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
        send_all(&lane.sock, cfg.target, &slots[..n], &mut store, &mut sb)?;
        out.last_send = Some(Instant::now());
    }
    // The end of the run: what each router still holds goes out now.
    for lane in lanes.iter_mut().filter(|l| l.gen.has_more()) {
        lane.gen.finish(plan.tick_ns(g_of(lane)));
        loop {
            let n = fill(lane, &mut slots, b, k, plan, &mut out);
            if n == 0 {
                break;
            }
            send_all(&lane.sock, cfg.target, &slots[..n], &mut store, &mut sb)?;
            out.last_send = Some(Instant::now());
        }
    }
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
    fn recycle_keeps_the_buffer() {
        let data = [1u8, 2, 3];
        let mut v: Vec<&[u8]> = Vec::with_capacity(64);
        v.push(&data);
        let cap = v.capacity();
        let w: Vec<&'static [u8]> = recycle(v);
        assert!(w.is_empty());
        assert_eq!(w.capacity(), cap);
    }

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
