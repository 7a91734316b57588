//! Platform networking: the one place in nfstitch for `unsafe` and `cfg(target_os = "linux")`
//! code.
//!
//! This module owns:
//! - [`ReuseportSocket`]: a nonblocking UDP socket bound with `SO_REUSEPORT` + `SO_REUSEADDR`
//!   so several receive threads can share one port, with `SO_TIMESTAMPNS` (kernel receive
//!   time) and `SO_RXQ_OVFL` (per-socket drop counter) enabled on Linux;
//! - batched receive ([`RecvBatch`], [`recv_batch`]): `recvmmsg(2)` into buffers, address
//!   slots and control-message space allocated once, with per-datagram [`RecvMeta`]
//!   (source, kernel timestamp, truncation) and the latest kernel drop count;
//! - batched send on a connected socket, for the load generator ([`GsoBatch`], [`send_gso`]):
//!   `sendmmsg(2)` with UDP generic segmentation offload ([`enable_udp_gso`]: runs of
//!   equal-length datagrams as one `UDP_SEGMENT` send each, Linux 4.18+), or plain, one
//!   datagram per message ([`GsoBatch::plain`]);
//! - [`prefetch`]: a cache prefetch hint, so the flow table can overlap the cache misses of
//!   a batch of records;
//! - CPU pinning ([`pin_current_thread`], [`available_cores`], [`core_ids`]) and small
//!   `/proc` readers ([`rmem_max`], [`rss_bytes`]).
//!
//! On Linux the batch functions are raw `recvmmsg`/`sendmmsg` calls (see `linux.rs`, modelled
//! on quinn-udp's `unix.rs`). Elsewhere a portable fallback with the same signatures
//! (`fallback.rs`) loops over `recv_from` / `send`, reports no timestamps and no drop
//! counter. Nothing in here logs; every failure is returned to the caller.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

#[cfg(any(not(target_os = "linux"), test))]
mod fallback;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(test)]
mod tests;

#[cfg(not(target_os = "linux"))]
pub use fallback::{recv_batch, send_gso, GsoBatch, RecvBatch};
#[cfg(target_os = "linux")]
pub use linux::{recv_batch, send_gso, GsoBatch, RecvBatch};

/// Most datagrams one UDP GSO send carries: the kernel's `UDP_MAX_SEGMENTS` (64; newer
/// kernels take 128).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Most payload bytes one UDP GSO send carries: 65535 less the IPv4 and UDP headers.
pub const GSO_MAX_BYTES: usize = 65_507;

/// Prepares `sock` for [`send_gso`]: `setsockopt(UDP_SEGMENT, 0)`, which succeeds where the
/// kernel has UDP GSO (Linux 4.18+) and changes nothing else (only sends with a `UDP_SEGMENT`
/// control message are segmented). `ENOPROTOOPT` on older kernels, `Unsupported` elsewhere.
/// A route without GSO (e.g. no checksum offload) still refuses the first segmented send.
pub fn enable_udp_gso(sock: &UdpSocket) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    return linux::enable_udp_gso(sock);
    #[cfg(not(target_os = "linux"))]
    return fallback::enable_udp_gso(sock);
}

/// Default per-datagram buffer length for [`RecvBatch::new`]: enough for a full NetFlow v5
/// datagram (24-byte header + 30 records of 48 bytes = 1464 bytes) with room to spare.
pub const DEFAULT_BUF_LEN: usize = 2048;

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
    /// [`ReuseportSocket::rcvbuf`] with the request (and [`rmem_max`]) to warn about a cap.
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
        linux::enable_rx_metadata(&socket)?;
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
fn set_rcvbuf(socket: &Socket, size: usize) -> io::Result<()> {
    // The kernel doubles the value into an int; keep the doubled value representable.
    let size = size.min(i32::MAX as usize / 2);
    #[cfg(target_os = "linux")]
    if linux::set_rcvbuf_force(socket, size).is_ok() {
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

/// Pins the current thread to core `core` (an id as in [`core_ids`]). Returns false if pinning
/// failed (unknown core, not allowed by the cpuset, unsupported platform); the caller warns.
pub fn pin_current_thread(core: usize) -> bool {
    // core_affinity indexes a fixed-size cpu_set_t (Linux) or shifts a word-sized mask
    // (Windows) and would panic on an out-of-range id. On Linux any id inside the set may be
    // valid (a pinned thread may widen again), elsewhere only the listed ids are.
    #[cfg(target_os = "linux")]
    if core >= libc::CPU_SETSIZE as usize {
        return false;
    }
    #[cfg(not(target_os = "linux"))]
    if !core_ids().contains(&core) {
        return false;
    }
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

/// Number of cores available: the cores in the calling thread's affinity mask (so call it
/// before pinning), falling back to `std::thread::available_parallelism`, then to 1.
pub fn available_cores() -> usize {
    let n = core_ids().len();
    if n > 0 {
        return n;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Ids of the cores in the calling thread's affinity mask (empty if unknown), suitable for
/// [`pin_current_thread`]. They need not be `0..n` (e.g. under `taskset 0xc`).
pub fn core_ids() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default()
}

/// Reads `/proc/sys/net/core/rmem_max`, the cap on unprivileged `SO_RCVBUF` requests
/// (None if unreadable, e.g. not Linux).
pub fn rmem_max() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max").ok()?.trim().parse().ok()
}

/// The kernel's drop count for one UDP socket, read from `/proc/net/udp`
/// and `/proc/net/udp6` (the `drops` column of the line with the socket's
/// inode). The same counter SO_RXQ_OVFL reports, but readable at any time,
/// not only when a datagram arrives. None if unavailable.
pub fn socket_drops(sock: &impl std::os::fd::AsRawFd) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(format!("/proc/self/fd/{}", sock.as_raw_fd())).ok()?.ino();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        if let Some(d) = parse_proc_udp_drops(&text, ino) {
            return Some(d);
        }
    }
    None
}

/// The `drops` column (last) of the line whose inode column (10th) is `ino`.
fn parse_proc_udp_drops(text: &str, ino: u64) -> Option<u64> {
    text.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.get(9)?.parse::<u64>().ok()? == ino).then(|| cols.last()?.parse().ok())?
    })
}

/// Resident set size of this process in bytes (from `/proc/self/statm`), None if unavailable.
pub fn rss_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        parse_statm_rss(&statm, linux::page_size()?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Resident bytes from the text of `/proc/<pid>/statm` (second field, in pages).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_statm_rss(statm: &str, page_size: u64) -> Option<u64> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page_size)
}

/// Ask the CPU to bring the cache line holding `r` into L1 (a hint: no effect on
/// program state; a no-op on targets without a stable prefetch instruction).
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 only loads a cache line; it never faults and has no
    // architectural effect, and `r` is a valid reference anyway. SSE is part of
    // the x86_64 baseline, so the instruction always exists.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
