//! The `loadgen` binary: flags, refusals, files it writes. Every run is
//! bounded in time and only ever targets 127.0.0.1.

use std::io::Read;
use std::net::UdpSocket;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Run `loadgen args`, killing it after `limit`.
fn loadgen(args: &[&str], limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loadgen");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("loadgen {args:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    (Output { status, stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() }, elapsed)
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

#[test]
fn remote_target_is_refused_before_sending() {
    let (out, took) = loadgen(
        &["--target", "8.8.8.8:2055", "--count", "1", "--pps", "1"],
        Duration::from_secs(20),
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--allow-remote"), "{stderr}");
    assert!(stderr.contains("8.8.8.8"), "{stderr}");
    assert!(!text(&out.stdout).contains("send:"), "nothing was sent");
    assert!(took < Duration::from_secs(10));
}

#[test]
fn bad_flags_fail_clearly() {
    let (out, _) = loadgen(&["--pps", "bogus"], Duration::from_secs(20));
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("--pps") && e.contains("2M, 500k, 1500"), "{e}");

    let (out, _) = loadgen(
        &["--records-per-datagram", "31", "--pcap-out", "/dev/null"],
        Duration::from_secs(20),
    );
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("--records-per-datagram") && e.contains("1..=30"), "{e}");

    let (out, _) = loadgen(&["--new-rate", "5", "--time-scale", "2"], Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--time-scale"));

    let (out, _) = loadgen(&["--duration", "soon"], Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--duration"));
}

#[test]
fn pcap_out_writes_the_truth_json() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("x.pcap");
    let truth = dir.path().join("truth.json");
    let args = [
        "--pcap-out",
        pcap.to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
        "--count",
        "60",
        "--exporters",
        "2",
        "--corrupt-ratio",
        "0.2",
    ];
    let (out, _) = loadgen(&args, Duration::from_secs(30));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("truth: datagrams 60  records 1800"), "{stdout}");
    let t: Value = serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
    assert_eq!(t["datagrams"], 60);
    assert_eq!(t["records"], 1800);
    assert!(t["packets"].as_u64().unwrap() >= 1800);
    assert!(t["octets"].as_u64().unwrap() > t["packets"].as_u64().unwrap());
    let ex = t["exporters"].as_array().unwrap();
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0]["exporter"], "127.0.1.1");
    assert_eq!(ex[1]["exporter"], "127.0.1.2");
    assert_eq!(ex.iter().map(|e| e["datagrams"].as_u64().unwrap()).sum::<u64>(), 60);
    let c = &t["corrupt"];
    let corrupt: u64 = ["too_short", "bad_version", "bad_count", "length_mismatch"]
        .iter()
        .map(|k| c[k].as_u64().expect(k))
        .sum();
    assert!(corrupt > 0);
    let conns = t["connections"].as_array().expect("pcap runs list connections");
    for k in [
        "exporter", "src_addr", "src_port", "dst_addr", "dst_port", "proto", "packets", "octets",
        "records", "first", "last",
    ] {
        assert!(!conns[0][k].is_null(), "connection field {k}");
    }
    assert_eq!(conns.iter().map(|c| c["records"].as_u64().unwrap()).sum::<u64>(), 1800);
    // 60 valid + the malformed ones, 16 + 42 bytes of pcap framing each.
    let frames = 60 + corrupt;
    assert!(std::fs::metadata(&pcap).unwrap().len() > 24 + frames * 58);
}

#[test]
fn live_run_reports_rate_and_writes_the_histogram() {
    // A socket nobody reads: datagrams to it are simply dropped by the kernel.
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = rx.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("t.json");
    let hist = dir.path().join("h");
    let args = [
        "--target",
        &target,
        "--pps",
        "2k",
        "--count",
        "100",
        "--truth-connections",
        "--truth",
        truth.to_str().unwrap(),
        "--histogram-dir",
        hist.to_str().unwrap(),
    ];
    let (out, took) = loadgen(&args, Duration::from_secs(30));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(took < Duration::from_secs(20));
    assert!(stdout.contains("send: 100 datagrams"), "{stdout}");
    assert!(stdout.contains("send: target 2000 datagrams/s"), "{stdout}");
    assert!(stdout.contains("send lateness (us): p50"), "{stdout}");
    let t: Value = serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
    assert_eq!(t["datagrams"], 100);
    assert!(!t["connections"].as_array().unwrap().is_empty());
    let h = std::fs::read_to_string(hist.join("send_lateness.hgrm")).unwrap();
    assert!(h.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n"), "{h}");
    assert!(h.contains("#[Max     ="), "{h}");
    assert!(h.contains("#[Buckets ="), "{h}");
    // The same formats as the collector: it parses back, with its SVG plot next to it.
    let d = nfstitch::hist::parse_hgrm(&h).unwrap();
    assert!(d.total_count > 0);
    let svg = std::fs::read_to_string(hist.join("send_lateness.svg")).unwrap();
    assert_eq!(svg.matches("<polyline class=\"series\"").count(), 1);
}

#[test]
fn demo_shows_exact_accounting() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nfstitch-demo"))
        .args(["--pps", "400", "--seconds", "1"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("accounting: loadgen sent 400 datagrams"), "{stdout}");
    assert!(stdout.contains(": exact"), "{stdout}");
    assert!(stdout.contains("every accepted record is in exactly one flow"), "{stdout}");
}

/// The "in X s" of the `send:` line.
fn send_seconds(stdout: &str) -> f64 {
    let line = stdout.lines().find(|l| l.starts_with("send: ")).expect("a send: line");
    let rest = &line[line.find(" in ").expect("in X s") + 4..];
    rest[..rest.find(" s ").unwrap()].parse().unwrap()
}

#[test]
fn pool_refusals_fail_clearly_before_sending() {
    let cases: [(&[&str], &str); 5] = [
        (&["--pool", "0"], "1..=1000000"),
        (&["--pool", "5M"], "1..=1000000"),
        (&["--pool", "3", "--exporters", "4"], "--exporters"),
        (&["--pool", "10", "--count", "10", "--truth-connections"], "--truth-connections"),
        (&["--pool", "10", "--count", "10", "--pcap-out", "/dev/null"], "--pcap-out"),
    ];
    for (args, want) in cases {
        let (out, took) = loadgen(args, Duration::from_secs(20));
        let e = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {e}");
        assert!(e.contains("error: --pool") && e.contains(want), "{args:?}: {e}");
        assert!(!text(&out.stdout).contains("send:"), "{args:?}: nothing was sent");
        assert!(took < Duration::from_secs(10));
    }
    let (out, _) = loadgen(&["--pool", "lots"], Duration::from_secs(20));
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("--pool") && e.contains("2M, 500k, 1500"), "{e}");
}

#[test]
fn pool_run_stops_at_the_deadline_and_lists_no_connections() {
    // A socket nobody reads: the kernel drops what it cannot queue.
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = rx.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("t.json");
    let args = [
        "--target",
        &target,
        "--pool",
        "1k",
        "--pps",
        "0",
        "--duration",
        "1s",
        "--exporters",
        "2",
        "--truth",
        truth.to_str().unwrap(),
    ];
    let (out, took) = loadgen(&args, Duration::from_secs(30));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(send_seconds(&stdout) <= 1.1, "{stdout}");
    assert!(stdout.contains("pool: 1000 datagrams (30000 records"), "{stdout}");
    let t: Value = serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
    assert!(t.get("connections").is_none(), "keys recur: no connections in pool mode");
    assert_eq!(t["pool"]["datagrams"], 1000);
    assert_eq!(t["pool"]["records"], 30000);
    let dg = t["datagrams"].as_u64().unwrap();
    assert!(dg > 1000, "more than one pass: {dg}");
    let ex = t["exporters"].as_array().unwrap();
    assert_eq!(ex.iter().map(|e| e["datagrams"].as_u64().unwrap()).sum::<u64>(), dg);
    assert_eq!(t["records"].as_u64().unwrap(), 30 * dg);
}

#[test]
fn duration_bounds_a_run_whose_routers_hold_much() {
    // Millions of concurrent flows: at the deadline the routers hold far
    // more than can be flushed in the grace period; the run still ends.
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = rx.local_addr().unwrap().to_string();
    let args = [
        "--target",
        &target,
        "--pps",
        "100k",
        "--flows",
        "3M",
        "--time-scale",
        "1000",
        "--duration",
        "1s",
    ];
    let (out, took) = loadgen(&args, Duration::from_secs(30));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let secs = send_seconds(&stdout);
    assert!(secs <= 1.3, "sending ran {secs} s for --duration 1s (grace 0.2 s)");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(stderr.contains("were not sent (nor counted in the truth)"), "{stderr}");
}

#[test]
fn templated_flags_fail_clearly() {
    let cases: [(&[&str], i32, &str); 8] = [
        (&["--ipv6", "0.3"], 1, "--ipv6: NetFlow v5 carries IPv4 only"),
        (&["--version", "5", "--data-before-template", "2"], 1, "--data-before-template"),
        (&["--template-interval", "5s"], 1, "NetFlow v5 has no templates"),
        (&["--version", "7"], 2, "5 (NetFlow v5), 9 (NetFlow v9) or 10 (IPFIX)"),
        (&["--version", "9", "--ipv6", "1.5"], 1, "--ipv6: must be a fraction in 0..=1"),
        (&["--version", "9", "--template-every", "0"], 1, "--template-every"),
        (&["--version", "10", "--template-interval", "0s"], 1, "--template-interval"),
        (&["--version", "9", "--pool", "10", "--data-before-template", "1"], 1, "--pool"),
    ];
    for (args, code, want) in cases {
        let mut a = args.to_vec();
        a.extend(["--pcap-out", "/dev/null", "--count", "10"]);
        if a.contains(&"--pool") {
            a.truncate(a.len() - 4); // --pool refuses --pcap-out before the rest
        }
        let (out, took) = loadgen(&a, Duration::from_secs(20));
        let e = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{a:?}: {e}");
        assert!(e.contains(want), "{a:?}: {e}");
        assert!(!text(&out.stdout).contains("send:"), "{a:?}: nothing was sent");
        assert!(took < Duration::from_secs(10));
    }
}

#[test]
fn ipfix_pcap_truth_counts_templates_apart_from_flow_records() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("x.pcap");
    let truth = dir.path().join("truth.json");
    let args = [
        "--version",
        "10",
        "--ipv6",
        "0.5",
        "--sampling",
        "64",
        "--data-before-template",
        "1",
        "--pcap-out",
        pcap.to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
        "--count",
        "40",
        "--exporters",
        "2",
    ];
    let (out, _) = loadgen(&args, Duration::from_secs(30));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The MTU-fitting default: 11 records (IPv6 present, sampling options).
    assert!(stdout.contains("11 records/datagram"), "{stdout}");
    assert!(stdout.contains("truth: datagrams 40  records 440"), "{stdout}");
    assert!(stdout.contains("templated: template records"), "{stdout}");
    let t: Value = serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
    assert_eq!(t["records"], 440, "flow records only");
    for e in t["exporters"].as_array().unwrap() {
        // IPv4 and IPv6 templates and the sampling options template, sent
        // with datagram 2 (1 held back), once (20 s of router time not passed).
        assert_eq!(e["template_records"], 3, "{e}");
        assert_eq!(e["options_records"], 1, "{e}");
        assert_eq!(e["template_datagrams"], 1, "{e}");
        assert_eq!(e["no_template_datagrams"], 1, "{e}");
        assert_eq!(e["no_template_records"], 11, "{e}");
        assert!(e["ipv6_records"].as_u64().unwrap() > 0, "{e}");
    }
    let conns = t["connections"].as_array().expect("listed");
    assert!(conns.iter().any(|c| c["src_addr"].as_str().unwrap().starts_with("2001:db8:")));
    assert!(conns.iter().any(|c| c["src_addr"].as_str().unwrap().starts_with("10.")));
}

#[test]
fn v5_truth_json_has_no_templated_keys() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.json");
    let args = ["--pcap-out", "/dev/null", "--truth", truth.to_str().unwrap(), "--count", "5"];
    let (out, _) = loadgen(&args, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = std::fs::read_to_string(&truth).unwrap();
    for k in ["template", "ipv6", "options_records"] {
        assert!(!s.contains(k), "{k} in a v5 truth: {s}");
    }
}

#[test]
fn dash_v_prints_the_version_while_version_picks_the_format() {
    let (out, _) = loadgen(&["-V"], Duration::from_secs(20));
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("loadgen "), "{}", text(&out.stdout));
    let (out, _) = loadgen(
        &["--version", "9", "--pcap-out", "/dev/null", "--count", "3"],
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("model: NetFlow v9"), "{}", text(&out.stdout));
}
