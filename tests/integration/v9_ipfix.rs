//! The v9/IPFIX decoder against the shared public captures: every case of
//! `v9-ipfix/oracle.tsv`, its files read in order by the capture reader and
//! decoded through one [`Decoder`] (one template cache), must give the
//! oracle's counts and sums.
//!
//! The oracle is tshark's single-pass reading. Where PROVENANCE.md says
//! tshark misreads, the decoder follows the RFCs and must match the
//! independent parser's "lenient parser" figures from the `parser_check`
//! column instead:
//! - S3 and S17: tshark stops a v9 datagram after the header's `count`
//!   records; these softflowd-style exports put too small a count there, and
//!   RFC 3954 gives no reason to drop the flowsets after it. The decoder
//!   walks every flowset (and reports the count mismatch).
//! - S6: tshark aborts the datagram on an IE 43 of length 2; the decoder
//!   skips elements it does not know by their length, as RFC 3954 intends.

use std::collections::BTreeMap;
use std::path::Path;

use nfstitch::capture::{read_path, SkipCounters};
use nfstitch::wire::template::{Decoder, Direction, TemplatedRecord};

use crate::util::testdata;

/// The oracle columns this test checks, in `oracle.tsv` order.
const COLUMNS: [&str; 17] = [
    "datagrams",
    "templates",
    "options_templates",
    "flow_records",
    "options_records",
    "data_sets_no_template",
    "sum_packets",
    "sum_octets",
    "sum_packets_total",
    "sum_octets_total",
    "rev_packets",
    "rev_octets",
    "rev_packets_total",
    "rev_octets_total",
    "ipv4_records",
    "ipv6_records",
    "count_mismatches",
];

/// The cases whose tshark figures are replaced by the lenient parser's.
pub(crate) const LENIENT: [&str; 3] = ["S3", "S6", "S17"];

/// Decode one case's files in order; the totals by column name.
fn decode_case(dir: &Path, files: &str) -> BTreeMap<&'static str, u64> {
    let mut dec = Decoder::default();
    let mut got: BTreeMap<&'static str, u64> = COLUMNS.iter().map(|c| (*c, 0)).collect();
    let mut records: Vec<TemplatedRecord> = Vec::new();
    for file in files.split(',') {
        let path = dir.join(file);
        let mut skips = SkipCounters::default();
        let damage = read_path(&path, None, &mut skips, |frame| {
            let s = dec
                .decode(frame.src, frame.payload, &mut |r| records.push(r))
                .unwrap_or_else(|e| panic!("{file}: rejected ({}): {e}", e.reason()));
            assert_eq!(s.rejected_total(), 0, "{file}: {s:?}");
            *got.get_mut("datagrams").unwrap() += 1;
            *got.get_mut("templates").unwrap() += s.templates as u64;
            *got.get_mut("options_templates").unwrap() += s.options_templates as u64;
            *got.get_mut("flow_records").unwrap() += s.flow_records as u64;
            *got.get_mut("options_records").unwrap() += s.options_records as u64;
            *got.get_mut("data_sets_no_template").unwrap() += s.data_sets_no_template as u64;
            *got.get_mut("count_mismatches").unwrap() += s.count_mismatch() as u64;
        })
        .unwrap_or_else(|e| panic!("{file}: {e:#}"));
        assert_eq!(damage, None, "{file}");
        assert_eq!(skips.skipped.iter().sum::<u64>(), 0, "{file}: frames skipped {skips:?}");
    }
    for r in &records {
        let (p, o, pt, ot) = match r.direction {
            Direction::Forward => {
                *got.get_mut(if r.src_addr.is_ipv4() { "ipv4_records" } else { "ipv6_records" })
                    .unwrap() += 1;
                ("sum_packets", "sum_octets", "sum_packets_total", "sum_octets_total")
            }
            Direction::Reverse => {
                ("rev_packets", "rev_octets", "rev_packets_total", "rev_octets_total")
            }
        };
        *got.get_mut(p).unwrap() += r.packets;
        *got.get_mut(o).unwrap() += r.octets;
        *got.get_mut(pt).unwrap() += r.packets_total.unwrap_or(0);
        *got.get_mut(ot).unwrap() += r.octets_total.unwrap_or(0);
    }
    got
}

/// `lenient parser: a=1 b=2 ...` from a `parser_check` cell, in oracle column names.
pub(crate) fn lenient_figures(check: &str) -> BTreeMap<String, u64> {
    let (_, tail) = check.split_once("lenient parser:").expect("lenient parser figures");
    tail.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let k = match k {
                "packets" => "sum_packets",
                "octets" => "sum_octets",
                "sets_no_template" => "data_sets_no_template",
                k => k,
            };
            (k.to_string(), v.trim_end_matches(';').parse().expect("a number"))
        })
        .collect()
}

#[test]
fn every_oracle_case_matches() {
    let Some(root) = testdata() else { return };
    let dir = root.join("v9-ipfix");
    let text = std::fs::read_to_string(dir.join("oracle.tsv")).expect("v9-ipfix/oracle.tsv");
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name}"));
    let mut failures = Vec::new();
    let mut cases = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let row: Vec<&str> = line.split('\t').collect();
        let case = row[col("case")];
        let got = decode_case(&dir, row[col("files")]);
        let mut want: BTreeMap<String, u64> = COLUMNS[..16]
            .iter()
            .map(|c| (c.to_string(), row[col(c)].parse().expect("a number")))
            .collect();
        if LENIENT.contains(&case) {
            want.extend(lenient_figures(row[col("parser_check")]));
        }
        // Datagrams whose v9 count is not the records found: the too-small
        // counts of S3 and S17 (PROVENANCE.md); FortiOS (S8) counting
        // flowsets, not records, in its template datagram (3 for 14
        // templates); and a data set without template, whose records cannot
        // be counted (S15, S16).
        let mismatches = u64::from(matches!(case, "S3" | "S8" | "S15" | "S16" | "S17"));
        want.insert("count_mismatches".into(), mismatches);
        for (k, w) in &want {
            let g = got.get(k.as_str()).copied();
            if g != Some(*w) {
                failures.push(format!("{case} {k}: want {w}, got {g:?}"));
            }
        }
        cases += 1;
    }
    assert!(cases >= 22, "expected the 22 cases of oracle.tsv, found {cases}");
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
