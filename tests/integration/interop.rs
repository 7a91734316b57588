//! Interop with a real exporter and a reference collector, end to end on
//! loopback: real TCP traffic (curl fetching files from `python3 -m
//! http.server`) is captured with tcpdump, exported as NetFlow v5 by
//! softflowd reading the capture (`-r`), once to nfstitch and once to
//! nfdump's nfcapd, and the same again as NetFlow v9 (`-v 9`) and as IPFIX
//! (`-v 10`). Both collectors must see exactly the capture's TCP packets and
//! IP octets, and nfstitch must reject nothing.
//!
//! Needs softflowd, tcpdump, curl, nfcapd, nfdump and python3 (CI installs
//! them with `.ci/install-deps.sh`) and the right to capture on `lo`
//! (root or CAP_NET_RAW); without them the test prints `SKIP: ...` and
//! passes (fails under `$NFSTITCH_REQUIRE_ALL`, as `.ci/run` sets). Every wait is bounded; every process it starts is killed by
//! PID (and only those) if the test fails half-way.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::*;

const BIG_FILE: usize = 1_500_000;
const BIG_FETCHES: usize = 3;
/// Enough connections for more than 30 v5 records (two directions each),
/// so softflowd sends more than one datagram.
const SMALL_FETCHES: usize = 16;
pub(crate) const STEP: Duration = Duration::from_secs(30);

/// A child process we started, killed (SIGKILL, by PID) on drop unless it
/// was stopped already.
pub(crate) struct Guard {
    child: Option<Child>,
    name: &'static str,
    lines: mpsc::Receiver<String>,
}

impl Guard {
    /// Spawn with stdout and stderr piped into one line channel.
    pub(crate) fn spawn(name: &'static str, cmd: &mut Command) -> Guard {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(l);
            }
        });
        Guard { child: Some(child), name, lines: rx }
    }

    /// Wait (bounded) for an output line for which `f` gives a value; every
    /// line read is appended to `seen`. `Err` when the process exits first
    /// or the time runs out.
    pub(crate) fn wait_line<T>(
        &mut self,
        limit: Duration,
        seen: &mut Vec<String>,
        mut f: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + limit;
        loop {
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(l) => {
                    let v = f(&l);
                    seen.push(l);
                    if let Some(v) = v {
                        return Ok(v);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let child = self.child.as_mut().unwrap();
                    if let Some(st) = child.try_wait().unwrap() {
                        // Drain what it printed before exiting.
                        std::thread::sleep(Duration::from_millis(100));
                        seen.extend(self.lines.try_iter());
                        return Err(format!("{} exited ({st})", self.name));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(50));
                    let child = self.child.as_mut().unwrap();
                    if let Some(st) = child.try_wait().unwrap() {
                        return Err(format!("{} exited ({st})", self.name));
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!("{} said nothing useful within {limit:?}", self.name));
            }
        }
    }

    /// Send `sig` (e.g. "-INT") if given, then wait (bounded) for the exit;
    /// returns the status and everything it printed.
    pub(crate) fn stop(mut self, sig: Option<&str>, limit: Duration) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        if let Some(sig) = sig {
            send_signal(child.id(), sig);
        }
        let start = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not exit within {limit:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader threads end at EOF; give them a moment to forward the tail.
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => out.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() > deadline => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        (status, out.join("\n"))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if c.try_wait().ok().flatten().is_none() {
                eprintln!("interop: killing {} (pid {})", self.name, c.id());
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

fn send_signal(pid: u32, sig: &str) {
    let st = Command::new("kill").args([sig, &pid.to_string()]).status().expect("run kill");
    assert!(st.success(), "kill {sig} {pid} failed");
}

/// A tool on PATH, or in the sbin directories (softflowd lives in /usr/sbin,
/// which is not on every user's PATH).
pub(crate) fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Totals of a classic pcap file (as tcpdump writes it) over TCP in IPv4.
#[derive(Debug, Default, PartialEq, Eq)]
struct CapTotals {
    frames: u64,
    tcp_packets: u64,
    /// Sum of the IPv4 total-length fields.
    ip_octets: u64,
    /// Sum of (wire length − 14), the Ethernet header.
    wire_minus_link: u64,
}

fn pcap_totals(bytes: &[u8]) -> CapTotals {
    assert!(bytes.len() >= 24, "capture too short for a pcap header");
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        m => panic!("not a classic pcap (magic {m:#010x})"),
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let linktype = u32_at(20);
    assert_eq!(linktype, 1, "expected an Ethernet (EN10MB) capture of lo");
    let mut t = CapTotals::default();
    let mut at = 24;
    while at < bytes.len() {
        assert!(at + 16 <= bytes.len(), "capture ends inside a record header");
        let incl = u32_at(at + 8) as usize;
        let orig = u32_at(at + 12) as usize;
        at += 16;
        assert!(at + incl <= bytes.len(), "capture ends inside a frame");
        assert_eq!(incl, orig, "frame truncated by the snap length");
        let f = &bytes[at..at + incl];
        at += incl;
        t.frames += 1;
        if f.len() < 34 || f[12..14] != [0x08, 0x00] || f[14] >> 4 != 4 || f[23] != 6 {
            continue; // not TCP over IPv4
        }
        t.tcp_packets += 1;
        t.ip_octets += u16::from_be_bytes([f[16], f[17]]) as u64;
        t.wire_minus_link += (orig - 14) as u64;
    }
    t
}

/// (records, packets, octets).
type Sums = (u64, u64, u64);

/// nfdump's CSV (`nfdump -R DIR -o csv`): (rows, sum ipkt, sum ibyt), and
/// the summary's (flows, packets, bytes) when it prints one.
fn nfdump_csv_totals(csv: &str) -> (Sums, Option<Sums>) {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("nfdump printed nothing").split(',').collect();
    let col = |h: &[&str], name: &str| {
        h.iter()
            .position(|c| c.trim() == name)
            .unwrap_or_else(|| panic!("nfdump csv lacks column {name}: {h:?}"))
    };
    let (ipkt, ibyt) = (col(&header, "ipkt"), col(&header, "ibyt"));
    let num = |s: &str| -> u64 {
        s.trim().parse().unwrap_or_else(|e| panic!("nfdump csv number {s:?}: {e}"))
    };
    let mut rows = (0, 0, 0);
    let mut summary = None;
    while let Some(l) = lines.next() {
        if l.trim().is_empty() {
            continue;
        }
        if l.trim() == "Summary" {
            if let (Some(h), Some(v)) = (lines.next(), lines.next()) {
                let h: Vec<&str> = h.split(',').collect();
                let v: Vec<&str> = v.split(',').collect();
                summary = Some((
                    num(v[col(&h, "flows")]),
                    num(v[col(&h, "packets")]),
                    num(v[col(&h, "bytes")]),
                ));
            }
            break;
        }
        let v: Vec<&str> = l.split(',').collect();
        assert_eq!(v.len(), header.len(), "odd nfdump csv row: {l}");
        rows.0 += 1;
        rows.1 += num(v[ipkt]);
        rows.2 += num(v[ibyt]);
    }
    (rows, summary)
}

/// softflowd's closing report: (packets processed, flows exported, records, datagrams).
pub(crate) fn softflowd_report(out: &str) -> (u64, u64, u64, u64) {
    let words_after = |prefix: &str| -> Vec<String> {
        let l = out
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("softflowd printed no {prefix:?} line:\n{out}"));
        l.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(String::from).collect()
    };
    let n = |v: &[String], i: usize| v[i].parse::<u64>().unwrap();
    let processed = words_after("Packets processed:");
    // "Flows exported: 36 (36 records) in 2 packets (0 failures)"
    let exported = words_after("Flows exported:");
    assert_eq!(n(&exported, 3), 0, "softflowd reports export failures:\n{out}");
    (n(&processed, 0), n(&exported, 0), n(&exported, 1), n(&exported, 2))
}

pub(crate) fn softflowd_export(
    softflowd: &Path,
    dir: &Path,
    cap: &Path,
    to: SocketAddr,
    tag: &str,
    version: &str,
) -> String {
    // softflowd 1.1.0 in -r mode, after the end of file, blocks in accept()
    // on its control socket when the -c path is 13 characters or longer
    // (seen here: `/tmp/abc.ctl` exits, `/tmp/abcd.ctl` hangs), so use a
    // short path relative to the test's own temp dir (its cwd). The pid file
    // (default /var/run/softflowd.pid) goes there too.
    let ctl = format!("sf{tag}.ctl");
    let pid = format!("sf{tag}.pid");
    assert!(ctl.len() <= 12);
    let mut cmd = Command::new(softflowd);
    cmd.current_dir(dir).arg("-r").arg(cap).args([
        "-n",
        &to.to_string(),
        "-v",
        version,
        "-d",
        "-c",
        &ctl,
        "-p",
        &pid,
    ]);
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("softflowd");
    // At end of file softflowd expires ("flushed") every flow and exits: no -t needed.
    let r = wait_bounded(child, STEP);
    let out = format!("{}\n{}", r.stdout, r.stderr);
    assert!(r.status.success(), "softflowd failed ({}):\n{out}", r.status);
    out
}

#[test]
fn softflowd_to_nfstitch_and_nfcapd() {
    let names = ["softflowd", "tcpdump", "curl", "nfcapd", "nfdump", "python3"];
    let mut tools = Vec::new();
    for n in names {
        match find_tool(n) {
            Some(p) => tools.push(p),
            None => {
                return skip(&format!("{n} not installed (run .ci/install-deps.sh as root)"));
            }
        }
    }
    let [softflowd, tcpdump, curl, nfcapd, nfdump, python3] =
        <[PathBuf; 6]>::try_from(tools).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    // A deterministic, incompressible-looking ~1.5 MB file and a small one.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let big: Vec<u8> = (0..BIG_FILE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(www.join("big.bin"), &big).unwrap();
    std::fs::write(www.join("small.txt"), "nfstitch interop\n".repeat(64)).unwrap();

    // 1. HTTP server on a free port (port 0: it prints the one it got).
    let mut http = Guard::spawn(
        "http.server",
        Command::new(&python3)
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory"])
            .arg(&www),
    );
    let mut seen = Vec::new();
    let port: u16 = http
        .wait_line(Duration::from_secs(20), &mut seen, |l| {
            // "Serving HTTP on 127.0.0.1 port 43567 (http://127.0.0.1:43567/) ..."
            let rest = l.strip_prefix("Serving HTTP on ")?;
            rest.split_whitespace().skip_while(|w| *w != "port").nth(1)?.parse().ok()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", seen.join("\n")));

    // 2. Capture the HTTP traffic on lo.
    let cap = dir.path().join("cap.pcap");
    let mut td = Guard::spawn(
        "tcpdump",
        Command::new(&tcpdump)
            // --immediate-mode: without it, packets still in the kernel ring
            // when SIGINT arrives are lost (counted "received by filter", not
            // "dropped"), so the capture would miss whole connections.
            .args(["-i", "lo", "-n", "-U", "--immediate-mode", "-s", "0", "-B", "16384", "-w"])
            .arg(&cap)
            .arg(format!("tcp port {port}")),
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

    // 3. Fetch: a few big transfers and enough small ones for > 30 flow records.
    let fetch = |name: &str, len: usize| {
        let r = run(Command::new(&curl)
            .args(["-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{size_download}"])
            .arg(format!("http://127.0.0.1:{port}/{name}")));
        assert!(r.status.success(), "curl {name} failed: {}", r.stderr);
        assert_eq!(r.stdout.trim(), len.to_string(), "curl {name} size");
    };
    for _ in 0..BIG_FETCHES {
        fetch("big.bin", BIG_FILE);
    }
    for _ in 0..SMALL_FETCHES {
        fetch("small.txt", 17 * 64);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (st, td_out) = td.stop(Some("-INT"), STEP);
    assert!(st.success(), "tcpdump failed ({st}):\n{td_out}");
    let _ = http.stop(Some("-TERM"), STEP);
    eprintln!("interop: tcpdump: {}", td_out.replace('\n', "; "));

    // The capture's own totals (kernel drops in tcpdump do not matter: both
    // collectors are fed from this file).
    let mut bytes = Vec::new();
    std::fs::File::open(&cap).unwrap().read_to_end(&mut bytes).unwrap();
    let totals = pcap_totals(&bytes);
    eprintln!("interop: capture {totals:?}");
    assert_eq!(totals.frames, totals.tcp_packets, "the filter keeps only TCP");
    let td_count = |what: &str| -> Option<u64> {
        td_out.lines().find_map(|l| l.trim().strip_suffix(what)?.trim().parse().ok())
    };
    assert_eq!(td_count("packets captured"), Some(totals.frames), "tcpdump's count:\n{td_out}");
    let complete = td_count("packets dropped by kernel") == Some(0);
    assert!(totals.tcp_packets >= 10 * (BIG_FETCHES + SMALL_FETCHES) as u64, "{totals:?}");
    // Octets: softflowd adds one length per packet at the IP layer. On lo
    // (Ethernet link type, no padding, snap length 0 = whole frames) the
    // IPv4 total length equals the pcap wire length less the 14-byte
    // Ethernet header, asserted here, so "IP bytes" is unambiguous. Checked
    // by hand on one run (160 packets): capture IP bytes = softflowd's
    // report = nfcapd = nfstitch octets = 3664180.
    assert_eq!(totals.ip_octets, totals.wire_minus_link);

    // 4.-6. Export the capture as v5, v9 and IPFIX, each to a fresh
    // nfstitch and a fresh nfcapd: the same totals, the capture's.
    for version in ["5", "9", "10"] {
        let t = Tools { softflowd: &softflowd, nfcapd: &nfcapd, nfdump: &nfdump };
        export_and_compare(&t, dir.path(), &cap, &totals, complete, port, version);
    }
}

struct Tools<'a> {
    softflowd: &'a Path,
    nfcapd: &'a Path,
    nfdump: &'a Path,
}

/// softflowd exports `cap` as NetFlow `version` (5, 9, or 10: IPFIX) to
/// nfstitch and to nfcapd; both must see the capture's TCP packets and IP
/// octets, and nfstitch the records and datagrams softflowd reports.
fn export_and_compare(
    t: &Tools<'_>,
    dir: &Path,
    cap: &Path,
    totals: &CapTotals,
    complete: bool,
    port: u16,
    version: &str,
) {
    let (softflowd, nfcapd, nfdump) = (t.softflowd, t.nfcapd, t.nfdump);
    let dir = &dir.join(format!("v{version}"));
    std::fs::create_dir(dir).unwrap();
    // 4. The collectors (no template state: a test leaves nothing behind).
    let flows_path = dir.join("flows.jsonl");
    let stats_path = dir.join("stats.json");
    let mut nfs = Guard::spawn(
        "nfstitch",
        nfstitch()
            .args(["collect", "--listen", "127.0.0.1:0", "--workers", "1", "--stats-interval", "0"])
            .arg("--no-state")
            .arg("-o")
            .arg(&flows_path)
            .arg("--stats-json")
            .arg(&stats_path),
    );
    let mut seen = Vec::new();
    let nfs_addr: SocketAddr = nfs
        .wait_line(Duration::from_secs(20), &mut seen, |l| {
            l.strip_prefix("nfstitch: listening on ")?.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", seen.join("\n")));

    let nfdir = dir.join("nfcapd");
    std::fs::create_dir(&nfdir).unwrap();
    let nfc_port = free_udp_port();
    let mut nfc = Guard::spawn(
        "nfcapd",
        Command::new(nfcapd).arg("-w").arg(&nfdir).args([
            "-p",
            &nfc_port.to_string(),
            "-b",
            "127.0.0.1",
        ]),
    );
    let mut seen = Vec::new();
    nfc.wait_line(STEP, &mut seen, |l| l.contains("Startup").then_some(()))
        .unwrap_or_else(|e| panic!("nfcapd did not start: {e}\n{}", seen.join("\n")));
    let nfc_addr: SocketAddr = ([127, 0, 0, 1], nfc_port).into();

    // 5. Export the capture with softflowd, once to each collector.
    let sf1 = softflowd_export(softflowd, dir, cap, nfs_addr, "a", version);
    let sf2 = softflowd_export(softflowd, dir, cap, nfc_addr, "b", version);
    let (processed, sf_flows, sf_records, sf_datagrams) = softflowd_report(&sf1);
    assert_eq!(softflowd_report(&sf2), (processed, sf_flows, sf_records, sf_datagrams));
    eprintln!(
        "interop: v{version}: softflowd processed {processed} packets, exported {sf_flows} \
         flows ({sf_records} records) in {sf_datagrams} datagrams"
    );
    assert_eq!(processed, totals.tcp_packets, "softflowd read every packet");
    if complete {
        // Nothing dropped: every connection is in the capture, one record per direction.
        assert_eq!(sf_records, 2 * (BIG_FETCHES + SMALL_FETCHES) as u64, "{sf1}");
    }
    std::thread::sleep(Duration::from_millis(300));

    // 6. Stop both (SIGTERM; nfcapd writes its file on exit) and read them.
    let (st, nfs_err) = nfs.stop(Some("-TERM"), STEP);
    assert!(st.success(), "nfstitch failed ({st}):\n{nfs_err}");
    let (st, nfc_out) = nfc.stop(Some("-TERM"), STEP);
    assert!(st.success(), "nfcapd failed ({st}):\n{nfc_out}");

    let st = stats(&stats_path);
    let flows = flows(&std::fs::read_to_string(&flows_path).unwrap());
    assert_conserved(&flows, &st);
    assert_eq!(st["ipv6_records_pending"], 0, "an IPv4 capture");
    let rejected: u64 =
        st["rejected"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(rejected, 0, "nfstitch rejected datagrams from softflowd: {st}");
    let n = |k: &str| st[k].as_u64().unwrap_or_else(|| panic!("stats lack {k}: {st}"));
    eprintln!(
        "interop: v{version}: nfstitch datagrams {} records {} packets {} octets {} flows {} seq_lost {}",
        n("datagrams"),
        n("records"),
        n("packets"),
        n("octets"),
        flows.len(),
        n("seq_lost_records")
    );
    assert_eq!(n("datagrams"), sf_datagrams, "{nfs_err}");
    assert_eq!(n("records"), sf_records);
    assert_eq!(n("packets"), totals.tcp_packets);
    assert_eq!(n("octets"), totals.ip_octets);
    assert_eq!(sum(&flows, "packets"), totals.tcp_packets);
    assert_eq!(sum(&flows, "octets"), totals.ip_octets);
    for f in &flows {
        assert_eq!(f["proto"], 6, "{f}");
        assert!(f["src_port"] == port || f["dst_port"] == port, "not HTTP traffic: {f}");
    }
    // v5 numbers records, v9 export packets, IPFIX data records: softflowd's
    // have no gaps in any.
    assert_eq!(n("seq_lost_records"), 0, "softflowd's sequence has no gaps: {st}");
    assert_eq!(n("seq_restarts"), 0);
    if version != "5" {
        let tr = &st["templated"];
        assert!(tr["templates"].as_u64().unwrap() > 0, "{st}");
        assert_eq!(tr["no_template_sets"], 0, "softflowd sends its templates first: {st}");
        let skipped: u64 = st["templated_rejected"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(skipped, 0, "{st}");
    }
    assert_eq!(n("kernel_drops"), 0);

    let r = run(Command::new(nfdump).arg("-R").arg(&nfdir).args(["-o", "csv"]));
    assert!(r.status.success(), "nfdump failed: {}\n{}", r.stderr, nfc_out);
    let ((rows, pkts, octs), summary) = nfdump_csv_totals(&r.stdout);
    eprintln!(
        "interop: v{version}: nfcapd/nfdump records {rows} packets {pkts} bytes {octs} summary {summary:?}"
    );
    assert_eq!(
        (rows, pkts, octs),
        (sf_records, totals.tcp_packets, totals.ip_octets),
        "{}",
        r.stdout
    );
    if let Some(s) = summary {
        assert_eq!(s, (rows, pkts, octs), "nfdump summary");
    }
}
