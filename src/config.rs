//! Validated options with their defaults: [`Pipeline`] (what every mode
//! that restitches shares), [`Collect`] and [`Replay`], and their building
//! from the flags of [`crate::cli`] with every check. The second of three
//! places (flags, validated options, execution): each check is made once,
//! here, and its message names the flag to change. The core never sees flag
//! parsing, and every value here is already checked.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

use crate::cli::{CollectArgs, PipelineArgs, ReplayArgs};
pub use crate::cli::{DEFAULT_MAX_FLOWS, DEFAULT_RCVBUF, DEFAULT_RESERVE_FLOWS};
use crate::flow::{KeySpec, ShardConfig};
use crate::ingest::HoldConfig;
use crate::output::rotate::Rotation;
use crate::output::{Format, TimeFormat};
use crate::sink::clickhouse::{ClickHouseConfig, ClickHouseUrl, Password};

/// The environment variable that can hold the ClickHouse password.
pub const PASSWORD_ENV: &str = "NFSTITCH_CLICKHOUSE_PASSWORD";

/// Default linger after a FIN/RST record (the origin's 310 s).
pub const DEFAULT_LINGER: Duration = Duration::from_secs(310);
/// Default idle timeout (31 min: longer than routers' 30 min active timeout).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(31 * 60);
/// The longest linger or idle timeout accepted: just under 2^31 ms (24 days
/// 20 h), because a flow shard keeps deadlines as 32-bit millisecond ticks
/// read back against its clock ([`crate::flow::MAX_TIMEOUT_NS`]).
pub const MAX_TIMEOUT: Duration = Duration::from_nanos(crate::flow::MAX_TIMEOUT_NS);
/// The most `--workers`: a worker's routing keeps one bit per worker in a `u64`.
pub const MAX_WORKERS: usize = 64;
/// The longest `--rx-coalesce`: the receive buffer has to hold what arrives meanwhile.
pub const MAX_RX_COALESCE: Duration = Duration::from_millis(100);
/// Where `collect` keeps v9/IPFIX templates across restarts unless told
/// otherwise (`--state-dir`, `--no-state`).
pub const DEFAULT_STATE_DIR: &str = "./nfstitch-state";

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
    /// `--pair`: emit connections (both directions) instead of flows.
    pub pair: bool,
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
    /// v9/IPFIX: how datagrams wait for their template.
    pub hold: HoldConfig,
    /// v9/IPFIX: where templates are saved and loaded (`None`: nowhere).
    pub state_dir: Option<PathBuf>,
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
            pair: false,
            lenient: false,
            scale_sampling: false,
            format: Format::Jsonl,
            time_format: TimeFormat::Rfc3339,
            output: None,
            stats_json: None,
            report: true,
            allow: Vec::new(),
            hold: HoldConfig::default(),
            state_dir: None,
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

impl Pipeline {
    /// Validate the flags shared by every mode that restitches.
    pub fn from_args(a: &PipelineArgs) -> Result<Self> {
        let key: KeySpec = a.key.parse().map_err(|e| anyhow!("--key: {e}"))?;
        let format: Format = a.format.parse().map_err(|e| anyhow!("--format: {e}"))?;
        let time_format: TimeFormat =
            a.time_format.parse().map_err(|e| anyhow!("--time-format: {e}"))?;
        for (flag, d) in [("--linger", a.linger), ("--idle", a.idle)] {
            if d > MAX_TIMEOUT {
                bail!(
                    "{flag}: {} is longer than the maximum of {} (2^31 ms: the flow table \
                     keeps deadlines as 32-bit millisecond ticks)",
                    humantime::format_duration(d),
                    humantime::format_duration(Duration::from_millis(
                        MAX_TIMEOUT.as_millis() as u64
                    ))
                );
            }
        }
        if a.idle.is_zero() {
            bail!("--idle must be above 0");
        }
        if a.max_flows == 0 {
            bail!("--max-flows must be at least 1");
        }
        let allow = a.allow.iter().map(|s| parse_allow(s)).collect::<Result<Vec<_>>>()?;
        if a.pair {
            if let Some(why) = crate::pair::key_problem(&key) {
                bail!("{why}");
            }
            if a.no_stitch {
                bail!("--pair pairs restitched flows: it cannot go with --no-stitch");
            }
        }
        Ok(Pipeline {
            pair: a.pair,
            allow,
            key,
            linger: a.linger,
            idle: a.idle,
            max_flows: a.max_flows,
            stitch: !a.no_stitch,
            dump: a.dump || a.no_stitch,
            lenient: a.lenient,
            scale_sampling: a.scale_sampling,
            format,
            time_format,
            output: a.output.clone(),
            stats_json: a.stats_json.clone(),
            report: !a.quiet,
            hold: HoldConfig {
                per_exporter: a.hold_datagrams,
                max_age_ns: a.hold_for.as_nanos().min(u64::MAX as u128) as u64,
            },
            state_dir: if a.no_state { None } else { a.state_dir.clone() },
        })
    }
}

/// One `--allow` value: a CIDR or a single address.
fn parse_allow(a: &str) -> Result<ipnet::IpNet> {
    match a.parse() {
        Ok(n) => Ok(n),
        Err(_) => a
            .parse::<std::net::IpAddr>()
            .map(ipnet::IpNet::from)
            .map_err(|_| anyhow!("--allow: {a:?} is not a CIDR (e.g. 192.0.2.0/24) or an address")),
    }
}

impl Replay {
    /// Validate the flags of `nfstitch replay`.
    pub fn from_args(a: &ReplayArgs) -> Result<Self> {
        Ok(Replay {
            pipeline: Pipeline::from_args(&a.pipeline)?,
            files: a.files.clone(),
            port: a.port,
        })
    }
}

/// `nfstitch collect`: the live collector.
#[derive(Debug, Clone)]
pub struct Collect {
    pub pipeline: Pipeline,
    pub listen: Vec<SocketAddr>,
    /// 1 to [`MAX_WORKERS`].
    pub workers: usize,
    /// Cores to pin workers to, in order (cycled); `None`: worker i on core i.
    pub cpus: Option<Vec<usize>>,
    /// Requested receive buffer per socket; `None`: the kernel's default.
    pub rcvbuf: Option<usize>,
    pub stats_interval: Duration,
    pub flush_interval: Duration,
    /// Wait after a light receive round (see `--rx-coalesce`).
    pub rx_coalesce: Duration,
    /// Flow slots reserved at startup, all workers together (`--reserve-flows`).
    pub reserve_flows: usize,
    /// Write each latency histogram as `.hgrm` and `.svg` here at the end.
    pub histogram_dir: Option<PathBuf>,
    pub clickhouse: Option<ClickHouseConfig>,
    /// Serve Prometheus metrics here.
    pub metrics: Option<SocketAddr>,
    /// Rotate output files (`-o` is then a directory).
    pub rotate: Option<Rotation>,
}

impl Collect {
    /// Validate the flags of `nfstitch collect`; `--workers` defaults to the
    /// number of cores.
    pub fn from_args(a: &CollectArgs) -> Result<Self> {
        let workers = a.workers.unwrap_or_else(crate::platform::available_cores);
        if !(1..=MAX_WORKERS).contains(&workers) {
            bail!("--workers must be between 1 and {MAX_WORKERS}, got {workers}");
        }
        if a.flush_interval.is_zero() {
            bail!("--flush-interval must be above 0");
        }
        if a.rx_coalesce > MAX_RX_COALESCE {
            bail!(
                "--rx-coalesce must be at most {} (got {}): the receive buffer has to hold what arrives meanwhile",
                humantime::format_duration(MAX_RX_COALESCE),
                humantime::format_duration(a.rx_coalesce)
            );
        }
        let mut pipeline = Pipeline::from_args(&a.pipeline)?;
        if !a.pipeline.no_state && pipeline.state_dir.is_none() {
            pipeline.state_dir = Some(PathBuf::from(DEFAULT_STATE_DIR));
        }
        let cpus = a.cpus.as_deref().map(parse_cpus).transpose()?;
        let rotate = a.rotate.map(|every| rotation(a, &pipeline, every)).transpose()?;
        if a.clickhouse.is_none() && a.clickhouse_ca.is_some() {
            bail!("--clickhouse-ca needs --clickhouse");
        }
        if a.clickhouse.is_none() && a.clickhouse_password_file.is_some() {
            bail!("--clickhouse-password-file needs --clickhouse");
        }
        if a.clickhouse.is_none()
            && (a.clickhouse_ttl.is_some()
                || a.clickhouse_rollups
                || a.clickhouse_cluster.is_some())
        {
            bail!(
                "--clickhouse-ttl, --clickhouse-rollups and --clickhouse-cluster need --clickhouse"
            );
        }
        let env = match std::env::var(PASSWORD_ENV) {
            Ok(v) => Some(v),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => bail!("{PASSWORD_ENV} is not UTF-8"),
        };
        let clickhouse =
            a.clickhouse.as_ref().map(|url| clickhouse(a, url, env.as_deref())).transpose()?;
        Ok(Collect {
            pipeline,
            listen: a.listen.clone(),
            workers,
            cpus,
            rcvbuf: (a.rcvbuf > 0).then_some(a.rcvbuf),
            stats_interval: a.stats_interval,
            flush_interval: a.flush_interval,
            rx_coalesce: a.rx_coalesce,
            reserve_flows: a.reserve_flows,
            histogram_dir: a.histogram_dir.clone(),
            metrics: a.metrics,
            rotate,
            clickhouse,
        })
    }
}

/// `--rotate DUR` (with `-o DIR`, `--compress`, and `--format` for the extension).
fn rotation(a: &CollectArgs, p: &Pipeline, every: Duration) -> Result<Rotation> {
    let dir = p
        .output
        .clone()
        .ok_or_else(|| anyhow!("--rotate needs -o DIR: the directory for the rotated files"))?;
    if every < Duration::from_secs(1) {
        bail!("--rotate must be at least 1s");
    }
    let compress = a.compress.parse().map_err(|e| anyhow!("--compress: {e}"))?;
    Ok(Rotation { dir, every, compress, ext: p.format.extension() })
}

/// `--clickhouse URL` and the `--clickhouse-*` flags that go with it; `env`
/// is `$NFSTITCH_CLICKHOUSE_PASSWORD`. The sink's settings are checked by
/// [`ClickHouseConfig::validate`], the one place.
fn clickhouse(a: &CollectArgs, url: &ClickHouseUrl, env: Option<&str>) -> Result<ClickHouseConfig> {
    let password = password(a.clickhouse_password_file.as_deref(), url, env)?;
    let cfg = ClickHouseConfig {
        url: url.clone(),
        password,
        spool_max_bytes: a.spool_max_bytes,
        table: a.clickhouse_table.clone(),
        batch_rows: a.clickhouse_batch,
        batch_interval: a.clickhouse_interval,
        max_buffered_rows: a.clickhouse_buffer,
        ca: a.clickhouse_ca.clone(),
        spool_dir: a.spool_dir.clone(),
        ttl: a.clickhouse_ttl,
        rollups: a.clickhouse_rollups,
        cluster: a.clickhouse_cluster.clone(),
    };
    cfg.validate()?;
    Ok(cfg)
}

/// The ClickHouse password from outside the URL: `--clickhouse-password-file`
/// (never together with a password in the URL), else, when the URL has none,
/// `$NFSTITCH_CLICKHOUSE_PASSWORD` (set and not empty).
fn password(
    file: Option<&Path>,
    url: &ClickHouseUrl,
    env: Option<&str>,
) -> Result<Option<Password>> {
    let Some(file) = file else {
        return Ok(env
            .filter(|v| !v.is_empty() && !url.has_password())
            .map(|v| Password::new(v, PASSWORD_ENV)));
    };
    let flag = format!("--clickhouse-password-file {}", file.display());
    if url.has_password() {
        bail!("{flag}: the --clickhouse URL has a password too; keep it in one place (the file)");
    }
    let text = std::fs::read_to_string(file).map_err(|e| anyhow!("{flag}: cannot read: {e}"))?;
    let pw = text.trim_end_matches(['\n', '\r']);
    if pw.is_empty() {
        bail!("{flag}: the file is empty");
    }
    if pw.contains(['\n', '\r']) {
        bail!("{flag}: more than one line; the file holds only the password");
    }
    Ok(Some(Password::new(pw, flag)))
}

/// `--cpus`: `0,2-3,5` → [0, 2, 3, 5].
fn parse_cpus(s: &str) -> Result<Vec<usize>> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim) {
        let bad = || anyhow!("--cpus: {part:?} is not a core number or range (e.g. 0,2-3)");
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn collect(args: &[&str]) -> Result<Collect> {
        let cli = Cli::try_parse_from([&["nfstitch", "collect"], args].concat()).unwrap();
        match cli.command {
            Some(Command::Collect(a)) => Collect::from_args(&a),
            other => panic!("not collect: {other:?}"),
        }
    }

    #[test]
    fn cpus_lists_and_ranges() {
        assert_eq!(parse_cpus("0,2-3,5").unwrap(), vec![0, 2, 3, 5]);
        for bad in ["x", "3-1", "1-", ""] {
            assert!(parse_cpus(bad).unwrap_err().to_string().starts_with("--cpus"), "{bad}");
        }
    }

    #[test]
    fn each_message_names_its_flag() {
        for (args, flag) in [
            (&["--workers", "0"][..], "--workers"),
            (&["--workers", "65"], "--workers"),
            (&["--flush-interval", "0"], "--flush-interval"),
            (&["--rx-coalesce", "101ms"], "--rx-coalesce"),
            (&["--max-flows", "0"], "--max-flows"),
            (&["--allow", "1.2.3"], "--allow"),
            (&["--rotate", "5m"], "--rotate"),
            (&["-o", "d", "--rotate", "5m", "--compress", "lz"], "--compress"),
            (&["--clickhouse", "ftp://x"], "--clickhouse"),
            (&["--clickhouse", "http://x", "--clickhouse-table", "a-b"], "--clickhouse-table"),
        ] {
            let e = collect(args).unwrap_err().to_string();
            assert!(e.starts_with(flag), "{args:?}: {e}");
        }
    }

    #[test]
    fn idle_and_linger_stay_below_2_31_ms() {
        // The flow table keeps deadlines as 32-bit millisecond ticks.
        for flag in ["--idle", "--linger"] {
            assert!(collect(&[flag, "24days"]).is_ok(), "{flag} 24days");
            let e = collect(&[flag, "25days"]).unwrap_err().to_string();
            assert!(e.starts_with(flag) && e.contains("2^31 ms"), "{flag}: {e}");
        }
        assert!(MAX_TIMEOUT.as_millis() < 1 << 31);
    }

    #[test]
    fn the_password_comes_from_a_file_or_the_environment_and_never_prints() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let f = file.to_str().unwrap();
        let ch = |args: &[&str], env: Option<&str>| -> Result<ClickHouseConfig> {
            let cli = Cli::try_parse_from([&["nfstitch", "collect"], args].concat()).unwrap();
            let Some(Command::Collect(a)) = cli.command else { panic!("not collect") };
            clickhouse(&a, a.clickhouse.as_ref().unwrap(), env)
        };
        let pw = |c: ClickHouseConfig| c.password.map(|p| (p.expose().to_string(), p.source));
        // The file, trimmed of its newline; it wins over the environment.
        let c = ch(&["--clickhouse", "http://u@h/", "--clickhouse-password-file", f], Some("env"));
        let c = c.unwrap();
        let shown = format!("{c:#?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("*** (from --clickhouse-password-file")
        );
        assert_eq!(pw(c), Some(("s3cret".into(), format!("--clickhouse-password-file {f}"))));
        // The environment when nothing else gives one; the URL's own password wins over it.
        let c = ch(&["--clickhouse", "http://h/"], Some("s3cret")).unwrap();
        assert_eq!(pw(c), Some(("s3cret".into(), PASSWORD_ENV.into())));
        assert_eq!(pw(ch(&["--clickhouse", "http://h/"], Some("")).unwrap()), None);
        let c = ch(&["--clickhouse", "http://u:s3cret@h/?password=s3cret"], Some("env")).unwrap();
        assert_eq!(pw(c.clone()), None);
        let shown = format!("{c:#?}");
        assert!(!shown.contains("s3cret") && shown.contains("u:***@h/?password=***"), "{shown}");
        // Refusals name the flag.
        for (args, text) in [
            (
                &["--clickhouse", "http://u:p@h/", "--clickhouse-password-file", f][..],
                "has a password too",
            ),
            (
                &["--clickhouse", "http://h/", "--clickhouse-password-file", "/nonexistent/pw"],
                "cannot read",
            ),
        ] {
            let e = ch(args, None).unwrap_err().to_string();
            assert!(e.starts_with("--clickhouse-password-file ") && e.contains(text), "{e}");
        }
        for (content, text) in [("\n", "empty"), ("a\nb\n", "more than one line")] {
            std::fs::write(&file, content).unwrap();
            let e = ch(&["--clickhouse", "http://h/", "--clickhouse-password-file", f], None);
            let e = e.unwrap_err().to_string();
            assert!(e.starts_with("--clickhouse-password-file ") && e.contains(text), "{e}");
        }
        let e = collect(&["--clickhouse-password-file", f]).unwrap_err().to_string();
        assert!(e.starts_with("--clickhouse-password-file needs --clickhouse"), "{e}");
        // A bad URL's message hides the password too.
        let e = ch(&["--clickhouse", "ftp://u:s3cret@h/"], None).unwrap_err().to_string();
        assert!(e.starts_with("--clickhouse ftp://u:***@h/: not an http"), "{e}");
    }

    #[test]
    fn spool_max_bytes_takes_sizes() {
        use crate::cli::parse_bytes;
        for (s, n) in [("0", 0), ("1048576", 1 << 20), ("4GiB", 4 << 30), ("500MiB", 500 << 20)] {
            assert_eq!(parse_bytes(s), Ok(n), "{s}");
        }
        for (s, n) in [("2G", 2u64 << 30), ("3 KB", 3 << 10), ("1T", 1 << 40)] {
            assert_eq!(parse_bytes(s), Ok(n), "{s}");
        }
        for bad in ["", "x", "4PB", "-1", "1.5G", "99999999999999T"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        let c = collect(&["--clickhouse", "http://h/"]).unwrap().clickhouse.unwrap();
        assert_eq!(c.spool_max_bytes, crate::cli::DEFAULT_SPOOL_MAX_BYTES);
    }

    #[test]
    fn clickhouse_ttl_and_rollups_map_to_config() {
        let c = collect(&["--clickhouse", "http://h/"]).unwrap().clickhouse.unwrap();
        assert_eq!((c.ttl, c.rollups), (None, false));
        let args = ["--clickhouse", "http://h/", "--clickhouse-ttl", "30d", "--clickhouse-rollups"];
        let c = collect(&args).unwrap().clickhouse.unwrap();
        assert_eq!((c.ttl, c.rollups), (Some(Duration::from_secs(30 * 86_400)), true));
        let e = collect(&["--clickhouse", "http://h/", "--clickhouse-ttl", "12h"]).unwrap_err();
        assert!(e.to_string().starts_with("--clickhouse-ttl must be at least 1d"), "{e}");
        let c = collect(&["--clickhouse", "http://h/", "--clickhouse-cluster", "c_1"]).unwrap();
        assert_eq!(c.clickhouse.unwrap().cluster.as_deref(), Some("c_1"));
        let e = collect(&["--clickhouse", "http://h/", "--clickhouse-cluster", "c'1"]).unwrap_err();
        assert!(e.to_string().starts_with("--clickhouse-cluster \"c'1\": use letters"), "{e}");
        let alone: [&[&str]; 3] = [
            &["--clickhouse-ttl", "30d"],
            &["--clickhouse-rollups"],
            &["--clickhouse-cluster", "c"],
        ];
        for alone in alone {
            let e = collect(alone).unwrap_err().to_string();
            assert!(e.contains("need --clickhouse"), "{e}");
        }
    }

    #[test]
    fn defaults_and_flags_map_to_config() {
        let c = collect(&["--workers", "3", "-o", "d", "--rotate", "5m", "--allow", "10.0.0.1"])
            .unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(c.pipeline.max_flows, DEFAULT_MAX_FLOWS);
        assert_eq!(c.reserve_flows, DEFAULT_RESERVE_FLOWS);
        assert_eq!(c.pipeline.allow, vec!["10.0.0.1/32".parse::<ipnet::IpNet>().unwrap()]);
        let r = c.rotate.unwrap();
        assert_eq!(
            (r.dir, r.every, r.ext),
            (PathBuf::from("d"), Duration::from_secs(300), "jsonl")
        );
    }
}
