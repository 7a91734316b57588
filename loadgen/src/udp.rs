//! One exporter's batches out of its socket, connected to the target.
//!
//! On Linux: `sendmmsg(2)` with no destination address (rustix's safe
//! wrapper) on the connected socket, like `benches/c/sendmmsg.c`. A
//! destination in every message (what `nfstitch::net::send_batch` does) makes
//! the kernel look up the route and check the source address per datagram;
//! the connected socket reuses its cached route, a few percent of the
//! per-datagram kernel work. Elsewhere: `nfstitch::net::send_batch` to the
//! target.
//!
//! No allocation per call: the `iovec`/`mmsghdr` arrays are vectors kept
//! between calls (emptied and reused for each call's lifetimes).

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// Reuse a vector's allocation for another element type of the same layout
/// (the in-place collect of an empty vector keeps its buffer).
pub(crate) fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().map(|_| -> U { unreachable!("the vector is empty") }).collect()
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use rustix::io::Errno;
    use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags};
    use std::io::IoSlice;

    /// Reusable arrays for `sendmmsg` on a connected socket.
    pub struct BatchSender {
        n: usize,
        io: Vec<IoSlice<'static>>,
        ctl: Vec<SendAncillaryBuffer<'static, 'static, 'static>>,
        hdrs: Vec<MMsgHdr<'static>>,
    }

    impl std::fmt::Debug for BatchSender {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("BatchSender").field("capacity", &self.n).finish_non_exhaustive()
        }
    }

    impl BatchSender {
        /// Up to `n` datagrams per syscall (the kernel takes at most 1024).
        pub fn new(n: usize) -> Self {
            let n = n.clamp(1, 1024);
            BatchSender {
                n,
                io: Vec::with_capacity(n),
                ctl: Vec::with_capacity(n),
                hdrs: Vec::with_capacity(n),
            }
        }

        /// Send `payloads` on `sock` (connected to `_dest`). Returns how many
        /// the kernel took (a prefix); an error only when it took none.
        pub fn send(
            &mut self,
            sock: &UdpSocket,
            _dest: SocketAddr,
            payloads: &[&[u8]],
        ) -> io::Result<usize> {
            let mut sent = 0;
            for chunk in payloads.chunks(self.n) {
                let mut io: Vec<IoSlice<'_>> = recycle(std::mem::take(&mut self.io));
                io.extend(chunk.iter().map(|p| IoSlice::new(p)));
                let mut ctl: Vec<SendAncillaryBuffer<'_, '_, '_>> =
                    recycle(std::mem::take(&mut self.ctl));
                ctl.resize_with(chunk.len(), Default::default);
                let mut hdrs: Vec<MMsgHdr<'_>> = recycle(std::mem::take(&mut self.hdrs));
                hdrs.extend(
                    io.iter()
                        .zip(ctl.iter_mut())
                        .map(|(iov, c)| MMsgHdr::new(std::slice::from_ref(iov), c)),
                );
                let res = loop {
                    match sendmmsg(sock, &mut hdrs, SendFlags::empty()) {
                        Err(Errno::INTR) => continue,
                        r => break r,
                    }
                };
                self.hdrs = recycle(hdrs);
                self.ctl = recycle(ctl);
                self.io = recycle(io);
                match res {
                    Ok(k) => {
                        sent += k;
                        if k < chunk.len() {
                            break;
                        }
                    }
                    Err(e) if sent > 0 || e == Errno::AGAIN => break,
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(sent)
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;
    use nfstitch::net::{send_batch, SendBatch};

    /// `nfstitch::net::send_batch` to the target.
    #[derive(Debug)]
    pub struct BatchSender(SendBatch);

    impl BatchSender {
        pub fn new(n: usize) -> Self {
            BatchSender(SendBatch::new(n))
        }

        pub fn send(
            &mut self,
            sock: &UdpSocket,
            dest: SocketAddr,
            payloads: &[&[u8]],
        ) -> io::Result<usize> {
            send_batch(sock, dest, payloads, &mut self.0)
        }
    }
}

pub use imp::BatchSender;

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
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let dest = rx.local_addr().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(dest).unwrap();
        let data: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 1 + i as usize]).collect();
        let slices: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
        let mut s = BatchSender::new(4);
        for _ in 0..2 {
            assert_eq!(s.send(&tx, dest, &slices).unwrap(), 10);
        }
        // More per call than the kernel takes: chunked.
        assert_eq!(BatchSender::new(2048).send(&tx, dest, &slices).unwrap(), 10);
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            for d in &data {
                let (n, from) = rx.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], d.as_slice());
                assert_eq!(from, tx.local_addr().unwrap());
            }
        }
    }
}
