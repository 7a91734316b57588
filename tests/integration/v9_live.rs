//! v9/IPFIX hardening against a live `collect` (issue 18): jumbo and
//! truncated datagrams, templates that survive a crash (SIGKILL), the
//! template memory budget under a hostile stream, and `loadgen` v9/IPFIX
//! runs (1 and 2 workers) with template loss and late templates, every
//! datagram accounted for. What `v9_collect.rs` already covers (the shared
//! captures live, a clean restart, held data, hostile framing) is not
//! repeated here.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use loadgen::{Config, Truth};
use nfstitch::wire::template::encode::{Encoder, FlowRecord};
use nfstitch::wire::template::{Decoder, Version};
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

/// A loadgen model of `count` datagrams from 3 exporters, a fifth of the
/// sessions IPv6 (router timeouts within seconds of router time).
fn model(version: u16, count: u64, target: SocketAddr) -> Config {
    Config {
        version,
        count: Some(count),
        pps: 2000,
        time_scale: Some(200.0),
        flows: 2000,
        active_timeout: Duration::from_secs(60),
        inactive_timeout: Duration::from_secs(5),
        exporters: 3,
        ipv6: 0.2,
        seed: 11,
        target,
        ..Config::default()
    }
}

/// Every datagram sent is accounted for, and the collector's sums are what
/// was sent (`sent` datagrams; `truth`: their records, packets, octets);
/// the flows' sums equal them, IPv6 records in IPv6 flows.
fn assert_recovered(sent: u64, truth: &Truth, flows: &[Value], st: &Value, what: &str) {
    let rejected: u64 =
        st["rejected"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    let (dgs, drops) = (n(st, "datagrams"), n(st, "kernel_drops"));
    assert_eq!(
        sent,
        dgs + drops + rejected,
        "{what}: sent = received + kernel drops + rejected: {st}"
    );
    assert_eq!((drops, rejected), (0, 0), "{what}: nothing dropped or rejected at this rate: {st}");
    let t = &st["templated"];
    let got = [n(st, "records"), n(st, "packets"), n(st, "octets"), n(t, "flow_records")];
    let want = [truth.records, truth.packets, truth.octets, truth.records];
    assert_eq!(got, want, "{what}: records, packets, octets, flow records: {st}");
    // IPv6 records are stitched (the IPv6 slot family): none wait at the seam.
    assert_eq!(n(t, "ipv6_records_pending"), 0, "{what}");
    assert!(truth.ipv6_records > 0, "{what}: the model has IPv6 sessions");
    let v6_records: u64 = flows
        .iter()
        .filter(|f| f["src_addr"].as_str().is_some_and(|a| a.contains(':')))
        .map(|f| f["records"].as_u64().unwrap())
        .sum();
    assert_eq!(v6_records, truth.ipv6_records, "{what}: IPv6 records, in IPv6 flows");
    for f in ["records", "packets", "octets"] {
        assert_eq!(sum(flows, f), n(st, f), "{what}: flows' {f}");
    }
    assert_eq!(flows.len() as u64, n(st, "flows_total"), "{what}");
    let held = ["held_sets_dropped", "held_sets_expired", "held_sets_now"];
    assert!(held.iter().all(|k| n(t, k) == 0), "{what}: nothing left undecoded: {t}");
    assert_eq!(n(t, "no_template_sets"), n(t, "held_sets_decoded"), "{what}: {t}");
}

/// loadgen v9 and IPFIX, live over loopback, against `collect` with 1 and 2
/// workers: the truth comes back exactly.
#[test]
fn loadgen_v9_and_ipfix_truth_is_recovered_with_one_and_two_workers() {
    for version in [9u16, 10] {
        for workers in ["1", "2"] {
            let c = start(&["--workers", workers, "--no-state", "--rcvbuf", "4000000"]);
            let (truth, report, _) = loadgen::run_live(&model(version, 300, c.addr)).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let (flows, st, _) = c.stop();
            let what = format!("version {version}, {workers} workers");
            assert_eq!((report.valid_sent, truth.datagrams), (300, 300), "{what}");
            assert_recovered(report.valid_sent, &truth, &flows, &st, &what);
            assert_eq!(n(&st["templated"], "no_template_sets"), 0, "{what}: templates come first");
            let key = if version == 9 { "datagrams_v9" } else { "datagrams_ipfix" };
            assert_eq!(n(&st["templated"], key), 300, "{what}");
        }
    }
}

/// Late templates (`--data-before-template 4`): each exporter's first four
/// datagrams carry data only; the collector holds them and decodes them
/// when the templates come, and the truth comes back exactly.
#[test]
fn late_templates_are_held_then_decoded() {
    for (version, workers) in [(9u16, "1"), (9, "2"), (10, "1"), (10, "2")] {
        let c = start(&["--workers", workers, "--no-state", "--rcvbuf", "4000000"]);
        let cfg = Config { data_before_template: Some(4), ..model(version, 240, c.addr) };
        let (truth, report, _) = loadgen::run_live(&cfg).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let (flows, st, _) = c.stop();
        let what = format!("version {version}, {workers} workers, data before template");
        assert_recovered(report.valid_sent, &truth, &flows, &st, &what);
        let t = &st["templated"];
        assert!(truth.no_template_records > 0, "{what}");
        assert_eq!(n(t, "no_template_records"), truth.no_template_records, "{what}: {t}");
        assert!(n(t, "held_sets_decoded") >= 3 * 4, "{what}: {t}");
    }
}

/// Template loss: a collector that starts late misses each exporter's
/// first datagrams, templates included (the test sends loadgen's datagrams
/// itself, from a pcap, and leaves those out). With templates refreshed
/// every 10th datagram (`--template-every 10`) the data that came before
/// the next refresh is held and decoded: every record of every datagram
/// sent is recovered, and every datagram is accounted for (v9 with 1
/// worker, IPFIX with 2).
#[test]
fn template_loss_a_late_collector_recovers_at_the_next_refresh() {
    let dir = tempfile::tempdir().unwrap();
    for version in [9u16, 10] {
        let pcap = dir.path().join(format!("v{version}.pcap"));
        let cfg = Config {
            template_every: Some(10),
            ..model(version, 300, "127.0.0.1:2055".parse().unwrap())
        };
        let (truth, _) = loadgen::write_pcap(&cfg, &pcap).unwrap();
        let mut frames: Vec<(IpAddr, Vec<u8>)> = Vec::new();
        let mut skips = nfstitch::capture::SkipCounters::default();
        nfstitch::capture::read_path(&pcap, None, &mut skips, |f| {
            frames.push((f.src, f.payload.to_vec()))
        })
        .unwrap();
        assert_eq!(frames.len() as u64, truth.datagrams);
        // What reaches the collector, and its truth: decoded here with every
        // datagram (the templates known), summed over those sent only.
        let exporters: Vec<IpAddr> = {
            let mut v: Vec<IpAddr> = frames.iter().map(|f| f.0).collect();
            v.sort();
            v.dedup();
            v
        };
        assert_eq!(exporters.len(), 3);
        let mut seen: BTreeMap<IpAddr, usize> = BTreeMap::new();
        let mut dec = Decoder::default();
        let mut all = Truth::default();
        let mut want = Truth::default();
        let mut to_send = Vec::new();
        for (src, payload) in &frames {
            let k = seen.entry(*src).or_default();
            *k += 1;
            let lost = *k <= 5; // the collector is not up yet
            let mut recs = (0u64, 0u64, 0u64, 0u64);
            dec.decode(*src, payload, &mut |r| {
                recs.0 += 1;
                recs.1 += r.record.packets;
                recs.2 += r.record.octets;
                recs.3 += u64::from(!r.record.src_addr.is_ipv4());
            })
            .unwrap();
            (all.records, all.packets, all.octets) =
                (all.records + recs.0, all.packets + recs.1, all.octets + recs.2);
            if !lost {
                want.datagrams += 1;
                want.records += recs.0;
                want.packets += recs.1;
                want.octets += recs.2;
                want.ipv6_records += recs.3;
                let i = exporters.iter().position(|e| e == src).unwrap() as u8;
                to_send.push((i, payload.clone()));
            }
        }
        assert_eq!(want.datagrams, truth.datagrams - 15);
        let sums = |t: &Truth| (t.records, t.packets, t.octets);
        assert_eq!(sums(&all), sums(&truth), "decoded here: loadgen's truth");
        let workers = if version == 9 { "1" } else { "2" };
        let c = start(&["--workers", workers, "--no-state", "--rcvbuf", "4000000"]);
        let socks: Vec<UdpSocket> =
            (0..3).map(|i| sender(Ipv4Addr::new(127, 0, 5, 1 + i))).collect();
        for (k, (i, p)) in to_send.iter().enumerate() {
            socks[*i as usize].send_to(p, c.addr).unwrap();
            if k % 32 == 31 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let (flows, st, _) = c.stop();
        let what = format!("version {version}, {workers} workers, template loss");
        assert_recovered(want.datagrams, &want, &flows, &st, &what);
        let t = &st["templated"];
        assert!(n(t, "held_sets_decoded") >= 3, "{what}: data before the refresh was held: {t}");
        assert!(n(t, "no_template_records") > 0, "{what}: {t}");
    }
}
