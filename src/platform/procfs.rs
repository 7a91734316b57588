//! Small `/proc` readers: the receive-buffer cap (`rmem_max`), a socket's
//! kernel drop count, this process's resident set size, and the CPU time
//! of threads (`thread_cpu_ns`, `current_thread_cpu_ns`, for benchmarks).
//! Each returns `None` where the file is missing (not Linux) or unreadable.

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

/// CPU time in ns the calling thread has run (the first field of
/// `/proc/thread-self/schedstat`, nanosecond resolution), None if unavailable.
pub fn current_thread_cpu_ns() -> Option<u64> {
    parse_schedstat(&std::fs::read_to_string("/proc/thread-self/schedstat").ok()?)
}

/// CPU time in ns that the live threads of this process named `name` (their
/// `comm`, as `std::thread::Builder::name` sets it, cut to 15 bytes) have
/// run, summed; None if no such thread or unavailable.
pub fn thread_cpu_ns(name: &str) -> Option<u64> {
    let mut sum = None;
    for ent in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = ent.ok()?.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else { continue };
        if comm.trim_end() != name {
            continue;
        }
        // A thread that ended since the listing is left out.
        if let Some(ns) =
            std::fs::read_to_string(dir.join("schedstat")).ok().as_deref().and_then(parse_schedstat)
        {
            sum = Some(sum.unwrap_or(0) + ns);
        }
    }
    sum
}

/// The run time in ns (first field) of a `schedstat` text.
pub(super) fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}
