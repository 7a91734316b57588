//! `--pair`: both directions of a connection in one `conn` row, emitted
//! exactly once, with every packet of the input in exactly one connection.
//! Replays of synthetic captures for order and timing (directions from two
//! exporters far apart in time, one split into several records; a FIN
//! direction waiting for an idle partner; a partner that comes after its
//! other direction ended; a direction that never gets one), the live
//! collector with 1 and 2 workers, and bad flags.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use nfstitch::wire::RecordFields;
use serde_json::Value;

use crate::collect::{send, start};
use crate::util::*;

const T0: u64 = 1_700_000_000 * S;
const MIN: u64 = 60 * S;

/// A record a.b.c.d:sport -> w.x.y.z:dport (addresses as u32), its times
/// in ms of uptime (the datagram's uptime is 1 h).
#[allow(clippy::too_many_arguments)]
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
    let mut states = std::collections::BTreeMap::new();
    for s in conns {
        *states.entry(s["conn_state"].as_str().unwrap()).or_insert(0u64) += 1;
    }
    for (state, n) in states {
        assert_eq!(c["conn_state"][state].as_u64().unwrap(), n, "{state}");
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

/// A free TCP port on 127.0.0.1 below Linux's ephemeral range (32768-60999),
/// so that the client's port is the higher one (the last originator rule).
fn low_free_port(from: u16, listen: bool) -> (u16, Option<std::net::TcpListener>) {
    for p in from..from + 2000 {
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", p)) {
            return (p, listen.then_some(l));
        }
    }
    panic!("no free port in {from}..{}", from + 2000);
}

/// One TCP direction in a capture: packets, IPv4 total lengths, ORed flags.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Dir {
    packets: u64,
    ip_bytes: u64,
    flags: u8,
}

/// Per TCP direction (src ip, sport, dst ip, dport) of a classic pcap of
/// Ethernet frames (tcpdump on lo): its own reading, not nfstitch's.
fn pcap_directions(bytes: &[u8]) -> std::collections::BTreeMap<(u32, u16, u32, u16), Dir> {
    let mut m = std::collections::BTreeMap::new();
    let le = match u32::from_le_bytes(bytes[0..4].try_into().unwrap()) {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        x => panic!("not a pcap: {x:#x}"),
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let incl = u32_at(at + 8) as usize;
        let f = &bytes[at + 16..at + 16 + incl];
        at += 16 + incl;
        if f.len() < 34 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
            continue;
        }
        let ip = &f[14..];
        let ihl = (ip[0] & 0x0f) as usize * 4;
        let tcp = &ip[ihl..];
        let be16 = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let key = (be32(&ip[12..]), be16(tcp), be32(&ip[16..]), be16(&tcp[2..]));
        let d: &mut Dir = m.entry(key).or_default();
        d.packets += 1;
        d.ip_bytes += be16(&ip[2..]) as u64;
        d.flags |= tcp[13];
    }
    m
}

/// Real TCP on loopback, captured by tcpdump, exported by softflowd,
/// collected with `--pair` by 2 workers: completed connections (both
/// sides close: `SF`), connections to a closed port (`REJ`) and
/// connections the client aborts with a RST (`RSTO`). One `conn` row per
/// TCP connection of the capture, the client its originator, each
/// direction's packets and IP bytes what the capture holds.
#[test]
fn softflowd_capture_pairs_into_connections() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use crate::interop::{find_tool, softflowd_export, softflowd_report, Guard, STEP};

    let mut tools = Vec::new();
    for n in ["softflowd", "tcpdump"] {
        match find_tool(n) {
            Some(p) => tools.push(p),
            None => return skip(&format!("{n} not installed (run .ci/install-deps.sh as root)")),
        }
    }
    let (softflowd, tcpdump) = (tools[0].clone(), tools[1].clone());
    let dir = tempfile::tempdir().unwrap();
    let (port, listener) = low_free_port(21000, true);
    let listener: TcpListener = listener.unwrap();
    let (closed, _) = low_free_port(23000, false);

    let cap = dir.path().join("conns.pcap");
    let mut td = Guard::spawn(
        "tcpdump",
        std::process::Command::new(&tcpdump)
            .args(["-i", "lo", "-n", "-U", "--immediate-mode", "-s", "0", "-B", "16384", "-w"])
            .arg(&cap)
            .arg(format!("tcp and (port {port} or port {closed})")),
    );
    let mut seen = Vec::new();
    if let Err(e) = td.wait_line(STEP, &mut seen, |l| l.contains("listening on").then_some(())) {
        let text = seen.join("\n");
        if text.contains("ermission") || text.contains("not permitted") {
            return skip(&format!(
                "tcpdump cannot capture on lo here (needs root/CAP_NET_RAW): {text}"
            ));
        }
        panic!("tcpdump did not start: {e}\n{text}");
    }
    std::thread::sleep(Duration::from_millis(300));

    const DONE: usize = 3;
    const RESET: usize = 2;
    const REFUSED: usize = 2;
    // The server: for a completed connection, read the request to its end,
    // answer, close; for an aborted one, read until the client's RST.
    let server = std::thread::spawn(move || {
        for _ in 0..DONE + RESET {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut req = Vec::new();
            let _ = s.read_to_end(&mut req);
            if req.starts_with(b"GET") {
                s.write_all(&vec![b'r'; 3000]).unwrap();
            }
        }
    });
    let mut clients = Vec::new();
    for i in 0..DONE {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(format!("GET /{i}").as_bytes()).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut resp = Vec::new();
        c.read_to_end(&mut resp).unwrap();
        assert_eq!(resp.len(), 3000);
        clients.push(("SF", c.local_addr().unwrap().port()));
    }
    for _ in 0..RESET {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"ABORT").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
        clients.push(("RSTO", c.local_addr().unwrap().port()));
        drop(c); // linger 0: the close sends a RST
    }
    for _ in 0..REFUSED {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
        let local = s.local_addr().unwrap().as_socket().unwrap().port();
        let err = s.connect(&SocketAddr::from(([127, 0, 0, 1], closed)).into()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        clients.push(("REJ", local));
    }
    server.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (st, td_out) = td.stop(Some("-INT"), STEP);
    assert!(st.success(), "tcpdump failed: {td_out}");

    // The capture's own view: per connection (by client port) both directions.
    let dirs = pcap_directions(&std::fs::read(&cap).unwrap());
    let lo = u32::from(Ipv4Addr::LOCALHOST);
    let expect: Vec<(&str, u16, u16, Dir, Dir)> = clients
        .iter()
        .map(|&(state, cport)| {
            let sport = if state == "REJ" { closed } else { port };
            let o = dirs.get(&(lo, cport, lo, sport)).copied().unwrap_or_default();
            let r = dirs.get(&(lo, sport, lo, cport)).copied().unwrap_or_default();
            assert!(o.packets > 0 && r.packets > 0, "{state} {cport}: {dirs:?}\n{td_out}");
            (state, cport, sport, o, r)
        })
        .collect();
    assert_eq!(dirs.len(), 2 * clients.len(), "only our connections captured: {dirs:?}");

    // softflowd -> nfstitch collect --pair, two workers.
    let out = dir.path().join("conns.jsonl");
    let stp = dir.path().join("stats.json");
    let mut nfs = Guard::spawn(
        "nfstitch",
        nfstitch()
            .args(["collect", "--listen", "127.0.0.1:0", "--workers", "2", "--stats-interval", "0"])
            .args(["--pair", "-o"])
            .arg(&out)
            .arg("--stats-json")
            .arg(&stp),
    );
    let mut seen = Vec::new();
    let addr: SocketAddr = nfs
        .wait_line(Duration::from_secs(20), &mut seen, |l| {
            l.strip_prefix("nfstitch: listening on ")?.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", seen.join("\n")));
    let sf = softflowd_export(&softflowd, dir.path(), &cap, addr, "p", "5");
    let (processed, _, sf_records, _) = softflowd_report(&sf);
    std::thread::sleep(Duration::from_millis(300));
    let (status, err) = nfs.stop(Some("-TERM"), STEP);
    assert!(status.success(), "nfstitch failed: {err}");
    let st = stats(&stp);
    let conns = jsonl(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(st["records"].as_u64().unwrap(), sf_records, "{sf}");
    assert_eq!(st["packets"].as_u64().unwrap(), processed);
    assert_conns_conserved(&conns, &st);
    assert_eq!(conns.len(), clients.len(), "one connection per TCP connection: {conns:#?}");
    for (state, cport, sport, o, r) in expect {
        let c = conns
            .iter()
            .find(|c| c["orig_port"] == cport)
            .unwrap_or_else(|| panic!("no connection with originator port {cport}: {conns:#?}"));
        let what = format!("{state} {cport}: {c}");
        assert_eq!(c["resp_port"], sport, "{what}");
        assert_eq!(c["orig_packets"].as_u64().unwrap(), o.packets, "{what}");
        assert_eq!(c["orig_octets"].as_u64().unwrap(), o.ip_bytes, "{what}");
        assert_eq!(c["resp_packets"].as_u64().unwrap(), r.packets, "{what}");
        assert_eq!(c["resp_octets"].as_u64().unwrap(), r.ip_bytes, "{what}");
        assert_eq!(c["orig_flags"].as_u64().unwrap(), u64::from(o.flags), "{what}");
        assert_eq!(c["resp_flags"].as_u64().unwrap(), u64::from(r.flags), "{what}");
        assert_eq!(c["conn_state"], state, "{what}");
    }
    assert_eq!(st["conns"]["paired"].as_u64().unwrap() as usize, clients.len());
}

/// A connection as compared with loadgen's truth: exporter, protocol, the
/// originator's (address, port, packets, octets), the responder's (none
/// when unpaired), records.
type TruthConn = (String, u64, (String, u64, u64, u64), Option<(String, u64, u64, u64)>, u64);

/// loadgen's v5 model makes sessions of one or two directions, and its
/// truth lists every direction (`ConnTruth`: its key, sums and first): a
/// direction whose reverse key (ICMP: echo request and reply) is in the
/// truth is the other half of its session. With `--pair` every session is
/// exactly one connection, the direction seen first its originator, each
/// side's packets and octets the truth's, in a replay of its capture and in
/// the live collector with 1 and 2 workers (the same datagrams sent over
/// loopback: both directions of every session meet in one shard).
#[test]
fn loadgen_sessions_are_connections() {
    use std::collections::BTreeMap;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("lg.pcap");
    let cfg = loadgen::Config {
        count: Some(600),
        pps: 1000,
        time_scale: Some(200.0),
        flows: 2000,
        active_timeout: Duration::from_secs(60),
        inactive_timeout: Duration::from_secs(5),
        exporters: 3,
        seed: 11,
        ..loadgen::Config::default()
    };
    let (truth, _) = loadgen::write_pcap(&cfg, &pcap).unwrap();
    let dirs = truth.connections.as_ref().expect("pcap runs list connections");
    // A direction's key, and its reverse's (ICMP: echo request 8 <-> reply 0).
    type Key = (String, u8, String, u16, String, u16);
    let key = |c: &loadgen::ConnTruth| -> Key {
        let e = c.exporter.to_string();
        (e, c.proto, c.src_addr.to_string(), c.src_port, c.dst_addr.to_string(), c.dst_port)
    };
    let reverse = |k: &Key| -> Key {
        let (e, p, s, sp, d, dp) = k.clone();
        match (p, dp >> 8) {
            (1, 8) => (e, p, d, sp, s, 0),
            (1, 0) => (e, p, d, sp, s, 8 << 8),
            _ => (e, p, d, dp, s, sp),
        }
    };
    let by_key: BTreeMap<Key, &loadgen::ConnTruth> = dirs.iter().map(|c| (key(c), c)).collect();
    assert_eq!(by_key.len(), dirs.len(), "truth keys are unique");
    let side =
        |c: &loadgen::ConnTruth| (c.src_addr.to_string(), c.src_port as u64, c.packets, c.octets);
    let mut want: BTreeSet<TruthConn> = BTreeSet::new();
    for c in dirs {
        let k = key(c);
        let e = c.exporter.to_string();
        match by_key.get(&reverse(&k)) {
            None => {
                want.insert((e, c.proto as u64, side(c), None, c.records));
            }
            Some(r) if (c.first, &k) < (r.first, &reverse(&k)) => {
                want.insert((e, c.proto as u64, side(c), Some(side(r)), c.records + r.records));
            }
            Some(_) => {}
        }
    }
    let paired = want.iter().filter(|w| w.3.is_some()).count();
    assert!(
        paired > 100 && paired < want.len(),
        "sessions of both kinds: {paired} of {}",
        want.len()
    );
    let got_set = |rows: &[Value]| -> BTreeSet<TruthConn> {
        rows.iter()
            .map(|c| {
                let s = |k: &str| c[k].as_str().unwrap().to_string();
                let n = |k: &str| c[k].as_u64().unwrap();
                let orig = (s("orig_addr"), n("orig_port"), n("orig_packets"), n("orig_octets"));
                let resp = (n("resp_packets") > 0).then(|| {
                    // The responder's own source port (ICMP: none, as loadgen's 0).
                    let port = if n("proto") == 1 { 0 } else { n("resp_port") };
                    (s("resp_addr"), port, n("resp_packets"), n("resp_octets"))
                });
                (s("exporter"), n("proto"), orig, resp, n("records"))
            })
            .collect()
    };
    // Replay: idle far above the router's timeouts, so no direction is split.
    let st = dir.path().join("st.json");
    let r = run_ok(
        nfstitch()
            .args(["replay", "-q", "--pair", "--idle", "10m", "--linger", "5m", "--stats-json"])
            .arg(&st)
            .arg(&pcap),
    );
    let got = jsonl(&r.stdout);
    let st = stats(&st);
    assert_conns_conserved(&got, &st);
    assert_eq!(st["packets"], truth.packets);
    assert_eq!(got.len(), want.len(), "one connection per session");
    assert_eq!(got_set(&got), want);

    // Live: the capture's datagrams, from their exporters' addresses.
    let mut dgs = Vec::new();
    let mut skips = nfstitch::capture::SkipCounters::default();
    nfstitch::capture::read_path(&pcap, None, &mut skips, |f| {
        let IpAddr::V4(exporter) = f.src else { panic!("loadgen exports from IPv4") };
        dgs.push(Dg { ts_ns: f.ts_ns.unwrap(), exporter, bytes: f.payload.to_vec() });
    })
    .unwrap();
    for w in ["1", "2"] {
        let out = dir.path().join(format!("live{w}.jsonl"));
        let c =
            start(&["--workers", w, "--rcvbuf", "16000000", "--pair", "-o", out.to_str().unwrap()]);
        send(&dgs, c.addr);
        let (_, st, _) = c.stop();
        let got = jsonl(&std::fs::read_to_string(&out).unwrap());
        assert_eq!(st["kernel_drops"], 0, "{w} workers");
        assert_eq!(st["packets"], truth.packets, "{w} workers");
        assert_conns_conserved(&got, &st);
        assert_eq!(got.len(), want.len(), "{w} workers: one connection per session");
        assert_eq!(got_set(&got), want, "{w} workers");
    }
}
