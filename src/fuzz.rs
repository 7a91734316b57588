//! Fuzz bodies: what `cargo fuzz` targets (in `fuzz/`) run, kept in the
//! library so ordinary tests run them over a seed corpus on stable Rust.
//! Each must never panic, whatever the bytes.

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
/// pipeline (dump and stitching on, every format), checking conservation.
pub fn replay(data: &[u8]) {
    for format in [Format::Jsonl, Format::Csv, Format::Zeek] {
        let p = Pipeline { dump: true, max_flows: 8, ..Pipeline::default() };
        let mut out = Output::new(
            format,
            TimeFormat::Rfc3339,
            Box::new(std::io::BufWriter::new(std::io::sink())),
        );
        let mut r = Replayer::new(&p, &mut out);
        let mut skips = SkipCounters::default();
        let _ = read_bytes(data, None, &mut skips, |f| r.feed(f));
        let report = r.finish(&skips).expect("writing to a sink cannot fail");
        assert_eq!(report.flows.values().sum::<u64>(), report.flows_total);
        assert_eq!(report.active_flows, 0);
    }
}
