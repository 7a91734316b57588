//! Command-line flags: the clap structs, their help text and defaults
//! (parsed by [`crate::run::parse_args`], after `--config FILE` expansion).
//! The first of three places: flags are defined here, validated
//! into [`crate::config`] (whose messages name the flag to change), and run
//! by [`crate::run`]. Nothing here checks a value beyond its type or does
//! the work.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::flow::KeySpec;
use crate::sink::clickhouse::ClickHouseUrl;

/// Default flow capacity (all shards together): about 1.5 GiB of flow state.
pub const DEFAULT_MAX_FLOWS: usize = 8_000_000;
/// Default `--reserve-flows` (all workers together): about 32 MiB at startup.
pub const DEFAULT_RESERVE_FLOWS: usize = 1 << 17;
/// Default `--rcvbuf`: 32 MiB per socket. At the kernel's 2304-byte
/// truesize of a full v5 datagram that is about 14k datagrams: a stall of
/// 0.29 s at 50k datagrams/s, 29 ms at 500k/s. The kernel default (208 KiB,
/// about 90 datagrams) overflows in under 2 ms at 50k/s.
pub const DEFAULT_RCVBUF: usize = 32 << 20;
/// Default `--spool-max-bytes`: 4 GiB, about 38 million flows (111 bytes each).
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 4 << 30;

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
    /// Socket receive buffer in bytes, per socket: what absorbs a burst or a
    /// stall (32 MiB holds about 13k full v5 datagrams, 0.27 s at 50k/s).
    /// SO_RCVBUFFORCE when privileged, else SO_RCVBUF; read back and printed
    /// at start, with the sysctl line to run when the kernel capped it. 0: the
    /// kernel's default.
    #[arg(long, default_value_t = DEFAULT_RCVBUF)]
    pub rcvbuf: usize,
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
    #[arg(long, default_value_t = DEFAULT_RESERVE_FLOWS)]
    pub reserve_flows: usize,
    /// At the end, write each latency histogram as NAME.hgrm (HdrHistogram
    /// percentile distribution) and NAME.svg (percentile plot) into DIR.
    #[arg(long)]
    pub histogram_dir: Option<PathBuf>,
    /// Also insert flows into ClickHouse over its HTTP interface, e.g.
    /// http://127.0.0.1:8123/ (or https://, see --clickhouse-ca). Printed
    /// without its password; better, keep the password out of it with
    /// --clickhouse-password-file.
    #[arg(long)]
    pub clickhouse: Option<ClickHouseUrl>,
    /// Read the ClickHouse password from this file (one line; a trailing
    /// newline is dropped), read once at start; sent as HTTP basic auth with
    /// the URL's user (user@ or ?user=, else `default`). Without it, the
    /// password in the --clickhouse URL, else $NFSTITCH_CLICKHOUSE_PASSWORD.
    #[arg(long, value_name = "FILE")]
    pub clickhouse_password_file: Option<PathBuf>,
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
    /// Drop days of flows older than this (e.g. 30d) from a table the
    /// collector creates: a TTL on the table, whole daily partitions at a
    /// time. Needs ClickHouse 20.3 or later (the native schema); an older
    /// server's table gets none (logged). An existing table keeps its own.
    #[arg(long, value_parser = parse_duration)]
    pub clickhouse_ttl: Option<Duration>,
    /// Also create the rollup views TABLE_1m and TABLE_1h: per minute and per
    /// hour, by exporter, protocol and address pair, the number of flows and
    /// the sums of packets and octets (materialized views into
    /// SummingMergeTree tables: sum again when querying).
    #[arg(long)]
    pub clickhouse_rollups: bool,
    /// Write through a Distributed table over the shards of this ClickHouse
    /// cluster (from the server's remote_servers): --clickhouse-table is the
    /// Distributed table, sharded by a hash of the exporter; TABLE_local is
    /// created on every replica (over HTTP at the --clickhouse URL's port; no
    /// ON CLUSTER, so no ZooKeeper needed).
    #[arg(long, value_name = "NAME")]
    pub clickhouse_cluster: Option<String>,
    /// Directory for batches ClickHouse could not take yet (replayed when it is back).
    #[arg(long, default_value = "nfstitch-spool")]
    pub spool_dir: PathBuf,
    /// The spool never takes more than this (e.g. 4GiB, 500MiB, or bytes;
    /// K, M, G, T are powers of 1024); batches beyond it are dropped and
    /// counted (dropped_flows). 0: no spool.
    #[arg(long, default_value = "4GiB", value_parser = parse_bytes)]
    pub spool_max_bytes: u64,
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
    /// At most this many flows at once; beyond it the least recently updated flow is evicted.
    #[arg(long, default_value_t = DEFAULT_MAX_FLOWS)]
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
    /// Pair the two directions of each connection into one `conn` row (Zeek
    /// conn.log style); needs proto, src, sport, dst and dport in --key.
    #[arg(long)]
    pub pair: bool,
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
    /// v9/IPFIX: datagrams held per exporter while their template has not
    /// arrived (0: hold none; what is not held is counted).
    #[arg(long, default_value_t = 64)]
    pub hold_datagrams: usize,
    /// v9/IPFIX: how long a datagram is held for its template.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub hold_for: Duration,
    /// v9/IPFIX: save templates here at the end (collect: also while
    /// running, within seconds of a change) and load them at start
    /// (collect: default ./nfstitch-state; replay: only when given).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Do not load or save templates.
    #[arg(long, conflicts_with = "state_dir")]
    pub no_state: bool,
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

/// Sizes: bytes, or a number with K, M, G or T (powers of 1024; `KiB`,
/// `MiB`, `GiB`, `TiB` and `KB` ... the same).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let bad = || format!("{s:?} is not a size (examples: 4GiB, 500MiB, 1048576)");
    let n: u64 = s[..digits].parse().map_err(|_| bad())?;
    let shift = match s[digits..].trim_start().trim_end_matches(['B', 'b']).trim_end_matches('i') {
        "" => 0,
        "K" | "k" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1 << shift).ok_or_else(|| format!("{s:?} is too large"))
}

/// Durations: `310s`, `31m`, `1h30m`, `500ms`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 310s, 31m, 1h)"))
}
