//! What the workers publish for the observers: [`Gauges`] (relaxed atomics,
//! every loop) for the writer's periodic stats line, and a full
//! [`Snapshot`] (about once a second) for the `--metrics` endpoint. Each
//! worker's live copy sits in its [`Mailbox`](super::handoff::Mailbox);
//! observers only read them, never the workers' state. (Sequence state is
//! not here: it is one shared table, `Shared::seq`, read directly.)

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;

use crate::hist::Latency;
use crate::ingest::{Counters, Overflow};

/// Live figures a worker publishes for the periodic stats line (relaxed atomics).
#[derive(Debug, Default)]
pub struct Gauges {
    pub datagrams: AtomicU64,
    pub records: AtomicU64,
    pub rejected: AtomicU64,
    pub active_flows: AtomicU64,
    pub flows: AtomicU64,
    pub kernel_drops: AtomicU64,
    pub queue_stalls: AtomicU64,
}

/// A worker's full counters, published about once a second for `--metrics`
/// (behind a mutex the worker takes once a second: not on the hot path).
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub counters: Counters,
    /// Flows emitted by end reason index.
    pub flows: [u64; 4],
    pub active_flows: u64,
    pub kernel_drops: u64,
    pub queue_stalls: u64,
    pub exporters: Vec<(IpAddr, Counters)>,
    pub overflow: Overflow,
    /// v9/IPFIX counters of the worker.
    pub templated: crate::ingest::TemplatedCounters,
    pub receive_to_applied: Latency,
    pub export_to_receive: Latency,
}
