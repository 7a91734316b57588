//! Latency histograms (HdrHistogram) and the ways people look at them: a
//! percentile table, HdrHistogram's standard `.hgrm` percentile-distribution
//! text, and an SVG percentile plot with a log-scale percentile axis (as in
//! HdrHistogram's plotter). [`parse_hgrm`] reads `.hgrm` files back, so
//! `nfstitch plot` can overlay several runs.
//!
//! Histograms are per thread (no locks on the hot path) and merged with
//! [`Latency::add`] by whoever reports. Values are recorded in nanoseconds
//! and shown in microseconds.
//!
//! The `hdrhistogram` crate does the recording and merging; it has no writer
//! or reader for the `.hgrm` percentile text (only its binary V2
//! serialization), so those are here. The SVG is one line chart with a log
//! axis, a page of text; a plotting crate (plotters) would bring a font and
//! raster stack for it.

use std::fmt::Write as _;
use std::io::{self, Write};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest trackable value: one hour, in ns (larger values saturate).
const HIGHEST_NS: u64 = 3_600 * 1_000_000_000;

/// One latency histogram, in nanoseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    h: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

/// The percentile table of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p99_9_us: f64,
    pub p99_99_us: f64,
    pub max_us: f64,
}

impl Latency {
    pub fn new() -> Self {
        Latency { h: Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("valid bounds") }
    }

    /// Record one value (ns); values above one hour count as one hour.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.h.saturating_record(ns.max(1));
    }

    pub fn add(&mut self, o: &Latency) {
        self.h.add(&o.h).expect("same bounds");
    }

    pub fn count(&self) -> u64 {
        self.h.len()
    }

    /// Sum of the recorded values (ns), from the histogram's mean.
    pub fn sum_ns(&self) -> u64 {
        (self.h.mean() * self.h.len() as f64) as u64
    }

    pub fn summary(&self) -> Summary {
        let us = |q: f64| self.h.value_at_quantile(q) as f64 / 1000.0;
        Summary {
            count: self.h.len(),
            p50_us: us(0.5),
            p90_us: us(0.9),
            p99_us: us(0.99),
            p99_9_us: us(0.999),
            p99_99_us: us(0.9999),
            max_us: self.h.max() as f64 / 1000.0,
        }
    }

    /// HdrHistogram's percentile distribution text (values in microseconds,
    /// 5 ticks per half distance), as Java's `outputPercentileDistribution`.
    pub fn write_hgrm(&self, w: &mut dyn Write) -> io::Result<()> {
        let scale = 1000.0;
        writeln!(
            w,
            "{:>12} {:>14} {:>10} {:>14}\n",
            "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
        )?;
        if self.h.is_empty() {
            writeln!(w, "{:12.3} {:2.12} {:10}", 0.0, 1.0, 0)?;
        } else {
            let mut total = 0u64;
            for v in self.h.iter_quantiles(5) {
                total += v.count_since_last_iteration();
                let value = self.h.highest_equivalent(v.value_iterated_to()) as f64 / scale;
                let q = v.quantile_iterated_to();
                if q < 1.0 {
                    writeln!(w, "{value:12.3} {q:2.12} {total:10} {:14.2}", 1.0 / (1.0 - q))?;
                } else {
                    writeln!(w, "{value:12.3} {q:2.12} {total:10}")?;
                }
            }
        }
        let buckets = self.h.buckets();
        let sub = self.h.distinct_values() as u32;
        writeln!(
            w,
            "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
            self.h.mean() / scale,
            self.h.stdev() / scale
        )?;
        writeln!(
            w,
            "#[Max     = {:12.3}, Total count    = {:12}]",
            self.h.max() as f64 / scale,
            self.h.len()
        )?;
        writeln!(w, "#[Buckets = {buckets:12}, SubBuckets     = {sub:12}]")
    }

    /// The `.hgrm` text as a string.
    pub fn hgrm(&self) -> String {
        let mut v = Vec::new();
        self.write_hgrm(&mut v).expect("writing to memory");
        String::from_utf8(v).expect("ascii")
    }
}

/// A parsed `.hgrm`: (value in µs, percentile in 0..=1) rows, and the total count.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub rows: Vec<(f64, f64)>,
    pub total_count: u64,
}

/// Parse HdrHistogram percentile-distribution text.
pub fn parse_hgrm(text: &str) -> Result<Distribution, String> {
    let mut rows = Vec::new();
    let mut total = None;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("Value") {
            continue;
        }
        if let Some(rest) = t.strip_prefix("#[Max") {
            let c = rest
                .split("Total count")
                .nth(1)
                .ok_or(format!("line {}: no total count", n + 1))?;
            let c = c.trim_matches(|ch: char| ch == '=' || ch == ']' || ch.is_whitespace());
            total = Some(c.parse::<u64>().map_err(|e| format!("line {}: {e}", n + 1))?);
            continue;
        }
        if t.starts_with('#') {
            continue;
        }
        let mut cols = t.split_whitespace();
        let mut num = |what: &str| -> Result<f64, String> {
            cols.next()
                .ok_or(format!("line {}: missing {what}", n + 1))?
                .parse::<f64>()
                .map_err(|e| format!("line {}: {what}: {e}", n + 1))
        };
        let value = num("value")?;
        let pct = num("percentile")?;
        rows.push((value, pct));
    }
    if rows.is_empty() {
        return Err("no percentile rows".into());
    }
    Ok(Distribution { rows, total_count: total.ok_or("no '#[Max ... Total count' line")? })
}

const COLORS: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An SVG percentile plot: x = percentile on a log scale of 1/(1-p)
/// (labels 0%, 90%, 99%, ... 99.9999%), y = latency in µs; one polyline per series.
pub fn svg_plot(title: &str, series: &[(String, Distribution)]) -> String {
    let (w, h) = (900.0, 520.0);
    let (left, right, top, bottom) = (80.0, 30.0, 50.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let nines = 6.0; // up to 99.9999%
    let x_of = |p: f64| {
        let p = p.min(1.0 - 1e-6);
        left + (1.0 / (1.0 - p)).log10().min(nines) / nines * pw
    };
    let ymax = series
        .iter()
        .flat_map(|(_, d)| d.rows.iter().map(|r| r.0))
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.05;
    let y_of = |v: f64| top + ph - v / ymax * ph;
    // Axis unit that keeps labels short.
    let (unit, div) = if ymax >= 1e6 {
        ("s", 1e6)
    } else if ymax >= 1e3 {
        ("ms", 1e3)
    } else {
        ("µs", 1.0)
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{}" y="25" text-anchor="middle" font-size="16">{}</text>"#,
        left + pw / 2.0,
        xml_escape(title)
    );
    // Axes and grid.
    for (i, label) in
        ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"].iter().enumerate()
    {
        let x = left + i as f64 / nines * pw;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            top + ph,
            top + ph + 18.0
        );
    }
    for i in 0..=5 {
        let v = ymax * i as f64 / 5.0;
        let y = y_of(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{:.3}</text>"##,
            left + pw,
            left - 6.0,
            y + 4.0,
            v / div
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>
<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency ({unit})</text>"#,
        left + pw / 2.0,
        h - 15.0,
        top + ph / 2.0,
        top + ph / 2.0
    );
    for (i, (name, d)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> =
            d.rows.iter().map(|&(v, p)| format!("{:.1},{:.1}", x_of(p), y_of(v))).collect();
        let _ = writeln!(
            s,
            r#"<polyline class="series" data-name="{}" fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            xml_escape(name),
            pts.join(" ")
        );
        // Legend: top left, inside the plot, where percentile curves are lowest.
        let ly = top + 20.0 * i as f64 + 15.0;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{} (n={})</text>"#,
            left + 15.0,
            left + 35.0,
            left + 40.0,
            ly + 4.0,
            xml_escape(name),
            d.total_count
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Write `DIR/NAME.hgrm` and `DIR/NAME.svg` for each histogram.
pub fn write_dir(dir: &std::path::Path, hists: &[(&str, &Latency)]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, h) in hists {
        let text = h.hgrm();
        std::fs::write(dir.join(format!("{name}.hgrm")), &text)?;
        let d = parse_hgrm(&text).map_err(io::Error::other)?;
        std::fs::write(dir.join(format!("{name}.svg")), svg_plot(name, &[(name.to_string(), d)]))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_round_trips_count_and_monotone_rows() {
        let mut h = Latency::new();
        for i in 1..=10_000u64 {
            h.record(i * 1000 + (i % 7) * 13);
        }
        let d = parse_hgrm(&h.hgrm()).unwrap();
        assert_eq!(d.total_count, 10_000);
        assert!(d.rows.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(d.rows.last().unwrap().1, 1.0);
        let s = h.summary();
        assert!(s.p50_us <= s.p99_us && s.p99_us <= s.max_us);
        assert!((s.p50_us - 5000.0).abs() < 10.0, "{s:?}");
    }

    #[test]
    fn empty_histogram_still_writes_valid_text() {
        let d = parse_hgrm(&Latency::new().hgrm()).unwrap();
        assert_eq!(d.total_count, 0);
    }

    #[test]
    fn svg_has_one_series_per_input() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        for i in 1..1000 {
            a.record(i * 10);
            b.record(i * 20);
        }
        let svg = svg_plot(
            "x & <y>",
            &[
                ("a".into(), parse_hgrm(&a.hgrm()).unwrap()),
                ("b".into(), parse_hgrm(&b.hgrm()).unwrap()),
            ],
        );
        assert_eq!(svg.matches("<polyline class=\"series\"").count(), 2);
        assert!(svg.contains("x &amp; &lt;y&gt;"));
    }
}
