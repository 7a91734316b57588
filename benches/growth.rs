//! Growth without stalls (issue 16): one shard takes FLOWS new flows, a
//! receive batch at a time ([`RECV_BATCH`] datagrams of 30 records, every
//! record a new flow), first with nothing reserved, then with room for all of
//! them reserved up front; it prints the worst and the 99.9th percentile time
//! to apply one batch in each run, their ratio, and the RSS per flow after
//! the unreserved run ((RSS after - RSS before) / FLOWS, everything the shard
//! holds: buckets, slots, wheel links, contexts) and the peak RSS of the
//! process (VmHWM).
//!
//! Then, side by side in the same process (issue 16: cost that does not grow
//! with the table), for each population in `RATE_FLOWS`: a shard holding
//! that many flows takes random records over them (every record merges
//! into an existing flow, 30-record datagrams, one receive batch per
//! `apply_segments`), and prints records/s and its ratio to the first
//! population's rate; then the whole population idles out in one
//! `advance` (mass expiry: the wheel's lists walked, every flow emitted),
//! and prints ns per expired flow.
//!
//!   cargo bench --bench growth [-- FLOWS]   # default 4194304
//!   RATE_FLOWS=100000,4194304 (default) cargo bench --bench growth
//!   RATE_FLOWS= cargo bench --bench growth  # growth only
//!
//! Without `--bench` (as `cargo test --benches` runs it) it takes 20000 flows
//! and rates at 3000 and 20000.
//!
//!   GROWTH_IPV6=1 cargo bench --bench growth   # the same with IPv6 flows
//!
//! `GROWTH_IPV6=1` makes every record IPv6 (the same keys, addresses in
//! 2001:db8::/32): the shard's IPv6 slot family (issue 18 item 4), applied
//! record by record. `Shard::reserve` sizes the IPv4 family only, so the
//! "reserved" run of IPv6 flows grows like the first.

mod common;
use std::time::Instant;

use std::net::{IpAddr, Ipv6Addr};
use std::sync::OnceLock;

use common::{default_cfg, T0};
use loadgen::rng::SplitMix64;
use nfstitch::collect::worker::RECV_BATCH;
use nfstitch::flow::{FlowRecord, Shard};
use nfstitch::platform::rss_bytes;

/// `GROWTH_IPV6=1`: IPv6 records.
fn ipv6() -> bool {
    static V6: OnceLock<bool> = OnceLock::new();
    *V6.get_or_init(|| std::env::var("GROWTH_IPV6").is_ok_and(|v| v == "1"))
}

/// Record `i` of the run: `common::record`, or the same key as IPv6.
fn record(i: u64) -> FlowRecord {
    let r = common::record(i);
    if !ipv6() {
        return r;
    }
    let v6 = |a: IpAddr| match a {
        IpAddr::V4(a) => IpAddr::V6(Ipv6Addr::from_bits(0x2001_0db8 << 96 | a.to_bits() as u128)),
        a => a,
    };
    FlowRecord { src_addr: v6(r.src_addr), dst_addr: v6(r.dst_addr), nexthop: v6(r.nexthop), ..r }
}

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

/// Peak RSS of this process (VmHWM), bytes.
fn peak_rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Records/s of random records over `flows` held flows (each merges into
/// one), and ns per flow of expiring them all at once.
fn rate(flows: u64) -> (f64, f64) {
    let mut shard = Shard::new(default_cfg(flows as usize), T0);
    shard.reserve(flows as usize);
    let mut out = Vec::new();
    let per_batch = RECV_BATCH * 30;
    let mut recs: Vec<FlowRecord> = Vec::with_capacity(per_batch);
    let mut segs: Vec<(usize, u64)> = Vec::with_capacity(RECV_BATCH);
    let mut now = T0;
    let mut i = 0;
    while i < flows {
        recs.clear();
        segs.clear();
        now += 1000;
        while i < flows && recs.len() < per_batch {
            recs.push(record(i));
            i += 1;
        }
        segs.push((recs.len(), now));
        shard.apply_segments(recs.as_slice(), &segs, &mut out);
    }
    assert!(out.is_empty() && shard.len() as u64 == flows);
    // 64 receive batches of random records, generated before the clock starts.
    let mut rng = SplitMix64::new(flows);
    let batches: Vec<Vec<FlowRecord>> =
        (0..64).map(|_| (0..per_batch).map(|_| record(rng.next_u64() % flows)).collect()).collect();
    let rounds = (8_000_000 / (64 * per_batch)).max(1);
    let t = Instant::now();
    let mut n = 0u64;
    for _ in 0..rounds {
        for b in &batches {
            segs.clear();
            for d in 0..RECV_BATCH {
                now += 1000;
                segs.push(((d + 1) * 30, now));
            }
            shard.apply_segments(b.as_slice(), &segs, &mut out);
            n += b.len() as u64;
        }
    }
    let per_s = n as f64 / t.elapsed().as_secs_f64();
    assert!(out.is_empty() && shard.len() as u64 == flows, "nothing ends");
    // Mass expiry: every flow idles out in one advance.
    out.reserve(flows as usize);
    let t = Instant::now();
    shard.advance(now + 1861 * common::S, &mut out);
    let expiry = t.elapsed().as_nanos() as f64 / flows as f64;
    assert_eq!(out.len() as u64, flows, "every flow idled out");
    (per_s, expiry)
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
    let family = if ipv6() { "IPv6" } else { "IPv4" };
    println!("growth: {flows} new {family} flows in batches of {} records", RECV_BATCH * 30);
    println!("  grown from 0:  worst {gw:9.1} us  p99.9 {gp:8.1} us  RSS {per_flow:.0} bytes/flow");
    println!("  reserved:      worst {sw:9.1} us  p99.9 {sp:8.1} us");
    println!("  ratio grown/reserved: worst {:.2}x  p99.9 {:.2}x", gw / sw, gp / sp);
    println!("  peak RSS {:.0} MiB", peak_rss() as f64 / (1 << 20) as f64);
    let pops = std::env::var("RATE_FLOWS")
        .unwrap_or_else(|_| if bench { "100000,4194304" } else { "3000,20000" }.into());
    let mut first = None;
    for p in pops.split(',').filter_map(|p| p.trim().parse::<u64>().ok()) {
        let (r, e) = rate(p);
        let base = *first.get_or_insert(r);
        println!(
            "rate: {p:>9} flows: {:6.2} M records/s ({:.2}x the first)  mass expiry {e:6.1} ns/flow",
            r / 1e6,
            r / base
        );
    }
}
