//! The platform room: the one place in nfstitch for `unsafe` and
//! `cfg(target_os = "linux")` code. Everything else in the crate denies `unsafe`.
//!
//! It owns:
//! - `socket.rs`: [`ReuseportSocket`], a nonblocking UDP socket bound with `SO_REUSEPORT` +
//!   `SO_REUSEADDR` so several receive threads can share one port, with `SO_TIMESTAMPNS`
//!   (kernel receive time) and `SO_RXQ_OVFL` (per-socket drop counter) enabled on Linux;
//!   [`RecvMeta`], what the kernel says about one received datagram;
//! - `linux.rs` / `fallback.rs`: batched receive ([`RecvBatch`], [`recv_batch`]):
//!   `recvmmsg(2)` into buffers, address slots and control-message space allocated once, with
//!   the latest kernel drop count; batched send on a connected socket, for the load generator
//!   ([`GsoBatch`], [`send_gso`]): `sendmmsg(2)` with UDP generic segmentation offload
//!   ([`enable_udp_gso`]: runs of equal-length datagrams as one `UDP_SEGMENT` send each,
//!   Linux 4.18+), or plain, one datagram per message ([`GsoBatch::plain`]);
//! - [`cpu`]: pinning ([`pin_current_thread`], [`available_cores`], [`core_ids`]) and the cache
//!   prefetch hint ([`cpu::prefetch`]) with which the flow table overlaps the cache misses of a
//!   batch. No I/O: the flow core depends on this part of the room only;
//! - `sys.rs`: the raw Linux `setsockopt`/`sysconf` calls the socket and `/proc` readers use;
//! - `procfs.rs`: small `/proc` readers ([`rmem_max`], [`socket_drops`], [`rss_bytes`], and
//!   the CPU time of threads for benchmarks: [`thread_cpu_ns`], [`current_thread_cpu_ns`]).
//!
//! On Linux the batch functions are raw `recvmmsg`/`sendmmsg` calls (see `linux.rs`, modelled
//! on quinn-udp's `unix.rs`). Elsewhere a portable fallback with the same signatures
//! (`fallback.rs`) loops over `recv_from` / `send`, reports no timestamps and no drop
//! counter. Nothing in here logs; every failure is returned to the caller.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::net::UdpSocket;

#[cfg(any(not(target_os = "linux"), test))]
mod fallback;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(test)]
mod tests;

pub mod cpu;
mod procfs;
mod socket;
#[cfg(target_os = "linux")]
mod sys;

#[cfg(not(target_os = "linux"))]
pub use fallback::{recv_batch, send_gso, GsoBatch, RecvBatch};
#[cfg(target_os = "linux")]
pub use linux::{recv_batch, send_gso, GsoBatch, RecvBatch};

pub use cpu::{available_cores, core_ids, pin_current_thread};
pub use procfs::{current_thread_cpu_ns, rmem_max, rss_bytes, socket_drops, thread_cpu_ns};
pub use socket::{RecvMeta, ReuseportSocket, DEFAULT_BUF_LEN, GSO_MAX_BYTES, GSO_MAX_SEGMENTS};

/// Prepares `sock` for [`send_gso`]: `setsockopt(UDP_SEGMENT, 0)`, which succeeds where the
/// kernel has UDP GSO (Linux 4.18+) and changes nothing else (only sends with a `UDP_SEGMENT`
/// control message are segmented). `ENOPROTOOPT` on older kernels, `Unsupported` elsewhere.
/// A route without GSO (e.g. no checksum offload) still refuses the first segmented send.
pub fn enable_udp_gso(sock: &UdpSocket) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    return sys::enable_udp_gso(sock);
    #[cfg(not(target_os = "linux"))]
    return fallback::enable_udp_gso(sock);
}
