//! Ground truth: what was really sent, counted as it is sent.
//!
//! Counted per exporter when a datagram is made (pcap) or handed to the
//! kernel (live), from the same record values that were encoded, so the
//! totals equal what a perfect collector accepts. Connections (one per
//! NetFlow key) hold the sums of their sent records only: a connection cut
//! short by the end of a run is listed as far as it was exported.
//!
//! [`Sums`] is what conservation checks compare: a receiver's decoded sums
//! against the truth's, in loadgen's tests and in nfstitch's.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;

use nfstitch::wire::Datagram;
use serde::Serialize;

/// Malformed datagrams mixed in by `--corrupt-ratio`, by the collector's
/// rejection reason names (v5's, and for v9/IPFIX the template decoder's
/// datagram-level ones, which share the first names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CorruptCounts {
    pub too_short: u64,
    pub bad_version: u64,
    pub bad_count: u64,
    pub length_mismatch: u64,
    /// v9/IPFIX only (absent from the JSON when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub set_too_short: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub set_overrun: u64,
}

impl CorruptCounts {
    /// The reason of each index [`CorruptCounts::add`] takes: v5's
    /// (`nfstitch::wire::DecodeError::REASONS`), then two of v9/IPFIX.
    pub const REASONS: [&'static str; 6] = [
        "too_short",
        "bad_version",
        "bad_count",
        "length_mismatch",
        "set_too_short",
        "set_overrun",
    ];

    pub fn total(&self) -> u64 {
        self.as_array().iter().sum()
    }

    fn as_array(&self) -> [u64; 6] {
        [
            self.too_short,
            self.bad_version,
            self.bad_count,
            self.length_mismatch,
            self.set_too_short,
            self.set_overrun,
        ]
    }

    fn from_array(a: [u64; 6]) -> Self {
        let [too_short, bad_version, bad_count, length_mismatch, set_too_short, set_overrun] = a;
        CorruptCounts {
            too_short,
            bad_version,
            bad_count,
            length_mismatch,
            set_too_short,
            set_overrun,
        }
    }

    /// Count one by its index in [`CorruptCounts::REASONS`] (for v5 the
    /// same as in `nfstitch::wire::DecodeError::REASONS`).
    pub fn add(&mut self, reason: usize) {
        let mut a = self.as_array();
        a[reason.min(5)] += 1;
        *self = Self::from_array(a);
    }

    /// Count one by its reason name (either decoder's); false when unknown.
    pub fn add_named(&mut self, reason: &str) -> bool {
        match Self::REASONS.iter().position(|r| *r == reason) {
            Some(i) => {
                self.add(i);
                true
            }
            None => false,
        }
    }

    /// Every count times `n`.
    pub fn times(&self, n: u64) -> Self {
        Self::from_array(self.as_array().map(|c| c * n))
    }

    fn merge(&mut self, o: &CorruptCounts) {
        let (a, b) = (self.as_array(), o.as_array());
        *self = Self::from_array([0, 1, 2, 3, 4, 5].map(|i| a[i] + b[i]));
    }
}

/// Totals of one exporter (valid datagrams only; malformed ones in `corrupt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExporterTruth {
    pub exporter: IpAddr,
    /// Source port (0 when the kernel picks it and it is not known yet).
    pub port: u16,
    pub engine_id: u8,
    pub datagrams: u64,
    pub records: u64,
    pub packets: u64,
    pub octets: u64,
    /// Malformed datagrams this exporter sent.
    pub corrupt: u64,
    /// v9/IPFIX (absent from the JSON when 0, as for every v5 run): template
    /// and options-template records (not flow records: not in `records`).
    #[serde(skip_serializing_if = "is_zero")]
    pub template_records: u64,
    /// Data records of the sampling options template (not in `records`).
    #[serde(skip_serializing_if = "is_zero")]
    pub options_records: u64,
    /// Datagrams that carried the templates.
    #[serde(skip_serializing_if = "is_zero")]
    pub template_datagrams: u64,
    /// Flow records of IPv6 sessions (in `records`).
    #[serde(skip_serializing_if = "is_zero")]
    pub ipv6_records: u64,
    /// `--data-before-template`: datagrams sent before the first templates,
    /// their flow data sets, and the records, packets and octets in them
    /// (all also in the totals above): what a collector that does not hold
    /// early data cannot count.
    #[serde(skip_serializing_if = "is_zero")]
    pub no_template_datagrams: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub no_template_sets: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub no_template_records: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub no_template_packets: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub no_template_octets: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl ExporterTruth {
    pub fn new(exporter: IpAddr, port: u16, engine_id: u8) -> Self {
        ExporterTruth {
            exporter,
            port,
            engine_id,
            datagrams: 0,
            records: 0,
            packets: 0,
            octets: 0,
            corrupt: 0,
            template_records: 0,
            options_records: 0,
            template_datagrams: 0,
            ipv6_records: 0,
            no_template_datagrams: 0,
            no_template_sets: 0,
            no_template_records: 0,
            no_template_packets: 0,
            no_template_octets: 0,
        }
    }

    /// The sums of the datagrams sent before the first templates.
    pub fn no_template(&self) -> Sums {
        Sums {
            datagrams: self.no_template_datagrams,
            records: self.no_template_records,
            packets: self.no_template_packets,
            octets: self.no_template_octets,
        }
    }
}

/// Sums of valid datagrams: what a receiver decoded ([`Sums::add`]) or what
/// the truth says was sent (`Sums::from(&truth)`, [`Truth::sums_by`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub datagrams: u64,
    pub records: u64,
    pub packets: u64,
    pub octets: u64,
}

impl Sums {
    /// Count one decoded valid datagram.
    pub fn add(&mut self, dg: &Datagram<'_>) {
        self.datagrams += 1;
        for r in dg.records() {
            self.records += 1;
            self.packets += r.packets() as u64;
            self.octets += r.octets() as u64;
        }
    }
}

impl std::iter::Sum for Sums {
    fn sum<I: Iterator<Item = Sums>>(iter: I) -> Sums {
        iter.fold(Sums::default(), |a, s| Sums {
            datagrams: a.datagrams + s.datagrams,
            records: a.records + s.records,
            packets: a.packets + s.packets,
            octets: a.octets + s.octets,
        })
    }
}

impl From<&ExporterTruth> for Sums {
    fn from(e: &ExporterTruth) -> Sums {
        Sums { datagrams: e.datagrams, records: e.records, packets: e.packets, octets: e.octets }
    }
}

impl From<&Truth> for Sums {
    fn from(t: &Truth) -> Sums {
        Sums { datagrams: t.datagrams, records: t.records, packets: t.packets, octets: t.octets }
    }
}

/// One true connection (a NetFlow key) and the sums of its sent records.
/// `first`/`last` are ns since the epoch, exactly as a v5 or IPFIX decoder
/// computes them from the records (the router clock has ms resolution). A
/// v9 header has whole export seconds only, so a v9 decoder places each
/// record's times up to 999 ms early (by the export time's ms of its
/// datagram). Addresses are IPv6 for the sessions `--ipv6` made IPv6.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnTruth {
    pub exporter: IpAddr,
    pub src_addr: IpAddr,
    pub src_port: u16,
    pub dst_addr: IpAddr,
    pub dst_port: u16,
    pub proto: u8,
    pub packets: u64,
    pub octets: u64,
    pub records: u64,
    pub tcp_flags: u8,
    pub first: u64,
    pub last: u64,
}

/// `--pool`: the pool a run cycled. Its flow keys recur every pass, so the
/// truth lists no connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolTruth {
    /// Valid datagrams in the pool (one pass over every exporter's share).
    pub datagrams: u64,
    /// Records in one pass.
    pub records: u64,
    /// Distinct flow keys in one pass (counted up to 3M pool records).
    pub flows: Option<u64>,
}

/// Everything sent by a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Truth {
    /// Valid v5 datagrams.
    pub datagrams: u64,
    pub records: u64,
    pub packets: u64,
    pub octets: u64,
    pub exporters: Vec<ExporterTruth>,
    pub corrupt: CorruptCounts,
    /// v9/IPFIX: the exporters' template records, options records, IPv6
    /// flow records and records sent before the first templates, summed
    /// (absent when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub template_records: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub options_records: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub ipv6_records: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub no_template_records: u64,
    /// Present with `--truth-connections` or `--pcap-out`; sorted by
    /// exporter, first, then key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<Vec<ConnTruth>>,
    /// Present with `--pool`: the totals above then count every pass sent,
    /// and `connections` is absent (the keys recur).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolTruth>,
}

impl Truth {
    /// Sum per-exporter parts (their own order is kept).
    pub fn from_parts(
        exporters: Vec<ExporterTruth>,
        corrupt: &[CorruptCounts],
        connections: Option<Vec<ConnTruth>>,
    ) -> Self {
        let mut t = Truth::default();
        for e in &exporters {
            t.datagrams += e.datagrams;
            t.records += e.records;
            t.packets += e.packets;
            t.octets += e.octets;
            t.template_records += e.template_records;
            t.options_records += e.options_records;
            t.ipv6_records += e.ipv6_records;
            t.no_template_records += e.no_template_records;
        }
        for c in corrupt {
            t.corrupt.merge(c);
        }
        t.exporters = exporters;
        t.connections = connections.map(|mut v| {
            v.sort_by(|a, b| {
                (a.exporter, a.first, a.src_addr, a.src_port, a.dst_addr, a.dst_port, a.proto).cmp(
                    &(b.exporter, b.first, b.src_addr, b.src_port, b.dst_addr, b.dst_port, b.proto),
                )
            });
            v
        });
        t
    }

    /// The sums of each exporter, keyed by `key(address, port)`.
    pub fn sums_by<K: Ord>(&self, key: impl Fn(IpAddr, u16) -> K) -> BTreeMap<K, Sums> {
        self.exporters.iter().map(|e| (key(e.exporter, e.port), Sums::from(e))).collect()
    }

    /// Write as one JSON object.
    pub fn write_json(&self, path: &Path) -> io::Result<()> {
        let f = std::fs::File::create(path)?;
        let mut w = io::BufWriter::new(f);
        serde_json::to_writer(&mut w, self).map_err(io::Error::other)?;
        w.write_all(b"\n")?;
        w.flush()
    }

    /// The human-readable summary.
    pub fn print(&self, w: &mut impl Write) -> io::Result<()> {
        writeln!(
            w,
            "truth: datagrams {}  records {}  packets {}  octets {}  corrupt {}",
            self.datagrams,
            self.records,
            self.packets,
            self.octets,
            self.corrupt.total()
        )?;
        for e in &self.exporters {
            writeln!(
                w,
                "  exporter {}:{} engine {}  datagrams {}  records {}  packets {}  octets {}  corrupt {}",
                e.exporter, e.port, e.engine_id, e.datagrams, e.records, e.packets, e.octets, e.corrupt
            )?;
        }
        if self.corrupt.total() > 0 {
            let c = &self.corrupt;
            write!(
                w,
                "  corrupt: too_short {}  bad_version {}  bad_count {}  length_mismatch {}",
                c.too_short, c.bad_version, c.bad_count, c.length_mismatch
            )?;
            if c.set_too_short + c.set_overrun > 0 {
                write!(w, "  set_too_short {}  set_overrun {}", c.set_too_short, c.set_overrun)?;
            }
            writeln!(w)?;
        }
        if self.template_records > 0 || self.no_template_records > 0 {
            writeln!(
                w,
                "  templated: template records {}  options records {}  IPv6 records {}  \
                 records before the first template {}",
                self.template_records,
                self.options_records,
                self.ipv6_records,
                self.no_template_records
            )?;
        }
        if let Some(c) = &self.connections {
            writeln!(w, "  connections: {}", c.len())?;
        }
        if let Some(p) = &self.pool {
            writeln!(
                w,
                "  pool: {} datagrams, {} records{} per pass; the keys recur, so no connections are listed",
                p.datagrams,
                p.records,
                p.flows.map(|f| format!(", {f} distinct flows")).unwrap_or_default()
            )?;
        }
        Ok(())
    }
}
