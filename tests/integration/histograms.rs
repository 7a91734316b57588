//! Latency histograms: collector to files, `.hgrm` parses back, SVG plots.

use std::net::Ipv4Addr;

use nfstitch::hist::parse_hgrm;

use crate::collect::{send, start};
use crate::util::*;

/// Datagrams exported "now", so export-to-receive is meaningful (shared clock).
fn fresh_traffic(n: u32) -> Vec<Dg> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        as u64;
    (0..n)
        .map(|i| {
            let recs: Vec<_> = (0..30).map(|j| tcp((i * 30 + j) as u16, 0x10, 1)).collect();
            dg(now, Ipv4Addr::new(127, 0, 1, 1 + (i % 2) as u8), i / 2 * 30, &recs)
        })
        .collect()
}

#[test]
fn collector_histograms_to_hgrm_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let hdir = dir.path().join("h");
    let c = start(&["--workers", "2", "--linger", "0s", "--histogram-dir", hdir.to_str().unwrap()]);
    let dgs = fresh_traffic(400);
    // A FIN with zero linger ends by timer: flow_end_to_written gets samples before shutdown.
    let mut dgs2 = dgs;
    dgs2.push(dg(1_700_000_000 * S, Ipv4Addr::new(127, 0, 1, 3), 0, &[tcp(9, 0x01, 1)]));
    send(&dgs2, c.addr);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_, st, stderr) = c.stop();
    for name in ["receive_to_applied", "flow_end_to_written", "export_to_receive"] {
        let s = &st["latency"][name];
        let (p50, p99, max) = (
            s["p50_us"].as_f64().unwrap(),
            s["p99_us"].as_f64().unwrap(),
            s["max_us"].as_f64().unwrap(),
        );
        assert!(s["count"].as_u64().unwrap() > 0, "{name} empty");
        assert!(p50 <= p99 && p99 <= max, "{name}: {s}");
        let text = std::fs::read_to_string(hdir.join(format!("{name}.hgrm"))).unwrap();
        let d = parse_hgrm(&text).unwrap();
        assert_eq!(d.total_count, s["count"].as_u64().unwrap(), "{name}: .hgrm count");
        assert!(
            d.rows.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1),
            "{name}: monotone"
        );
        let svg = std::fs::read_to_string(hdir.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    }
    assert!(stderr.contains("share a clock"), "the report explains export_to_receive");
    assert!(stderr.contains("p99.9"));

    // Overlay two of them.
    let out = dir.path().join("cmp.svg");
    run_ok(
        nfstitch()
            .arg("plot")
            .arg(hdir.join("receive_to_applied.hgrm"))
            .arg(hdir.join("flow_end_to_written.hgrm"))
            .arg("-o")
            .arg(&out),
    );
    let svg = std::fs::read_to_string(&out).unwrap();
    assert_eq!(svg.matches("<polyline class=\"series\"").count(), 2);
    assert_well_formed(&svg);
    let r = run(nfstitch().args(["plot", "/nonexistent.hgrm", "-o"]).arg(&out));
    assert!(!r.status.success() && r.stderr.contains("cannot read"));
}

/// A minimal XML well-formedness check: balanced tags, one root.
pub fn assert_well_formed(svg: &str) {
    let body = svg.trim_start_matches(|c| c != '>').trim_start_matches('>');
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("unclosed tag");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name.trim()), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap().to_string());
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}
