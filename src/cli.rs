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
#[derive(Debug, Parser)]
#[command(name = "nfstitch", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Restitch NetFlow v5 from pcap/pcapng captures or raw v5 datagram files.
    Replay(ReplayArgs),
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
                bail!("{flag}: {} is longer than the maximum of 366 days", humantime::format_duration(d));
            }
        }
        if self.idle.is_zero() {
            bail!("--idle must be above 0");
        }
        if self.max_flows == 0 {
            bail!("--max-flows must be at least 1");
        }
        Ok(Pipeline {
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
    let cli = Cli::parse();
    match cli.command {
        Command::Replay(a) => {
            let cfg = config::Replay {
                pipeline: a.pipeline.to_config()?,
                files: a.files,
                port: a.port,
            };
            crate::replay::run(&cfg)?;
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}
