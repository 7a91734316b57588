//! The validated configuration of a run and the plan derived from it.
//!
//! [`Config`] holds the options (the CLI fills it; tests build it with
//! `..Config::default()`); [`Config::validate`] names the flag to change.
//! [`Plan`] turns it into the numbers the model runs on: how many datagrams
//! (per exporter), the router clock of each (a tick every `step_ns`), and the
//! duration scale that gives `--flows` concurrent connections at that rate.
//!
//! # Rates and clocks
//! Datagram `g` (over all exporters, round robin: exporter `g mod K`) leaves
//! at wall time `t0 + g / pps` and carries router time
//! `start + g * time_scale / pps`: router time runs `time_scale` times
//! faster than the wall clock. (With `--pps 0` the router clock runs as if
//! at [`NOMINAL_UNPACED_PPS`].) The records a datagram needs per router
//! second are `pps * records_per_datagram / time_scale`; new connections
//! arrive as fast as that requires, and their durations are scaled so that
//! on average `--flows` are open at once. `--new-rate` fixes the arrival rate
//! instead, and the time scale follows from it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::model::{self, Expect, Params, Shape};
use crate::rng::Rng;

/// Router clock rate used with `--pps 0` (no pacing).
pub const NOMINAL_UNPACED_PPS: f64 = 1_000_000.0;
/// Default start of the router clock for `--pcap-out`: 2023-11-14T22:13:20Z.
pub const DEFAULT_PCAP_START_NS: u64 = 1_700_000_000 * 1_000_000_000;
/// Default run length when neither `--count` nor `--duration` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Most records `--truth-connections` accepts (a connection costs about 60
/// bytes while the run goes on).
pub const MAX_TRUTH_RECORDS: u64 = 20_000_000;
/// Up to this many records, `--pcap-out` lists connections without being asked.
pub const PCAP_CONNECTIONS_UP_TO: u64 = 3_000_000;
/// Default template refresh of `--version 9|10`, in router time.
pub const DEFAULT_TEMPLATE_INTERVAL: Duration = Duration::from_secs(20);
/// The UDP payload of a 1500-byte Ethernet MTU: the largest datagram the
/// default `--records-per-datagram` of `--version 9|10` makes.
pub const MTU_PAYLOAD: usize = 1472;
/// Shapes drawn to calibrate the duration scale.
const CALIBRATION_SAMPLE: usize = 4096;
/// Random stream of the calibration sample.
const CALIBRATION_STREAM: u64 = 0xCA11_B8A7;

/// A bad option: the flag to change and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub flag: &'static str,
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.flag, self.msg)
    }
}

impl std::error::Error for ConfigError {}

fn bad(flag: &'static str, msg: impl Into<String>) -> ConfigError {
    ConfigError { flag, msg: msg.into() }
}

/// Everything a run needs. See the CLI help for each field's flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub seed: u64,
    pub exporters: usize,
    pub same_src_ip: bool,
    pub target: SocketAddr,
    pub allow_remote: bool,
    /// Datagrams per second; 0 = as fast as possible.
    pub pps: u64,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub threads: usize,
    pub cpus: Vec<usize>,
    pub batch: usize,
    /// Concurrent connections (both directions counted).
    pub flows: u64,
    /// New connections per router second (then the time scale is derived).
    pub new_rate: Option<f64>,
    pub time_scale: Option<f64>,
    pub active_timeout: Duration,
    pub inactive_timeout: Duration,
    pub records_per_datagram: usize,
    /// `--sampling N`: deterministic 1-in-N (header mode 1); 0 = none.
    pub sampling: u16,
    /// Router clock at the start, ns since the epoch (default: now, or
    /// [`DEFAULT_PCAP_START_NS`] for pcaps).
    pub start_ns: Option<u64>,
    pub corrupt_ratio: f64,
    pub truth_connections: bool,
    /// `--pool N`: make N valid datagrams once, then send them in a loop
    /// with patched headers and record times (see [`crate::pool`]).
    pub pool: Option<u64>,
    /// Send with UDP GSO where the kernel has it (`--no-gso`: false).
    pub gso: bool,
    /// `--version`: 5 (NetFlow v5), 9 (NetFlow v9) or 10 (IPFIX).
    pub version: u16,
    /// `--ipv6`: the share of sessions that are IPv6 (v9/IPFIX only).
    pub ipv6: f64,
    /// `--template-interval`: templates are resent when this much router
    /// time passed since the last ones (None: [`DEFAULT_TEMPLATE_INTERVAL`]).
    pub template_interval: Option<Duration>,
    /// `--template-every N`: templates are also resent with every Nth datagram.
    pub template_every: Option<u64>,
    /// `--data-before-template N`: each exporter's first N datagrams carry
    /// data only; the templates come with datagram N + 1.
    pub data_before_template: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 1,
            exporters: 4,
            same_src_ip: false,
            target: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2055),
            allow_remote: false,
            pps: 1000,
            count: None,
            duration: None,
            threads: 1,
            cpus: Vec::new(),
            batch: 32,
            flows: 10_000,
            new_rate: None,
            time_scale: None,
            active_timeout: Duration::from_secs(30 * 60),
            inactive_timeout: Duration::from_secs(15),
            records_per_datagram: 30,
            sampling: 0,
            start_ns: None,
            corrupt_ratio: 0.0,
            truth_connections: false,
            pool: None,
            gso: true,
            version: 5,
            ipv6: 0.0,
            template_interval: None,
            template_every: None,
            data_before_template: None,
        }
    }
}

/// Live sending or a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Pcap,
}

impl Config {
    /// Check every option; the error names the flag.
    pub fn validate(&self, mode: Mode) -> Result<(), ConfigError> {
        if mode == Mode::Live && !self.allow_remote && !self.target.ip().is_loopback() {
            return Err(bad(
                "--target",
                format!(
                    "{} is not a loopback address; loadgen only sends to 127.0.0.0/8 or ::1 \
                     unless --allow-remote is given",
                    self.target
                ),
            ));
        }
        if mode == Mode::Pcap && !self.target.is_ipv4() {
            return Err(bad("--target", "--pcap-out writes IPv4 frames: use an IPv4 target"));
        }
        if self.exporters == 0 || self.exporters > model::MAX_EXPORTERS {
            return Err(bad("--exporters", format!("must be 1..={}", model::MAX_EXPORTERS)));
        }
        if !(1..=nfstitch::wire::MAX_RECORDS).contains(&self.records_per_datagram) {
            return Err(bad("--records-per-datagram", "must be 1..=30"));
        }
        if self.threads == 0 || self.threads > self.exporters {
            return Err(bad(
                "--threads",
                format!(
                    "must be 1..=--exporters ({}): exporters are split over threads",
                    self.exporters
                ),
            ));
        }
        if self.batch == 0 || self.batch > 1024 {
            return Err(bad("--batch", "must be 1..=1024 (sendmmsg takes at most 1024)"));
        }
        if self.flows == 0 {
            return Err(bad("--flows", "must be at least 1"));
        }
        if let Some(r) = self.new_rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(bad("--new-rate", "must be a positive number"));
            }
            if self.time_scale.is_some() {
                return Err(bad("--new-rate", "conflicts with --time-scale (one sets the other)"));
            }
        }
        if let Some(x) = self.time_scale {
            if !(x.is_finite() && (1e-6..=1e9).contains(&x)) {
                return Err(bad("--time-scale", "must be a number in 1e-6..=1e9"));
            }
        }
        let a = self.active_timeout.as_millis();
        if !(1000..=24 * 3600 * 1000).contains(&a) {
            return Err(bad("--active-timeout", "must be 1s..=24h"));
        }
        let i = self.inactive_timeout.as_millis();
        if !(1..=3600 * 1000).contains(&i) {
            return Err(bad("--inactive-timeout", "must be 1ms..=1h"));
        }
        self.validate_version()?;
        if self.version == 5 && self.sampling >= 1 << 14 {
            return Err(bad("--sampling", "the v5 interval field has 14 bits: at most 16383"));
        }
        if !(0.0..=1.0).contains(&self.corrupt_ratio) {
            return Err(bad("--corrupt-ratio", "must be in 0..=1"));
        }
        if self.count == Some(0) {
            return Err(bad("--count", "must be at least 1"));
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err(bad("--duration", "must be above 0"));
        }
        if mode == Mode::Pcap && self.pps == 0 && self.count.is_none() {
            return Err(bad(
                "--pps",
                "--pcap-out with --pps 0 needs --count (the rate sets the timestamps)",
            ));
        }
        if let Some(s) = self.start_ns {
            // The routers booted up to ~50 days before the start.
            if s < 1_000_000_000 * 1_000_000_000 || s >= (u32::MAX as u64) * 1_000_000_000 {
                return Err(bad("--start", "must be between 2001-09-09 and 2106-02-07"));
            }
        }
        if let Some(n) = self.pool {
            if !(1..=crate::pool::MAX_POOL).contains(&n) {
                return Err(bad(
                    "--pool",
                    format!("must be 1..={} datagrams (1M, about 1.5 GB)", crate::pool::MAX_POOL),
                ));
            }
            if n < self.exporters as u64 {
                return Err(bad(
                    "--pool",
                    format!(
                        "{n} datagrams for {} exporters: each exporter needs at least one \
                         (raise --pool or lower --exporters)",
                        self.exporters
                    ),
                ));
            }
            if mode == Mode::Pcap {
                return Err(bad(
                    "--pool",
                    "cannot be combined with --pcap-out: the pool is cycled while sending live \
                     (a pcap already holds a deterministic run; replay it in a loop instead)",
                ));
            }
            if self.truth_connections {
                return Err(bad(
                    "--pool",
                    "cannot be combined with --truth-connections: the pool's flow keys recur \
                     every pass, so there is no list of distinct true connections",
                ));
            }
        }
        if let Some(&c) = self.cpus.iter().find(|&&c| c >= 1024) {
            return Err(bad("--cpus", format!("no such cpu {c}")));
        }
        Ok(())
    }

    /// `--version` and the flags that go with v9/IPFIX.
    fn validate_version(&self) -> Result<(), ConfigError> {
        if ![5, 9, 10].contains(&self.version) {
            return Err(bad(
                "--version",
                format!(
                    "{} is not one of 5 (NetFlow v5), 9 (NetFlow v9), 10 (IPFIX)",
                    self.version
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.ipv6) {
            return Err(bad("--ipv6", "must be a fraction in 0..=1 (e.g. 0.3)"));
        }
        if self.version == 5 {
            let templated = [
                ("--ipv6", self.ipv6 > 0.0),
                ("--template-interval", self.template_interval.is_some()),
                ("--template-every", self.template_every.is_some()),
                ("--data-before-template", self.data_before_template.is_some()),
            ];
            if let Some((flag, _)) = templated.iter().find(|t| t.1) {
                let why = if *flag == "--ipv6" {
                    "NetFlow v5 carries IPv4 only"
                } else {
                    "NetFlow v5 has no templates"
                };
                return Err(bad(flag, format!("{why}: use --version 9 or --version 10")));
            }
            return Ok(());
        }
        if let Some(d) = self.template_interval {
            if !(1..=24 * 3600 * 1000).contains(&d.as_millis()) {
                return Err(bad("--template-interval", "must be 1ms..=24h (router time)"));
            }
        }
        if self.template_every == Some(0) {
            return Err(bad("--template-every", "must be at least 1 (datagrams)"));
        }
        if self.pool.is_some() && self.data_before_template.is_some() {
            return Err(bad(
                "--data-before-template",
                "cannot be combined with --pool: the pool's data datagrams recur after its \
                 templates every pass, so only the first pass would lack them",
            ));
        }
        Ok(())
    }

    /// The largest `--records-per-datagram` whose worst datagram (templates
    /// and sampling options in front, every record of the longer family)
    /// fits [`MTU_PAYLOAD`]: the default of `--version 9|10` (30 for v5).
    pub fn fitting_records_per_datagram(&self) -> usize {
        if self.version == 5 {
            return nfstitch::wire::MAX_RECORDS;
        }
        (1..=nfstitch::wire::MAX_RECORDS)
            .rev()
            .find(|&n| crate::templated::worst_datagram_len(self, n) <= MTU_PAYLOAD)
            .unwrap_or(1)
    }

    /// The defaults for `version` with a share `ipv6` of IPv6 sessions, and
    /// the records per datagram the CLI would pick (what fits the MTU; a
    /// plain `Config { version: 9, ..Config::default() }` keeps 30, which
    /// makes datagrams of up to 1.9 kB, 3.4 kB for IPFIX with IPv6).
    pub fn for_version(version: u16, ipv6: f64) -> Config {
        let mut c = Config { version, ipv6, ..Config::default() };
        c.records_per_datagram = c.fitting_records_per_datagram();
        c
    }

    /// The template refresh interval in ms of router time.
    pub fn template_interval_ms(&self) -> u64 {
        self.template_interval.unwrap_or(DEFAULT_TEMPLATE_INTERVAL).as_millis() as u64
    }

    /// Router timeouts in ms.
    fn timeouts(&self) -> (u64, u64) {
        (self.active_timeout.as_millis() as u64, self.inactive_timeout.as_millis() as u64)
    }

    /// The header's sampling field.
    pub fn sampling_field(&self) -> u16 {
        if self.sampling == 0 {
            0
        } else {
            1 << 14 | self.sampling
        }
    }
}

/// The numbers a run follows, derived from a validated [`Config`].
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub mode: Mode,
    pub exporters: usize,
    /// Valid datagrams to make, over all exporters (None: until the deadline).
    pub total: Option<u64>,
    /// Wall-clock bound (live runs).
    pub deadline: Option<Duration>,
    /// The rate the router clock assumes.
    pub pps_eff: f64,
    /// Router ns between consecutive datagrams (any exporter).
    pub step_ns: f64,
    /// Router clock at the first datagram, ns since the epoch (a whole ms).
    pub start_ns: u64,
    pub params: Params,
    /// Router seconds per wall second.
    pub time_scale: f64,
    /// New connections per router second.
    pub new_rate: f64,
    /// Expected concurrent connections.
    pub concurrency: f64,
    pub expect: Expect,
    /// True when `--flows` could not be reached (durations hit a bound).
    pub flows_clamped: bool,
}

impl Plan {
    /// Validate and derive. `now_ns` is the wall clock (used for live runs
    /// without `--start`).
    pub fn new(cfg: &Config, mode: Mode, now_ns: u64) -> Result<Plan, ConfigError> {
        cfg.validate(mode)?;
        let pps_eff = if cfg.pps == 0 { NOMINAL_UNPACED_PPS } else { cfg.pps as f64 };
        let duration = match (cfg.count, cfg.duration) {
            (None, None) => Some(DEFAULT_DURATION),
            (_, d) => d,
        };
        let total = match mode {
            Mode::Pcap => {
                let by_time = duration.map(|d| (d.as_secs_f64() * pps_eff).ceil().max(1.0) as u64);
                match (cfg.count, by_time) {
                    (Some(c), Some(t)) => Some(c.min(t)),
                    (c, t) => c.or(t),
                }
            }
            Mode::Live => {
                let by_time = if cfg.pps == 0 {
                    None
                } else {
                    duration.map(|d| (d.as_secs_f64() * pps_eff).ceil().max(1.0) as u64)
                };
                match (cfg.count, by_time) {
                    (Some(c), Some(t)) => Some(c.min(t)),
                    (c, t) => c.or(t),
                }
            }
        };
        let deadline = if mode == Mode::Live { duration } else { None };
        if cfg.truth_connections {
            let recs = total.map(|t| t.saturating_mul(cfg.records_per_datagram as u64));
            if !matches!(recs, Some(r) if r <= MAX_TRUTH_RECORDS) {
                return Err(bad(
                    "--truth-connections",
                    format!(
                        "keeps every connection in memory: allowed up to {MAX_TRUTH_RECORDS} records; \
                         bound the run with --count (and --pps above 0)"
                    ),
                ));
            }
        }
        let (active_ms, inactive_ms) = cfg.timeouts();
        let sample = calibration_sample(cfg.seed);
        let rpd = cfg.records_per_datagram as f64;
        let (scale, time_scale, new_rate, clamped) = match cfg.new_rate {
            None => {
                let x = cfg.time_scale.unwrap_or(1.0);
                // Records per router second.
                let demand = pps_eff * rpd / x;
                let conc = |c: f64| {
                    let e = expect(&sample, active_ms, inactive_ms, c);
                    demand / e.records_per_session * e.conn_ms_per_session / 1000.0
                };
                let (c, clamped) = solve(conc, cfg.flows as f64);
                let e = expect(&sample, active_ms, inactive_ms, c);
                let sessions = demand / e.records_per_session;
                (c, x, sessions * e.conns_per_session, clamped)
            }
            Some(rate) => {
                let e1 = expect(&sample, active_ms, inactive_ms, 1.0);
                let sessions = rate / e1.conns_per_session;
                let conc = |c: f64| {
                    sessions * expect(&sample, active_ms, inactive_ms, c).conn_ms_per_session
                        / 1000.0
                };
                let (c, clamped) = solve(conc, cfg.flows as f64);
                let e = expect(&sample, active_ms, inactive_ms, c);
                let demand = sessions * e.records_per_session;
                (c, pps_eff * rpd / demand, rate, clamped)
            }
        };
        let params = Params { active_ms, inactive_ms, scale };
        let e = model::expect(&sample, &params);
        let sessions = new_rate / e.conns_per_session;
        let start_ns = match (cfg.start_ns, mode) {
            (Some(s), _) => s,
            (None, Mode::Pcap) => DEFAULT_PCAP_START_NS,
            (None, Mode::Live) => now_ns,
        };
        Ok(Plan {
            mode,
            exporters: cfg.exporters,
            total,
            deadline,
            pps_eff,
            step_ns: time_scale * 1e9 / pps_eff,
            start_ns: start_ns / 1_000_000 * 1_000_000,
            params,
            time_scale,
            new_rate,
            concurrency: sessions * e.conn_ms_per_session / 1000.0,
            expect: e,
            flows_clamped: clamped,
        })
    }

    /// Router time (ns) of datagram `g`.
    pub fn tick_ns(&self, g: u64) -> u64 {
        self.start_ns + (g as f64 * self.step_ns) as u64
    }

    /// Datagrams exporter `e` makes (None: unplanned).
    pub fn quota(&self, e: usize) -> Option<u64> {
        let k = self.exporters as u64;
        self.total.map(|t| t / k + ((e as u64) < t % k) as u64)
    }

    /// Router time a run covers (ms), for placing the uptime wrap.
    pub fn span_ms(&self) -> u64 {
        let n = match (self.total, self.deadline) {
            (Some(t), _) => t as f64,
            (None, Some(d)) => d.as_secs_f64() * self.pps_eff,
            (None, None) => 0.0,
        };
        (n * self.step_ns / 1e6) as u64
    }

    /// How long exporter `e` has been up at the start (ms): the last exporter
    /// passes the 32-bit uptime wrap in the middle of the run; the others
    /// booted 1 to 41 days ago.
    pub fn uptime_at_start_ms(&self, seed: u64, e: usize) -> u64 {
        let lookback = self.params.active_ms + self.params.inactive_ms + 24 * 3600 * 1000;
        if e + 1 == self.exporters {
            let wrap_in = (self.span_ms() / 2).clamp(1000, (1u64 << 32) - lookback);
            (1u64 << 32) - wrap_in
        } else {
            lookback + Rng::new(seed, 0x3_0000 + e as u64).below(40 * 24 * 3600 * 1000)
        }
    }
}

fn calibration_sample(seed: u64) -> Vec<Shape> {
    let mut rng = Rng::new(seed, CALIBRATION_STREAM);
    (0..CALIBRATION_SAMPLE).map(|_| model::draw_shape(&mut rng)).collect()
}

fn expect(sample: &[Shape], active_ms: u64, inactive_ms: u64, scale: f64) -> Expect {
    model::expect(sample, &Params { active_ms, inactive_ms, scale })
}

/// The scale `c` with `f(c) = target` (f grows with c), by bisection in log
/// space over 1e-9..=1e9; clamped (and flagged) when out of reach.
fn solve(f: impl Fn(f64) -> f64, target: f64) -> (f64, bool) {
    let (mut lo, mut hi) = (1e-9f64.ln(), 1e9f64.ln());
    if f(lo.exp()) >= target {
        return (lo.exp(), true);
    }
    if f(hi.exp()) <= target {
        return (hi.exp(), true);
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if f(mid.exp()) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    ((0.5 * (lo + hi)).exp(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_targets_need_allow_remote() {
        let cfg = Config { target: "8.8.8.8:2055".parse().unwrap(), ..Config::default() };
        let err = cfg.validate(Mode::Live).unwrap_err();
        assert_eq!(err.flag, "--target");
        assert!(err.msg.contains("--allow-remote"), "{err}");
        let ok = Config { allow_remote: true, ..cfg.clone() };
        assert!(ok.validate(Mode::Live).is_ok());
        // A pcap is not sending anything.
        assert!(cfg.validate(Mode::Pcap).is_ok());
        let v6 = Config { target: "[::1]:2055".parse().unwrap(), ..Config::default() };
        assert!(v6.validate(Mode::Live).is_ok());
    }

    #[test]
    fn plan_counts_and_quotas() {
        let cfg = Config { count: Some(10), exporters: 4, ..Config::default() };
        let p = Plan::new(&cfg, Mode::Pcap, 0).unwrap();
        assert_eq!(p.total, Some(10));
        let q: Vec<u64> = (0..4).map(|e| p.quota(e).unwrap()).collect();
        assert_eq!(q, vec![3, 3, 2, 2]);
        let cfg = Config { pps: 2000, duration: Some(Duration::from_secs(2)), ..Config::default() };
        let p = Plan::new(&cfg, Mode::Live, 5_000_000_000_000_000_000).unwrap();
        assert_eq!(p.total, Some(4000));
        assert_eq!(p.deadline, Some(Duration::from_secs(2)));
        let cfg = Config { pps: 0, ..Config::default() };
        let p = Plan::new(&cfg, Mode::Live, 0).unwrap();
        assert_eq!(p.total, None, "unpaced with a duration: until the deadline");
        assert!(Plan::new(&cfg, Mode::Pcap, 0).is_err(), "a pcap needs a bound count");
    }

    #[test]
    fn calibration_reaches_the_concurrency() {
        for (pps, x) in [(1000u64, 1.0), (1000, 300.0), (200_000, 1.0)] {
            let cfg = Config { pps, time_scale: Some(x), count: Some(100), ..Config::default() };
            let p = Plan::new(&cfg, Mode::Pcap, 0).unwrap();
            assert!(!p.flows_clamped, "{p:?}");
            let rel = (p.concurrency - cfg.flows as f64).abs() / cfg.flows as f64;
            assert!(
                rel < 0.01,
                "pps {pps} x {x}: concurrency {} scale {}",
                p.concurrency,
                p.params.scale
            );
            // Records per router second match the datagram schedule.
            let demand = pps as f64 * 30.0 / x;
            let supply = p.new_rate / p.expect.conns_per_session * p.expect.records_per_session;
            assert!((supply - demand).abs() / demand < 1e-6, "{supply} vs {demand}");
        }
        // --new-rate gives the time scale.
        let cfg = Config { new_rate: Some(500.0), count: Some(100), ..Config::default() };
        let p = Plan::new(&cfg, Mode::Pcap, 0).unwrap();
        assert!((p.new_rate - 500.0).abs() < 1e-9);
        assert!(p.time_scale > 0.0 && p.time_scale.is_finite());
    }

    #[test]
    fn for_version_fits_the_mtu() {
        assert_eq!(Config::for_version(5, 0.0), Config::default());
        let c = Config::for_version(10, 0.3);
        assert_eq!((c.version, c.ipv6, c.records_per_datagram), (10, 0.3, 12));
        assert!(c.validate(Mode::Pcap).is_ok());
    }

    #[test]
    fn plan_is_deterministic() {
        let cfg = Config { count: Some(100), ..Config::default() };
        assert_eq!(Plan::new(&cfg, Mode::Pcap, 0), Plan::new(&cfg, Mode::Pcap, 0));
    }
}
