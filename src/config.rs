//! Validated options with their defaults. The core never sees flag parsing:
//! `cli` turns flags into these, and every value here is already checked.

use std::path::PathBuf;
use std::time::Duration;

use crate::flow::{KeySpec, ShardConfig};
use crate::output::{Format, TimeFormat};

/// Default linger after a FIN/RST record (the origin's 310 s).
pub const DEFAULT_LINGER: Duration = Duration::from_secs(310);
/// Default idle timeout (31 min: longer than routers' 30 min active timeout).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(31 * 60);
/// Default flow capacity (all shards together): about 1.5 GiB of flow state.
pub const DEFAULT_MAX_FLOWS: usize = 8_000_000;
/// Default `--reserve-flows` (all workers together): about 32 MiB at startup.
pub const DEFAULT_RESERVE_FLOWS: usize = 1 << 17;
/// The longest linger or idle timeout accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(366 * 24 * 3600);

/// What to compute and how to emit it; shared by `replay` and `collect`.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub key: KeySpec,
    pub linger: Duration,
    pub idle: Duration,
    pub max_flows: usize,
    /// Restitch (off with `--no-stitch`).
    pub stitch: bool,
    /// Emit every header and record as received.
    pub dump: bool,
    /// Accept bytes after the last record.
    pub lenient: bool,
    /// Multiply packets and octets by the sampling interval.
    pub scale_sampling: bool,
    pub format: Format,
    pub time_format: TimeFormat,
    /// `None`: stdout.
    pub output: Option<PathBuf>,
    pub stats_json: Option<PathBuf>,
    /// Print the final report on stderr.
    pub report: bool,
    /// Accept datagrams only from these sources (empty: all).
    pub allow: Vec<ipnet::IpNet>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            key: KeySpec::default(),
            linger: DEFAULT_LINGER,
            idle: DEFAULT_IDLE,
            max_flows: DEFAULT_MAX_FLOWS,
            stitch: true,
            dump: false,
            lenient: false,
            scale_sampling: false,
            format: Format::Jsonl,
            time_format: TimeFormat::Rfc3339,
            output: None,
            stats_json: None,
            report: true,
            allow: Vec::new(),
        }
    }
}

impl Pipeline {
    /// The shard configuration for one of `shards` shards (capacity split evenly).
    pub fn shard_config(&self, shards: usize) -> ShardConfig {
        ShardConfig {
            key: self.key,
            linger_ns: self.linger.as_nanos() as u64,
            idle_ns: self.idle.as_nanos() as u64,
            max_flows: self.max_flows.div_ceil(shards.max(1)).max(1),
        }
    }
}

/// `nfstitch replay`.
#[derive(Debug, Clone)]
pub struct Replay {
    pub pipeline: Pipeline,
    pub files: Vec<PathBuf>,
    /// Only UDP to this destination port.
    pub port: Option<u16>,
}
