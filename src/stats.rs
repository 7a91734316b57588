//! The report: every counter in one serializable value, printed on stderr at
//! the end (and periodically by the live collector) and written by
//! `--stats-json`. Key names are a contract (README, "Counters").

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;

use serde::Serialize;

use crate::capture::{SkipCounters, SKIP_REASONS};
use crate::flow::{EndReason, ShardStats};
use crate::ingest::{
    Counters, Overflow, SeqTracker, TemplatedCounters, REJECT_REASONS, SET_REASONS,
};

/// Per-exporter figures.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExporterReport {
    pub exporter: IpAddr,
    pub datagrams: u64,
    pub records: u64,
    pub packets: u64,
    pub octets: u64,
    pub rejected: u64,
    pub seq_lost_records: u64,
    pub seq_restarts: u64,
    pub seq_late_datagrams: u64,
    pub seq_duplicate_datagrams: u64,
    /// v9/IPFIX counters of this exporter (see `Report::templated`), when it sent any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub templated: Option<BTreeMap<&'static str, u64>>,
}

impl ExporterReport {
    fn new(exporter: IpAddr) -> Self {
        ExporterReport {
            exporter,
            datagrams: 0,
            records: 0,
            packets: 0,
            octets: 0,
            rejected: 0,
            seq_lost_records: 0,
            seq_restarts: 0,
            seq_late_datagrams: 0,
            seq_duplicate_datagrams: 0,
            templated: None,
        }
    }
}

/// Everything counted, in one value.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// Accepted datagrams.
    pub datagrams: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    pub records: u64,
    pub packets: u64,
    pub octets: u64,
    /// Records (packets, octets) in `records` that the flow table cannot
    /// take: counted at the seam (`ingest::stitchable_now`), never in a
    /// flow; always 0 since IPv6 records are stitched (kept: a
    /// `--stats-json` key). `records` = records over emitted flows +
    /// `ipv6_records_pending`.
    pub ipv6_records_pending: u64,
    pub ipv6_packets_pending: u64,
    pub ipv6_octets_pending: u64,
    /// v9/IPFIX: everything the templated path counted (README "Counters").
    pub templated: BTreeMap<&'static str, u64>,
    /// v9/IPFIX: sets, templates and records skipped inside accepted
    /// datagrams, by the decoder's reason names.
    pub templated_rejected: BTreeMap<&'static str, u64>,
    /// v9/IPFIX templates kept across restarts (`--state-dir`), when used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_state: Option<TemplateStateReport>,
    /// Flows emitted, by end reason.
    pub flows: BTreeMap<&'static str, u64>,
    pub flows_total: u64,
    pub evictions: u64,
    /// Flows still held (0 after a final flush).
    pub active_flows: u64,
    /// Records shown missing by exporters' sequence numbers (gaps not filled by late datagrams).
    pub seq_lost_records: u64,
    pub seq_restarts: u64,
    pub seq_late_datagrams: u64,
    /// Datagrams whose every record was seen before (never fill a gap).
    pub seq_duplicate_datagrams: u64,
    /// Gaps forgotten for want of room (their records stay lost; a late
    /// datagram that would have filled one is counted late).
    pub seq_gaps_overflow: u64,
    /// Datagrams from sources past the exporter cap: in the totals, not per
    /// exporter, not sequence-tracked.
    pub exporters_overflow: u64,
    /// Accepted datagrams of engines past the per-exporter (or total) stream
    /// cap: in the totals and their exporter's counters, not sequence-tracked.
    pub engines_overflow: u64,
    /// Replay only: frames read from captures and those that carried no UDP payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_skipped: Option<BTreeMap<&'static str, u64>>,
    /// Replay only, when a file's framing broke part-way: where, per file
    /// (each also counted in `frames_skipped.truncated_capture`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damaged_captures: Option<Vec<DamagedCapture>>,
    pub exporters: Vec<ExporterReport>,
    /// Live only: datagrams the kernel dropped on our sockets (receive buffer full).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_drops: Option<u64>,
    /// Live only: datagrams still queued when shutdown's bounded read ran
    /// out of time, read and counted but not processed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_at_shutdown: Option<u64>,
    /// Live only: times a worker waited on a full queue (backpressure; nothing dropped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_stalls: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<Vec<WorkerReport>>,
    /// Live only: latency percentiles (µs) by histogram name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<BTreeMap<&'static str, crate::hist::Summary>>,
    /// Live only, after the writer failed: its error, and what it left
    /// unwritten: flows emitted less those whose row the OS accepted; dump
    /// record rows dropped, queued, left in the batch it had in hand, or
    /// handed to the output but still buffered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unwritten_flows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unwritten_dump_rows: Option<u64>,
    /// Live only: SIGHUP reopens of `-o PATH`, and those whose path could
    /// not be opened (the output stayed on the file opened before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reopens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reopen_failures: Option<u64>,
    /// Live only: counters of extra sinks (ClickHouse), by sink name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sinks: Option<BTreeMap<&'static str, BTreeMap<&'static str, u64>>>,
    /// `--pair` only: the connections emitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conns: Option<ConnReport>,
}

/// `--pair`: connections emitted, by state and end reason, and how many
/// were one direction alone.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct ConnReport {
    pub total: u64,
    /// By `conn_state` (every state, zeros included).
    pub conn_state: BTreeMap<&'static str, u64>,
    /// By end reason (of the direction that ended last).
    pub end_reason: BTreeMap<&'static str, u64>,
    /// Connections of two directions.
    pub paired: u64,
    /// Connections of one direction: flows whose partner never came.
    pub unpaired_flows: u64,
    /// Of those, directions sent on alone early for want of room.
    pub pair_overflow: u64,
    /// Sums over both directions of every connection (equal to the
    /// top-level sums over accepted records).
    pub records: u64,
    pub packets: u64,
    pub octets: u64,
}

impl ConnReport {
    pub fn new(s: &crate::pair::PairStats) -> Self {
        use crate::pair::ConnState;
        ConnReport {
            total: s.conns(),
            conn_state: ConnState::ALL
                .iter()
                .map(|c| (c.as_str(), s.by_state[*c as usize]))
                .collect(),
            end_reason: EndReason::ALL
                .iter()
                .map(|r| (r.as_str(), s.by_end_reason[*r as usize]))
                .collect(),
            paired: s.paired,
            unpaired_flows: s.unpaired,
            pair_overflow: s.overflow,
            records: s.records,
            packets: s.packets,
            octets: s.octets,
        }
    }
}

/// What the state directory gave at start and took at the end.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct TemplateStateReport {
    pub dir: String,
    /// Templates loaded at start.
    pub loaded: u64,
    /// Refused at load, by reason (`unreadable`, `too_large`, `malformed`,
    /// `bad_version`, `bad_template`, `cache_full`).
    pub rejected: BTreeMap<&'static str, u64>,
    /// Templates saved at the end.
    pub saved: u64,
    /// Live only: times the templates were saved while running (after a
    /// change, at most once a second: what a crash or SIGKILL keeps), and
    /// attempts that failed (retried).
    pub periodic_saves: u64,
    pub periodic_save_failures: u64,
    /// Why the save failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_error: Option<String>,
}

impl TemplateStateReport {
    /// Load `dir`'s templates into `cache`, logging any refusal.
    pub fn load(dir: &std::path::Path, cache: &mut crate::wire::template::TemplateCache) -> Self {
        let r = crate::ingest::state::load(dir, cache);
        if let Some(e) = &r.first_error {
            eprintln!(
                "nfstitch: warning: template state {}: {} refused ({e}); {} templates loaded",
                crate::ingest::state::path(dir).display(),
                r.rejected_total(),
                r.loaded
            );
        }
        TemplateStateReport {
            dir: dir.display().to_string(),
            loaded: r.loaded,
            rejected: r.rejected,
            saved: 0,
            periodic_saves: 0,
            periodic_save_failures: 0,
            save_error: None,
        }
    }

    /// Save the templates of `caches` into the directory, logging a failure.
    pub fn save(&mut self, caches: &[&crate::wire::template::TemplateCache]) {
        match crate::ingest::state::save(std::path::Path::new(&self.dir), caches) {
            Ok(n) => self.saved = n as u64,
            Err(e) => {
                eprintln!("nfstitch: warning: could not save templates to {}: {e}", self.dir);
                self.save_error = Some(e.to_string());
            }
        }
    }
}

/// A replay input read only up to the point where its framing broke.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DamagedCapture {
    pub file: String,
    /// Byte offset of the record or block that could not be framed.
    pub offset: u64,
    pub error: String,
}

impl std::fmt::Display for DamagedCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}: {}", self.file, self.offset, self.error)
    }
}

/// A note printed and stored with the export-to-receive histogram.
pub const EXPORT_CLOCK_NOTE: &str =
    "export_to_receive is meaningful only when exporter and collector share a clock (e.g. loadgen on the same host)";

/// Per-worker figures (live collector).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WorkerReport {
    pub worker: usize,
    /// Datagrams accepted on this worker's sockets.
    pub datagrams: u64,
    pub records: u64,
    pub rejected: u64,
    /// Flows its shard emitted.
    pub flows: u64,
    /// Records applied to its shard (its own and those routed to it).
    pub applied_records: u64,
    pub kernel_drops: u64,
    pub unread_at_shutdown: u64,
    pub queue_stalls: u64,
    pub writer_stalls: u64,
}

impl Report {
    /// Build from the counters of the pipeline's parts.
    pub fn new(
        c: &Counters,
        exporters: &[(IpAddr, Counters)],
        seq: &SeqTracker,
        overflow: &Overflow,
        shards: &ShardStats,
        active: u64,
    ) -> Self {
        let mut r = Report {
            datagrams: c.datagrams,
            rejected: REJECT_REASONS.iter().copied().zip(c.rejected).collect(),
            records: c.records,
            packets: c.packets,
            octets: c.octets,
            flows: EndReason::ALL.iter().map(|e| (e.as_str(), shards.flows[*e as usize])).collect(),
            flows_total: shards.flows_total(),
            evictions: shards.flows[EndReason::Evicted as usize],
            active_flows: active,
            exporters_overflow: overflow.exporters,
            engines_overflow: overflow.engines,
            ..Default::default()
        };
        let mut per: BTreeMap<IpAddr, ExporterReport> = BTreeMap::new();
        for (ip, ec) in exporters {
            let e = per.entry(*ip).or_insert_with(|| ExporterReport::new(*ip));
            e.datagrams += ec.datagrams;
            e.records += ec.records;
            e.packets += ec.packets;
            e.octets += ec.octets;
            e.rejected += ec.rejected_total();
        }
        for ((ip, _), s) in seq.totals() {
            r.seq_lost_records += s.lost_records;
            r.seq_restarts += s.restarts;
            r.seq_late_datagrams += s.late_datagrams;
            r.seq_duplicate_datagrams += s.duplicate_datagrams;
            r.seq_gaps_overflow += s.gaps_overflow;
            let e = per.entry(ip).or_insert_with(|| ExporterReport::new(ip));
            e.seq_lost_records += s.lost_records;
            e.seq_restarts += s.restarts;
            e.seq_late_datagrams += s.late_datagrams;
            e.seq_duplicate_datagrams += s.duplicate_datagrams;
        }
        r.exporters = per.into_values().collect();
        r
    }

    /// Add the v9/IPFIX counters: totals, and per exporter.
    pub fn with_templated(
        mut self,
        t: &TemplatedCounters,
        held_sets_now: u64,
        per: &[(IpAddr, TemplatedCounters)],
    ) -> Self {
        self.ipv6_records_pending = t.ipv6_records_pending;
        self.ipv6_packets_pending = t.ipv6_packets_pending;
        self.ipv6_octets_pending = t.ipv6_octets_pending;
        self.templated = t.named().into_iter().collect();
        self.templated.insert("held_sets_now", held_sets_now);
        self.templated_rejected = SET_REASONS.iter().copied().zip(t.rejects).collect();
        let mut sums: BTreeMap<IpAddr, TemplatedCounters> = BTreeMap::new();
        for (ip, c) in per {
            sums.entry(*ip).or_default().add(c);
        }
        for e in &mut self.exporters {
            if let Some(c) = sums.get(&e.exporter) {
                e.templated = Some(c.named().into_iter().collect());
            }
        }
        self
    }

    /// With `--pair`'s connection counts (`None`: flows only).
    pub fn with_pair(mut self, s: Option<&crate::pair::PairStats>) -> Self {
        self.conns = s.map(ConnReport::new);
        self
    }

    pub fn with_skips(mut self, s: &SkipCounters) -> Self {
        self.frames = Some(s.frames);
        self.frames_skipped = Some(SKIP_REASONS.iter().copied().zip(s.skipped).collect());
        self
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// The human-readable final report.
    pub fn print(&self, w: &mut dyn Write) -> io::Result<()> {
        let list = |m: &BTreeMap<&str, u64>| {
            m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        };
        writeln!(
            w,
            "nfstitch: datagrams {} accepted, {} rejected ({})",
            self.datagrams,
            self.rejected_total(),
            list(&self.rejected)
        )?;
        if let Some(d) = self.kernel_drops {
            write!(w, "  kernel drops {d}, queue stalls {}", self.queue_stalls.unwrap_or(0))?;
            match self.unread_at_shutdown {
                Some(u) if u > 0 => writeln!(w, ", unread at shutdown {u} (not processed)")?,
                _ => writeln!(w)?,
            }
        }
        if let Some(e) = &self.writer_error {
            writeln!(
                w,
                "  OUTPUT FAILED: {e}; {} flows and {} dump rows left unwritten",
                self.unwritten_flows.unwrap_or(0),
                self.unwritten_dump_rows.unwrap_or(0)
            )?;
        }
        if let Some(n) = self.reopen_failures.filter(|&n| n > 0) {
            writeln!(
                w,
                "  SIGHUP: {n} reopens of the output failed ({} succeeded)",
                self.reopens.unwrap_or(0)
            )?;
        }
        if let (Some(f), Some(s)) = (self.frames, &self.frames_skipped) {
            writeln!(w, "  frames {f} read, {} skipped ({})", s.values().sum::<u64>(), list(s))?;
        }
        for d in self.damaged_captures.iter().flatten() {
            writeln!(w, "  DAMAGED CAPTURE: {d}; the rest of that file was not read")?;
        }
        writeln!(
            w,
            "  records {}  packets {}  octets {}",
            self.records, self.packets, self.octets
        )?;
        writeln!(
            w,
            "  flows {} emitted ({}), evictions {}, active {}",
            self.flows_total,
            list(&self.flows),
            self.evictions,
            self.active_flows
        )?;
        if let Some(c) = &self.conns {
            let nonzero = |m: &BTreeMap<&str, u64>| {
                m.iter()
                    .filter(|(_, v)| **v > 0)
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            writeln!(
                w,
                "  connections {} ({}; {}), paired {}, unpaired flows {} ({} for want of room)",
                c.total,
                nonzero(&c.conn_state),
                nonzero(&c.end_reason),
                c.paired,
                c.unpaired_flows,
                c.pair_overflow
            )?;
        }
        writeln!(
            w,
            "  sequence: {} records lost, {} restarts, {} late datagrams, {} duplicate datagrams",
            self.seq_lost_records,
            self.seq_restarts,
            self.seq_late_datagrams,
            self.seq_duplicate_datagrams
        )?;
        if self.exporters_overflow + self.engines_overflow + self.seq_gaps_overflow > 0 {
            writeln!(
                w,
                "  caps: exporters overflow {}, engines overflow {}, sequence gaps overflow {} (datagrams counted in the totals only)",
                self.exporters_overflow, self.engines_overflow, self.seq_gaps_overflow
            )?;
        }
        let t = |k: &str| self.templated.get(k).copied().unwrap_or(0);
        if t("datagrams_v9") + t("datagrams_ipfix") > 0 {
            writeln!(
                w,
                "  v9/IPFIX: {} v9 + {} IPFIX datagrams, {} templates, {} flow records ({} reverse), \
                 {} sets without template ({} decoded later, {} expired, {} dropped), \
                 {} skipped inside datagrams ({}), {} total-only records, {} IPv6 records pending",
                t("datagrams_v9"),
                t("datagrams_ipfix"),
                t("templates"),
                t("flow_records"),
                t("reverse_records"),
                t("no_template_sets"),
                t("held_sets_decoded"),
                t("held_sets_expired"),
                t("held_sets_dropped"),
                self.templated_rejected.values().sum::<u64>(),
                list(&self.templated_rejected),
                t("total_only_records"),
                self.ipv6_records_pending
            )?;
        }
        if let Some(lat) = &self.latency {
            writeln!(
                w,
                "  latency (µs)        {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                "p50", "p90", "p99", "p99.9", "p99.99", "max", "count"
            )?;
            for (name, s) in lat {
                writeln!(
                    w,
                    "  {name:<19} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10}",
                    s.p50_us, s.p90_us, s.p99_us, s.p99_9_us, s.p99_99_us, s.max_us, s.count
                )?;
            }
            writeln!(w, "  ({EXPORT_CLOCK_NOTE})")?;
        }
        for (name, c) in self.sinks.iter().flatten() {
            let list: Vec<String> = c.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(w, "  sink {name}: {}", list.join(", "))?;
        }
        for e in &self.exporters {
            writeln!(
                w,
                "  exporter {}: datagrams {} records {} packets {} octets {} rejected {} lost {} restarts {}",
                e.exporter, e.datagrams, e.records, e.packets, e.octets, e.rejected, e.seq_lost_records, e.seq_restarts
            )?;
        }
        Ok(())
    }

    /// Write `--stats-json`.
    pub fn write_json(&self, path: &std::path::Path) -> io::Result<()> {
        let mut s = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        s.push('\n');
        std::fs::write(path, s)
    }
}
