//! v9/IPFIX hardening against a live `collect` (issue 18): jumbo and
//! truncated datagrams, templates that survive a crash (SIGKILL), the
//! template memory budget under a hostile stream, and `loadgen` v9/IPFIX
//! runs (1 and 2 workers) with template loss and late templates, every
//! datagram accounted for. What `v9_collect.rs` already covers (the shared
//! captures live, a clean restart, held data, hostile framing) is not
//! repeated here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use nfstitch::wire::template::encode::{Encoder, FlowRecord};
use nfstitch::wire::template::Version;
use serde_json::Value;

use crate::collect::{signal, start, wait_exit};
use crate::util::*;

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

/// `count` IPv4 flow records, distinct keys, `packets` = i + 1.
fn records(count: u32, base_ms: u64) -> Vec<FlowRecord> {
    (0..count)
        .map(|i| FlowRecord {
            src: IpAddr::V4(Ipv4Addr::new(10, 1, (i >> 8) as u8, i as u8)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 2, 0, 1)),
            src_port: 1024 + i as u16,
            dst_port: 443,
            proto: 6,
            packets: u64::from(i) + 1,
            octets: 100 * (u64::from(i) + 1),
            first_ms: base_ms,
            last_ms: base_ms + 10,
            ..FlowRecord::default()
        })
        .collect()
}

/// One message of `enc`: the templates if `templates`, then `recs`.
fn message(enc: &mut Encoder, templates: bool, recs: &[FlowRecord], export_ms: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut m = enc.message(&mut out, export_ms, 1_000_000);
    if templates {
        m.templates();
    }
    for r in recs {
        m.record(r);
    }
    m.finish();
    out
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn sender(from: Ipv4Addr) -> UdpSocket {
    UdpSocket::bind((from, 0)).expect("bind a loopback address")
}

/// A valid IPFIX message of about 8000 bytes (a jumbo-frame export) is
/// decoded whole; datagrams longer than the receive buffer (9216 bytes)
/// are rejected as `truncated`, counted per exporter, nothing decoded.
#[test]
fn jumbo_exports_are_decoded_and_longer_datagrams_counted_truncated() {
    let c = start(&["--workers", "1", "--no-state", "--rcvbuf", "4000000"]);
    let ms = now_ms();
    let mut enc = Encoder::new(Version::Ipfix, 7, 0);
    let mut recs = records(1, ms);
    // Grow the message to just under 8000 bytes.
    let per = message(&mut enc.clone(), true, &records(2, ms), ms).len()
        - message(&mut enc.clone(), true, &records(1, ms), ms).len();
    let base = message(&mut enc.clone(), true, &recs, ms).len();
    recs = records(1 + ((8000 - base) / per) as u32, ms);
    let jumbo = message(&mut enc, true, &recs, ms);
    assert!((7900..=8000).contains(&jumbo.len()), "{}", jumbo.len());
    let mut too_long = message(&mut enc, false, &records(400, ms), ms);
    assert!(too_long.len() > 9216, "{}", too_long.len());
    let mut huge = vec![0u8; 65_507];
    huge[..2].copy_from_slice(&10u16.to_be_bytes());
    let s = sender(Ipv4Addr::new(127, 0, 4, 1));
    s.send_to(&jumbo, c.addr).unwrap();
    s.send_to(&too_long, c.addr).unwrap();
    s.send_to(&huge, c.addr).unwrap();
    too_long.truncate(9216); // what a buffer of that size would keep
    std::thread::sleep(Duration::from_millis(300));
    let (flows, st, stderr) = c.stop();
    let want_records = recs.len() as u64;
    let want_packets: u64 = recs.iter().map(|r| r.packets).sum();
    assert_eq!(n(&st, "datagrams"), 1, "{st}");
    assert_eq!(n(&st["rejected"], "truncated"), 2, "{st}");
    assert_eq!(n(&st, "kernel_drops"), 0, "{st}");
    assert_eq!((n(&st, "records"), n(&st, "packets")), (want_records, want_packets), "{st}");
    assert_eq!(n(&st["templated"], "flow_records"), want_records, "{st}");
    assert_eq!(sum(&flows, "records"), want_records);
    assert_eq!(sum(&flows, "packets"), want_packets);
    let ex = st["exporters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["exporter"] == "127.0.4.1")
        .unwrap_or_else(|| panic!("exporter 127.0.4.1 in {st}"));
    assert_eq!(n(ex, "rejected"), 2, "{ex}");
    assert!(stderr.contains("receive buffer"), "the rejection is logged: {stderr}");
}

/// The templates in a state file: how many.
fn saved_templates(dir: &std::path::Path) -> usize {
    let Ok(text) = std::fs::read_to_string(dir.join("templates.json")) else { return 0 };
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v["templates"].as_array().map_or(0, |t| t.len())
}

/// A collector that learnt templates and then died without a chance to
/// save (SIGKILL to its own PID) does not lose them: they were saved while
/// it ran, so the next one decodes data that arrives before any template.
#[test]
fn templates_survive_a_sigkill() {
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_str().unwrap();
    let args = ["--workers", "2", "--state-dir", sd, "--rcvbuf", "4000000"];
    let mut c = start(&args);
    let ms = now_ms();
    let exporters =
        [(Version::V9, Ipv4Addr::new(127, 0, 4, 2)), (Version::Ipfix, Ipv4Addr::new(127, 0, 4, 3))];
    let mut encs: Vec<Encoder> = exporters.iter().map(|&(v, _)| Encoder::new(v, 3, 0)).collect();
    let socks: Vec<UdpSocket> = exporters.iter().map(|&(_, a)| sender(a)).collect();
    for (e, s) in encs.iter_mut().zip(&socks) {
        s.send_to(&message(e, true, &[], ms), c.addr).unwrap();
    }
    // Two exporters, an IPv4 and an IPv6 template each: on disk while it runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while saved_templates(state.path()) < 4 {
        assert!(std::time::Instant::now() < deadline, "templates not saved while running");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&c.child, "-KILL");
    wait_exit(&mut c.child, Duration::from_secs(10), "collector did not die");
    drop(c);

    let c = start(&args);
    let recs = records(50, ms);
    for (e, s) in encs.iter_mut().zip(&socks) {
        s.send_to(&message(e, false, &recs, ms + 1000), c.addr).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let (flows, st, _) = c.stop();
    let t = &st["templated"];
    assert_eq!(n(&st["template_state"], "loaded"), 4, "{st}");
    assert_eq!((n(t, "no_template_sets"), n(t, "flow_records")), (0, 100), "{t}");
    let packets: u64 = 2 * recs.iter().map(|r| r.packets).sum::<u64>();
    assert_eq!((sum(&flows, "records"), sum(&flows, "packets")), (100, packets));
}
