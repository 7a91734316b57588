//! `nfstitch-demo`: the whole system on loopback in a few seconds. It starts
//! the collector (the library, in this process) on 127.0.0.1, has the load
//! generator send synthetic NetFlow v5 from 4 exporters for 3 seconds (router
//! time sped up 60x, so routers cut connections and the collector's timers
//! fire), stops the collector, and prints the flows stitched from the most records, the report and
//! the accounting against the generator's ground truth.
//!
//! Run it with `cargo run --release --bin nfstitch-demo`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use nfstitch::collect::{self, Collect};
use nfstitch::config::Pipeline;

// mimalloc, as in the collector's own binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The fields of a flow line the demo shows.
#[derive(serde::Deserialize)]
struct Row {
    exporter: String,
    src_addr: String,
    src_port: u16,
    dst_addr: String,
    dst_port: u16,
    proto: u8,
    records: u64,
    packets: u64,
    octets: u64,
    end_reason: String,
}

/// The whole system on loopback in a few seconds.
#[derive(clap::Parser)]
#[command(name = "nfstitch-demo")]
struct Args {
    /// Datagrams per second from the load generator.
    #[arg(long, default_value_t = 5000)]
    pps: u64,
    /// How long to send.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
}

fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    let dir = std::env::temp_dir().join(format!("nfstitch-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let flows_path = dir.join("flows.jsonl");
    let cfg = Collect {
        pipeline: Pipeline {
            output: Some(flows_path.clone()),
            report: false,
            linger: Duration::from_secs(2),
            idle: Duration::from_secs(5),
            ..Pipeline::default()
        },
        listen: vec!["127.0.0.1:0".parse()?],
        workers: nfstitch::platform::available_cores().clamp(1, 2),
        cpus: None,
        rcvbuf: Some(nfstitch::config::DEFAULT_RCVBUF),
        stats_interval: Duration::ZERO,
        flush_interval: Duration::from_millis(200),
        rx_coalesce: Duration::from_millis(1),
        reserve_flows: nfstitch::config::DEFAULT_RESERVE_FLOWS,
        histogram_dir: Some(dir.join("histograms")),
        clickhouse: None,
        metrics: None,
        rotate: None,
    };
    let running = collect::start(&cfg, false).context("starting the collector")?;
    let addr: SocketAddr = running.local_addrs()[0];
    println!(
        "nfstitch demo: collector on {addr} ({} workers); loadgen sends {} s of NetFlow v5 from 4 exporters at {} datagrams/s",
        cfg.workers, args.seconds, args.pps
    );
    let lcfg = loadgen::Config {
        target: addr,
        pps: args.pps,
        duration: Some(Duration::from_secs(args.seconds)),
        time_scale: Some(600.0),
        flows: 2_000,
        ..loadgen::Config::default()
    };
    let (truth, send, _) = loadgen::run_live(&lcfg).context("sending")?;
    std::thread::sleep(Duration::from_millis(200));
    let report = running.stop()?;

    let text = std::fs::read_to_string(&flows_path)?;
    let mut flows: Vec<Row> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    flows.sort_by_key(|f| std::cmp::Reverse((f.records, f.octets)));
    let multi = flows.iter().filter(|f| f.records > 1).count();
    println!(
        "\nof {} restitched flows ({} stitched from several records; all in {}), those with the most records:",
        flows.len(),
        multi,
        flows_path.display()
    );
    println!(
        "{:<12} {:>21} {:>21} {:>5} {:>7} {:>9} {:>11} {:>8}",
        "exporter", "source", "destination", "proto", "records", "packets", "octets", "end"
    );
    for f in flows.iter().take(8) {
        println!(
            "{:<12} {:>21} {:>21} {:>5} {:>7} {:>9} {:>11} {:>8}",
            f.exporter,
            format!("{}:{}", f.src_addr, f.src_port),
            format!("{}:{}", f.dst_addr, f.dst_port),
            f.proto,
            f.records,
            f.packets,
            f.octets,
            f.end_reason
        );
    }
    println!();
    report.print(&mut std::io::stdout().lock())?;
    let drops = report.kernel_drops.unwrap_or(0);
    let flow_records: u64 = flows.iter().map(|f| f.records).sum();
    println!(
        "\naccounting: loadgen sent {} datagrams ({:.0}/s) = accepted {} + kernel drops {} + rejected {}: {}",
        truth.datagrams,
        send.achieved_valid_pps(),
        report.datagrams,
        drops,
        report.rejected_total(),
        if truth.datagrams == report.datagrams + drops + report.rejected_total() { "exact" } else { "MISMATCH" }
    );
    println!(
        "records: sent {}, accepted {}, in emitted flows {}: {}",
        truth.records,
        report.records,
        flow_records,
        if report.records == flow_records {
            "every accepted record is in exactly one flow"
        } else {
            "MISMATCH"
        }
    );
    println!("histograms (.hgrm and .svg): {}", dir.join("histograms").display());
    Ok(())
}
