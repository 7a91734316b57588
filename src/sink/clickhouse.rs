//! ClickHouse sink (being written).

use std::path::PathBuf;
use std::time::Duration;

/// Settings of the ClickHouse sink (`--clickhouse*` flags).
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// HTTP interface URL, e.g. `http://127.0.0.1:8123/`.
    pub url: String,
    /// Table name (created when missing).
    pub table: String,
    /// Insert when this many flows are buffered ...
    pub batch_rows: usize,
    /// ... or when the oldest buffered flow is this old.
    pub batch_interval: Duration,
    /// Flows held in memory while the server is down, before spilling to disk.
    pub max_buffered_rows: usize,
    /// Where undeliverable batches are spooled (replayed when the server is back).
    pub spool_dir: PathBuf,
}

/// The sink (skeleton: the implementation is being written).
#[derive(Debug)]
pub struct ClickHouseSink {
    cfg: ClickHouseConfig,
}

impl ClickHouseSink {
    pub fn new(cfg: ClickHouseConfig) -> anyhow::Result<Self> {
        anyhow::bail!("--clickhouse {}: the ClickHouse sink is not implemented yet", cfg.url)
    }
}

impl super::FlowSink for ClickHouseSink {
    fn flows(&mut self, _flows: &[crate::flow::Flow]) -> anyhow::Result<()> {
        Ok(())
    }
    fn tick(&mut self, _now: std::time::Instant) -> anyhow::Result<()> {
        Ok(())
    }
    fn close(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let _ = &self.cfg;
        Vec::new()
    }
    fn name(&self) -> &'static str {
        "clickhouse"
    }
}
