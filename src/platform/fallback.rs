//! Portable batch I/O for platforms without `recvmmsg`/`sendmmsg` (everything but Linux):
//! the same API as `linux.rs`, built from `recv_from` / `send_to` loops. No kernel
//! timestamps (`rx_time_ns` is always None) and no drop counter (`kernel_drops` is always
//! None, i.e. zero drops observed). Compiled on Linux too under `cfg(test)` so it is tested.
//!
//! Truncation is detected by giving every slot one spare byte: a datagram that fills it was
//! longer than `buf_len`. (On Windows an oversized datagram is instead an `WSAEMSGSIZE`
//! error from `recv_from`, which is returned.)

use std::fmt;
use std::io;
use std::net::UdpSocket;

use super::{RecvMeta, ReuseportSocket};

/// Reusable receive batch: `n` slots of `buf_len` (+1 spare) bytes, allocated once.
pub struct RecvBatch {
    buf_len: usize,
    bufs: Box<[u8]>,
    metas: Box<[RecvMeta]>,
    filled: usize,
}

impl RecvBatch {
    /// Allocates a batch of `n` datagram slots of `buf_len` bytes each.
    ///
    /// # Panics
    ///
    /// If `n` or `buf_len` is zero or the total size overflows.
    pub fn new(n: usize, buf_len: usize) -> Self {
        assert!(n > 0, "RecvBatch needs at least one slot");
        assert!(buf_len > 0, "RecvBatch needs a non-empty buffer per slot");
        let total = buf_len
            .checked_add(1)
            .and_then(|slot| slot.checked_mul(n))
            .expect("RecvBatch: n * buf_len overflows");
        Self {
            buf_len,
            bufs: vec![0u8; total].into_boxed_slice(),
            metas: vec![RecvMeta::EMPTY; n].into_boxed_slice(),
            filled: 0,
        }
    }

    /// Number of datagram slots.
    pub fn capacity(&self) -> usize {
        self.metas.len()
    }

    /// Bytes per slot; longer datagrams are truncated (and flagged).
    pub fn buf_len(&self) -> usize {
        self.buf_len
    }

    /// Datagrams received by the last [`recv_batch`] call.
    pub fn len(&self) -> usize {
        self.filled
    }

    /// True when the last [`recv_batch`] call received nothing.
    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Datagram `i` of the last [`recv_batch`] call: its metadata and payload.
    ///
    /// # Panics
    ///
    /// If `i >= self.len()`.
    pub fn get(&self, i: usize) -> (&RecvMeta, &[u8]) {
        assert!(i < self.filled, "RecvBatch::get({i}) with only {} received", self.filled);
        let meta = &self.metas[i];
        let start = self.offset(i);
        (meta, &self.bufs[start..start + meta.len])
    }

    /// Where datagram `i` starts in [`RecvBatch::buffer`]: `get(i)`'s payload
    /// is `buffer()[offset(i)..][..len]`.
    pub fn offset(&self, i: usize) -> usize {
        i * (self.buf_len + 1)
    }

    /// The whole receive buffer (every slot), for reading records in place.
    pub fn buffer(&self) -> &[u8] {
        &self.bufs
    }

    /// The datagrams of the last [`recv_batch`] call, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&RecvMeta, &[u8])> + '_ {
        (0..self.filled).map(move |i| self.get(i))
    }

    /// Always None here: the platform gives no drop counter.
    pub fn kernel_drops(&self) -> Option<u64> {
        None
    }
}

impl fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBatch")
            .field("capacity", &self.capacity())
            .field("buf_len", &self.buf_len)
            .field("len", &self.filled)
            .finish_non_exhaustive()
    }
}

/// Receives up to `batch.capacity()` datagrams with nonblocking `recv_from` calls.
///
/// Returns how many were received (0 when none was queued); `EINTR` is retried. An error
/// after at least one datagram ends the batch early and recurs on the next call.
pub fn recv_batch(sock: &ReuseportSocket, batch: &mut RecvBatch) -> io::Result<usize> {
    batch.filled = 0;
    let slot_len = batch.buf_len + 1;
    for i in 0..batch.capacity() {
        let slot = &mut batch.bufs[i * slot_len..(i + 1) * slot_len];
        let res = loop {
            match sock.as_udp().recv_from(slot) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match res {
            Ok((len, src)) => {
                batch.metas[i] = RecvMeta {
                    len: len.min(batch.buf_len),
                    src,
                    rx_time_ns: None,
                    truncated: len > batch.buf_len,
                };
                batch.filled += 1;
            }
            Err(e) if batch.filled > 0 || e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(batch.filled)
}

/// UDP GSO is Linux only: [`enable_udp_gso`] and [`send_gso`] say `Unsupported` here (a
/// [`GsoBatch::plain`] batch still sends, one datagram at a time).
fn gso_unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "UDP GSO (UDP_SEGMENT) needs Linux")
}

/// Always `Unsupported` (UDP GSO is Linux only).
pub(super) fn enable_udp_gso(sock: &UdpSocket) -> io::Result<()> {
    let _ = sock;
    Err(gso_unsupported())
}

/// Send-side arrays of [`send_gso`]; holds nothing here.
#[derive(Debug)]
pub struct GsoBatch {
    capacity: usize,
    /// [`GsoBatch::plain`]: one `send` per datagram instead of `Unsupported`.
    plain: bool,
}

impl GsoBatch {
    /// # Panics
    ///
    /// If `n` is zero.
    pub fn new(n: usize) -> Self {
        assert!(n > 0, "GsoBatch needs at least one slot");
        Self { capacity: n, plain: false }
    }

    /// A batch that never segments: one `send` per datagram on the connected socket.
    pub fn plain(n: usize) -> Self {
        Self { plain: true, ..Self::new(n) }
    }

    /// Datagrams per call.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Messages sent: always 0 here.
    pub fn sends(&self) -> u64 {
        0
    }
}

/// `Unsupported` (UDP GSO is Linux only), except for a [`GsoBatch::plain`] batch.
pub fn send_gso(sock: &UdpSocket, payloads: &[&[u8]], batch: &mut GsoBatch) -> io::Result<usize> {
    if !batch.plain {
        return Err(gso_unsupported());
    }
    // `send`, not `send_to`: on a connected socket the BSDs refuse a destination (EISCONN).
    let mut sent = 0;
    for payload in payloads {
        let res = loop {
            match sock.send(payload) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match res {
            Ok(_) => sent += 1,
            Err(e) if sent > 0 || e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod gso_unit {
    use super::*;

    #[test]
    fn gso_is_unsupported() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut b = GsoBatch::new(4);
        assert_eq!((b.capacity(), b.sends()), (4, 0));
        assert_eq!(enable_udp_gso(&sock).unwrap_err().kind(), io::ErrorKind::Unsupported);
        let e = send_gso(&sock, &[b"x"], &mut b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    }
}
