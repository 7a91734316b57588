//! Command-line flags (clap) into a [`Config`], and the run itself. Messages
//! name the flag to change; the model never sees flag parsing.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use crate::config::Config;
use crate::truth::Truth;

/// Synthetic NetFlow v5, v9 and IPFIX exports at a chosen rate, with exact ground truth.
///
/// Sends a seeded, deterministic traffic model (TCP/UDP/ICMP sessions cut
/// into records by per-exporter router models) to a collector over UDP, or
/// writes it to a pcap with simulated timestamps. At the end it prints what
/// it sent (the truth) and, for live runs, the achieved rate and the send
/// lateness percentiles.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about, long_about = None, disable_version_flag = true)]
pub struct Cli {
    /// Print loadgen's version (`--version` picks the export format).
    #[arg(short = 'V', long = "print-version", action = clap::ArgAction::Version)]
    pub print_version: (),
    /// Collector address, IP:PORT. Only loopback addresses unless --allow-remote.
    #[arg(long, default_value = "127.0.0.1:2055", value_parser = parse_target)]
    pub target: SocketAddr,
    /// Allow a --target outside 127.0.0.0/8 and ::1.
    #[arg(long)]
    pub allow_remote: bool,
    /// Valid datagrams per second: 2M, 500k, 1.5k, 1500; 0 = as fast as possible.
    #[arg(long, default_value = "1000", value_parser = parse_rate)]
    pub pps: u64,
    /// Run length (e.g. 10s, 2m); default 10s unless --count is given. No batch starts
    /// after it; the routers' caches are then flushed for at most 200 ms.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Valid datagrams to send in all (e.g. 500k); malformed ones come on top.
    #[arg(long, value_parser = parse_rate)]
    pub count: Option<u64>,
    /// Exporters (routers), each from its own address 127.0.1.(i+1).
    #[arg(long, default_value_t = 4)]
    pub exporters: usize,
    /// All exporters from 127.0.0.1, told apart by source port and engine id.
    #[arg(long)]
    pub same_src_ip: bool,
    /// Sending threads; exporters are split over them.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Pin sending threads to these cpus (e.g. 0,1 or 2-3), round robin.
    #[arg(long, value_parser = parse_cpus)]
    pub cpus: Option<CpuList>,
    /// Datagrams per sendmmsg call (fewer at low rates, for precise pacing).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Concurrent connections the model keeps open on average (both directions count).
    #[arg(long, default_value = "10000", value_parser = parse_rate)]
    pub flows: u64,
    /// New connections per router second; then the time scale follows from it.
    #[arg(long, value_parser = parse_rate_f64, conflicts_with = "time_scale")]
    pub new_rate: Option<f64>,
    /// Router time runs this many times faster than the wall clock (default 1),
    /// so that router timeouts happen within short runs.
    #[arg(long)]
    pub time_scale: Option<f64>,
    /// Router active timeout: a long connection is exported every so often.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub active_timeout: Duration,
    /// Router inactive timeout: a connection silent this long is exported.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub inactive_timeout: Duration,
    /// Records per datagram, 1..=30. Default: 30 for v5; for v9/IPFIX the most whose
    /// largest datagram (templates in front, every record IPv6 when --ipv6 > 0) fits a
    /// 1500-byte MTU (without --sampling: v9 21 IPv4-only, 13 with IPv6; IPFIX 18 and 12).
    #[arg(long)]
    pub records_per_datagram: Option<usize>,
    /// Deterministic 1-in-N sampling (0 = none; counts are not scaled): v5 header
    /// sampling field (N <= 16383); v9/IPFIX a sampling options template and record
    /// sent with the templates (v9 SAMPLING_INTERVAL, IPFIX samplingPacketInterval 1 and
    /// samplingPacketSpace N-1).
    #[arg(long, default_value_t = 0)]
    pub sampling: u16,
    /// Export format: 5 (NetFlow v5), 9 (NetFlow v9, RFC 3954) or 10 (IPFIX, RFC 7011).
    #[arg(long, default_value_t = 5, value_parser = parse_version)]
    pub version: u16,
    /// Share of sessions that are IPv6 (0..=1, e.g. 0.3); v9/IPFIX only (v5 has no IPv6).
    #[arg(long, default_value_t = 0.0)]
    pub ipv6: f64,
    /// v9/IPFIX: resend the templates (and sampling options) with the first datagram
    /// this much router time after the last ones (default 20s). Always with the first
    /// datagram (but see --data-before-template).
    #[arg(long, value_parser = parse_duration)]
    pub template_interval: Option<Duration>,
    /// v9/IPFIX: also resend the templates with every Nth datagram of an exporter
    /// (real exporters' refresh by packets; default: by time only).
    #[arg(long, value_name = "N")]
    pub template_every: Option<u64>,
    /// v9/IPFIX: each exporter's first N datagrams carry data only (its templates come
    /// with datagram N+1), as after a collector or exporter restart; the truth counts
    /// them as no_template_*.
    #[arg(long, value_name = "N")]
    pub data_before_template: Option<u64>,
    /// Seed of the traffic model: the same seed gives the same traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Router clock at the start: RFC 3339 or Unix seconds (default: now; pcaps 2023-11-14T22:13:20Z).
    #[arg(long, value_parser = parse_start)]
    pub start: Option<u64>,
    /// Write the traffic to this pcap (simulated timestamps) instead of sending it.
    #[arg(long)]
    pub pcap_out: Option<PathBuf>,
    /// Write the ground truth as JSON to this file.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// List every true connection in the truth (always with --pcap-out, when not too many).
    #[arg(long)]
    pub truth_connections: bool,
    /// Mix in this ratio of malformed datagrams (every rejection kind), on top of the valid ones.
    #[arg(long, default_value_t = 0.0)]
    pub corrupt_ratio: f64,
    /// Write the send lateness histogram here as send_lateness.hgrm and send_lateness.svg.
    #[arg(long)]
    pub histogram_dir: Option<PathBuf>,
    /// Make N valid datagrams (e.g. 3334, 10k, 1M; split over the exporters) from the model
    /// before the clock starts, then send them in a loop until --count/--duration, patching
    /// only flow_sequence (continuous), export time, sys_uptime and each record's First/Last:
    /// a sender limited by the kernel, not the model. The same flow keys recur every pass,
    /// so the truth counts what was sent but lists no connections. Live sending only (not
    /// with --pcap-out or --truth-connections); --corrupt-ratio mixes malformed datagrams
    /// into the pool.
    #[arg(long, value_parser = parse_rate, value_name = "N")]
    pub pool: Option<u64>,
    /// Send with plain sendmmsg only. By default (Linux 4.18+) each run of consecutive
    /// equal-length datagrams of one exporter leaves as one UDP GSO send (UDP_SEGMENT), which
    /// the kernel cuts back into the same datagrams; falls back to plain sendmmsg by itself
    /// where the kernel or route refuses.
    #[arg(long)]
    pub no_gso: bool,
}

/// A list of cpu ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

impl Cli {
    pub fn to_config(&self) -> Config {
        let mut cfg = Config {
            seed: self.seed,
            exporters: self.exporters,
            same_src_ip: self.same_src_ip,
            target: self.target,
            allow_remote: self.allow_remote,
            pps: self.pps,
            count: self.count,
            duration: self.duration,
            threads: self.threads,
            cpus: self.cpus.clone().map(|c| c.0).unwrap_or_default(),
            batch: self.batch,
            flows: self.flows,
            new_rate: self.new_rate,
            time_scale: self.time_scale,
            active_timeout: self.active_timeout,
            inactive_timeout: self.inactive_timeout,
            records_per_datagram: 30,
            sampling: self.sampling,
            start_ns: self.start.map(|s| s * 1_000_000_000),
            corrupt_ratio: self.corrupt_ratio,
            truth_connections: self.truth_connections,
            pool: self.pool,
            gso: !self.no_gso,
            version: self.version,
            ipv6: self.ipv6,
            template_interval: self.template_interval,
            template_every: self.template_every,
            data_before_template: self.data_before_template,
        };
        cfg.records_per_datagram =
            self.records_per_datagram.unwrap_or_else(|| cfg.fitting_records_per_datagram());
        cfg
    }
}

/// `5`, `9` or `10`.
pub fn parse_version(s: &str) -> Result<u16, String> {
    match s.trim() {
        "5" => Ok(5),
        "9" => Ok(9),
        "10" => Ok(10),
        _ => Err(format!(
            "unknown export version {s:?}: use 5 (NetFlow v5), 9 (NetFlow v9) or 10 (IPFIX)"
        )),
    }
}

/// `IP:PORT` (or `localhost:PORT`); no name resolution.
pub fn parse_target(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| format!("bad port in {s:?}"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse()
        .map_err(|_| format!("expected IP:PORT (e.g. 127.0.0.1:2055 or [::1]:2055), got {s:?}"))
}

/// A rate or count with an optional k/M/G suffix (powers of 1000).
pub fn parse_rate_f64(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let err = || {
        format!("invalid number {s:?}: use digits with an optional k, M or G suffix, e.g. 2M, 500k, 1500")
    };
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        Some((i, 'g' | 'G')) => (&t[..i], 1e9),
        _ => (t, 1.0),
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(err());
    }
    let v: f64 = num.parse().map_err(|_| err())?;
    let v = v * mul;
    if !v.is_finite() || v > 1e15 {
        return Err(err());
    }
    Ok(v)
}

/// [`parse_rate_f64`], rounded to a whole number.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    parse_rate_f64(s).map(|v| v.round() as u64)
}

/// `310s`, `31m`, `1h30m`, `500ms`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 10s, 30m, 1h)"))
}

/// Unix seconds or RFC 3339.
pub fn parse_start(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{e}: expected Unix seconds or RFC 3339 (2024-01-01T00:00:00Z)"))?;
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| "before 1970".to_string())
}

/// `0,1,4-7`.
pub fn parse_cpus(s: &str) -> Result<CpuList, String> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("bad cpu list {s:?}: expected e.g. 0,1 or 2-3");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b || b - a > 1024 {
                    return Err(bad());
                }
                v.extend(a..=b);
            }
            None => v.push(part.parse().map_err(|_| bad())?),
        }
    }
    if v.is_empty() {
        return Err(format!("empty cpu list {s:?}"));
    }
    Ok(CpuList(v))
}

/// Parse the process arguments and run. Returns the exit code.
pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    let cfg = cli.to_config();
    if cfg.version != 5 {
        let worst = crate::templated::worst_datagram_len(&cfg, cfg.records_per_datagram);
        if worst > crate::config::MTU_PAYLOAD {
            eprintln!(
                "loadgen: note: --records-per-datagram {} makes datagrams of up to {worst} bytes, \
                 above a 1500-byte MTU's {} (fine on loopback; real exporters stay below it)",
                cfg.records_per_datagram,
                crate::config::MTU_PAYLOAD
            );
        }
    }
    let mut stdout = std::io::stdout().lock();
    let truth: Truth = match &cli.pcap_out {
        Some(path) => {
            let (truth, plan) = crate::write_pcap(&cfg, path)?;
            writeln!(stdout, "{}", crate::describe_plan(&plan, &cfg))?;
            writeln!(
                stdout,
                "pcap: wrote {} datagrams ({} malformed) to {}",
                truth.datagrams + truth.corrupt.total(),
                truth.corrupt.total(),
                path.display()
            )?;
            if truth.connections.is_none() {
                eprintln!(
                    "loadgen: note: a large pcap: connections are not listed in the truth \
                     (--truth-connections lists up to {} records)",
                    crate::config::MAX_TRUTH_RECORDS
                );
            }
            if cli.histogram_dir.is_some() {
                eprintln!("loadgen: --histogram-dir: nothing is sent with --pcap-out, no lateness to write");
            }
            truth
        }
        None => {
            let (truth, report, plan) = crate::run_live(&cfg)?;
            writeln!(stdout, "{}", crate::describe_plan(&plan, &cfg))?;
            report.print(&mut stdout)?;
            for cpu in &report.pin_failures {
                eprintln!("loadgen: warning: --cpus: could not pin a thread to cpu {cpu}");
            }
            if report.cut_by_deadline {
                let flushed = if report.pool.is_some() {
                    String::new()
                } else {
                    format!(
                        "; the routers' caches were flushed after the deadline (for at most {} ms)",
                        crate::send::DRAIN_GRACE.as_millis()
                    )
                };
                eprintln!(
                    "loadgen: warning: the --duration deadline came before all {} planned datagrams were sent \
                     (sent {}){flushed}",
                    report.planned.unwrap_or(0),
                    report.valid_sent
                );
            }
            if report.unsent_records > 0 {
                eprintln!(
                    "loadgen: note: {} records the routers still held {} ms after the --duration deadline \
                     were not sent (nor counted in the truth)",
                    report.unsent_records,
                    crate::send::DRAIN_GRACE.as_millis()
                );
            }
            if report.rate_missed() {
                eprintln!(
                    "loadgen: warning: target rate not reached: achieved {:.0} datagrams/s of {} ({:.1}%); \
                     try more --threads, a larger --batch, or fewer --exporters",
                    report.achieved_valid_pps(),
                    report.target_pps,
                    100.0 * report.achieved_valid_pps() / report.target_pps as f64
                );
            }
            if let Some(dir) = &cli.histogram_dir {
                // The collector's formats: send_lateness.hgrm and send_lateness.svg.
                nfstitch::hist::write_dir(dir, &[("send_lateness", &report.lateness)])
                    .with_context(|| {
                        format!("--histogram-dir: cannot write to {}", dir.display())
                    })?;
            }
            truth
        }
    };
    truth.print(&mut stdout)?;
    if let Some(path) = &cli.truth {
        truth
            .write_json(path)
            .with_context(|| format!("--truth: cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("2M"), Ok(2_000_000));
        assert_eq!(parse_rate("500k"), Ok(500_000));
        assert_eq!(parse_rate("1.5k"), Ok(1500));
        assert_eq!(parse_rate("1500"), Ok(1500));
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate(" 3G "), Ok(3_000_000_000));
        for bad in ["bogus", "", "k", "-5", "1e3", "2MM", "1,000", "nan", "inf"] {
            let e = parse_rate(bad).unwrap_err();
            assert!(e.contains("2M, 500k, 1500"), "{bad}: {e}");
        }
    }

    #[test]
    fn targets_and_cpus() {
        assert_eq!(parse_target("localhost:9995").unwrap(), "127.0.0.1:9995".parse().unwrap());
        assert!(parse_target("[::1]:2055").is_ok());
        assert!(parse_target("example.com:2055").is_err());
        assert_eq!(parse_cpus("0,2-4").unwrap(), CpuList(vec![0, 2, 3, 4]));
        assert!(parse_cpus("x").is_err());
        assert!(parse_cpus("3-1").is_err());
    }

    #[test]
    fn durations_and_starts() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_start("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_start("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert!(parse_start("yesterday").is_err());
    }

    #[test]
    fn flags_map_to_config() {
        let cli =
            Cli::try_parse_from(["loadgen", "--pps", "2M", "--count", "500k", "--cpus", "0-1"])
                .unwrap();
        let cfg = cli.to_config();
        assert_eq!(cfg.pps, 2_000_000);
        assert_eq!(cfg.count, Some(500_000));
        assert_eq!(cfg.cpus, vec![0, 1]);
        assert_eq!(cfg.exporters, 4);
        assert!(Cli::try_parse_from(["loadgen", "--new-rate", "5", "--time-scale", "2"]).is_err());
        assert!(Cli::try_parse_from(["loadgen", "--pps", "bogus"]).is_err());
    }
}
