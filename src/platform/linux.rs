//! Linux implementation of the batch I/O: `recvmmsg(2)` with `SCM_TIMESTAMPNS` and
//! `SO_RXQ_OVFL` control messages, and `sendmmsg(2)` with `UDP_SEGMENT`.
//!
//! Modelled on quinn-udp's `unix.rs` (`recv_via_recvmmsg`, `retry_if_interrupted`, cmsg
//! decoding). All header/iovec/address/control arrays live in boxed slices owned by the
//! batch; the raw pointers between them are rebuilt from `&mut self` right before each
//! syscall, so moving a batch never leaves a stale pointer that the kernel could use.

use std::fmt;
use std::io;
use std::mem::{align_of, size_of};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::ptr;

use libc::{c_int, c_uint, c_void};

use super::{RecvMeta, ReuseportSocket};

/// Bytes of control-message space per datagram. Must hold `SCM_TIMESTAMPNS` (a `timespec`)
/// plus `SO_RXQ_OVFL` (a `u32`), each with its `cmsghdr` and padding: 32 + 24 = 56 bytes on
/// 64-bit Linux. 128 leaves room should the kernel ever add one more.
const CMSG_BUF_LEN: usize = 128;

/// Control-message space for one datagram, aligned for `cmsghdr` (whose first field is a
/// `size_t`), as `CMSG_FIRSTHDR`/`CMSG_NXTHDR` require.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct CmsgBuf([u8; CMSG_BUF_LEN]);

/// Control space the kernel needs for the two control messages we enable.
fn cmsg_space_needed() -> usize {
    // SAFETY: CMSG_SPACE is pure arithmetic on its argument (it is `unsafe` in libc only
    // because it mirrors a C macro); it touches no memory.
    unsafe {
        libc::CMSG_SPACE(size_of::<libc::timespec>() as c_uint) as usize
            + libc::CMSG_SPACE(size_of::<u32>() as c_uint) as usize
    }
}

/// `CMSG_LEN(payload)`: the `cmsg_len` of a control message carrying `payload` bytes.
fn cmsg_len(payload: usize) -> usize {
    // SAFETY: CMSG_LEN is pure arithmetic on its argument; it touches no memory.
    unsafe { libc::CMSG_LEN(payload as c_uint) as usize }
}

/// Returns a value of `T` with every byte zero.
///
/// # Safety
///
/// The all-zero bit pattern must be a valid `T`: true for the plain C structs used here
/// (`mmsghdr`, `sockaddr_storage`), which consist only of integers and raw pointers (null).
unsafe fn zeroed<T>() -> T {
    // SAFETY: the caller guarantees all-zero bytes are a valid `T`.
    unsafe { std::mem::zeroed() }
}

/// Calls `f`, a raw syscall wrapper returning `-1` with `errno` set on failure, again for as
/// long as it fails with `EINTR`. Returns the (non-negative) result or the error.
fn retry_if_interrupted(mut f: impl FnMut() -> c_int) -> io::Result<usize> {
    loop {
        let rc = f();
        if let Ok(n) = usize::try_from(rc) {
            return Ok(n);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Decodes a kernel-filled socket address; None for families other than IPv4/IPv6 or a
/// length too short for the family.
fn sockaddr_to_std(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match c_int::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a `sockaddr_in`; `sockaddr_storage` is
            // at least as large and as aligned as `sockaddr_in` (asserted in
            // `RecvBatch::new`), and both are plain integers, so the read is in bounds and valid.
            let sin = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for `sockaddr_in6`.
            let sin6 = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// `timespec` (CLOCK_REALTIME) to ns since the epoch; None for a zero, negative or malformed
/// value.
fn timespec_to_ns(ts: &libc::timespec) -> Option<u64> {
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok().filter(|&n| n < 1_000_000_000)?;
    if secs == 0 && nanos == 0 {
        return None;
    }
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// What the control messages of one datagram said.
#[derive(Default)]
struct Cmsgs {
    rx_time_ns: Option<u64>,
    drops: Option<u32>,
}

/// Walks the control messages of one received datagram.
///
/// # Safety
///
/// `hdr` must come from a successful `recvmsg`/`recvmmsg`: `msg_control` points to at least
/// `msg_controllen` initialised bytes (as the kernel left them), aligned for `cmsghdr`, and
/// those bytes are not written while this runs.
unsafe fn parse_cmsgs(hdr: &libc::msghdr) -> Cmsgs {
    let mut out = Cmsgs::default();
    // SAFETY: per the contract, `hdr` describes a valid, kernel-filled control buffer;
    // CMSG_FIRSTHDR returns null when `msg_controllen` is too small for a header.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(hdr) };
    while !cmsg.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR only return non-null pointers to a whole,
        // aligned `cmsghdr` inside [msg_control, msg_control + msg_controllen).
        let c = unsafe { &*cmsg };
        let len = c.cmsg_len as usize;
        if c.cmsg_level == libc::SOL_SOCKET {
            match c.cmsg_type {
                libc::SCM_TIMESTAMPNS if len >= cmsg_len(size_of::<libc::timespec>()) => {
                    // SAFETY: `cmsg_len` shows the kernel wrote a whole `timespec` after the
                    // header, within the buffer; CMSG_DATA may be unaligned for `timespec`,
                    // hence `read_unaligned`.
                    let ts = unsafe {
                        ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>())
                    };
                    out.rx_time_ns = timespec_to_ns(&ts);
                }
                libc::SO_RXQ_OVFL if len >= cmsg_len(size_of::<u32>()) => {
                    // SAFETY: `cmsg_len` shows a whole `u32` follows the header, in bounds.
                    let v = unsafe { ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<u32>()) };
                    out.drops = Some(v);
                }
                _ => {}
            }
        }
        // SAFETY: `cmsg` is a valid header inside `hdr`'s control buffer; CMSG_NXTHDR checks
        // the next one against `msg_controllen` and returns null past the end.
        cmsg = unsafe { libc::CMSG_NXTHDR(hdr, cmsg) };
    }
    out
}

/// Extends the kernel's 32-bit cumulative drop counter to 64 bits.
///
/// Serial-number arithmetic (RFC 1982): a forward step of less than 2^31 is taken as growth
/// (so wrap-around past `u32::MAX` keeps counting up); a backward step is ignored, keeping
/// the value monotonic.
fn extend_drop_counter(prev: Option<u64>, raw: u32) -> u64 {
    match prev {
        None => u64::from(raw),
        Some(prev) => {
            let step = raw.wrapping_sub(prev as u32);
            if step < 1 << 31 {
                prev + u64::from(step)
            } else {
                prev
            }
        }
    }
}

/// Reusable receive batch: `n` buffers of `buf_len` bytes plus the `mmsghdr`, `iovec`,
/// `sockaddr_storage` and control-message arrays, allocated once in [`RecvBatch::new`].
/// Receiving allocates nothing.
pub struct RecvBatch {
    buf_len: usize,
    /// `n * buf_len` bytes; datagram `i` lands in `[i * buf_len, (i + 1) * buf_len)`.
    bufs: Box<[u8]>,
    names: Box<[libc::sockaddr_storage]>,
    ctrl: Box<[CmsgBuf]>,
    iovecs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    metas: Box<[RecvMeta]>,
    /// Datagrams received by the last `recv_batch`.
    filled: usize,
    /// Latest cumulative drop count seen (extended to 64 bits).
    drops: Option<u64>,
}

// SAFETY: the only non-`Send` members are the raw pointers inside `iovecs` and `hdrs`. They
// point only into heap allocations owned by this same struct, are rewritten from `&mut self`
// immediately before every syscall, and are never dereferenced otherwise, so moving the batch
// to another thread moves the owner of every pointee along with the pointers.
unsafe impl Send for RecvBatch {}
// SAFETY: through `&RecvBatch` only `metas`, `bufs` and plain integers are read; the raw
// pointers are never dereferenced via a shared reference, so sharing cannot race.
unsafe impl Sync for RecvBatch {}

impl RecvBatch {
    /// Allocates a batch of `n` datagram slots of `buf_len` bytes each (see
    /// [`super::DEFAULT_BUF_LEN`]). The kernel receives at most 1024 (`UIO_MAXIOV`) per call.
    ///
    /// # Panics
    ///
    /// If `n` or `buf_len` is zero, `n` exceeds `c_uint::MAX`, or `n * buf_len` overflows.
    pub fn new(n: usize, buf_len: usize) -> Self {
        assert!(n > 0, "RecvBatch needs at least one slot");
        assert!(buf_len > 0, "RecvBatch needs a non-empty buffer per slot");
        assert!(c_uint::try_from(n).is_ok(), "RecvBatch: too many slots");
        // Layout assumptions the unsafe code relies on.
        assert!(align_of::<CmsgBuf>() >= align_of::<libc::cmsghdr>());
        assert!(size_of::<CmsgBuf>() >= cmsg_space_needed());
        assert!(size_of::<libc::sockaddr_storage>() >= size_of::<libc::sockaddr_in6>());
        assert!(align_of::<libc::sockaddr_storage>() >= align_of::<libc::sockaddr_in6>());
        assert!(align_of::<libc::sockaddr_storage>() >= align_of::<libc::sockaddr_in>());

        let total = n.checked_mul(buf_len).expect("RecvBatch: n * buf_len overflows");
        // SAFETY: `sockaddr_storage` is integers only; all-zero is valid (family AF_UNSPEC).
        let name: libc::sockaddr_storage = unsafe { zeroed() };
        // SAFETY: `mmsghdr` is integers and raw pointers; all-zero is valid (null pointers,
        // zero lengths). musl's private padding fields make a struct literal impossible.
        let hdr: libc::mmsghdr = unsafe { zeroed() };
        let iov = libc::iovec { iov_base: ptr::null_mut(), iov_len: 0 };
        Self {
            buf_len,
            bufs: vec![0u8; total].into_boxed_slice(),
            names: vec![name; n].into_boxed_slice(),
            ctrl: vec![CmsgBuf([0; CMSG_BUF_LEN]); n].into_boxed_slice(),
            iovecs: vec![iov; n].into_boxed_slice(),
            hdrs: vec![hdr; n].into_boxed_slice(),
            metas: vec![RecvMeta::EMPTY; n].into_boxed_slice(),
            filled: 0,
            drops: None,
        }
    }

    /// Number of datagram slots.
    pub fn capacity(&self) -> usize {
        self.hdrs.len()
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
        i * self.buf_len
    }

    /// The whole receive buffer (every slot), for reading records in place.
    pub fn buffer(&self) -> &[u8] {
        &self.bufs
    }

    /// The datagrams of the last [`recv_batch`] call, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&RecvMeta, &[u8])> + '_ {
        (0..self.filled).map(move |i| self.get(i))
    }

    /// The latest cumulative kernel drop count for this socket seen in `SO_RXQ_OVFL` control
    /// messages (the kernel's u32 counter, extended to u64 across wrap-around), None if never
    /// seen. The kernel attaches it only once the count is non-zero, and only to datagrams
    /// queued after the drops, so None means "no drop observed yet". Keep one batch per
    /// socket for this to be that socket's count.
    pub fn kernel_drops(&self) -> Option<u64> {
        self.drops
    }

    /// Points every header at its own name, iovec and control slot and resets the in/out
    /// lengths the kernel overwrites (`msg_namelen`, `msg_controllen`, `msg_flags`).
    fn prepare(&mut self) {
        let buf_len = self.buf_len;
        let buf_base = self.bufs.as_mut_ptr();
        for (i, iov) in self.iovecs.iter_mut().enumerate() {
            *iov = libc::iovec {
                iov_base: buf_base.wrapping_add(i * buf_len).cast::<c_void>(),
                iov_len: buf_len,
            };
        }
        let iov_base = self.iovecs.as_mut_ptr();
        let name_base = self.names.as_mut_ptr();
        let ctrl_base = self.ctrl.as_mut_ptr();
        for (i, h) in self.hdrs.iter_mut().enumerate() {
            let m = &mut h.msg_hdr;
            m.msg_name = name_base.wrapping_add(i).cast::<c_void>();
            m.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_iov = iov_base.wrapping_add(i);
            m.msg_iovlen = 1;
            m.msg_control = ctrl_base.wrapping_add(i).cast::<c_void>();
            m.msg_controllen = size_of::<CmsgBuf>() as _;
            m.msg_flags = 0;
            h.msg_len = 0;
        }
    }
}

impl fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBatch")
            .field("capacity", &self.capacity())
            .field("buf_len", &self.buf_len)
            .field("len", &self.filled)
            .field("kernel_drops", &self.drops)
            .finish_non_exhaustive()
    }
}

/// Receives up to `batch.capacity()` datagrams with one `recvmmsg(2)` (`MSG_DONTWAIT`).
///
/// Returns how many were received: 0 when none was queued (`EAGAIN`); `EINTR` is retried.
/// Afterwards `batch.get(i)` for `i <` the result gives each datagram, and
/// `batch.kernel_drops()` reflects any `SO_RXQ_OVFL` counter they carried.
pub fn recv_batch(sock: &ReuseportSocket, batch: &mut RecvBatch) -> io::Result<usize> {
    batch.filled = 0;
    let fd = sock.as_raw_fd();
    // Fits: checked in `RecvBatch::new`.
    let vlen = batch.hdrs.len() as c_uint;
    let res = retry_if_interrupted(|| {
        batch.prepare();
        // SAFETY: `prepare` just pointed each of the `vlen` headers at this batch's own
        // `sockaddr_storage`, single iovec (a distinct `buf_len`-byte slice of `bufs`) and
        // control slot, with lengths equal to those allocations. `batch` is exclusively
        // borrowed for the whole call, so nothing else reads or writes them while the kernel
        // fills them. A null timeout is allowed.
        unsafe {
            libc::recvmmsg(
                fd,
                batch.hdrs.as_mut_ptr(),
                vlen,
                libc::MSG_DONTWAIT as _,
                ptr::null_mut(),
            )
        }
    });
    let n = match res {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
        Err(e) => return Err(e),
    };

    let buf_len = batch.buf_len;
    for i in 0..n {
        let h = &batch.hdrs[i];
        // SAFETY: header `i` was filled by the successful recvmmsg above (i < n); its
        // `msg_control` points into `batch.ctrl[i]` (aligned `CmsgBuf`) and `msg_controllen`
        // was set by the kernel to the bytes it wrote, none of which change meanwhile.
        let cmsgs = unsafe { parse_cmsgs(&h.msg_hdr) };
        if let Some(raw) = cmsgs.drops {
            batch.drops = Some(extend_drop_counter(batch.drops, raw));
        }
        let received = h.msg_len as usize;
        batch.metas[i] = RecvMeta {
            len: received.min(buf_len),
            src: sockaddr_to_std(&batch.names[i], h.msg_hdr.msg_namelen)
                .unwrap_or(RecvMeta::EMPTY.src),
            rx_time_ns: cmsgs.rx_time_ns,
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || received > buf_len,
        };
    }
    batch.filled = n;
    Ok(n)
}

/// Control-message space for one `UDP_SEGMENT` message (a `u16`: 24 bytes on 64-bit Linux),
/// aligned for `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct GsoCmsgBuf([u8; 32]);

/// `CMSG_SPACE(sizeof(u16))`: the `msg_controllen` of a message carrying `UDP_SEGMENT`.
fn gso_cmsg_space() -> usize {
    // SAFETY: CMSG_SPACE is pure arithmetic on its argument; it touches no memory.
    unsafe { libc::CMSG_SPACE(size_of::<u16>() as c_uint) as usize }
}

/// Reusable arrays for [`send_gso`]: an `iovec` per datagram and, per message, an `mmsghdr`
/// and a `UDP_SEGMENT` control message, for up to `n` datagrams per syscall, allocated once in
/// [`GsoBatch::new`].
pub struct GsoBatch {
    iovecs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    ctrl: Box<[GsoCmsgBuf]>,
    /// Datagrams in message `i` of the last `prepare`.
    segs: Box<[usize]>,
    /// Messages the kernel took so far (each one or more datagrams).
    sends: u64,
    /// Most datagrams per message: [`super::GSO_MAX_SEGMENTS`], or 1 for
    /// [`GsoBatch::plain`].
    max_segments: usize,
}

// SAFETY: the raw pointers inside `iovecs`/`hdrs` are written from `&mut self` in `send_gso`
// right before the syscall and only the kernel reads them, during that call, while the
// payloads and this batch's own control buffers they point to are borrowed. Between calls they
// are never dereferenced, so the batch can move to, or be referenced from, any thread.
unsafe impl Send for GsoBatch {}
// SAFETY: see `Send`; `&GsoBatch` only exposes plain integers.
unsafe impl Sync for GsoBatch {}

impl GsoBatch {
    /// Arrays for up to `n` datagrams per `sendmmsg` (the kernel takes at most 1024 messages).
    ///
    /// # Panics
    ///
    /// If `n` is zero or exceeds `c_uint::MAX`.
    pub fn new(n: usize) -> Self {
        assert!(n > 0, "GsoBatch needs at least one slot");
        assert!(c_uint::try_from(n).is_ok(), "GsoBatch: too many slots");
        // Layout assumptions the unsafe code relies on.
        assert!(align_of::<GsoCmsgBuf>() >= align_of::<libc::cmsghdr>());
        assert!(size_of::<GsoCmsgBuf>() >= gso_cmsg_space());
        // SAFETY: `mmsghdr` is integers and raw pointers; all-zero is valid.
        let hdr: libc::mmsghdr = unsafe { zeroed() };
        let iov = libc::iovec { iov_base: ptr::null_mut(), iov_len: 0 };
        Self {
            iovecs: vec![iov; n].into_boxed_slice(),
            hdrs: vec![hdr; n].into_boxed_slice(),
            ctrl: vec![GsoCmsgBuf([0; 32]); n].into_boxed_slice(),
            segs: vec![0; n].into_boxed_slice(),
            sends: 0,
            max_segments: super::GSO_MAX_SEGMENTS,
        }
    }

    /// [`GsoBatch::new`] that never segments: every datagram is a message of
    /// its own with no control message, i.e. plain `sendmmsg` without a
    /// destination on a connected socket (no `UDP_SEGMENT` needed).
    pub fn plain(n: usize) -> Self {
        Self { max_segments: 1, ..Self::new(n) }
    }

    /// Datagrams per `sendmmsg` call.
    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Messages (sends of one or more datagrams) the kernel took so far.
    pub fn sends(&self) -> u64 {
        self.sends
    }

    /// Groups `chunk` into messages (see [`send_gso`]) and fills their headers, iovecs and
    /// control messages; returns the number of messages.
    fn prepare(&mut self, chunk: &[&[u8]]) -> usize {
        for (iov, payload) in self.iovecs.iter_mut().zip(chunk) {
            *iov = libc::iovec {
                // The kernel only reads through it (sendmmsg); the `*mut` is the C type.
                iov_base: payload.as_ptr().cast_mut().cast::<c_void>(),
                iov_len: payload.len(),
            };
        }
        let iov_base = self.iovecs.as_mut_ptr();
        let ctrl_base = self.ctrl.as_mut_ptr();
        let space = gso_cmsg_space();
        let mut m = 0;
        let mut i = 0;
        while i < chunk.len() {
            let len = chunk[i].len();
            let mut j = i + 1;
            let mut total = len;
            if len > 0 {
                while j < chunk.len()
                    && j - i < self.max_segments
                    && chunk[j].len() == len
                    && total + len <= super::GSO_MAX_BYTES
                {
                    total += len;
                    j += 1;
                }
            }
            let h = &mut self.hdrs[m];
            let hdr = &mut h.msg_hdr;
            hdr.msg_name = ptr::null_mut();
            hdr.msg_namelen = 0;
            hdr.msg_iov = iov_base.wrapping_add(i);
            hdr.msg_iovlen = (j - i) as _;
            hdr.msg_flags = 0;
            h.msg_len = 0;
            if j - i > 1 {
                let buf = ctrl_base.wrapping_add(m);
                let c = buf.cast::<libc::cmsghdr>();
                // SAFETY: `buf` is slot `m < n` of `ctrl` (m counts messages, at most one per
                // datagram of the chunk, and the chunk holds at most `n`), a live, initialised
                // `GsoCmsgBuf` aligned for `cmsghdr` and at least CMSG_SPACE(2) bytes long
                // (asserted in `new`); all-zero or previously written bytes are a valid
                // `cmsghdr` (integers only), so writing its fields in place is sound. The
                // `u16` after the header lies inside CMSG_SPACE(2) bytes; CMSG_DATA may be
                // unaligned for it, hence `write_unaligned`. `total <= GSO_MAX_BYTES` with at
                // least two datagrams, so `len` fits in a `u16`.
                unsafe {
                    (*c).cmsg_len = cmsg_len(size_of::<u16>()) as _;
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = libc::UDP_SEGMENT;
                    ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), len as u16);
                }
                hdr.msg_control = buf.cast::<c_void>();
                hdr.msg_controllen = space as _;
            } else {
                hdr.msg_control = ptr::null_mut();
                hdr.msg_controllen = 0;
            }
            self.segs[m] = j - i;
            m += 1;
            i = j;
        }
        m
    }
}

impl fmt::Debug for GsoBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GsoBatch")
            .field("capacity", &self.capacity())
            .field("sends", &self.sends)
            .finish_non_exhaustive()
    }
}

/// Sends `payloads` on the connected socket `sock` with UDP generic segmentation offload:
/// consecutive payloads of the same length (up to [`super::GSO_MAX_SEGMENTS`] of them and
/// [`super::GSO_MAX_BYTES`] bytes in all) go out as one message with a `UDP_SEGMENT` control
/// message, which the kernel cuts back into one datagram per payload; a payload of another
/// length than its neighbours is a message of its own (no control message). Up to
/// `batch.capacity()` datagrams per `sendmmsg(2)`.
///
/// Returns how many datagrams (a prefix of `payloads`) were sent, stopping early when the
/// kernel takes only part of a chunk or would block (0 if the very first would block);
/// `EINTR` is retried; an error only when nothing was sent (after a partial send it recurs
/// on the next call). Whether it blocks follows the socket's mode. A message is taken or
/// refused whole. A kernel or route without GSO refuses a segmented message with `EIO`,
/// `EINVAL` or `ENOPROTOOPT` (check [`super::enable_udp_gso`] first).
pub fn send_gso(sock: &UdpSocket, payloads: &[&[u8]], batch: &mut GsoBatch) -> io::Result<usize> {
    let fd = sock.as_raw_fd();
    let mut sent = 0;
    for chunk in payloads.chunks(batch.capacity()) {
        let msgs = batch.prepare(chunk);
        // Fits: msgs <= chunk.len() <= capacity, checked in `GsoBatch::new`.
        let vlen = msgs as c_uint;
        let hdrs = batch.hdrs.as_mut_ptr();
        let res = retry_if_interrupted(|| {
            // SAFETY: `prepare` set the first `vlen` headers to no address (the socket is
            // connected, or the kernel reports EDESTADDRREQ), to consecutive runs of iovecs
            // that describe the `chunk` payloads borrowed for this call, and to this batch's
            // own control buffers with their lengths. The kernel reads those and writes only
            // `msg_len` in the headers, which `batch` (exclusively borrowed) owns.
            unsafe { libc::sendmmsg(fd, hdrs, vlen, 0) }
        });
        match res {
            Ok(k) => {
                batch.sends += k as u64;
                sent += batch.segs[..k].iter().sum::<usize>();
                if k < msgs {
                    break;
                }
            }
            Err(e) if sent > 0 || e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn drop_counter_extension() {
        assert_eq!(extend_drop_counter(None, 7), 7);
        assert_eq!(extend_drop_counter(Some(7), 9), 9);
        assert_eq!(extend_drop_counter(Some(9), 7), 9, "backward step ignored");
        assert_eq!(extend_drop_counter(Some(u64::from(u32::MAX) - 1), 3), (1 << 32) + 3);
        assert_eq!(extend_drop_counter(Some((1 << 32) + 3), 5), (1 << 32) + 5);
    }

    #[test]
    fn timespec_conversion() {
        let ts = libc::timespec { tv_sec: 2, tv_nsec: 5 };
        assert_eq!(timespec_to_ns(&ts), Some(2_000_000_005));
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        assert_eq!(timespec_to_ns(&zero), None);
        let bad = libc::timespec { tv_sec: 1, tv_nsec: 1_000_000_000 };
        assert_eq!(timespec_to_ns(&bad), None);
    }

    #[test]
    fn cmsg_space_fits() {
        assert!(cmsg_space_needed() <= CMSG_BUF_LEN);
        assert!(gso_cmsg_space() <= size_of::<GsoCmsgBuf>());
    }

    fn sender_to(rx: &UdpSocket) -> UdpSocket {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        tx
    }

    #[test]
    fn a_plain_batch_sends_one_message_per_datagram() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let tx = sender_to(&rx);
        let data: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 100]).collect();
        let refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
        let mut batch = GsoBatch::plain(4);
        assert_eq!(send_gso(&tx, &refs, &mut batch).unwrap(), 5);
        assert_eq!(batch.sends(), 5, "equal lengths, yet no segmentation");
        let mut buf = [0u8; 256];
        for d in &data {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], d.as_slice());
        }
    }

    #[test]
    fn gso_groups_equal_lengths_and_the_receiver_gets_each_datagram() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        // Room for all of it: the kernel charges each segment more than its bytes.
        super::super::socket::set_rcvbuf(&socket2::SockRef::from(&rx), 4 << 20).unwrap();
        let tx = sender_to(&rx);
        super::super::enable_udp_gso(&tx).unwrap();
        // 100 of 1464 bytes (44 fit in 64 KiB), two odd lengths, an empty one, 70 small ones
        // (more than 64 segments).
        let mut data: Vec<Vec<u8>> = (0..100u32).map(|i| vec![i as u8; 1464]).collect();
        data.insert(50, vec![0xaa; 1480]);
        data.insert(51, vec![0xbb; 20]);
        data.push(Vec::new());
        data.extend((0..70u32).map(|i| vec![i as u8; 72]));
        let refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
        let mut batch = GsoBatch::new(256);
        assert!(format!("{batch:?}").contains("GsoBatch"));
        assert_eq!(send_gso(&tx, &refs, &mut batch).unwrap(), refs.len());
        // [44, 6] [1480] [20] [44, 6] [] [64, 6]
        assert_eq!(batch.sends(), 9);
        let mut buf = [0u8; 2048];
        for d in &data {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], d.as_slice());
        }
        // Small chunks: split groups, same datagrams.
        let mut small = GsoBatch::new(3);
        assert_eq!(send_gso(&tx, &refs[..10], &mut small).unwrap(), 10);
        assert_eq!(small.sends(), 4);
        for d in &data[..10] {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], d.as_slice());
        }
    }
}
