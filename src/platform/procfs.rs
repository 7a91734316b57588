//! Small `/proc` readers: the receive-buffer cap (`rmem_max`), a socket's
//! kernel drop count, and this process's resident set size. Each returns
//! `None` where the file is missing (not Linux) or unreadable.

#[cfg(target_os = "linux")]
use super::sys;

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
pub(super) fn parse_proc_udp_drops(text: &str, ino: u64) -> Option<u64> {
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
        parse_statm_rss(&statm, sys::page_size()?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Resident bytes from the text of `/proc/<pid>/statm` (second field, in pages).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(super) fn parse_statm_rss(statm: &str, page_size: u64) -> Option<u64> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page_size)
}
