//! One exporter's batches out of its socket, connected to the target.
//!
//! On Linux, with UDP generic segmentation offload (the default; `--no-gso`
//! turns it off): [`nfstitch::platform::send_gso`] sends each run of consecutive
//! equal-length datagrams (up to 64 of them, 64 KiB in all) as one message
//! with a `UDP_SEGMENT` control message, several messages per `sendmmsg`;
//! the kernel builds one large packet per message, routes it once, and cuts
//! it back into the individual datagrams (for a receiver without `UDP_GRO`,
//! on delivery). A datagram of another length (a malformed one of
//! `--corrupt-ratio`) is a message of its own. [`Gso::probe`] asks once per
//! socket whether the kernel knows `UDP_SEGMENT`; if it or a later send
//! refuses (EIO, EINVAL, ENOPROTOOPT, EOPNOTSUPP: no GSO on that kernel or
//! route), that socket falls back to the plain path for good, and stderr
//! says so once.
//!
//! The plain path: the same `send_gso` with a [`GsoBatch::plain`] batch, i.e.
//! `sendmmsg(2)` of one datagram per message with no destination address on
//! the connected socket, like `benches/c/sendmmsg.c`. A destination in every
//! message would make the kernel look up the route and check the source
//! address per datagram; the connected socket reuses its cached route, a few
//! percent of the per-datagram kernel work.
//! Elsewhere than Linux the plain batch sends one datagram per `send`.

use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};

use nfstitch::platform::{send_gso, GsoBatch};

/// Whether one exporter's socket sends with UDP GSO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gso {
    /// Plain `sendmmsg`: `--no-gso`, or the kernel refused GSO.
    Off,
    /// Segmented sends, while the kernel takes them.
    On,
}

/// Set once the fallback was noted on stderr.
static FALLBACK_NOTED: AtomicBool = AtomicBool::new(false);

impl Gso {
    /// `want` (not `--no-gso`) and the kernel knows `UDP_SEGMENT` on `sock`:
    /// [`Gso::On`]. Otherwise [`Gso::Off`] (a refusal is noted once on stderr).
    pub fn probe(sock: &UdpSocket, want: bool) -> Gso {
        if !want {
            return Gso::Off;
        }
        match nfstitch::platform::enable_udp_gso(sock) {
            Ok(()) => Gso::On,
            Err(e) => {
                note_fallback(&e);
                Gso::Off
            }
        }
    }
}

/// Say once per process that GSO is off, and why.
fn note_fallback(e: &io::Error) {
    if !FALLBACK_NOTED.swap(true, Ordering::Relaxed) {
        eprintln!("loadgen: UDP GSO unavailable ({e}): sending with plain sendmmsg");
    }
}

/// The kernel or the route does not do segmented sends.
fn gso_refused(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::Unsupported {
        return true;
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::io::Errno;
        matches!(
            Errno::from_io_error(e),
            Some(Errno::IO | Errno::INVAL | Errno::NOPROTOOPT | Errno::OPNOTSUPP)
        )
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// Batches out of connected sockets: GSO where the socket's [`Gso`] says so,
/// else plain `sendmmsg`. One per sending thread.
#[derive(Debug)]
pub struct BatchSender {
    /// Never segments: plain `sendmmsg` (see [`GsoBatch::plain`]).
    plain: GsoBatch,
    gso: GsoBatch,
    /// Datagrams that went out through the GSO path.
    gso_datagrams: u64,
}

impl BatchSender {
    /// Up to `n` datagrams per syscall (the kernel takes at most 1024).
    pub fn new(n: usize) -> Self {
        let n = n.clamp(1, 1024);
        BatchSender { plain: GsoBatch::plain(n), gso: GsoBatch::new(n), gso_datagrams: 0 }
    }

    /// Send `payloads` on `sock` (connected to the target). Returns how many the
    /// kernel took (a prefix); an error only when it took none. A GSO
    /// refusal turns `gso` off and sends the same payloads the plain way.
    pub fn send(
        &mut self,
        sock: &UdpSocket,
        gso: &mut Gso,
        payloads: &[&[u8]],
    ) -> io::Result<usize> {
        if *gso == Gso::On {
            match send_gso(sock, payloads, &mut self.gso) {
                Ok(k) => {
                    self.gso_datagrams += k as u64;
                    return Ok(k);
                }
                Err(e) if gso_refused(&e) => {
                    note_fallback(&e);
                    *gso = Gso::Off;
                }
                Err(e) => return Err(e),
            }
        }
        send_gso(sock, payloads, &mut self.plain)
    }

    /// GSO messages (each one or more datagrams) the kernel took, and the
    /// datagrams in them.
    pub fn gso_stats(&self) -> (u64, u64) {
        (self.gso.sends(), self.gso_datagrams)
    }
}

/// Reuse a vector's allocation for another element type of the same layout
/// (the in-place collect of an empty vector keeps its buffer).
pub(crate) fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().map(|_| -> U { unreachable!("the vector is empty") }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn recycle_keeps_the_buffer() {
        let data = [1u8, 2, 3];
        let mut v: Vec<&[u8]> = Vec::with_capacity(64);
        v.push(&data);
        let cap = v.capacity();
        let w: Vec<&'static [u8]> = recycle(v);
        assert!(w.is_empty());
        assert_eq!(w.capacity(), cap);
    }

    #[test]
    fn sends_every_payload_in_order_over_several_calls() {
        for want in [false, true] {
            let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
            rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let dest = rx.local_addr().unwrap();
            let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
            tx.connect(dest).unwrap();
            let mut gso = Gso::probe(&tx, want);
            if !want {
                assert_eq!(gso, Gso::Off);
            }
            // Runs of equal lengths (GSO sends) and odd lengths between them.
            let data: Vec<Vec<u8>> = (0..10u8)
                .map(|i| vec![i; [100, 100, 100, 7, 100, 100, 1, 2, 2, 2][i as usize]])
                .collect();
            let slices: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
            let mut s = BatchSender::new(4);
            for _ in 0..2 {
                assert_eq!(s.send(&tx, &mut gso, &slices).unwrap(), 10);
            }
            // More per call than the kernel takes: chunked.
            assert_eq!(BatchSender::new(2048).send(&tx, &mut gso, &slices).unwrap(), 10);
            let mut buf = [0u8; 128];
            for _ in 0..3 {
                for d in &data {
                    let (n, from) = rx.recv_from(&mut buf).unwrap();
                    assert_eq!(&buf[..n], d.as_slice());
                    assert_eq!(from, tx.local_addr().unwrap());
                }
            }
            let (sends, datagrams) = s.gso_stats();
            if gso == Gso::On {
                // Per call: [100 x3] [7] | [100 x2] [1] [2] | [2 x2]: 6 sends.
                assert_eq!((sends, datagrams), (12, 20));
            } else {
                assert_eq!((sends, datagrams), (0, 0));
            }
        }
    }

    #[test]
    fn gso_refusals_are_told_apart() {
        assert!(gso_refused(&io::Error::from(io::ErrorKind::Unsupported)));
        assert!(!gso_refused(&io::Error::from(io::ErrorKind::WouldBlock)));
        #[cfg(target_os = "linux")]
        {
            use rustix::io::Errno;
            for e in [Errno::IO, Errno::INVAL, Errno::NOPROTOOPT, Errno::OPNOTSUPP] {
                assert!(gso_refused(&e.into()), "{e:?}");
            }
            for e in [Errno::NOBUFS, Errno::CONNREFUSED, Errno::AGAIN] {
                assert!(!gso_refused(&e.into()), "{e:?}");
            }
        }
    }
}
