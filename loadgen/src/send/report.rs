//! What a live run did ([`SendReport`], with its UDP GSO and `--pool`
//! parts) and the lines `loadgen` prints about it. Filled by [`super`]
//! after the sending threads joined; the valid, malformed and record counts
//! are the run's truth, the rest comes from the threads.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use nfstitch::hist::Latency;

use crate::config::Config;
use crate::truth::Truth;

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
    /// ran out of time ([`super::DRAIN_GRACE`]): never sent, not in the truth.
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
    /// Distinct flow keys in the pool (counted up to [`crate::pool::COUNT_FLOWS_UP_TO`] records).
    pub flows: Option<u64>,
    /// Time to make the pool (before the sending clock started).
    pub build: Duration,
}

impl SendReport {
    /// Nothing sent yet, for a run of `cfg` planned for `planned` valid datagrams.
    pub(super) fn new(cfg: &Config, planned: Option<u64>) -> Self {
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
            lateness: Latency::new(),
            pin_failures: Vec::new(),
            threads: cfg.threads,
            gso: GsoReport { wanted: cfg.gso, ..GsoReport::default() },
        }
    }

    /// The valid and malformed datagrams and the records of the run: its
    /// truth counts each one handed to the kernel (a failed send fails the run).
    pub(super) fn count_sent(&mut self, truth: &Truth) {
        self.valid_sent = truth.datagrams;
        self.corrupt_sent = truth.corrupt.total();
        self.records_sent = truth.records;
    }

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
