//! `nfstitch replay` on the public captures (oracle) and on synthetic
//! captures made with the encoder at chosen timestamps.

use std::net::Ipv4Addr;

use serde_json::Value;

use crate::util::*;

const T0: u64 = 1_700_000_000 * S;
const E1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const FIN: u8 = 0x01;
const ACK: u8 = 0x10;

/// Replay `files` with extra args; return (flows, stats).
fn replay(args: &[&str], files: &[&std::path::Path]) -> (Vec<Value>, Value, Run) {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("stats.json");
    let mut cmd = nfstitch();
    cmd.arg("replay").args(args).arg("--stats-json").arg(&st).args(files);
    let r = run_ok(&mut cmd);
    let stats = stats(&st);
    (flows(&r.stdout), stats, r)
}

#[test]
fn oracle_rows() {
    let Some(data) = testdata() else { return };
    let tsv = std::fs::read_to_string(data.join("oracle.tsv")).unwrap();
    let mut lines = tsv.lines();
    let cols: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |row: &[&str], name: &str| -> u64 {
        row[cols.iter().position(|c| *c == name).unwrap()].parse().unwrap()
    };
    let mut checked = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let row: Vec<&str> = line.split('\t').collect();
        let file = data.join(row[0]);
        let (flows, st, _) = replay(&[], &[&file]);
        let name = row[0];
        assert_eq!(st["datagrams"], col(&row, "strict_ok_datagrams"), "{name}: datagrams");
        assert_eq!(st["records"], col(&row, "strict_records"), "{name}: records");
        assert_eq!(st["packets"], col(&row, "strict_sum_dPkts"), "{name}: packets");
        assert_eq!(st["octets"], col(&row, "strict_sum_dOctets"), "{name}: octets");
        let rejected: u64 =
            st["rejected"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(
            rejected + col(&row, "strict_ok_datagrams"),
            col(&row, "datagrams"),
            "{name}: every datagram accepted or rejected"
        );
        if name.contains("invalid") {
            assert_eq!(st["rejected"]["bad_count"], 1, "{name}: rejected as bad_count");
            assert!(flows.is_empty());
        }
        assert_conserved(&flows, &st);
        assert_eq!(st["active_flows"], 0);
        checked += 1;
    }
    assert_eq!(checked, 16, "oracle rows checked");
}

#[test]
fn invalid_files_do_not_stop_the_replay() {
    let Some(data) = testdata() else { return };
    let ls = data.join("logstash-codec-netflow");
    let (flows, st, _) = replay(
        &[],
        &[
            &ls.join("netflow5_test_invalid01.dat"),
            &ls.join("netflow5_test_microtik.dat"),
            &ls.join("netflow5_test_invalid02.dat"),
            &ls.join("netflow5_test_juniper_mx80.dat"),
        ],
    );
    assert_eq!(st["rejected"]["bad_count"], 2);
    assert_eq!(st["datagrams"], 2);
    assert_eq!(st["records"], 59);
    assert_eq!(st["packets"], 160 + 31);
    assert_conserved(&flows, &st);
}

#[test]
fn netflow5_dat_restitches_to_six_flows() {
    let Some(data) = testdata() else { return };
    let f = data.join("logstash-codec-netflow/netflow5.dat");
    let (flows, st, _) = replay(&["--key", "proto,src,sport,dst,dport"], &[&f]);
    // (src, sport, dst, dport, records, packets, octets, fin) from PROVENANCE.md.
    let want = [
        ("10.0.2.2", 54435, "10.0.2.15", 22, 12, 86, 3956, false),
        ("10.0.2.15", 22, "10.0.2.2", 54435, 12, 85, 7084, false),
        ("10.0.2.2", 54837, "10.0.2.15", 22, 1, 5, 322, true),
        ("10.0.2.15", 22, "10.0.2.2", 54837, 1, 2, 80, true),
        ("10.0.2.2", 54844, "10.0.2.15", 22, 2, 29, 2826, true),
        ("10.0.2.15", 22, "10.0.2.2", 54844, 2, 23, 4416, true),
    ];
    assert_eq!(flows.len(), 6);
    for (src, sport, dst, dport, recs, pkts, octs, fin) in want {
        let f = flows
            .iter()
            .find(|f| {
                f["src_addr"] == src
                    && f["src_port"] == sport
                    && f["dst_addr"] == dst
                    && f["dst_port"] == dport
            })
            .unwrap_or_else(|| panic!("flow {src}:{sport} -> {dst}:{dport} missing"));
        assert_eq!(
            (f["records"].as_u64(), f["packets"].as_u64(), f["octets"].as_u64()),
            (Some(recs), Some(pkts), Some(octs))
        );
        assert_eq!(f["tcp_flags"].as_u64().unwrap() & 1 == 1, fin, "{src}:{sport} fin");
    }
    // The 0xFFFFFFFF First wraps to just before the export time, not 49 days later.
    let first = flows.iter().map(|f| f["first"].as_str().unwrap().to_string()).min().unwrap();
    assert!(first.starts_with("2015-05-02T18:38:04.898"), "first = {first}");
    assert_conserved(&flows, &st);
}

#[test]
fn netgraph_restitches_to_107_flows() {
    let Some(data) = testdata() else { return };
    let f = data.join("graylog-plugin-netflow/netgraph-netflow5.pcap");
    let (flows, st, _) = replay(&["--key", "proto,src,sport,dst,dport"], &[&f]);
    assert_eq!(flows.len(), 107);
    assert_eq!(st["records"], 120);
    assert_conserved(&flows, &st);
    // The default key (with the exporter) gives the same here: one exporter.
    let (flows, _, _) = replay(&[], &[&f]);
    assert_eq!(flows.len(), 107);
}

#[test]
fn port_filter_and_linktypes() {
    let Some(data) = testdata() else { return };
    let f = data.join("akvorado/nfv5.pcap");
    let (_, st, _) = replay(&["--port", "2055"], &[&f]);
    assert_eq!(st["datagrams"], 0);
    assert_eq!(st["frames_skipped"]["port_filtered"], 1);
    let (flows, st, _) = replay(&["--port", "9990"], &[&f]);
    assert_eq!(st["datagrams"], 1);
    assert_eq!(flows.len(), 29);
    assert_eq!(flows[0]["exporter"], "10.19.144.41");
}

#[test]
fn d3_later_fin_extends_linger_across_datagrams() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_pcap(
        dir.path(),
        "d3.pcap",
        &[
            dg(T0, E1, 0, &[tcp(1000, FIN | ACK, 1)]),
            // 300 s later, before the first linger ends: a later FIN/RST.
            dg(T0 + 300 * S, E1, 1, &[tcp(1000, 0x04, 1)]),
            // 311 s after the first FIN: the flow must still be open.
            dg(T0 + 311 * S, E1, 2, &[tcp(1000, ACK, 1)]),
            // Well after the extended linger: a new flow with the same key.
            dg(T0 + 700 * S, E1, 3, &[tcp(1000, ACK, 7)]),
            // The first flow's old deadline (T0+310) and the extended one
            // (T0+610) are past; the new flow must only end idle at T0+700+1860.
            dg(T0 + 2000 * S, E1, 4, &[tcp(2000, ACK, 1)]),
        ],
    );
    let (flows, st, _) = replay(&[], &[&p]);
    let k1: Vec<&Value> = flows.iter().filter(|f| f["src_port"] == 1000).collect();
    assert_eq!(k1.len(), 2, "{k1:?}");
    assert_eq!((k1[0]["records"].as_u64(), k1[0]["end_reason"].as_str()), (Some(3), Some("fin")));
    assert_eq!(k1[0]["end"], "2023-11-14T22:23:30.000000000Z", "T0 + 300 s + 310 s");
    assert_eq!((k1[1]["records"].as_u64(), k1[1]["packets"].as_u64()), (Some(1), Some(7)));
    assert_eq!(k1[1]["end_reason"], "shutdown", "new flow not cut by an old deadline");
    assert_conserved(&flows, &st);
}

#[test]
fn d4_idle_from_last_record_and_d5_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    // A 2-hour flow with a record every 20 minutes, then 40 minutes of
    // other traffic: ends idle 31 min after its last record, exactly once.
    let mut dgs = Vec::new();
    for i in 0..7u32 {
        dgs.push(dg(T0 + i as u64 * 1200 * S, E1, i, &[tcp(5000, ACK, 10)]));
    }
    let last = T0 + 6 * 1200 * S;
    dgs.push(dg(last + 1859 * S, E1, 7, &[tcp(6000, FIN, 1)]));
    dgs.push(dg(last + 1861 * S, E1, 8, &[tcp(6001, ACK, 1)]));
    let p = write_pcap(dir.path(), "d4.pcap", &dgs);
    let (flows, st, _) = replay(&[], &[&p]);
    let long: Vec<&Value> = flows.iter().filter(|f| f["src_port"] == 5000).collect();
    assert_eq!(long.len(), 1, "long flow cut or duplicated: {long:?}");
    assert_eq!(
        (long[0]["records"].as_u64(), long[0]["end_reason"].as_str()),
        (Some(7), Some("idle"))
    );
    // Idle was emitted before the next datagram was applied, in time order.
    assert_eq!(flows[0]["src_port"], 5000);
    // D5: every flow once; pending FIN timers do not duplicate at shutdown.
    assert_eq!(flows.len(), 3);
    assert_eq!(st["flows"]["shutdown"], 2);
    assert_conserved(&flows, &st);
}

#[test]
fn d10_eviction_is_counted_and_conserved() {
    let dir = tempfile::tempdir().unwrap();
    let mut dgs = Vec::new();
    for i in 0..50u32 {
        let recs: Vec<_> = (0..30).map(|j| tcp((i * 30 + j) as u16, ACK, j + 1)).collect();
        dgs.push(dg(T0 + i as u64 * S, E1, i * 30, &recs));
    }
    let p = write_pcap(dir.path(), "d10.pcap", &dgs);
    let (flows, st, _) = replay(&["--max-flows", "100"], &[&p]);
    assert_eq!(st["evictions"], 1500 - 100);
    assert_eq!(st["flows"]["evicted"], 1400);
    assert_eq!(st["flows"]["shutdown"], 100);
    assert_eq!(flows.len(), 1500);
    // Oldest first: the survivors are the last 100 created.
    let mut survivors: Vec<u64> = flows
        .iter()
        .filter(|f| f["end_reason"] == "shutdown")
        .map(|f| f["src_port"].as_u64().unwrap())
        .collect();
    survivors.sort();
    assert_eq!(survivors, (1400..1500).collect::<Vec<u64>>());
    assert_conserved(&flows, &st);
}

#[test]
fn sequence_gaps_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let dgs = [
        dg(T0, E1, 0, &[tcp(1, ACK, 1)]),
        dg(T0 + S, E1, 1, &[tcp(2, ACK, 1)]),
        dg(T0 + 2 * S, E1, 12, &[tcp(3, ACK, 1)]), // 2..12 missing: 10 records lost
    ];
    let p = write_pcap(dir.path(), "seq.pcap", &dgs);
    let (_, st, _) = replay(&[], &[&p]);
    assert_eq!(st["seq_lost_records"], 10);
    assert_eq!(st["exporters"][0]["seq_lost_records"], 10);
}

#[test]
fn formats_csv_zeek_and_dump() {
    let Some(data) = testdata() else { return };
    let f = data.join("logstash-codec-netflow/netflow5.dat");
    let csv = run_ok(nfstitch().args(["replay", "-q", "--format", "csv"]).arg(&f)).stdout;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("type,exporter,engine_type,engine_id,src_addr,src_port,dst_addr,dst_port,proto,records,packets,octets,tcp_flags,first,last,end_reason"));
    assert_eq!(lines.len(), 7);
    let ncols = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == ncols));

    let zeek = run_ok(nfstitch().args(["replay", "-q", "--format", "zeek"]).arg(&f)).stdout;
    let lines: Vec<&str> = zeek.lines().collect();
    assert_eq!(lines[0], "#separator \\x09");
    let fields = lines.iter().find(|l| l.starts_with("#fields\t")).unwrap();
    let types = lines.iter().find(|l| l.starts_with("#types\t")).unwrap();
    assert_eq!(fields.split('\t').count(), types.split('\t').count());
    let rows: Vec<&&str> = lines.iter().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r.split('\t').count() == fields.split('\t').count() - 1));
    assert!(
        rows[0].split('\t').any(|c| c.starts_with("1430591884.898328")),
        "epoch times in zeek: {}",
        rows[0]
    );

    let dump = run_ok(nfstitch().args(["replay", "-q", "--no-stitch"]).arg(&f)).stdout;
    let v = jsonl(&dump);
    assert_eq!(v.iter().filter(|r| r["type"] == "header").count(), 12);
    assert_eq!(v.iter().filter(|r| r["type"] == "record").count(), 30);
    assert_eq!(v.iter().filter(|r| r["type"] == "flow").count(), 0);
    let both = jsonl(
        &run_ok(nfstitch().args(["replay", "-q", "--dump", "--time-format", "epoch"]).arg(&f))
            .stdout,
    );
    assert_eq!(both.len(), 12 + 30 + 6);
    assert!(both[0]["ts"].is_number());
}

#[test]
fn bad_flags_fail_clearly() {
    for (args, needle) in [
        (vec!["replay", "--key", "proto,bogus", "x"], "--key"),
        (vec!["replay", "--format", "xml", "x"], "--format"),
        (vec!["replay", "--linger", "ten", "x"], "--linger"),
        (vec!["replay", "--max-flows", "0", "x"], "--max-flows"),
        (vec!["replay", "/nonexistent/file.pcap"], "cannot read"),
        (vec!["replay"], "FILES"),
    ] {
        let r = run(nfstitch().args(&args));
        assert!(!r.status.success(), "{args:?} succeeded");
        assert!(r.stderr.contains(needle), "{args:?}: stderr lacks {needle:?}: {}", r.stderr);
    }
}

#[test]
fn output_to_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_pcap(dir.path(), "o.pcap", &[dg(T0, E1, 0, &[tcp(1, ACK, 1), tcp(2, ACK, 2)])]);
    let out = dir.path().join("flows.jsonl");
    let r = run_ok(nfstitch().args(["replay", "-q", "-o"]).arg(&out).arg(&p));
    assert!(r.stdout.is_empty());
    let flows = flows(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(flows.len(), 2);
}

/// `n` one-record datagrams (one flow each, sport 1..=n) from T0, 1 ms apart.
fn many(n: u16) -> Vec<Dg> {
    (1..=n).map(|i| dg(T0 + i as u64 * 1_000_000, E1, i as u32 - 1, &[tcp(i, ACK, 1)])).collect()
}

#[test]
fn damaged_pcap_record_header_keeps_what_was_read_and_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let dgs = many(12_000);
    // The 9001st record's header claims 4 GiB: nothing after it can be framed.
    let at = std::fs::metadata(write_pcap(dir.path(), "head.pcap", &dgs[..9000])).unwrap().len();
    let bad = write_pcap(dir.path(), "bad.pcap", &dgs);
    let mut bytes = std::fs::read(&bad).unwrap();
    bytes[at as usize + 8..at as usize + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&bad, &bytes).unwrap();
    // A good file after the damaged one is still read.
    let good =
        write_pcap(dir.path(), "good.pcap", &[dg(T0 + 20 * S, E1, 12_000, &[tcp(60_000, ACK, 5)])]);
    let out = dir.path().join("flows.jsonl");
    let st = dir.path().join("stats.json");
    let r = run(nfstitch()
        .args(["replay", "-o"])
        .arg(&out)
        .arg("--stats-json")
        .arg(&st)
        .args([&bad, &good]));
    assert_eq!(r.status.code(), Some(1), "damage exits 1; stderr:\n{}", r.stderr);
    // The error names the file and the offset; the report was printed before it.
    let needle =
        format!("{} at byte {at}: pcap record header claims caplen 4294967295", bad.display());
    assert!(r.stderr.contains(&needle), "stderr lacks {needle:?}:\n{}", r.stderr);
    assert!(r.stderr.contains("nfstitch: datagrams 9001 accepted"), "{}", r.stderr);
    assert!(r.stderr.contains("DAMAGED CAPTURE"), "{}", r.stderr);
    let flows = flows(&std::fs::read_to_string(&out).unwrap());
    let st = stats(&st);
    assert_eq!(flows.len(), 9001, "every flow read before the damage, and the next file's");
    assert_eq!(st["datagrams"], 9001);
    assert_eq!(st["frames"], 9002, "9000 + 1 read, the damaged rest counted as one");
    assert_eq!(st["frames_skipped"]["truncated_capture"], 1);
    assert_eq!(st["frames_skipped"]["malformed_frame"], 0);
    let d = &st["damaged_captures"];
    assert_eq!(d.as_array().unwrap().len(), 1, "{d}");
    assert_eq!((d[0]["file"].as_str(), d[0]["offset"].as_u64()), (bad.to_str(), Some(at)));
    assert_conserved(&flows, &st);
    // The same capture undamaged: exit 0, no damage key.
    let whole = write_pcap(dir.path(), "whole.pcap", &dgs);
    let (flows, st, _) = replay(&[], &[&whole]);
    assert_eq!(flows.len(), 12_000);
    assert_eq!(st["frames_skipped"]["truncated_capture"], 0);
    assert!(st.get("damaged_captures").is_none());
}

#[test]
fn raw_file_cut_inside_its_last_datagram_is_damage_too() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = many(3).into_iter().flat_map(|d| d.bytes).collect();
    let raw = dir.path().join("cut.bin");
    std::fs::write(&raw, &bytes[..bytes.len() - 10]).unwrap();
    let st = dir.path().join("stats.json");
    let r = run(nfstitch().args(["replay", "--stats-json"]).arg(&st).arg(&raw));
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    let at = 2 * (24 + 48);
    assert!(r.stderr.contains(&format!("cut.bin at byte {at}: v5 datagram")), "{}", r.stderr);
    let st = stats(&st);
    assert_eq!(flows(&r.stdout).len(), 2);
    assert_eq!(
        (st["datagrams"].as_u64(), st["rejected"]["length_mismatch"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(st["frames_skipped"]["truncated_capture"], 1);
}
