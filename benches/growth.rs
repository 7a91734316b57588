//! Growth without stalls (issue 16): one shard takes FLOWS new flows, a
//! receive batch at a time ([`RECV_BATCH`] datagrams of 30 records, every
//! record a new flow), first with nothing reserved, then with room for all of
//! them reserved up front; it prints the worst and the 99.9th percentile time
//! to apply one batch in each run, their ratio, and the RSS per flow after
//! the unreserved run ((RSS after - RSS before) / FLOWS, everything the shard
//! holds: buckets, slots, wheel entries, eviction queue).
//!
//!   cargo bench --bench growth [-- FLOWS]   # default 4194304
//!
//! Without `--bench` (as `cargo test --benches` runs it) it takes 20000 flows.

mod common;
use std::time::Instant;

use common::{default_cfg, record, T0};
use nfstitch::collect::worker::RECV_BATCH;
use nfstitch::flow::{FlowRecord, Shard};
use nfstitch::platform::rss_bytes;

/// Per-batch apply times (ns) of filling a shard with `flows` new flows.
fn fill(flows: u64, reserve: bool) -> (Vec<u64>, Shard) {
    let mut shard = Shard::new(default_cfg(flows as usize), T0);
    if reserve {
        shard.reserve(flows as usize);
    }
    let per_batch = RECV_BATCH as u64 * 30;
    let mut recs: Vec<FlowRecord> = Vec::with_capacity(per_batch as usize);
    let mut segs = Vec::with_capacity(RECV_BATCH);
    let (mut out, mut times) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < flows {
        recs.clear();
        segs.clear();
        let now = T0 + i * 1000;
        while i < flows && (recs.len() as u64) < per_batch {
            recs.push(record(i));
            i += 1;
            if recs.len() % 30 == 0 {
                segs.push((recs.len(), now));
            }
        }
        segs.push((recs.len(), now));
        let t = Instant::now();
        shard.apply_segments(recs.as_slice(), &segs, &mut out);
        times.push(t.elapsed().as_nanos() as u64);
    }
    assert!(out.is_empty() && shard.len() as u64 == flows, "every flow held");
    (times, shard)
}

/// (worst, p99.9) of `times`, in µs.
fn tail(mut times: Vec<u64>) -> (f64, f64) {
    times.sort_unstable();
    let p = times[((times.len() as f64 * 0.999) as usize).min(times.len() - 1)];
    (*times.last().unwrap() as f64 / 1e3, p as f64 / 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let flows =
        args.iter().find_map(|a| a.parse().ok()).unwrap_or(if bench { 1 << 22 } else { 20_000 });
    let before = rss_bytes().unwrap_or(0);
    let (grown, shard) = fill(flows, false);
    let per_flow = rss_bytes().unwrap_or(0).saturating_sub(before) as f64 / flows as f64;
    drop(shard);
    let (sized, shard) = fill(flows, true);
    drop(shard);
    let (gw, gp) = tail(grown);
    let (sw, sp) = tail(sized);
    println!("growth: {flows} new flows in batches of {} records", RECV_BATCH * 30);
    println!("  grown from 0:  worst {gw:9.1} us  p99.9 {gp:8.1} us  RSS {per_flow:.0} bytes/flow");
    println!("  reserved:      worst {sw:9.1} us  p99.9 {sp:8.1} us");
    println!("  ratio grown/reserved: worst {:.2}x  p99.9 {:.2}x", gw / sw, gp / sp);
}
