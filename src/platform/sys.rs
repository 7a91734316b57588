//! The raw Linux option calls (`setsockopt`, `sysconf`) that configure a
//! socket or ask the system a question; the batch calls that use sockets are
//! in `linux.rs`.

use std::io;
use std::mem::size_of;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;

use libc::{c_int, c_void};
use socket2::Socket;

/// `setsockopt(fd, level, name, &value, sizeof(int))`.
fn setsockopt_int(fd: RawFd, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: `value` is a live `c_int` on this stack frame and we pass exactly its size; the
    // kernel only reads `optlen` bytes from it during the call. An invalid `fd` is reported
    // as EBADF, not undefined behaviour.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            ptr::addr_of!(value).cast::<c_void>(),
            size_of::<c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Enables `SO_TIMESTAMPNS` and `SO_RXQ_OVFL` so each received datagram carries its kernel
/// receive time and (once anything was dropped) the socket's cumulative drop count.
pub(super) fn enable_rx_metadata(socket: &Socket) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)
}

/// `SO_RCVBUFFORCE`: like `SO_RCVBUF` but not capped by `rmem_max`; needs `CAP_NET_ADMIN`
/// (fails with EPERM otherwise).
pub(super) fn set_rcvbuf_force(socket: &Socket, size: usize) -> io::Result<()> {
    let value = c_int::try_from(size).unwrap_or(c_int::MAX);
    setsockopt_int(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, value)
}

/// The system page size in bytes.
pub(super) fn page_size() -> Option<u64> {
    // SAFETY: sysconf takes no pointers and has no preconditions.
    let rc = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(rc).ok().filter(|&p| p > 0)
}

/// `setsockopt(UDP_SEGMENT, 0)`: succeeds on kernels with UDP GSO (Linux 4.18+) and leaves
/// the socket as it was (no segmentation unless a send asks for it); `ENOPROTOOPT` before.
pub(super) fn enable_udp_gso(sock: &UdpSocket) -> io::Result<()> {
    setsockopt_int(sock.as_raw_fd(), libc::SOL_UDP, libc::UDP_SEGMENT, 0)
}
