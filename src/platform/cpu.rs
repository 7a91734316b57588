//! The CPU: pinning threads to cores, the cores this process may use, and a
//! cache prefetch hint. No I/O and no state: this is the only part of the
//! platform room the pure flow core uses ([`prefetch`], [`prefetch_addr`]).

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

/// [`prefetch`] of an address that need not be valid (computed with
/// wrapping arithmetic, without a bounds check): a prefetch never faults.
#[inline(always)]
pub fn prefetch_addr<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 only loads a cache line; it never faults, whatever
    // the address (an invalid one is ignored), and has no architectural effect.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
