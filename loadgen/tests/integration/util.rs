//! Helpers shared by loadgen's socket tests: run a config into a real UDP
//! socket on 127.0.0.1 and collect what arrived; sums per exporter.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use loadgen::{Config, CorruptCounts, SendReport, Sums, Truth};
use nfstitch::platform::ReuseportSocket;
use nfstitch::wire::{Datagram, HEADER_LEN, RECORD_LEN};

/// Run `cfg` into a fresh socket; everything it received, in order.
pub fn send_and_receive(cfg: Config) -> (Truth, SendReport, Vec<(SocketAddr, Vec<u8>)>) {
    let rx =
        ReuseportSocket::bind("127.0.0.1:0".parse().unwrap(), Some(96 << 20)).unwrap().into_udp();
    let cfg = Config { target: rx.local_addr().unwrap(), ..cfg };
    let sender = std::thread::spawn(move || loadgen::run_live(&cfg).unwrap());
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let mut quiet: Option<Instant> = None;
    loop {
        assert!(start.elapsed() < Duration::from_secs(60), "bounded");
        match rx.recv_from(&mut buf) {
            Ok((n, from)) => {
                got.push((from, buf[..n].to_vec()));
                quiet = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut quiet_for = || quiet.get_or_insert_with(Instant::now).elapsed();
                if sender.is_finished() && quiet_for() > Duration::from_millis(300) {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => panic!("recv: {e}"),
        }
    }
    let (truth, report, _) = sender.join().unwrap();
    (truth, report, got)
}

/// The truth's sums per exporter socket.
pub fn truth_sums(t: &Truth) -> BTreeMap<SocketAddr, Sums> {
    t.sums_by(SocketAddr::new)
}

/// The bytes a pool does not patch: header without uptime, times and
/// sequence; records without First and Last.
pub fn unpatched(d: &[u8]) -> Vec<u8> {
    let mut v = d.to_vec();
    v[4..20].fill(0);
    for r in v[HEADER_LEN..].chunks_exact_mut(RECORD_LEN) {
        r[24..32].fill(0);
    }
    v
}

/// What a receiver saw: sums of the valid datagrams per source, malformed
/// ones by reason, and each exporter's stream checked for a continuous
/// sequence (malformed datagrams take no sequence numbers).
pub fn check_stream(got: &[(SocketAddr, Vec<u8>)]) -> (BTreeMap<SocketAddr, Sums>, CorruptCounts) {
    let mut per: BTreeMap<SocketAddr, Sums> = BTreeMap::new();
    let mut corrupt = CorruptCounts::default();
    let mut next_seq: BTreeMap<SocketAddr, u32> = BTreeMap::new();
    for (from, d) in got {
        match Datagram::parse(d) {
            Ok(dg) => {
                per.entry(*from).or_default().add(&dg);
                let h = dg.header();
                if let Some(seq) = next_seq.get(from) {
                    assert_eq!(h.flow_sequence, *seq, "{from}: sequence continuous");
                }
                next_seq.insert(*from, h.flow_sequence.wrapping_add(dg.count() as u32));
            }
            Err(e) => corrupt.add(e.index()),
        }
    }
    (per, corrupt)
}
