//! The collector-wide table of exporters and their sequence streams
//! ([`SeqTracker`]): one entry per exporter, shared by every worker (see
//! [`super::seq`] for why), and the caps that bound it.
//!
//! Caps: [`MAX_EXPORTERS`] exporters in all, [`MAX_ENGINES`] (engine type,
//! engine id) streams per exporter, [`MAX_STREAMS`] streams in all. What
//! does not fit is refused, never merged into a shared bucket: the caller
//! counts it (`exporters_overflow`, `engines_overflow`) and warns with the
//! source. Gaps (see [`super::seq`]) are held against one budget of
//! [`MAX_TABLE_GAPS`] for the whole table. Worst case memory: about 2 MiB of
//! streams and 7 MiB of gaps; `/metrics` has two lines per stream at most.
//!
//! Locks: admission takes one of [`SHARDS`] table locks (once per worker per
//! exporter, and per datagram only for refused sources); a datagram takes its
//! exporter's own lock once. Report and snapshot readers take a table lock,
//! then each exporter's lock in turn; nothing takes them the other way round.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashMap;

use super::seq::{GapBudget, SeqEvent, SeqTotals, Stream};

/// Exporters (source addresses) tracked one by one, in all.
pub const MAX_EXPORTERS: usize = 4096;
/// Sequence streams (engine type, engine id) per exporter.
pub const MAX_ENGINES: usize = 16;
/// Sequence streams in all.
pub const MAX_STREAMS: usize = 16_384;
/// Gaps held by every stream together.
pub const MAX_TABLE_GAPS: usize = 1 << 18;
/// Table locks (exporters are spread over them by address).
pub const SHARDS: usize = 16;

/// The caps of a table (the constants above unless a test says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub exporters: usize,
    pub engines: usize,
    pub streams: usize,
    pub gaps: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            exporters: MAX_EXPORTERS,
            engines: MAX_ENGINES,
            streams: MAX_STREAMS,
            gaps: MAX_TABLE_GAPS,
        }
    }
}

/// A poisoned lock (a thread panicked holding it) still guards valid counts.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct Table {
    caps: Caps,
    shards: Vec<Mutex<HashMap<IpAddr, Arc<Mutex<Engines>>>>>,
    exporters: AtomicUsize,
    streams: AtomicUsize,
    gaps: GapBudget,
}

/// One exporter's streams, by [`StreamId::packed`] (one compare per stream looked at).
type Engines = Vec<(u64, Stream)>;

/// Which sequence stream of an exporter a datagram belongs to: v5 numbers
/// records per (engine type, engine id); v9 numbers export packets per
/// source id; IPFIX numbers data records per observation domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StreamId {
    Engine(u8, u8),
    V9Source(u32),
    IpfixDomain(u32),
}

impl StreamId {
    /// As one word: the kind in bits 33-32, the id below.
    #[inline(always)]
    fn packed(self) -> u64 {
        match self {
            StreamId::Engine(t, i) => (t as u64) << 8 | i as u64,
            StreamId::V9Source(d) => 1 << 32 | d as u64,
            StreamId::IpfixDomain(d) => 2 << 32 | d as u64,
        }
    }

    fn unpack(w: u64) -> Self {
        match w >> 32 {
            0 => StreamId::Engine((w >> 8) as u8, w as u8),
            1 => StreamId::V9Source(w as u32),
            _ => StreamId::IpfixDomain(w as u32),
        }
    }

    /// Labels for `/metrics`: (engine_type, engine_id) of a v5 stream; for
    /// v9/IPFIX the version and the source id or domain.
    pub fn labels(&self) -> [(&'static str, String); 2] {
        match *self {
            StreamId::Engine(t, i) => {
                [("engine_type", t.to_string()), ("engine_id", i.to_string())]
            }
            StreamId::V9Source(d) => [("version", "9".into()), ("domain", d.to_string())],
            StreamId::IpfixDomain(d) => [("version", "10".into()), ("domain", d.to_string())],
        }
    }
}

impl Table {
    /// Take one unit of `used` if it stays within `cap`.
    fn take(used: &AtomicUsize, cap: usize) -> bool {
        used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < cap).then_some(n + 1))
            .is_ok()
    }
}

/// The sequence state of every exporter; clones share it (one per worker's
/// [`super::Ingest`], one for the report and `/metrics`).
#[derive(Debug, Clone)]
pub struct SeqTracker {
    table: Arc<Table>,
}

impl Default for SeqTracker {
    fn default() -> Self {
        Self::with_caps(Caps::default())
    }
}

impl SeqTracker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_caps(caps: Caps) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        SeqTracker {
            table: Arc::new(Table {
                caps,
                shards,
                exporters: AtomicUsize::new(0),
                streams: AtomicUsize::new(0),
                gaps: GapBudget::new(caps.gaps),
            }),
        }
    }

    fn shard(&self, ip: IpAddr) -> &Mutex<HashMap<IpAddr, Arc<Mutex<Engines>>>> {
        let h = match ip {
            IpAddr::V4(a) => u32::from(a) as u64,
            IpAddr::V6(a) => {
                let v = u128::from(a);
                (v as u64) ^ (v >> 64) as u64
            }
        };
        &self.table.shards[(h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % SHARDS]
    }

    /// The exporter's entry, made if the cap allows; `None` when it does not
    /// (the caller counts the datagram in `exporters_overflow`).
    pub fn admit(&self, exporter: IpAddr) -> Option<SeqHandle> {
        let mut map = lock(self.shard(exporter));
        let ex = match map.get(&exporter) {
            Some(ex) => Arc::clone(ex),
            None => {
                if !Table::take(&self.table.exporters, self.table.caps.exporters) {
                    return None;
                }
                Arc::clone(map.entry(exporter).or_default())
            }
        };
        Some(SeqHandle { ex, table: Arc::clone(&self.table) })
    }

    /// Totals per (exporter, stream), sorted.
    pub fn totals(&self) -> Vec<((IpAddr, StreamId), SeqTotals)> {
        let mut v = Vec::new();
        for shard in &self.table.shards {
            for (ip, ex) in lock(shard).iter() {
                v.extend(lock(ex).iter().map(|(id, s)| ((*ip, StreamId::unpack(*id)), s.totals)));
            }
        }
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// Sum over every stream.
    pub fn sum(&self) -> SeqTotals {
        self.totals().iter().fold(SeqTotals::default(), |mut a, (_, t)| {
            a.add(t);
            a
        })
    }

    /// Exporters, streams and gaps held now.
    pub fn held(&self) -> (usize, usize, usize) {
        let t = &self.table;
        (t.exporters.load(Ordering::Relaxed), t.streams.load(Ordering::Relaxed), t.gaps.used())
    }
}

/// One exporter's entry in the table, as a worker keeps it next to that
/// exporter's counters.
#[derive(Debug, Clone)]
pub struct SeqHandle {
    ex: Arc<Mutex<Engines>>,
    table: Arc<Table>,
}

impl SeqHandle {
    /// Account one accepted datagram of this exporter. `Untracked` when its
    /// engine is new and a cap leaves no room for it (the caller counts it
    /// in `engines_overflow`).
    #[inline]
    pub fn observe(
        &self,
        engine_type: u8,
        engine_id: u8,
        seq: u32,
        count: u32,
        uptime: u32,
    ) -> SeqEvent {
        self.observe_stream(StreamId::Engine(engine_type, engine_id), seq, count, uptime)
    }

    /// [`SeqHandle::observe`] for any stream. `uptime` is the exporter's
    /// uptime in ms (v5, v9), or what stands for it (IPFIX has none: its
    /// export time in ms, modulo 2^32), for telling restarts apart.
    #[inline]
    pub fn observe_stream(&self, engine: StreamId, seq: u32, count: u32, uptime: u32) -> SeqEvent {
        let engine = engine.packed();
        let mut engines = lock(&self.ex);
        if let Some((_, s)) = engines.iter_mut().find(|(e, _)| *e == engine) {
            return s.observe(seq, count, uptime, &self.table.gaps);
        }
        let caps = &self.table.caps;
        if engines.len() >= caps.engines || !Table::take(&self.table.streams, caps.streams) {
            return SeqEvent::Untracked;
        }
        engines.push((engine, Stream::new(seq, count, uptime)));
        SeqEvent::First
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn caps_refuse_and_never_merge() {
        let t = SeqTracker::with_caps(Caps { exporters: 3, engines: 2, streams: 5, gaps: 10 });
        let handles: Vec<_> = (0..3).map(|n| t.admit(ip(n)).expect("within the cap")).collect();
        assert!(t.admit(ip(3)).is_none(), "a 4th exporter is refused");
        assert!(t.admit(ip(1)).is_some(), "a known one is still admitted");
        let h = &handles[0];
        assert_eq!(h.observe(0, 0, 0, 30, 1), SeqEvent::First);
        assert_eq!(h.observe(0, 1, 0, 30, 1), SeqEvent::First);
        assert_eq!(h.observe(0, 2, 0, 30, 1), SeqEvent::Untracked, "3rd engine of one exporter");
        assert_eq!(h.observe(0, 0, 30, 30, 2), SeqEvent::InOrder, "known engines go on");
        for n in 0..3 {
            handles[1].observe(0, n, 0, 30, 1);
            handles[2].observe(0, n, 0, 30, 1);
        }
        // 2 + 2 + 1: the 5-stream cap stopped exporter 2's second engine.
        assert_eq!(t.held(), (3, 5, 0));
        let keys: Vec<_> = t.totals().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [(ip(0), 0, 0), (ip(0), 0, 1), (ip(1), 0, 0), (ip(1), 0, 1), (ip(2), 0, 0)]
                .map(|(ip, t, i)| (ip, StreamId::Engine(t, i)))
        );
    }

    #[test]
    fn every_clone_and_handle_shares_one_stream() {
        let t = SeqTracker::new();
        let (a, b) = (t.clone().admit(ip(1)).unwrap(), t.admit(ip(1)).unwrap());
        // Alternate datagrams through the two handles (two workers): no loss.
        for k in 0..10u32 {
            let h = if k % 2 == 0 { &a } else { &b };
            h.observe(0, 0, k * 30, 30, 1000 + k);
        }
        assert_eq!(t.totals().len(), 1);
        assert_eq!(t.sum(), SeqTotals::default());
        // Four threads (workers) racing on one exporter, each with every
        // 4th datagram, at most a round of 64 datagrams apart, account
        // exactly: every 10th datagram withheld is what is lost.
        let handles: Vec<_> = (0..4).map(|_| t.admit(ip(2)).unwrap()).collect();
        let round = std::sync::Barrier::new(4);
        std::thread::scope(|s| {
            for (w, h) in handles.iter().enumerate() {
                let round = &round;
                s.spawn(move || {
                    for r in 0..64u32 {
                        for k in (r * 64 + w as u32..(r + 1) * 64).step_by(4) {
                            if k % 10 != 7 {
                                h.observe(0, 0, k * 30, 30, 1000 + k);
                            }
                        }
                        round.wait();
                    }
                });
            }
        });
        let (_, tot) = t.totals().into_iter().find(|(k, _)| k.0 == ip(2)).unwrap();
        // 409 of the 4096 end in 7.
        assert_eq!(tot.lost_records, 409 * 30, "{tot:?}");
        assert_eq!(tot.restarts + tot.duplicate_datagrams, 0, "{tot:?}");
    }
}
