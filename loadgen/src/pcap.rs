//! `--pcap-out`: the run written to a capture instead of sent, with the
//! router clock as the capture clock: a deterministic input for
//! `nfstitch replay` (hours of router time replay in seconds).

use std::fs::File;
use std::io::BufWriter;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{Context, Result};
use nfstitch::capture::PcapWriter;

use crate::{generate, Config, Plan, Truth};

/// Write the run to `path` (Ethernet/IPv4/UDP, ns timestamps; frames from
/// each exporter's address to `cfg.target`), in time order.
pub fn write_pcap(cfg: &Config, path: &Path) -> Result<(Truth, Plan)> {
    let f = File::create(path)
        .with_context(|| format!("--pcap-out: cannot create {}", path.display()))?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, f))
        .with_context(|| format!("--pcap-out: writing {}", path.display()))?;
    let dst = match cfg.target.ip() {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::LOCALHOST, // refused by validation
    };
    let port = cfg.target.port();
    let mut err = None;
    let (truth, plan) = generate(cfg, |d| {
        if err.is_none() {
            if let Err(e) = w.write_udp(d.ts_ns, d.src, (dst, port), d.bytes) {
                err = Some(e);
            }
        }
    })?;
    if let Some(e) = err {
        return Err(e).with_context(|| format!("--pcap-out: writing {}", path.display()));
    }
    w.into_inner().with_context(|| format!("--pcap-out: writing {}", path.display()))?;
    Ok((truth, plan))
}
