//! Tests of the platform networking module with real sockets on 127.0.0.1 and ::1.
//! Every wait is bounded by a deadline; polling sleeps are 1 ms.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::procfs::{parse_schedstat, parse_statm_rss};
use super::*;

const LOOPBACK_V4: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
const WAIT: Duration = Duration::from_secs(2);

/// A received datagram, copied out of the batch.
type Got = (RecvMeta, Vec<u8>);

/// Calls `recv_batch` until `want` datagrams arrived or `WAIT` passed.
fn recv_until(sock: &ReuseportSocket, batch: &mut RecvBatch, want: usize) -> Vec<Got> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        let n = recv_batch(sock, batch).expect("recv_batch");
        assert_eq!(n, batch.len());
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(in_place(batch), "payloads lie at offset(i) in buffer()");
        got.extend(batch.iter().map(|(m, p)| (*m, p.to_vec())));
    }
    got
}

/// Every payload of `batch` is where `offset` says in `buffer` (what reading
/// records in place relies on).
fn in_place(batch: &RecvBatch) -> bool {
    (0..batch.len()).all(|i| batch.buffer()[batch.offset(i)..].starts_with(batch.get(i).1))
}

/// Payload `i` of a test burst: a 2-byte index, then a pattern; length varies with `i`.
fn payload(i: usize) -> Vec<u8> {
    let len = 2 + (i * 37) % 1400;
    let mut p: Vec<u8> = (0..len).map(|j| (i * 7 + j) as u8).collect();
    p[..2].copy_from_slice(&(i as u16).to_be_bytes());
    p
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn sender_v4() -> UdpSocket {
    UdpSocket::bind(LOOPBACK_V4).expect("bind sender")
}

#[test]
fn two_sockets_share_a_port() {
    let a = ReuseportSocket::bind(LOOPBACK_V4, None).expect("first bind");
    let addr = a.local_addr().unwrap();
    assert_ne!(addr.port(), 0);
    let b = ReuseportSocket::bind(addr, None).expect("second bind on the same port");
    assert_eq!(b.local_addr().unwrap(), addr);
    assert_eq!(a.as_udp().local_addr().unwrap(), addr);
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        assert_ne!(a.as_raw_fd(), b.as_raw_fd());
    }
}

#[test]
fn empty_socket_returns_zero_without_blocking() {
    let rx = ReuseportSocket::bind(LOOPBACK_V4, None).unwrap();
    let mut batch = RecvBatch::new(8, DEFAULT_BUF_LEN);
    let t = Instant::now();
    assert_eq!(recv_batch(&rx, &mut batch).unwrap(), 0);
    assert!(batch.is_empty());
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn receives_100_datagrams_of_varying_length() {
    let rx = ReuseportSocket::bind(LOOPBACK_V4, None).unwrap();
    let dest = rx.local_addr().unwrap();
    let tx = sender_v4();
    let src = tx.local_addr().unwrap();
    let sent: Vec<Vec<u8>> = (0..100).map(payload).collect();
    for p in &sent {
        tx.send_to(p, dest).unwrap();
    }

    // Capacity below 100 so several calls are needed and slots are reused.
    let mut batch = RecvBatch::new(32, DEFAULT_BUF_LEN);
    assert_eq!(batch.capacity(), 32);
    let got = recv_until(&rx, &mut batch, 100);
    assert_eq!(got.len(), 100, "received {} of 100", got.len());

    let now = now_ns();
    let mut by_index = BTreeMap::new();
    for (meta, data) in got {
        assert_eq!(meta.src, src);
        assert!(!meta.truncated);
        assert_eq!(meta.len, data.len());
        if cfg!(target_os = "linux") {
            let rx_ns = meta.rx_time_ns.expect("SO_TIMESTAMPNS timestamp");
            assert!(rx_ns.abs_diff(now) < 5_000_000_000, "rx_time_ns {rx_ns} vs now {now}");
        } else {
            assert_eq!(meta.rx_time_ns, None, "the fallback has no timestamps");
        }
        let i = u16::from_be_bytes([data[0], data[1]]) as usize;
        assert!(by_index.insert(i, data).is_none(), "duplicate datagram {i}");
    }
    for (i, p) in sent.iter().enumerate() {
        assert_eq!(by_index.get(&i), Some(p), "payload {i}");
    }
    assert_eq!(batch.kernel_drops(), None, "nothing should have been dropped");
}

#[test]
fn oversized_datagram_is_flagged_truncated() {
    let rx = ReuseportSocket::bind(LOOPBACK_V4, None).unwrap();
    let dest = rx.local_addr().unwrap();
    let tx = sender_v4();
    let big: Vec<u8> = (0..100u8).collect();
    tx.send_to(&big, dest).unwrap();
    tx.send_to(&big[..64], dest).unwrap(); // exactly fits

    let mut batch = RecvBatch::new(4, 64);
    assert_eq!(batch.buf_len(), 64);
    let got = recv_until(&rx, &mut batch, 2);
    assert_eq!(got.len(), 2);
    let (m0, d0) = &got[0];
    assert!(m0.truncated);
    assert_eq!(m0.len, 64);
    assert_eq!(d0[..], big[..64]);
    let (m1, d1) = &got[1];
    assert!(!m1.truncated);
    assert_eq!(d1[..], big[..64]);
}

/// The default buffer takes a jumbo-frame export whole and flags a
/// loopback-sized one (65507 bytes, the IPv4 UDP maximum) as truncated.
#[test]
fn default_buffer_takes_jumbo_datagrams_and_flags_larger_ones() {
    let rx = ReuseportSocket::bind(LOOPBACK_V4, Some(1 << 20)).unwrap();
    let dest = rx.local_addr().unwrap();
    let tx = sender_v4();
    let jumbo: Vec<u8> = (0..8972u32).map(|i| i as u8).collect(); // 9000-byte MTU, IPv4
    let huge: Vec<u8> = (0..65_507u32).map(|i| (i * 7) as u8).collect();
    tx.send_to(&jumbo, dest).unwrap();
    tx.send_to(&huge, dest).unwrap();
    let mut batch = RecvBatch::new(4, DEFAULT_BUF_LEN);
    const { assert!(DEFAULT_BUF_LEN >= 9216) };
    let got = recv_until(&rx, &mut batch, 2);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0.truncated, got[0].0.len, &got[0].1), (false, jumbo.len(), &jumbo));
    assert_eq!((got[1].0.truncated, got[1].0.len), (true, DEFAULT_BUF_LEN));
    assert_eq!(got[1].1[..], huge[..DEFAULT_BUF_LEN]);
}

/// Fills a tiny receive buffer so the kernel drops most of a burst, then checks that the
/// `SO_RXQ_OVFL` counter accounts for every datagram that was not received.
///
/// The kernel stamps each datagram with the socket's drop count *when it is queued*, and only
/// attaches the cmsg when that count is non-zero. The datagrams that made it into the queue
/// during the burst were queued before (most of) the drops, so after draining them the
/// counter is stale. Hence, once the queue is drained we send a "probe" datagram: it is
/// queued after the whole burst was decided, so it carries the final count. Loopback loses
/// nothing else, and the port is ours alone, so every datagram sent is either received or
/// counted as dropped:
///
///     burst_received + probes_received + kernel_drops == 2000 + probes_sent
///
/// A probe could itself be dropped if stragglers of the burst refilled the queue; then it
/// is in `kernel_drops` and the next probe carries that, which is why the equation counts
/// probes instead of assuming exactly one. Normally one probe suffices.
#[cfg(target_os = "linux")]
#[test]
fn kernel_drops_account_for_every_lost_datagram() {
    const BURST: usize = 2000;
    let rx = ReuseportSocket::bind(LOOPBACK_V4, Some(4096)).unwrap();
    let dest = rx.local_addr().unwrap();
    let tx = sender_v4();
    let mut data = vec![0u8; 1000];
    for i in 0..BURST {
        data[..4].copy_from_slice(&(i as u32).to_be_bytes());
        tx.send_to(&data, dest).unwrap();
    }

    let probe = [0xFFu8; 8];
    let mut batch = RecvBatch::new(64, DEFAULT_BUF_LEN);
    let (mut burst_received, mut probes_received, mut probes_sent) = (0usize, 0usize, 0usize);
    let deadline = Instant::now() + WAIT;
    loop {
        // Drain what is queued.
        loop {
            let n = recv_batch(&rx, &mut batch).unwrap();
            if n == 0 {
                break;
            }
            for (meta, p) in batch.iter() {
                assert!(!meta.truncated);
                if p == probe {
                    probes_received += 1;
                } else {
                    assert_eq!(p.len(), 1000);
                    burst_received += 1;
                }
            }
        }
        let drops = batch.kernel_drops().unwrap_or(0) as usize;
        if probes_sent > 0 && burst_received + probes_received + drops == BURST + probes_sent {
            assert!(drops > 0, "a {BURST}-datagram burst into a 4 KiB rcvbuf must drop");
            assert!(burst_received > 0, "the first datagrams fit");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "unaccounted: received {burst_received}+{probes_received}, drops {drops}, \
             sent {BURST}+{probes_sent}"
        );
        tx.send_to(&probe, dest).unwrap();
        probes_sent += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_plain_send_batch_delivers_64_datagrams() {
    let rx = ReuseportSocket::bind(LOOPBACK_V4, None).unwrap();
    let dest = rx.local_addr().unwrap();
    let tx = sender_v4();
    tx.connect(dest).unwrap();
    let src = tx.local_addr().unwrap();
    let sent: Vec<Vec<u8>> = (0..64).map(payload).collect();
    let refs: Vec<&[u8]> = sent.iter().map(Vec::as_slice).collect();

    // Capacity 16: four sendmmsg calls.
    let mut sb = GsoBatch::plain(16);
    assert_eq!(send_gso(&tx, &refs, &mut sb).unwrap(), 64);
    assert_eq!(send_gso(&tx, &[], &mut sb).unwrap(), 0);

    let mut batch = RecvBatch::new(64, DEFAULT_BUF_LEN);
    let got = recv_until(&rx, &mut batch, 64);
    assert_eq!(got.len(), 64);
    let mut by_index = BTreeMap::new();
    for (meta, data) in got {
        assert_eq!(meta.src, src);
        by_index.insert(u16::from_be_bytes([data[0], data[1]]) as usize, data);
    }
    for (i, p) in sent.iter().enumerate() {
        assert_eq!(by_index.get(&i), Some(p), "payload {i}");
    }
}

#[test]
fn ipv6_loopback() {
    let any6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0);
    let tx = match UdpSocket::bind(any6) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipping ipv6_loopback: no IPv6 loopback on this host ({e})");
            return;
        }
    };
    let rx = ReuseportSocket::bind(any6, None).expect("bind [::1]");
    let dest = rx.local_addr().unwrap();
    assert!(dest.is_ipv6());
    let again = ReuseportSocket::bind(dest, None).expect("reuseport on [::1]");
    assert_eq!(again.local_addr().unwrap(), dest);
    drop(again); // so the kernel cannot steer the datagram to it

    tx.connect(dest).unwrap();
    let mut sb = GsoBatch::plain(4);
    assert_eq!(send_gso(&tx, &[b"hello v6"], &mut sb).unwrap(), 1);
    let mut batch = RecvBatch::new(4, DEFAULT_BUF_LEN);
    let got = recv_until(&rx, &mut batch, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, b"hello v6");
    assert_eq!(got[0].0.src, tx.local_addr().unwrap());
}

#[cfg(target_os = "linux")]
#[test]
fn rcvbuf_reports_the_kernel_value() {
    let rx = ReuseportSocket::bind(LOOPBACK_V4, Some(65536)).unwrap();
    // Linux doubles the request (65536 is far below any rmem_max in use, and root forces).
    assert_eq!(rx.rcvbuf().unwrap(), 2 * 65536);
    assert!(ReuseportSocket::bind(LOOPBACK_V4, None).unwrap().rcvbuf().unwrap() > 0);
}

#[test]
#[should_panic(expected = "only 0 received")]
fn get_past_the_received_count_panics() {
    let batch = RecvBatch::new(4, 64);
    let _ = batch.get(0);
}

#[test]
fn debug_output_names_the_types() {
    let batch = RecvBatch::new(4, 64);
    assert!(format!("{batch:?}").contains("RecvBatch"));
    assert!(format!("{:?}", GsoBatch::plain(2)).contains("GsoBatch"));
}

#[test]
fn cores_and_pinning() {
    assert!(available_cores() >= 1);
    // Pin a fresh thread, not the test harness's.
    std::thread::spawn(|| {
        assert!(!pin_current_thread(usize::MAX));
        #[cfg(target_os = "linux")]
        {
            let ids = core_ids();
            assert!(!ids.is_empty());
            assert!(pin_current_thread(ids[0]));
            assert_eq!(core_ids(), vec![ids[0]]);
        }
    })
    .join()
    .unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn proc_readers() {
    assert!(rmem_max().unwrap() > 0);
    let rss = rss_bytes().unwrap();
    assert!(rss > 1 << 20, "rss {rss}");
    assert_eq!(parse_statm_rss("100 25 3 1 0 40 0\n", 4096), Some(25 * 4096));
    assert_eq!(parse_statm_rss("100", 4096), None);
}

#[cfg(target_os = "linux")]
#[test]
fn thread_cpu_times() {
    assert_eq!(parse_schedstat("121982 30838 1\n"), Some(121982));
    assert_eq!(parse_schedstat(""), None);
    let busy = |d: std::time::Duration| {
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < d {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        x
    };
    let before = current_thread_cpu_ns().unwrap();
    busy(std::time::Duration::from_millis(30));
    let spent = current_thread_cpu_ns().unwrap() - before;
    assert!(spent >= 10_000_000, "{spent} ns");
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let h = std::thread::Builder::new()
        .name("cpu-probe-test".into())
        .spawn(move || {
            busy(std::time::Duration::from_millis(30));
            tx.send(()).unwrap();
            let _ = done_rx.recv();
        })
        .unwrap();
    rx.recv().unwrap();
    let ns = thread_cpu_ns("cpu-probe-test").unwrap();
    assert!(ns >= 10_000_000, "{ns} ns");
    assert_eq!(thread_cpu_ns("no-such-thread"), None);
    done_tx.send(()).unwrap();
    h.join().unwrap();
}

/// The portable fallback, exercised on Linux too.
#[cfg(target_os = "linux")]
mod fallback_impl {
    use super::super::fallback::{recv_batch, send_gso, GsoBatch, RecvBatch};
    use super::*;

    #[test]
    fn roundtrip_truncation_and_send() {
        let rx = ReuseportSocket::bind(LOOPBACK_V4, None).unwrap();
        let dest = rx.local_addr().unwrap();
        let tx = sender_v4();
        tx.connect(dest).unwrap();
        let big = vec![7u8; 100];
        let payloads: [&[u8]; 3] = [b"one", &big, &big[..64]];
        let mut sb = GsoBatch::plain(2);
        assert_eq!(sb.capacity(), 2);
        assert!(format!("{sb:?}").contains("GsoBatch"));
        assert_eq!(send_gso(&tx, &payloads, &mut sb).unwrap(), 3);

        let mut batch = RecvBatch::new(2, 64);
        assert_eq!((batch.capacity(), batch.buf_len()), (2, 64));
        assert!(format!("{batch:?}").contains("RecvBatch"));
        let deadline = Instant::now() + WAIT;
        let mut got: Vec<Got> = Vec::new();
        while got.len() < 3 && Instant::now() < deadline {
            if recv_batch(&rx, &mut batch).unwrap() == 0 {
                assert!(batch.is_empty());
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!((0..batch.len())
                .all(|i| batch.buffer()[batch.offset(i)..].starts_with(batch.get(i).1)));
            got.extend(batch.iter().map(|(m, p)| (*m, p.to_vec())));
        }
        assert_eq!(got.len(), 3);
        assert_eq!(batch.kernel_drops(), None);
        let src = tx.local_addr().unwrap();
        let flags: Vec<_> = got.iter().map(|(m, d)| (m.src == src, m.truncated, d.len())).collect();
        assert_eq!(flags, [(true, false, 3), (true, true, 64), (true, false, 64)]);
        assert!(got.iter().all(|(m, _)| m.rx_time_ns.is_none()));
        assert_eq!(batch.len(), batch.iter().len());
    }
}
