//! The one paced loop every sending thread runs, over the lanes (exporters)
//! it owns, whatever makes their datagrams: a [`BatchSource`] (the live
//! router model or a `--pool` share, in [`super::sources`]).
//!
//! Owned here, once for both sources: the schedule (datagram `g`, counted
//! round robin over exporters, is due at `t0 + g / pps`), the choice of the
//! lane whose next batch is due first, the deadline check (no batch starts
//! after it), the wait (sleep, then spin over the last [`SPIN`]), the
//! lateness histogram, the send (UDP GSO or plain `sendmmsg` through
//! [`BatchSender`], retried while the kernel takes nothing for a moment) and
//! the thread's counters. A source makes a batch before it is due
//! ([`BatchSource::make`]) and hands its bytes over when it leaves
//! ([`BatchSource::ready`]); nothing is allocated per datagram.

use std::io;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nfstitch::hist::Latency;
use nfstitch::platform::pin_current_thread;

use crate::config::{Config, Plan};
use crate::udp::{recycle, BatchSender, Gso};

/// Spin (instead of sleeping) this close to a deadline.
const SPIN: Duration = Duration::from_micros(200);
/// A batch spans at most this much of one exporter's schedule.
const BATCH_SPAN_S: f64 = 200e-6;
/// Give up after the socket accepted nothing this many times in a row (1 ms apart).
const MAX_STALLS: u32 = 1000;
/// Errors of earlier datagrams (ICMP port unreachable, reported once each on
/// the connected socket) retried at once, in a row, before they count as a stall.
const MAX_REFUSED: u32 = 16;

/// Where one exporter's batches come from. The loop asks [`make`] for a
/// batch before it is due and [`ready`] for its bytes when it leaves.
///
/// [`make`]: BatchSource::make
/// [`ready`]: BatchSource::ready
pub(super) trait BatchSource: Sized {
    /// What a thread reuses for every batch of its lanes.
    type Scratch;

    /// Room for batches of up to `b` valid datagrams.
    fn scratch(b: usize) -> Self::Scratch;

    /// Whether datagrams are left, `next_k` being this exporter's next one.
    fn has_left(&self, next_k: u64) -> bool;

    /// Before the batch is due: make (or pick) up to `run.b` valid datagrams
    /// of exporter `e` from its datagram `next_k` on, into `scratch`.
    /// Returns how many valid ones the batch holds (0: none now).
    fn make(&mut self, e: usize, next_k: u64, run: &Run<'_>, scratch: &mut Self::Scratch) -> u64;

    /// When the batch leaves: its datagrams (valid ones and any malformed
    /// ones among them), in order, into `out`.
    fn ready<'a>(&'a mut self, scratch: &'a mut Self::Scratch, out: &mut Vec<&'a [u8]>);

    /// After the paced part (the plan done or the deadline reached): send
    /// what must still go out. Nothing by default.
    fn after_paced(_t: &mut Thread<'_, Self>, _lanes: &mut [Lane<Self>]) -> Result<()> {
        Ok(())
    }
}

/// One exporter in a sending thread: its socket and its source.
#[derive(Debug)]
pub(super) struct Lane<S> {
    pub e: usize,
    pub sock: UdpSocket,
    pub gso: Gso,
    /// Index of this exporter's next valid datagram.
    pub next_k: u64,
    pub src: S,
}

impl<S> Lane<S> {
    pub fn new(e: usize, sock: UdpSocket, gso: Gso, src: S) -> Self {
        Lane { e, sock, gso, next_k: 0, src }
    }
}

/// What every sending thread of a run shares (read only).
#[derive(Debug)]
pub(super) struct Run<'a> {
    pub cfg: &'a Config,
    pub plan: &'a Plan,
    /// Valid datagrams per batch ([`batch_size`]).
    pub b: usize,
    /// The run has a planned count: reaching the deadline first cuts it short.
    pub planned: bool,
    /// When datagram 0 is due.
    pub t0: Instant,
    /// No batch starts after this.
    pub deadline: Option<Instant>,
}

impl Run<'_> {
    /// Datagram `k` of exporter `e`, counted over all exporters.
    #[inline]
    pub fn g(&self, e: usize, k: u64) -> u64 {
        k * self.plan.exporters as u64 + e as u64
    }
}

/// What one sending thread did.
#[derive(Debug)]
pub(super) struct ThreadOut {
    /// Lateness of each paced batch (ns).
    pub hist: Latency,
    /// UDP payload bytes, valid and malformed.
    pub bytes: u64,
    pub last_send: Option<Instant>,
    pub cut_by_deadline: bool,
    /// Records the routers still held when time ran out.
    pub unsent_records: u64,
    pub pin_failed: Option<usize>,
    /// Sockets still on GSO at the end; GSO sends and their datagrams.
    pub gso_sockets: usize,
    pub gso_sends: u64,
    pub gso_datagrams: u64,
}

/// A sending thread while it runs: the run, its buffers and its counters.
pub(super) struct Thread<'a, S: BatchSource> {
    pub run: &'a Run<'a>,
    pub out: ThreadOut,
    scratch: S::Scratch,
    sb: BatchSender,
    /// The slice list's buffer between batches.
    store: Vec<&'static [u8]>,
}

impl<'a, S: BatchSource> Thread<'a, S> {
    fn new(run: &'a Run<'a>, pin_failed: Option<usize>) -> Self {
        let b = run.b;
        Thread {
            run,
            out: ThreadOut {
                hist: Latency::new(),
                bytes: 0,
                last_send: None,
                cut_by_deadline: false,
                unsent_records: 0,
                pin_failed,
                gso_sockets: 0,
                gso_sends: 0,
                gso_datagrams: 0,
            },
            scratch: S::scratch(b),
            // Room for each valid datagram and a malformed one after it.
            sb: BatchSender::new(2 * b),
            store: Vec::with_capacity(2 * b),
        }
    }

    /// Make `lane`'s next batch, wait until `due` (None: unpaced) and record
    /// how late it leaves, then send it. False when the source had nothing.
    pub fn send_batch(&mut self, lane: &mut Lane<S>, due: Option<Instant>) -> Result<bool> {
        let n = lane.src.make(lane.e, lane.next_k, self.run, &mut self.scratch);
        if n == 0 {
            return Ok(false);
        }
        lane.next_k += n;
        if let Some(due) = due {
            wait_until(due);
            let late = Instant::now().saturating_duration_since(due);
            self.out.hist.record(late.as_nanos() as u64);
        }
        let mut slices = recycle(std::mem::take(&mut self.store));
        lane.src.ready(&mut self.scratch, &mut slices);
        self.out.bytes += slices.iter().map(|s| s.len() as u64).sum::<u64>();
        send_slices(&lane.sock, &mut lane.gso, &slices, &mut self.sb)?;
        self.store = recycle(slices);
        self.out.last_send = Some(Instant::now());
        Ok(true)
    }
}

/// Sending thread `j`: pinned as `--cpus` says, it sends `lanes` paced
/// until their sources run out or the deadline, then lets the source finish
/// ([`BatchSource::after_paced`]). Returns the lanes and what it did.
pub(super) fn run_thread<S: BatchSource>(
    j: usize,
    mut lanes: Vec<Lane<S>>,
    run: &Run<'_>,
) -> Result<(Vec<Lane<S>>, ThreadOut)> {
    let mut t = Thread::<S>::new(run, pin(run.cfg, j));
    let g_of = |l: &Lane<S>| run.g(l.e, l.next_k);
    let next_lane = |lanes: &[Lane<S>]| {
        (0..lanes.len())
            .filter(|&i| lanes[i].src.has_left(lanes[i].next_k))
            .min_by_key(|&i| g_of(&lanes[i]))
    };
    while let Some(li) = next_lane(&lanes) {
        let lane = &mut lanes[li];
        let (due, past) = schedule(run.cfg, run.t0, g_of(lane), run.deadline);
        if past {
            t.out.cut_by_deadline = run.planned;
            break;
        }
        t.send_batch(lane, due)?;
    }
    S::after_paced(&mut t, &mut lanes)?;
    (t.out.gso_sends, t.out.gso_datagrams) = t.sb.gso_stats();
    t.out.gso_sockets = lanes.iter().filter(|l| l.gso == Gso::On).count();
    Ok((lanes, t.out))
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

/// Pin the calling sending thread `j` as `--cpus` says; the cpu on failure.
fn pin(cfg: &Config, j: usize) -> Option<usize> {
    if cfg.cpus.is_empty() {
        return None;
    }
    let cpu = cfg.cpus[j % cfg.cpus.len()];
    (!pin_current_thread(cpu)).then_some(cpu)
}

/// Datagrams per batch: `--batch`, or fewer at low rates so one batch spans
/// at most ~200 us of an exporter's schedule.
pub(super) fn batch_size(cfg: &Config, plan: &Plan) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;

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
