//! Sinks for finished flows beyond the main output (stdout or `-o`): they
//! receive every batch of flows the writer writes, on the writer thread.
//!
//! A sink never loses flows silently: what it cannot deliver it keeps
//! (bounded memory, then disk) or counts, and [`FlowSink::counters`] shows it.

pub mod clickhouse;

use std::time::Instant;

use crate::flow::Flow;

/// A destination for finished flows, driven by the writer thread.
pub trait FlowSink: Send + std::fmt::Debug {
    /// A batch of finished flows, in emission order.
    fn flows(&mut self, flows: &[Flow]) -> anyhow::Result<()>;
    /// Called on every writer loop (about every millisecond when idle):
    /// time-based work such as flushing a batch, retrying, rotating.
    fn tick(&mut self, now: Instant) -> anyhow::Result<()>;
    /// End of the run: deliver or persist everything held. An error means
    /// flows could not be delivered nor kept (they are counted).
    fn close(&mut self) -> anyhow::Result<()>;
    /// Counters for the report and metrics: (name, value), names stable.
    fn counters(&self) -> Vec<(&'static str, u64)>;
    /// Which of [`counters`](FlowSink::counters) are gauges (a level that
    /// goes down too, such as flows held), for `/metrics`.
    fn gauges(&self) -> &'static [&'static str] {
        &[]
    }
    /// Short name for reports, e.g. `clickhouse`.
    fn name(&self) -> &'static str;
}
