//! `--pair`: both directions of a connection in one `conn` row, emitted
//! exactly once, with every packet of the input in exactly one connection.
//! Replays of synthetic captures for order and timing (directions from two
//! exporters far apart in time, one split into several records; a FIN
//! direction waiting for an idle partner; a partner that comes after its
//! other direction ended; a direction that never gets one), the live
//! collector with 1 and 2 workers, and bad flags.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use nfstitch::wire::RecordFields;
use serde_json::Value;

use crate::collect::{send, start};
use crate::util::*;

const T0: u64 = 1_700_000_000 * S;
const MIN: u64 = 60 * S;

/// A record a.b.c.d:sport -> w.x.y.z:dport (addresses as u32), its times
/// in ms of uptime (the datagram's uptime is 1 h).
fn rec(
    src: u32,
    sport: u16,
    dst: u32,
    dport: u16,
    proto: u8,
    flags: u8,
    packets: u32,
    ms: (u32, u32),
) -> RecordFields {
    RecordFields {
        src_addr: src,
        dst_addr: dst,
        src_port: sport,
        dst_port: dport,
        proto,
        tcp_flags: flags,
        packets,
        octets: packets * 60 + flags as u32,
        first: ms.0,
        last: ms.1,
        ..Default::default()
    }
}

const A: u32 = 0x0a00_0001; // 10.0.0.1
const B: u32 = 0x0a00_0002; // 10.0.0.2
const UP: u32 = 3_600_000; // the datagrams' uptime (ms)

/// Replay `dgs` with `args`; (conn rows, stats).
fn replay_pair(dir: &Path, dgs: &[Dg], args: &[&str]) -> (Vec<Value>, Value) {
    let pcap = write_pcap(dir, "pair.pcap", dgs);
    let st = dir.join("st.json");
    let r = run_ok(
        nfstitch()
            .args(["replay", "-q", "--pair", "--time-format", "epoch", "--stats-json"])
            .arg(&st)
            .args(args)
            .arg(&pcap),
    );
    let rows = jsonl(&r.stdout);
    assert!(rows.iter().all(|r| r["type"] == "conn"), "only conn rows with --pair");
    (rows, stats(&st))
}

/// The accounting of `--pair`: every accepted record, packet and octet in
/// exactly one connection (both directions summed), and the counts by
/// state and end reason add up to the rows.
fn assert_conns_conserved(conns: &[Value], st: &Value) {
    let both = |f: &str| -> u64 {
        conns
            .iter()
            .map(|c| {
                c[format!("orig_{f}")].as_u64().unwrap() + c[format!("resp_{f}")].as_u64().unwrap()
            })
            .sum()
    };
    assert_eq!(both("packets"), st["packets"].as_u64().unwrap(), "packets: {st}");
    assert_eq!(both("octets"), st["octets"].as_u64().unwrap(), "octets");
    assert_eq!(sum(conns, "records"), st["records"].as_u64().unwrap(), "records");
    let c = &st["conns"];
    assert_eq!(c["total"].as_u64().unwrap(), conns.len() as u64);
    assert_eq!(c["packets"], st["packets"]);
    assert_eq!(c["records"], st["records"]);
    let by = |m: &str| c[m].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>();
    assert_eq!(by("conn_state"), conns.len() as u64);
    assert_eq!(by("end_reason"), conns.len() as u64);
    let unpaired = conns.iter().filter(|c| c["resp_packets"] == 0 && c["resp_flags"] == 0).count();
    assert_eq!(c["unpaired_flows"].as_u64().unwrap() as usize, unpaired);
    assert_eq!(c["paired"].as_u64().unwrap() as usize, conns.len() - unpaired);
    for s in conns {
        let n = conns.iter().filter(|x| x["conn_state"] == s["conn_state"]).count() as u64;
        assert_eq!(c["conn_state"][s["conn_state"].as_str().unwrap()].as_u64().unwrap(), n);
    }
}

/// The two directions come from two exporters (the key leaves the exporter
/// out), the responder's 20 minutes after the originator's first record,
/// and the originator's is cut into records by a 10-minute active timeout:
/// one connection, the SYN side the originator, every record in it, ended
/// by FIN (both sides closed) long before the end of input.
#[test]
fn directions_from_two_exporters_far_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (e1, e2) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
    let mut dgs = Vec::new();
    // Originator, exporter 1: SYN, then 10-minute pieces, then FIN at 30 min.
    dgs.push(dg(T0, e1, 0, &[rec(A, 40000, B, 80, 6, 0x02, 1, (UP, UP))]));
    for k in 1..=3u64 {
        let flags = if k == 3 { 0x19 } else { 0x18 };
        let r = rec(A, 40000, B, 80, 6, flags, 100, (UP - 600_000, UP));
        dgs.push(dg(T0 + k * 10 * MIN, e1, k as u32, &[r]));
    }
    // Responder, exporter 2, first heard of 20 minutes in: SYN-ACK and data, FIN at 30 min.
    dgs.push(dg(T0 + 20 * MIN, e2, 0, &[rec(B, 80, A, 40000, 6, 0x12, 50, (UP - 1_199_000, UP))]));
    dgs.push(dg(
        T0 + 30 * MIN + S,
        e2,
        1,
        &[rec(B, 80, A, 40000, 6, 0x11, 70, (UP - 600_000, UP))],
    ));
    // Something else much later, so the connection ends by its timers.
    dgs.push(dg(T0 + 60 * MIN, e1, 4, &[rec(A, 5353, B, 5353, 17, 0, 3, (UP, UP))]));
    let key = ["--key", "proto,src,sport,dst,dport"];
    let (conns, st) = replay_pair(dir.path(), &dgs, &key);
    assert_conns_conserved(&conns, &st);
    assert_eq!(conns.len(), 2, "{conns:#?}");
    let c = &conns[0];
    assert_eq!((c["orig_addr"].as_str(), c["orig_port"].as_u64()), (Some("10.0.0.1"), Some(40000)));
    assert_eq!((c["resp_addr"].as_str(), c["resp_port"].as_u64()), (Some("10.0.0.2"), Some(80)));
    assert_eq!(c["records"], 6);
    assert_eq!((c["orig_packets"].as_u64(), c["resp_packets"].as_u64()), (Some(301), Some(120)));
    assert_eq!((c["orig_flags"].as_u64(), c["resp_flags"].as_u64()), (Some(0x1b), Some(0x13)));
    assert_eq!(c["conn_state"], "SF");
    assert_eq!(c["history"], "SsFf", "the SYN side was also seen first: no ^");
    assert_eq!(c["end_reason"], "fin");
    assert_eq!(c["exporter"], "192.0.2.1", "the originator's first record's exporter");
    // Under the default key (exporter in it) they are two one-sided connections.
    let (split, st) = replay_pair(dir.path(), &dgs, &[]);
    assert_conns_conserved(&split, &st);
    assert_eq!(split.len(), 3);
    assert_eq!(st["conns"]["unpaired_flows"], 3);
}

/// A direction that ends by FIN waits while its partner is live, and the
/// connection leaves when the partner ends idle (its end reason); a
/// direction whose partner shows up only after it ended (within the idle
/// time) still pairs; one that never gets a partner leaves alone once it
/// has been idle, with zero responder counters.
#[test]
fn fin_waits_for_idle_partner_and_late_or_missing_partners() {
    let dir = tempfile::tempdir().unwrap();
    let e = Ipv4Addr::new(192, 0, 2, 9);
    let t = |s: u64| T0 + s * S;
    let dgs = vec![
        // Connection 1: A:1111 sends SYN..FIN, B answers but never closes (idles).
        dg(
            t(0),
            e,
            0,
            &[
                rec(A, 1111, B, 22, 6, 0x1b, 10, (UP - 2000, UP - 1000)),
                rec(B, 22, A, 1111, 6, 0x12, 8, (UP - 1999, UP - 1000)),
            ],
        ),
        // Connection 2: A:2222's direction (FIN) at 0 s, alone until its
        // partner's first record at 30 s, after A's FIN linger (5 s) ended it.
        dg(t(1), e, 2, &[rec(A, 2222, B, 443, 6, 0x03, 4, (UP - 1000, UP))]),
        dg(t(30), e, 3, &[rec(B, 443, A, 2222, 6, 0x14, 2, (UP - 500, UP))]),
        // Connection 3: A:3333 alone, UDP.
        dg(t(2), e, 4, &[rec(A, 3333, B, 53, 17, 0, 1, (UP, UP))]),
        // Time goes on to 200 s.
        dg(t(200), e, 5, &[rec(A, 4444, B, 4444, 17, 0, 1, (UP, UP))]),
    ];
    let mut dgs = dgs;
    dgs.sort_by_key(|d| d.ts_ns);
    let (conns, st) = replay_pair(dir.path(), &dgs, &["--linger", "5s", "--idle", "60s"]);
    assert_conns_conserved(&conns, &st);
    let find = |port: u64| -> &Value {
        conns.iter().find(|c| c["orig_port"] == port || c["resp_port"] == port).unwrap()
    };
    assert_eq!(conns.len(), 4, "exactly once each: {conns:#?}");
    let c1 = find(1111);
    assert_eq!(c1["orig_port"], 1111, "seen first");
    assert_eq!((c1["conn_state"].as_str(), c1["history"].as_str()), (Some("S2"), Some("SsF")));
    assert_eq!(c1["end_reason"], "idle", "the connection ends with its idle direction");
    assert_eq!((c1["orig_packets"].as_u64(), c1["resp_packets"].as_u64()), (Some(10), Some(8)));
    let c2 = find(2222);
    assert_eq!(c2["orig_port"], 2222);
    assert_eq!(c2["resp_packets"], 2, "the late partner paired");
    assert_eq!(c2["conn_state"], "REJ");
    assert_eq!(c2["history"], "SFr");
    let c3 = find(3333);
    assert_eq!((c3["resp_packets"].as_u64(), c3["resp_octets"].as_u64()), (Some(0), Some(0)));
    assert_eq!(c3["conn_state"], "S0");
    assert_eq!(c3["end_reason"], "idle");
    // Emission order: the three connections ended by their timers come
    // before the one the end of input flushed.
    assert_eq!(conns[3]["orig_port"], 4444);
    assert_eq!(conns[3]["end_reason"], "shutdown");
    assert_eq!(st["conns"]["unpaired_flows"], 2);
    assert_eq!(c2["end_reason"], "fin", "its last direction ended by RST");
    assert_eq!(st["conns"]["end_reason"]["idle"], 2);
    assert_eq!(st["conns"]["end_reason"]["fin"], 1);
}

/// Connections both ways of many flows, sent to the live collector with 1
/// and 2 workers: every connection once, paired (so both directions met in
/// one shard), the same set for both worker counts, every packet counted.
#[test]
fn collect_pairs_with_one_and_two_workers() {
    let e = Ipv4Addr::new(127, 0, 1, 1);
    let mut dgs = Vec::new();
    for i in 0..40u32 {
        let recs: Vec<RecordFields> = (0..15u32)
            .flat_map(|j| {
                let n = i * 15 + j;
                let (a, b) = (0x0a01_0000 | n, 0x0a02_0000 | (n % 7));
                let sport = 20000 + n as u16;
                [
                    rec(a, sport, b, 443, 6, 0x1b, 3 + n % 5, (UP - 900, UP - 100)),
                    rec(b, 443, a, sport, 6, 0x1b, 2 + n % 3, (UP - 899, UP - 100)),
                ]
            })
            .collect();
        dgs.push(dg(T0 + i as u64 * 1000, e, i * 30, &recs));
    }
    let mut sets = Vec::new();
    for w in ["1", "2"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("conns.jsonl");
        let c =
            start(&["--workers", w, "--rcvbuf", "8000000", "--pair", "-o", out.to_str().unwrap()]);
        let addr: SocketAddr = c.addr;
        assert_eq!(send(&dgs, addr), 40);
        let (_, st, _) = c.stop();
        let conns = jsonl(&std::fs::read_to_string(&out).unwrap());
        assert_eq!(st["datagrams"], 40, "{w} workers");
        assert_conns_conserved(&conns, &st);
        assert_eq!(conns.len(), 600, "{w} workers: one row per connection");
        assert_eq!(st["conns"]["paired"], 600, "{w} workers: both directions met");
        assert!(conns.iter().all(|c| c["conn_state"] == "SF" && c["resp_port"] == 443));
        let set: BTreeSet<String> = conns
            .iter()
            .map(|c| {
                format!(
                    "{} {} {} {}",
                    c["orig_addr"], c["orig_port"], c["orig_packets"], c["resp_packets"]
                )
            })
            .collect();
        assert_eq!(set.len(), 600);
        sets.push(set);
    }
    assert_eq!(sets[0], sets[1]);
}

#[test]
fn pair_flags_fail_clearly() {
    for (args, needle) in [
        (vec!["replay", "--pair", "--key", "exporter,src,dst", "x"], "--pair needs"),
        (vec!["replay", "--pair", "--no-stitch", "x"], "--no-stitch"),
    ] {
        let r = run(nfstitch().args(&args));
        assert!(!r.status.success(), "{args:?}");
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
}
