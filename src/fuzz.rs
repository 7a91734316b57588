//! Fuzz bodies: what `cargo fuzz` targets (in `fuzz/`) run, kept in the
//! library so ordinary tests run them over a seed corpus on stable Rust.
//! Each must never panic, whatever the bytes.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::capture::{read_bytes, SkipCounters};
use crate::config::Pipeline;
use crate::output::{Format, Output, TimeFormat};
use crate::replay::Replayer;
use crate::wire::Datagram;

/// Decode arbitrary bytes as a v5 datagram, strict and lenient, and read every field.
pub fn decode(data: &[u8]) {
    for lenient in [false, true] {
        if let Ok(d) = Datagram::parse_with(data, lenient) {
            assert!((1..=30).contains(&d.count()));
            let h = d.header();
            let mut acc = h.export_ns();
            for r in d.records() {
                let f = r.fields();
                acc = acc
                    .wrapping_add(h.uptime_to_ns(f.first))
                    .wrapping_add(h.uptime_to_ns(f.last))
                    .wrapping_add(f.packets as u64);
            }
            std::hint::black_box(acc);
        }
    }
}

/// Replay arbitrary bytes as a capture or raw file through the whole
/// pipeline (dump and stitching on, every format), checking conservation on
/// the JSON lines written: the flow rows' records, packets and octets sum to
/// the accepted records' (every flow emitted, none twice), there is one
/// record row per accepted record, and one flow row per flow counted.
pub fn replay(data: &[u8]) {
    for format in [Format::Jsonl, Format::Csv, Format::Zeek] {
        let p = Pipeline { dump: true, max_flows: 8, ..Pipeline::default() };
        let written = Captured::default();
        let mut out = Output::new(
            format,
            TimeFormat::Rfc3339,
            Box::new(std::io::BufWriter::new(written.clone())),
        );
        let mut r = Replayer::new(&p, &mut out);
        let mut skips = SkipCounters::default();
        let _ = read_bytes(data, None, &mut skips, |f| r.feed(f));
        let report = r.finish(&skips).expect("writing to memory cannot fail");
        out.finish().expect("writing to memory cannot fail");
        assert_eq!(report.flows.values().sum::<u64>(), report.flows_total);
        assert_eq!(report.active_flows, 0);
        if format != Format::Jsonl {
            continue;
        }
        let text = String::from_utf8(written.0.lock().unwrap().clone()).expect("JSON is UTF-8");
        let (mut flows, mut record_rows, mut sums) = (0u64, 0u64, [0u64; 3]);
        for line in text.lines() {
            let row: serde_json::Value = serde_json::from_str(line).expect("one JSON row a line");
            match row["type"].as_str() {
                Some("flow") => {
                    flows += 1;
                    for (sum, key) in sums.iter_mut().zip(["records", "packets", "octets"]) {
                        *sum += row[key].as_u64().expect("flow counters are numbers");
                    }
                }
                Some("record") => record_rows += 1,
                _ => {}
            }
        }
        assert_eq!(flows, report.flows_total, "flow rows against flows counted");
        assert_eq!(record_rows, report.records, "record rows against accepted records");
        assert_eq!(sums, [report.records, report.packets, report.octets], "flow sums");
    }
}

/// A writer into memory that the caller can read after the output is done.
#[derive(Debug, Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
