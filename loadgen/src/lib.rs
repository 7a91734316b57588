//! loadgen: synthetic NetFlow v5, v9 and IPFIX exports with exact ground
//! truth, sent over UDP (paced, sendmmsg, threads) or written to a pcap.
//!
//! # Data flow
//! ```text
//! Config ─► Plan (counts, router clock, duration scale)
//!              │
//!   per exporter: ExporterGen (router model: sessions ─► records ─► v5 datagrams,
//!              │               sequence numbers, truth)   uses nfstitch::wire::encode;
//!              │               v9/IPFIX: templated (templates, IPv6 face)
//!              │                         uses nfstitch::wire::template::encode
//!              ├─► pcap::write (all exporters interleaved in time, simulated timestamps)
//!              ├─► send::run_live (threads own exporters and their sockets; one paced
//!              │                   loop over a source of batches: the model or a pool)
//!              │                         udp: sendmmsg on connected sockets, UDP GSO
//!              │                              or plain (--no-gso), both nfstitch::platform::send_gso
//!              └─► pool (--pool N: made once before sending, then cycled by
//!                        send::run_live with sequence, times and First/Last patched)
//! ```
//! - [`model`]: sessions, addresses, heavy-tailed sizes and durations, how a
//!   router cuts them into records. Pure.
//! - [`router`]: one exporter's cache, export queue, datagrams and truth.
//! - [`config`]: options, validation, and the derived [`Plan`].
//! - [`templated`]: `--version 9|10`: templates and their refresh, IPv6
//!   addresses of the model.
//! - [`truth`]: what was sent (totals, per exporter, connections, corrupt),
//!   and the [`Sums`] conservation checks compare (here and in nfstitch's tests).
//! - [`send`]: live sending, one paced loop for the model and the pool; the
//!   lateness histogram uses `nfstitch::hist`.
//! - [`rng`]: the seeded PRNG (also nfstitch's tests' and benches').
//! - [`pool`]: `--pool`, a fixed set of datagrams sent in a loop.
//! - [`udp`]: batches out of one connected socket (UDP GSO or plain `sendmmsg`).
//!
//! # Determinism
//! Everything an exporter sends is a function of the seed, its index and the
//! plan: threads, pacing and the machine's speed change when datagrams leave,
//! never what they hold. A live run without `--start` uses the wall clock
//! as the router clock's start; a pcap uses a fixed start.
//!
//! # Where data can be lost, and how it is counted
//! Nowhere in loadgen: every datagram made is sent or the run fails (with one
//! exception: records the routers still hold when the flush after the
//! `--duration` deadline runs out of time are never put in a datagram). The
//! truth counts what was made (pcap) or handed to the kernel (live); kernel
//! drops on the receiving side show up as a difference the collector counts.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod corrupt;
pub mod model;
pub mod pcap;
pub mod pool;
pub mod rng;
pub mod router;
pub mod send;
pub mod templated;
pub mod truth;
pub mod udp;

use std::net::{IpAddr, Ipv4Addr};

pub use config::{Config, ConfigError, Mode, Plan};
pub use pcap::write_pcap;
pub use send::{run_live, GsoReport, SendReport};
pub use truth::{ConnTruth, CorruptCounts, ExporterTruth, PoolTruth, Sums, Truth};

use router::{ExporterGen, ExporterSetup};

/// Source port of exporter `e` in a pcap.
pub const PCAP_BASE_PORT: u16 = 40000;

/// One datagram as [`generate`] makes it.
#[derive(Debug, Clone, Copy)]
pub struct Emitted<'a> {
    /// Exporter index.
    pub exporter: usize,
    /// Source address and port of the exporter.
    pub src: (Ipv4Addr, u16),
    /// Router (simulated) export time, ns since the epoch.
    pub ts_ns: u64,
    pub bytes: &'a [u8],
    /// For a malformed datagram, its reason index (as
    /// [`CorruptCounts::REASONS`]; for v5 as `nfstitch::wire::DecodeError::REASONS`).
    pub corrupt: Option<usize>,
}

/// The exporter address of index `e`: `127.0.1.(e+1)`, or `127.0.0.1` for all
/// with `--same-src-ip`.
pub fn exporter_ip(cfg: &Config, e: usize) -> Ipv4Addr {
    if cfg.same_src_ip {
        Ipv4Addr::LOCALHOST
    } else {
        Ipv4Addr::new(127, 0, 1, (e + 1) as u8)
    }
}

/// The setup of exporter `e`.
pub(crate) fn exporter_setup(
    cfg: &Config,
    plan: &Plan,
    e: usize,
    connections: bool,
    addr: IpAddr,
    port: u16,
) -> ExporterSetup {
    ExporterSetup {
        index: e as u16,
        seed: cfg.seed,
        params: plan.params,
        records_per_datagram: cfg.records_per_datagram,
        sampling: cfg.sampling_field(),
        corrupt_ratio: cfg.corrupt_ratio,
        start_ms: plan.start_ns / 1_000_000,
        uptime_at_start_ms: plan.uptime_at_start_ms(cfg.seed, e),
        quota: plan.quota(e),
        connections,
        addr,
        port,
        version: cfg.version,
        ipv6: cfg.ipv6,
        policy: templated::Policy::of(cfg),
    }
}

/// Make a whole planned run in memory (the `--pcap-out` traffic), calling
/// `each` for every datagram in time order (exporters interleaved; a
/// malformed datagram follows the valid one it was derived from, with the
/// same timestamp). Returns the truth and the plan.
///
/// Connections are listed when `cfg.truth_connections`, or when the run is
/// small enough ([`config::PCAP_CONNECTIONS_UP_TO`] records).
pub fn generate(
    cfg: &Config,
    mut each: impl FnMut(&Emitted<'_>),
) -> Result<(Truth, Plan), ConfigError> {
    let plan = Plan::new(cfg, Mode::Pcap, 0)?;
    let total = plan.total.expect("a pcap plan is always bounded");
    let connections = cfg.truth_connections
        || total.saturating_mul(cfg.records_per_datagram as u64) <= config::PCAP_CONNECTIONS_UP_TO;
    let k = plan.exporters;
    let mut gens: Vec<ExporterGen> = (0..k)
        .map(|e| {
            let ip = exporter_ip(cfg, e);
            let port = PCAP_BASE_PORT + e as u16;
            ExporterGen::new(&exporter_setup(cfg, &plan, e, connections, IpAddr::V4(ip), port))
        })
        .collect();
    let mut buf = Vec::with_capacity(nfstitch::wire::MAX_DATAGRAM_LEN);
    let mut bad = Vec::with_capacity(nfstitch::wire::MAX_DATAGRAM_LEN + 64);
    for g in 0..total {
        let e = (g % k as u64) as usize;
        let ts_ns = plan.tick_ns(g);
        let gen = &mut gens[e];
        gen.next_datagram(ts_ns, &mut buf).expect("within the exporter's quota");
        let src = (exporter_ip(cfg, e), PCAP_BASE_PORT + e as u16);
        each(&Emitted { exporter: e, src, ts_ns, bytes: &buf, corrupt: None });
        if let Some(reason) = gen.maybe_corrupt(&buf, &mut bad) {
            each(&Emitted { exporter: e, src, ts_ns, bytes: &bad, corrupt: Some(reason) });
        }
    }
    for gen in &gens {
        debug_assert_eq!(gen.pending(), 0, "exporter {} left records behind", gen.index);
        debug_assert!(!gen.has_more());
    }
    Ok((finish_truth(&gens, connections), plan))
}

/// Merge the exporters' truths.
pub(crate) fn finish_truth(gens: &[ExporterGen], connections: bool) -> Truth {
    let conns = connections
        .then(|| gens.iter().flat_map(|g| g.connections().unwrap_or_default()).collect());
    let corrupt: Vec<CorruptCounts> = gens.iter().map(|g| g.corrupt).collect();
    Truth::from_parts(gens.iter().map(|g| g.truth.clone()).collect(), &corrupt, conns)
}

/// A few lines on the model a plan runs (printed before the truth).
pub fn describe_plan(plan: &Plan, cfg: &Config) -> String {
    let mut s = format!(
        "model: {} exporters, {} records/datagram, router time x{:.3} ({} router time), \
         {:.0} new connections/s, ~{:.0} concurrent (duration scale {:.3}{})",
        plan.exporters,
        cfg.records_per_datagram,
        plan.time_scale,
        humantime::format_duration(std::time::Duration::from_millis(plan.span_ms())),
        plan.new_rate,
        plan.concurrency,
        plan.params.scale,
        if plan.flows_clamped { "; --flows out of reach, clamped" } else { "" },
    );
    s.push_str(&format!(
        "\nmodel: active timeout {}, inactive timeout {}, {:.2} records and {:.2} connections per session",
        humantime::format_duration(cfg.active_timeout),
        humantime::format_duration(cfg.inactive_timeout),
        plan.expect.records_per_session,
        plan.expect.conns_per_session,
    ));
    if cfg.version != 5 {
        s.push_str(&format!(
            "\nmodel: {}, {:.0}% IPv6 sessions, templates every {} of router time{}{}; \
             largest datagram {} bytes",
            if cfg.version == 9 { "NetFlow v9" } else { "IPFIX" },
            cfg.ipv6 * 100.0,
            humantime::format_duration(std::time::Duration::from_millis(
                cfg.template_interval_ms()
            )),
            cfg.template_every.map(|n| format!(" or {n} datagrams")).unwrap_or_default(),
            cfg.data_before_template
                .map(|n| format!(", first sent with datagram {}", n + 1))
                .unwrap_or_default(),
            templated::worst_datagram_len(cfg, cfg.records_per_datagram),
        ));
    }
    s
}

#[cfg(test)]
mod tests;
