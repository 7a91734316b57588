//! Command-line flags (clap) and their validation into [`crate::config`].
//! Messages name the flag to change. Nothing here does the work.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Pipeline};
use crate::flow::KeySpec;
use crate::output::{Format, TimeFormat};

/// NetFlow v5 collector and online flow restitcher.
///
/// Without a subcommand, runs `collect` (listening on 0.0.0.0:2055).
#[derive(Debug, Parser)]
#[command(name = "nfstitch", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub collect: CollectArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive NetFlow v5 over UDP and restitch it live (the default).
    Collect(Box<CollectArgs>),
    /// Restitch NetFlow v5 from pcap/pcapng captures or raw v5 datagram files.
    Replay(ReplayArgs),
    /// Overlay HdrHistogram percentile files (.hgrm) in one SVG plot.
    Plot(PlotArgs),
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// .hgrm files (HdrHistogram percentile distribution text), one series each.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The SVG file to write.
    #[arg(short = 'o', long = "output", required = true)]
    pub output: PathBuf,
    /// Plot title.
    #[arg(long, default_value = "latency by percentile")]
    pub title: String,
}

fn plot(a: &PlotArgs) -> Result<()> {
    let mut series = Vec::new();
    for f in &a.files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
        let d = crate::hist::parse_hgrm(&text)
            .map_err(|e| anyhow::anyhow!("{} is not an .hgrm file: {e}", f.display()))?;
        let name = f
            .file_stem()
            .map_or_else(|| f.display().to_string(), |s| s.to_string_lossy().into_owned());
        series.push((name, d));
    }
    std::fs::write(&a.output, crate::hist::svg_plot(&a.title, &series))
        .map_err(|e| anyhow::anyhow!("-o: cannot write {}: {e}", a.output.display()))?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Address to receive on (IPv4 or IPv6); may repeat.
    #[arg(long, default_value = "0.0.0.0:2055")]
    pub listen: Vec<std::net::SocketAddr>,
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Cores to pin workers to, e.g. 0,2-3 (default: worker i on core i).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Socket receive buffer in bytes (read back; warns if the kernel capped it).
    #[arg(long)]
    pub rcvbuf: Option<usize>,
    /// Print a one-line stats report on stderr this often (0 turns it off).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub stats_interval: Duration,
    /// Flush the output at least this often.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub flush_interval: Duration,
    /// Receive coalescing: after a receive round that found less than a full
    /// batch, a worker waits this long before the next, so that datagrams are
    /// taken in batches (far fewer wakeups and syscalls at moderate rates;
    /// adds at most this much latency; 0 turns it off). Under load rounds are
    /// full and it never waits.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub rx_coalesce: Duration,
    /// Flow slots (all workers together) allocated and touched at startup,
    /// each worker its share on its own core: the first this many flows take
    /// no allocation or table growth, and no page fault for their slots and
    /// buckets (about 250 bytes each; 0: grow on demand). At most --max-flows.
    #[arg(long, default_value_t = crate::config::DEFAULT_RESERVE_FLOWS)]
    pub reserve_flows: usize,
    /// At the end, write each latency histogram as NAME.hgrm (HdrHistogram
    /// percentile distribution) and NAME.svg (percentile plot) into DIR.
    #[arg(long)]
    pub histogram_dir: Option<PathBuf>,
    /// Also insert flows into ClickHouse over its HTTP interface, e.g.
    /// http://127.0.0.1:8123/ (or https://, see --clickhouse-ca)
    #[arg(long)]
    pub clickhouse: Option<String>,
    /// ClickHouse table (created when missing, MergeTree ordered by time).
    #[arg(long, default_value = "nfstitch_flows")]
    pub clickhouse_table: String,
    /// Insert when this many flows are buffered...
    #[arg(long, default_value_t = 50_000)]
    pub clickhouse_batch: usize,
    /// ...or when the oldest buffered flow is this old.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub clickhouse_interval: Duration,
    /// Flows kept in memory while ClickHouse is down, before spooling to disk.
    #[arg(long, default_value_t = 1_000_000)]
    pub clickhouse_buffer: usize,
    /// For an https:// --clickhouse: trust only the CA certificates in this
    /// PEM file (instead of the built-in Mozilla roots), e.g. a private CA.
    #[arg(long, value_name = "FILE")]
    pub clickhouse_ca: Option<PathBuf>,
    /// Directory for batches ClickHouse could not take yet (replayed when it is back).
    #[arg(long, default_value = "nfstitch-spool")]
    pub spool_dir: PathBuf,
    /// Serve Prometheus metrics on http://ADDR:PORT/metrics.
    #[arg(long)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Read flags from a TOML file: keys are long flag names (see dist/nfstitch.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate flags and config, print the effective configuration, exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Rotate the output every DUR (e.g. 5m): -o names a directory, files are
    /// DIR/nfstitch-YYYYmmddHHMM.EXT, renamed into place when complete.
    #[arg(long, value_parser = parse_duration)]
    pub rotate: Option<Duration>,
    /// Compress rotated files: none, gzip or zstd.
    #[arg(long, default_value = "none")]
    pub compress: String,
}

fn collect(a: &CollectArgs) -> Result<std::process::ExitCode> {
    let cfg = a.to_config()?;
    if a.dry_run {
        println!("{cfg:#?}");
        return Ok(std::process::ExitCode::SUCCESS);
    }
    crate::collect::run(&cfg)?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// `--config FILE`: a TOML file whose keys are long flag names (`-` or `_`)
/// of the subcommand. Its flags are inserted right after the subcommand, so
/// flags given on the command line come after them (and win for single-value
/// flags; repeatable flags such as `listen` add up).
fn expand_config(mut args: Vec<std::ffi::OsString>) -> Result<Vec<std::ffi::OsString>> {
    use clap::CommandFactory;
    let pos =
        args.iter().position(|a| a == "--config" || a.to_string_lossy().starts_with("--config="));
    let Some(pos) = pos else { return Ok(args) };
    let path = match args[pos].to_string_lossy().strip_prefix("--config=") {
        Some(p) => {
            let p = PathBuf::from(p);
            args.remove(pos);
            p
        }
        None => {
            if pos + 1 >= args.len() {
                bail!("--config needs a file");
            }
            let p = PathBuf::from(args.remove(pos + 1));
            args.remove(pos);
            p
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("--config: cannot read {}: {e}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?;
    let sub = args.get(1).map(|a| a.to_string_lossy().into_owned());
    let (insert_at, subname) = match sub.as_deref() {
        Some(name @ ("collect" | "replay")) => (2, name.to_string()),
        _ => (1, "collect".to_string()),
    };
    let cmd = Cli::command();
    let known: Vec<String> = cmd
        .find_subcommand(&subname)
        .map(|c| c.get_arguments().filter_map(|a| a.get_long().map(str::to_string)).collect())
        .unwrap_or_default();
    let mut extra: Vec<std::ffi::OsString> = Vec::new();
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        if flag == "config" || !known.contains(&flag) {
            bail!(
                "--config {}: unknown key {key:?} (keys are the long flags of `nfstitch {subname}`, e.g. listen, workers, linger)",
                path.display()
            );
        }
        let scalar = |v: &toml::Value| -> Result<String> {
            Ok(match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => {
                    bail!("--config {}: key {key:?}: unsupported value {other}", path.display())
                }
            })
        };
        match value {
            toml::Value::Boolean(true) => extra.push(format!("--{flag}").into()),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                for v in items {
                    extra.push(format!("--{flag}").into());
                    extra.push(scalar(v)?.into());
                }
            }
            v => {
                extra.push(format!("--{flag}").into());
                extra.push(scalar(v)?.into());
            }
        }
    }
    let insert_at = insert_at.min(args.len());
    args.splice(insert_at..insert_at, extra);
    Ok(args)
}

/// `0,2-3,5` → [0, 2, 3, 5].
pub fn parse_cpus(s: &str) -> Result<Vec<usize>> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim) {
        let bad = || anyhow::anyhow!("--cpus: {part:?} is not a core number or range (e.g. 0,2-3)");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                v.extend(a..=b);
            }
            None => v.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(v)
}

impl CollectArgs {
    pub fn to_config(&self) -> Result<crate::collect::Collect> {
        let workers = self.workers.unwrap_or_else(crate::net::available_cores);
        if !(1..=64).contains(&workers) {
            bail!("--workers must be between 1 and 64, got {workers}");
        }
        if self.flush_interval.is_zero() {
            bail!("--flush-interval must be above 0");
        }
        if self.rx_coalesce > Duration::from_millis(100) {
            bail!(
                "--rx-coalesce must be at most 100ms (got {}): the receive buffer has to hold what arrives meanwhile",
                humantime::format_duration(self.rx_coalesce)
            );
        }
        Ok(crate::collect::Collect {
            pipeline: self.pipeline.to_config()?,
            listen: self.listen.clone(),
            workers,
            cpus: self.cpus.as_deref().map(parse_cpus).transpose()?,
            rcvbuf: self.rcvbuf,
            stats_interval: self.stats_interval,
            flush_interval: self.flush_interval,
            rx_coalesce: self.rx_coalesce,
            reserve_flows: self.reserve_flows,
            histogram_dir: self.histogram_dir.clone(),
            metrics: self.metrics,
            rotate: match self.rotate {
                None => None,
                Some(every) => {
                    let dir = self.pipeline.output.clone().ok_or_else(|| {
                        anyhow::anyhow!(
                            "--rotate needs -o DIR: the directory for the rotated files"
                        )
                    })?;
                    if every < Duration::from_secs(1) {
                        bail!("--rotate must be at least 1s");
                    }
                    let compress =
                        self.compress.parse().map_err(|e| anyhow::anyhow!("--compress: {e}"))?;
                    let format: crate::output::Format = self
                        .pipeline
                        .format
                        .parse()
                        .map_err(|e| anyhow::anyhow!("--format: {e}"))?;
                    Some(crate::output::rotate::Rotation {
                        dir,
                        every,
                        compress,
                        ext: format.extension(),
                    })
                }
            },
            clickhouse: match &self.clickhouse {
                None if self.clickhouse_ca.is_some() => bail!("--clickhouse-ca needs --clickhouse"),
                None => None,
                Some(url) => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        bail!("--clickhouse: {url:?} is not an http:// or https:// URL of ClickHouse's HTTP interface");
                    }
                    if self.clickhouse_ca.is_some() && !url.starts_with("https://") {
                        bail!("--clickhouse-ca is for https:// URLs; --clickhouse is not one");
                    }
                    if self.clickhouse_table.is_empty()
                        || !self
                            .clickhouse_table
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                    {
                        bail!("--clickhouse-table: use letters, digits, '_' and '.' only");
                    }
                    if self.clickhouse_batch == 0 || self.clickhouse_buffer < self.clickhouse_batch
                    {
                        bail!(
                            "--clickhouse-batch must be at least 1 and at most --clickhouse-buffer"
                        );
                    }
                    Some(crate::sink::clickhouse::ClickHouseConfig {
                        url: url.clone(),
                        table: self.clickhouse_table.clone(),
                        batch_rows: self.clickhouse_batch,
                        batch_interval: self.clickhouse_interval,
                        max_buffered_rows: self.clickhouse_buffer,
                        spool_dir: self.spool_dir.clone(),
                        ca: self.clickhouse_ca.clone(),
                    })
                }
            },
        })
    }
}

/// Flags shared by every mode that restitches.
#[derive(Debug, Args, Clone)]
pub struct PipelineArgs {
    /// Key fields, comma-separated, from: exporter, engine, proto, src, sport, dst, dport, tos,
    /// input, output. `proto,src,sport,dst,dport` is the origin-compatible key.
    #[arg(long, default_value = KeySpec::DEFAULT)]
    pub key: String,
    /// How long a flow stays after its last FIN/RST record (e.g. 310s, 5m).
    #[arg(long, default_value = "310s", value_parser = parse_duration)]
    pub linger: Duration,
    /// A flow with no record for this long ends `idle` (e.g. 31m).
    #[arg(long, default_value = "31m", value_parser = parse_duration)]
    pub idle: Duration,
    /// At most this many flows at once; beyond it the oldest flow is evicted.
    #[arg(long, default_value_t = config::DEFAULT_MAX_FLOWS)]
    pub max_flows: usize,
    /// Output format: jsonl, csv or zeek.
    #[arg(long, default_value = "jsonl")]
    pub format: String,
    /// Times in JSON and CSV: rfc3339 or epoch (Zeek logs always use epoch).
    #[arg(long, default_value = "rfc3339")]
    pub time_format: String,
    /// Write output to this file instead of stdout.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Also emit every datagram header and record as received.
    #[arg(long)]
    pub dump: bool,
    /// Do not restitch: emit only the dump (implies --dump).
    #[arg(long)]
    pub no_stitch: bool,
    /// Accept datagrams with bytes after the last record.
    #[arg(long)]
    pub lenient: bool,
    /// Multiply packets and octets by the header's sampling interval.
    #[arg(long)]
    pub scale_sampling: bool,
    /// Write every counter as one JSON object to this file at the end.
    #[arg(long)]
    pub stats_json: Option<PathBuf>,
    /// Do not print the final report on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Accept datagrams only from these sources: CIDR[,CIDR...] (may repeat);
    /// others are dropped before decode and counted as rejected.not_allowed.
    #[arg(long, value_delimiter = ',')]
    pub allow: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Only UDP packets to this destination port (default: every UDP payload is tried as v5).
    #[arg(long)]
    pub port: Option<u16>,
    /// Capture (pcap, pcapng), raw v5 datagram file, or hex text of one frame.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Durations: `310s`, `31m`, `1h30m`, `500ms`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 310s, 31m, 1h)"))
}

impl PipelineArgs {
    pub fn to_config(&self) -> Result<Pipeline> {
        let key: KeySpec = self.key.parse().map_err(|e| anyhow::anyhow!("--key: {e}"))?;
        let format: Format = self.format.parse().map_err(|e| anyhow::anyhow!("--format: {e}"))?;
        let time_format: TimeFormat =
            self.time_format.parse().map_err(|e| anyhow::anyhow!("--time-format: {e}"))?;
        for (flag, d) in [("--linger", self.linger), ("--idle", self.idle)] {
            if d > config::MAX_TIMEOUT {
                bail!(
                    "{flag}: {} is longer than the maximum of 366 days",
                    humantime::format_duration(d)
                );
            }
        }
        if self.idle.is_zero() {
            bail!("--idle must be above 0");
        }
        if self.max_flows == 0 {
            bail!("--max-flows must be at least 1");
        }
        let mut allow = Vec::new();
        for a in &self.allow {
            let net: ipnet::IpNet = match a.parse() {
                Ok(n) => n,
                Err(_) => a.parse::<std::net::IpAddr>().map(ipnet::IpNet::from).map_err(|_| {
                    anyhow::anyhow!(
                        "--allow: {a:?} is not a CIDR (e.g. 192.0.2.0/24) or an address"
                    )
                })?,
            };
            allow.push(net);
        }
        Ok(Pipeline {
            allow,
            key,
            linger: self.linger,
            idle: self.idle,
            max_flows: self.max_flows,
            stitch: !self.no_stitch,
            dump: self.dump || self.no_stitch,
            lenient: self.lenient,
            scale_sampling: self.scale_sampling,
            format,
            time_format,
            output: self.output.clone(),
            stats_json: self.stats_json.clone(),
            report: !self.quiet,
        })
    }
}

/// Parse the process arguments and run. Returns the exit code.
pub fn run() -> Result<std::process::ExitCode> {
    let args = expand_config(std::env::args_os().collect())?;
    let cli = Cli::parse_from(args);
    match cli.command {
        None => collect(&cli.collect),
        Some(Command::Collect(a)) => collect(a.as_ref()),
        Some(Command::Plot(a)) => {
            plot(&a)?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Some(Command::Replay(a)) => {
            let cfg =
                config::Replay { pipeline: a.pipeline.to_config()?, files: a.files, port: a.port };
            crate::replay::run(&cfg)?;
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}
