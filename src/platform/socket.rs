//! The collector's receive socket ([`ReuseportSocket`]: `SO_REUSEPORT`,
//! receive buffer, kernel timestamps and drop counter), the metadata of one
//! received datagram ([`RecvMeta`]), and the switch that prepares a send
//! socket for UDP GSO. The batch calls themselves are in `linux.rs` and
//! `fallback.rs`.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

#[cfg(target_os = "linux")]
use super::sys;

/// Most datagrams one UDP GSO send carries: the kernel's `UDP_MAX_SEGMENTS` (64; newer
/// kernels take 128).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Most payload bytes one UDP GSO send carries: 65535 less the IPv4 and UDP headers.
pub const GSO_MAX_BYTES: usize = 65_507;

/// Default per-datagram buffer length for [`RecvBatch::new`](super::RecvBatch::new): a
/// v9/IPFIX export filling a 9000-byte jumbo frame (8972 bytes of UDP payload over IPv4,
/// 8952 over IPv6) with room to spare; a full NetFlow v5 datagram is 1464 bytes. A longer
/// datagram (an export the exporter let IP fragment, up to 65507 bytes) arrives cut to
/// this length, flagged [`RecvMeta::truncated`]; the collector rejects it, counted
/// (`rejected.truncated`). Per socket a batch of 64 takes 64 x 9216 = 576 KiB.
pub const DEFAULT_BUF_LEN: usize = 9216;

/// A UDP socket bound with `SO_REUSEPORT` (and `SO_REUSEADDR`), nonblocking, with
/// `SO_TIMESTAMPNS` and `SO_RXQ_OVFL` enabled (Linux), IPv4 or IPv6 (`IPV6_V6ONLY` set for v6).
///
/// Several of these may be bound to the same address by one user; on Linux the kernel then
/// spreads incoming datagrams across them by flow hash. Register it with mio through
/// `mio::unix::SourceFd(&sock.as_raw_fd())`.
#[derive(Debug)]
pub struct ReuseportSocket {
    udp: UdpSocket,
}

impl ReuseportSocket {
    /// Creates, configures and binds the socket.
    ///
    /// `rcvbuf`, when given, is the requested `SO_RCVBUF` in bytes. On Linux `SO_RCVBUFFORCE`
    /// is tried first (it succeeds with `CAP_NET_ADMIN` and is then not capped by
    /// `net.core.rmem_max`); otherwise plain `SO_RCVBUF` is used, which the kernel silently
    /// caps at `rmem_max`. Either way the kernel doubles the value for its bookkeeping; compare
    /// [`ReuseportSocket::rcvbuf`] with the request (and [`rmem_max`](super::rmem_max)) to warn about a cap.
    pub fn bind(addr: SocketAddr, rcvbuf: Option<usize>) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_reuse_address(true)?;
        #[cfg(all(
            unix,
            not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
        ))]
        socket.set_reuse_port(true)?;
        if let Some(size) = rcvbuf {
            set_rcvbuf(&socket, size)?;
        }
        #[cfg(target_os = "linux")]
        sys::enable_rx_metadata(&socket)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        Ok(Self { udp: socket.into() })
    }

    /// The address the socket is bound to (with the real port when bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// `SO_RCVBUF` as the kernel reports it.
    ///
    /// Linux reports double the value that was set (it reserves half for `sk_buff`
    /// overhead), and never less than its minimum; this returns exactly what the kernel says,
    /// so a request of `n` that was honoured reads back as `2 * n`.
    pub fn rcvbuf(&self) -> io::Result<usize> {
        SockRef::from(&self.udp).recv_buffer_size()
    }

    /// The underlying std socket (nonblocking), e.g. for `send_to` or for a raw fd.
    pub fn as_udp(&self) -> &UdpSocket {
        &self.udp
    }

    /// Consumes the wrapper, returning the std socket (still nonblocking, options kept).
    pub fn into_udp(self) -> UdpSocket {
        self.udp
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for ReuseportSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.udp.as_raw_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for ReuseportSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.udp.as_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsRawSocket for ReuseportSocket {
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        self.udp.as_raw_socket()
    }
}

/// Sets the receive buffer, preferring `SO_RCVBUFFORCE` on Linux (see [`ReuseportSocket::bind`]).
pub(super) fn set_rcvbuf(socket: &Socket, size: usize) -> io::Result<()> {
    // The kernel doubles the value into an int; keep the doubled value representable.
    let size = size.min(i32::MAX as usize / 2);
    #[cfg(target_os = "linux")]
    if sys::set_rcvbuf_force(socket, size).is_ok() {
        return Ok(());
    }
    socket.set_recv_buffer_size(size)
}

/// Metadata of one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes of payload stored (at most the batch's `buf_len`).
    pub len: usize,
    /// Sender address.
    pub src: SocketAddr,
    /// Kernel receive time, ns since the Unix epoch (SO_TIMESTAMPNS / SCM_TIMESTAMPNS,
    /// CLOCK_REALTIME), None if absent.
    pub rx_time_ns: Option<u64>,
    /// True when the datagram was truncated (MSG_TRUNC): it was larger than `buf_len` and
    /// only the first `len` bytes were kept.
    pub truncated: bool,
}

impl RecvMeta {
    /// Placeholder for slots that have not received anything yet.
    pub(crate) const EMPTY: RecvMeta = RecvMeta {
        len: 0,
        src: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        rx_time_ns: None,
        truncated: false,
    };
}
