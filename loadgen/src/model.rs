//! The traffic model: sessions (a connection and, mostly, its reply
//! direction), their addresses and ports, heavy-tailed sizes and durations,
//! and how a router cuts each direction into records.
//!
//! Ground rules:
//! - Pure: every function here is a function of its arguments and the
//!   [`Rng`] it is handed; no clock, no I/O.
//! - A *connection* is one direction of a session: one NetFlow key
//!   (src, sport, dst, dport, proto) as a router's cache sees it. The truth
//!   lists connections.
//! - Keys are unique per run: session `n` of exporter `e` gets the client
//!   `10.e.x.y` number `n mod 2^16` and, for TCP/UDP, a source port that is a
//!   bijection of `n / 2^16`, so no two sessions of a run share a 5-tuple
//!   until 2^16 * 64512 sessions per exporter (ICMP, which has no ports, uses
//!   the destination instead: 2^16 * 23 * 2^24 sessions). Exporters use
//!   disjoint client ranges, so keys stay distinct even with `--same-src-ip`.
//! - Times are relative milliseconds from the session start; the router
//!   model (`router.rs`) anchors them on its clock.

use crate::rng::Rng;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;

/// Most exporters a run may have (client ranges `10.e.0.0/16`, exporter
/// addresses `127.0.1.(e+1)`).
pub const MAX_EXPORTERS: usize = 254;
/// Clients per exporter (`10.e.0.0/16`).
pub const CLIENTS: u64 = 1 << 16;
/// Source ports 1024..=65535.
pub const EPHEMERAL_PORTS: u64 = 65536 - 1024;
/// Multiplier of the source-port bijection: odd, and coprime with
/// 64512 = 2^10 * 3^2 * 7.
const PORT_MULT: u64 = 40507;
/// First octets of the "public" address space servers and ICMP peers use.
const PUBLIC_NETS: [u32; 23] = [
    8, 13, 17, 20, 23, 31, 34, 35, 40, 52, 54, 64, 66, 74, 91, 104, 142, 151, 157, 185, 199, 208,
    216,
];
const SERVER_ASNS: [u16; 20] = [
    15169, 13335, 16509, 8075, 32934, 2906, 20940, 54113, 3356, 1299, 174, 6939, 14618, 16276,
    24940, 36351, 8560, 13238, 714, 46489,
];
const SERVER_MASKS: [u8; 5] = [16, 19, 20, 22, 24];
/// Popular servers per run (Zipf-like popularity).
pub const SERVERS: u64 = 4096;
/// The cap on packets per record (so octets always fit the 32-bit field).
const MAX_PKTS_PER_RECORD: u64 = 1_000_000;
/// Longest session, before the `1000 * active timeout` cap.
pub const MAX_SESSION_MS: u64 = 7 * 24 * 3600 * 1000;

/// Router timeouts and the duration scale, shared by every exporter of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub active_ms: u64,
    pub inactive_ms: u64,
    /// Multiplies every base duration (derived from `--flows` and the rate).
    pub scale: f64,
}

impl Params {
    /// Longest scaled session: 7 days, and at most 1000 active timeouts
    /// (bounds the records one connection can make).
    pub fn max_dur_ms(&self) -> u64 {
        MAX_SESSION_MS.min(self.active_ms.saturating_mul(1000))
    }

    /// A base duration scaled, in whole ms.
    pub fn dur_ms(&self, base_ms: f64) -> u64 {
        // `as` saturates (and maps NaN to 0); + 0.5 rounds without a libm call.
        ((base_ms * self.scale + 0.5) as u64).min(self.max_dur_ms())
    }
}

/// How a session ends, as the router's tcp_flags show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both directions close with FIN: exported as soon as they end.
    Fin,
    /// The client resets.
    RstFwd,
    /// The server resets.
    RstRev,
    /// No FIN/RST (UDP, ICMP, dropped TCP): exported after the inactive timeout.
    Timeout,
    /// A lone SYN, answered (maybe) by RST|ACK.
    Scan,
}

/// A service: protocol, destination port (ICMP: type << 8 | code) and the
/// reply's, packet sizes, and how often it is answered.
#[derive(Debug, Clone, Copy)]
struct Service {
    proto: u8,
    /// 0 = a random high port.
    dport: u16,
    reply_icmp: u16,
    weight: u32,
    fwd_size: (f64, f64),
    rev_size: (f64, f64),
    reply_prob: f64,
    tos: u8,
}

const fn svc(proto: u8, dport: u16, weight: u32, fwd: (f64, f64), rev: (f64, f64)) -> Service {
    Service {
        proto,
        dport,
        reply_icmp: 0,
        weight,
        fwd_size: fwd,
        rev_size: rev,
        reply_prob: 1.0,
        tos: 0,
    }
}

const TCP_SERVICES: [Service; 10] = [
    svc(TCP, 443, 55, (70.0, 400.0), (600.0, 1400.0)),
    svc(TCP, 80, 20, (80.0, 500.0), (500.0, 1400.0)),
    svc(TCP, 22, 3, (60.0, 200.0), (60.0, 300.0)),
    svc(TCP, 25, 2, (200.0, 1200.0), (60.0, 120.0)),
    svc(TCP, 993, 3, (80.0, 300.0), (200.0, 1200.0)),
    svc(TCP, 8080, 3, (80.0, 500.0), (400.0, 1400.0)),
    svc(TCP, 3306, 2, (80.0, 600.0), (100.0, 1400.0)),
    svc(TCP, 5222, 2, (60.0, 300.0), (60.0, 400.0)),
    svc(TCP, 8443, 3, (70.0, 400.0), (600.0, 1400.0)),
    svc(TCP, 0, 7, (60.0, 1400.0), (60.0, 1400.0)),
];

const UDP_SERVICES: [Service; 7] = [
    Service { reply_prob: 0.97, ..svc(UDP, 53, 50, (40.0, 80.0), (80.0, 400.0)) },
    Service { reply_prob: 0.9, ..svc(UDP, 123, 8, (76.0, 76.0), (76.0, 76.0)) },
    svc(UDP, 443, 20, (100.0, 600.0), (800.0, 1350.0)),
    svc(UDP, 4500, 4, (100.0, 1400.0), (100.0, 1400.0)),
    Service { tos: 0xb8, ..svc(UDP, 5060, 3, (300.0, 900.0), (300.0, 900.0)) },
    svc(UDP, 1194, 3, (100.0, 1400.0), (100.0, 1400.0)),
    Service { reply_prob: 0.6, ..svc(UDP, 0, 12, (40.0, 1400.0), (40.0, 1400.0)) },
];

const ICMP_SERVICES: [Service; 5] = [
    // Echo request, answered by echo reply (type 0).
    Service { reply_prob: 0.9, ..svc(ICMP, 8 << 8, 70, (84.0, 84.0), (84.0, 84.0)) },
    Service { reply_prob: 0.0, ..svc(ICMP, 3 << 8 | 3, 12, (56.0, 576.0), (0.0, 0.0)) },
    Service { reply_prob: 0.0, ..svc(ICMP, 3 << 8 | 1, 5, (56.0, 576.0), (0.0, 0.0)) },
    Service { reply_prob: 0.0, ..svc(ICMP, 3 << 8 | 13, 3, (56.0, 576.0), (0.0, 0.0)) },
    Service { reply_prob: 0.0, ..svc(ICMP, 11 << 8, 10, (56.0, 576.0), (0.0, 0.0)) },
];

/// Running sums of the weights (for [`pick`]).
const fn cumulative<const N: usize>(s: &[Service; N]) -> [u32; N] {
    let mut out = [0; N];
    let mut acc = 0;
    let mut i = 0;
    while i < N {
        acc += s[i].weight;
        out[i] = acc;
        i += 1;
    }
    out
}

const TCP_CUM: [u32; TCP_SERVICES.len()] = cumulative(&TCP_SERVICES);
const UDP_CUM: [u32; UDP_SERVICES.len()] = cumulative(&UDP_SERVICES);
const ICMP_CUM: [u32; ICMP_SERVICES.len()] = cumulative(&ICMP_SERVICES);

/// Index by cumulative integer weights.
#[inline]
fn pick(rng: &mut Rng, cum: &[u32]) -> usize {
    let x = rng.below(*cum.last().unwrap_or(&1) as u64) as u32;
    cum.iter().position(|&c| x < c).unwrap_or(0)
}

/// The scale-free part of a session: drawn once, then cut for any scale.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub proto: u8,
    pub dport: u16,
    /// ICMP reply type/code (echo reply 0).
    pub reply_icmp: u16,
    pub reverse: bool,
    pub end: End,
    pub base_dur_ms: f64,
    pub fwd_pkts: u64,
    pub rev_pkts: u64,
    pub fwd_size: f64,
    pub rev_size: f64,
    pub tos_fwd: u8,
    pub tos_rev: u8,
    /// Idle gaps (longer than the inactive timeout) inside long sessions.
    pub gaps: u8,
    pub gap_frac: [f64; 2],
    /// Gap lengths in inactive timeouts (1.2 to 3).
    pub gap_len: [f64; 2],
    /// The reply direction's first packet comes this much later.
    pub rtt_ms: u64,
}

/// Draw a session's shape. Always the same number of draws per proto class
/// path is not required: determinism comes from the fixed call order.
pub fn draw_shape(rng: &mut Rng) -> Shape {
    let u = rng.f64();
    let proto = if u < 0.78 {
        TCP
    } else if u < 0.96 {
        UDP
    } else {
        ICMP
    };
    let svc = match proto {
        TCP => TCP_SERVICES[pick(rng, &TCP_CUM)],
        UDP => UDP_SERVICES[pick(rng, &UDP_CUM)],
        _ => ICMP_SERVICES[pick(rng, &ICMP_CUM)],
    };
    debug_assert_eq!(svc.proto, proto);
    let dport = if svc.dport == 0 { rng.range_u64(1024, 65535) as u16 } else { svc.dport };
    let class = rng.f64();
    let (base_dur_ms, fwd_pkts, end) = match proto {
        TCP if class < 0.08 => (rng.range_f64(0.0, 3.0), 1, End::Scan),
        TCP => {
            let (dur, pkts) = if class < 0.88 {
                (rng.pareto(300.0, 1.4).min(3.6e6), 3.0 + rng.pareto(4.0, 1.2).min(1e5))
            } else {
                (rng.pareto(30_000.0, 1.15).min(8.64e7), 20.0 + rng.pareto(200.0, 1.05).min(5e7))
            };
            let e = rng.f64();
            let end = if e < 0.85 {
                End::Fin
            } else if e < 0.90 {
                End::RstFwd
            } else if e < 0.95 {
                End::RstRev
            } else {
                End::Timeout
            };
            (dur, pkts as u64, end)
        }
        UDP if class < 0.6 => (rng.range_f64(0.0, 100.0), 1 + rng.below(2), End::Timeout),
        UDP => {
            let (dur, pkts) = if class < 0.9 {
                (rng.pareto(1000.0, 1.3).min(3.6e6), 2.0 + rng.pareto(5.0, 1.2).min(1e5))
            } else {
                (rng.pareto(60_000.0, 1.1).min(8.64e7), 20.0 + rng.pareto(300.0, 1.05).min(5e7))
            };
            (dur, pkts as u64, End::Timeout)
        }
        _ if svc.dport == 8 << 8 && class < 0.45 => {
            let pings = rng.range_u64(2, 20);
            ((pings - 1) as f64 * 1000.0, pings, End::Timeout)
        }
        _ => (0.0, 1, End::Timeout),
    };
    let reverse = match end {
        End::Scan => rng.chance(0.5),
        _ => rng.chance(svc.reply_prob),
    };
    let rev_pkts = match (proto, end) {
        (_, End::Scan) => 1,
        (TCP, _) => ((fwd_pkts as f64 * rng.range_f64(0.7, 1.6)) as u64).max(1),
        (ICMP, _) => fwd_pkts,
        _ if fwd_pkts <= 2 => fwd_pkts,
        _ => ((fwd_pkts as f64 * rng.range_f64(0.3, 2.0)) as u64).max(1),
    };
    let fwd_size = rng.range_f64(svc.fwd_size.0, svc.fwd_size.1.max(svc.fwd_size.0 + 1.0));
    let rev_size = rng.range_f64(svc.rev_size.0, svc.rev_size.1.max(svc.rev_size.0 + 1.0));
    let tos_fwd = if svc.tos != 0 {
        svc.tos
    } else {
        match rng.below(20) {
            0 => 0x08,
            1 => 0x10,
            2 => 0x28,
            _ => 0,
        }
    };
    let tos_rev = if rng.chance(0.5) { tos_fwd } else { 0 };
    let gaps = if rng.chance(0.3) { 1 + rng.below(2) as u8 } else { 0 };
    let (mut gap_frac, mut gap_len) = ([0.0; 2], [0.0; 2]);
    for i in 0..gaps as usize {
        gap_frac[i] = rng.f64();
        gap_len[i] = rng.range_f64(1.2, 3.0);
    }
    let rtt_ms = rng.range_u64(1, 80);
    Shape {
        proto,
        dport,
        reply_icmp: svc.reply_icmp,
        reverse,
        end,
        base_dur_ms,
        fwd_pkts,
        rev_pkts,
        fwd_size,
        rev_size,
        tos_fwd,
        tos_rev,
        gaps,
        gap_frac,
        gap_len,
        rtt_ms,
    }
}

impl Shape {
    /// Number of directions (1 or 2).
    pub fn dirs(&self) -> u64 {
        1 + self.reverse as u64
    }

    /// The activity segments `[a, b]` (relative ms, inclusive) of this
    /// session at `p.scale`: one, or up to three separated by idle gaps
    /// longer than the inactive timeout (only for sessions long enough).
    pub fn segments(&self, p: &Params, out: &mut Vec<(u64, u64)>) {
        out.clear();
        let dur = p.dur_ms(self.base_dur_ms);
        let n = self.gaps as usize;
        if n == 0 || dur < 8 * p.inactive_ms {
            out.push((0, dur));
            return;
        }
        let mut lens = [0u64; 2];
        let mut cuts = [0u64; 2];
        for (len, f) in lens.iter_mut().zip(self.gap_len).take(n) {
            *len = (f * p.inactive_ms as f64).ceil() as u64;
        }
        let total: u64 = lens.iter().sum();
        let active = dur - total; // total <= 6 inactive <= 3/4 dur
        for (cut, f) in cuts.iter_mut().zip(self.gap_frac).take(n) {
            *cut = (f * active as f64) as u64;
        }
        if n == 2 && cuts[0] > cuts[1] {
            cuts.swap(0, 1);
        }
        let mut a = 0;
        let mut shift = 0;
        for (cut, len) in cuts.iter().zip(&lens).take(n) {
            out.push((a, cut + shift));
            shift += len;
            a = cut + shift;
        }
        out.push((a, dur));
    }

    /// Records one direction makes at `p.scale` (for calibration).
    pub fn records_per_dir(&self, p: &Params, segs: &mut Vec<(u64, u64)>) -> u64 {
        self.segments(p, segs);
        segs.iter().map(|(a, b)| (b - a) / p.active_ms + 1).sum()
    }
}

/// One router record of a session, before anchoring: relative times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub first: u64,
    pub last: u64,
    /// When the router exports it if the direction has no FIN/RST here.
    pub ready: u64,
    /// The last chunk of its segment.
    pub seg_end: bool,
    /// The last chunk of the session.
    pub last_chunk: bool,
}

/// Cut segments into router records: a record lasts at most the active
/// timeout (a new one starts with the next packet, at the cut), and a
/// segment's last record leaves after the inactive timeout. The last record
/// of a direction that ends with FIN/RST leaves at its end instead (the
/// caller handles that via [`Chunk::last_chunk`]).
pub fn cut(segs: &[(u64, u64)], p: &Params, out: &mut Vec<Chunk>) {
    out.clear();
    for (si, &(a, b)) in segs.iter().enumerate() {
        let mut f = a;
        while b - f >= p.active_ms {
            out.push(Chunk {
                first: f,
                last: f + p.active_ms - 1,
                ready: f + p.active_ms,
                seg_end: false,
                last_chunk: false,
            });
            f += p.active_ms;
        }
        out.push(Chunk {
            first: f,
            last: b,
            ready: b + p.inactive_ms,
            seg_end: true,
            last_chunk: si + 1 == segs.len(),
        });
    }
}

/// Split `total` over `weights` proportionally, at least 1 each
/// (`total >= weights.len()` is required).
pub fn split(total: u64, weights: impl Iterator<Item = u64> + Clone, out: &mut Vec<u64>) {
    out.clear();
    let n = weights.clone().count() as u64;
    debug_assert!(total >= n, "split {total} over {n}");
    let w_sum: u64 = weights.clone().sum::<u64>().max(1);
    let spare = total - n;
    let mut given = 0;
    for w in weights {
        let x = 1 + (spare as u128 * w as u128 / w_sum as u128) as u64;
        given += x;
        out.push(x);
    }
    if let Some(last) = out.last_mut() {
        *last += total - given;
    }
}

/// Clamp a direction's packet count to what its records can carry.
pub fn clamp_packets(pkts: u64, records: u64) -> u64 {
    pkts.max(records).min(records * MAX_PKTS_PER_RECORD)
}

/// Client address of session number `n` of exporter `e`: `10.e.x.y`.
pub fn client_addr(e: u16, n: u64) -> u32 {
    let i = n % CLIENTS;
    let perm = (i.wrapping_mul(0x9E37).wrapping_add(0x5BD1 * e as u64)) & 0xFFFF;
    0x0A00_0000 | (e as u32) << 16 | perm as u32
}

/// Client source port of session `n`: a bijection of `n / 2^16` for each client.
pub fn client_port(n: u64) -> u16 {
    let i = n % CLIENTS;
    let j = (n / CLIENTS) % EPHEMERAL_PORTS;
    (1024 + (j * PORT_MULT + i * 7919) % EPHEMERAL_PORTS) as u16
}

/// A public-looking address for index `k`: a bijection of `k` for
/// `k < 23 * 2^24`.
pub fn public_addr(k: u64) -> u32 {
    let net = PUBLIC_NETS[(k % PUBLIC_NETS.len() as u64) as usize];
    let host = ((k / PUBLIC_NETS.len() as u64).wrapping_mul(0x2F6B_5A1D) + 0x01_0203) & 0xFF_FFFF;
    net << 24 | host as u32
}

/// Popular server number `k` (0 = most popular): address, AS, mask.
pub fn server(k: u64) -> (u32, u16, u8) {
    (
        public_addr(k * 7 + 3),
        SERVER_ASNS[(k % SERVER_ASNS.len() as u64) as usize],
        SERVER_MASKS[((k / 7) % SERVER_MASKS.len() as u64) as usize],
    )
}

/// Pick a server, Zipf-like: small indices are much more popular.
pub fn pick_server(rng: &mut Rng) -> u64 {
    let u = rng.f64();
    ((u * u * u) * SERVERS as f64) as u64
}

/// ICMP peer of session `n`: distinct for every `n / 2^16` (no ports to
/// tell ICMP sessions of one client apart).
pub fn icmp_peer(n: u64) -> u32 {
    public_addr(n / CLIENTS)
}

/// Expected figures of the model at a scale, from a fixed sample of shapes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expect {
    pub records_per_session: f64,
    pub conns_per_session: f64,
    /// E[directions * duration] in ms: concurrency = sessions/ms * this.
    pub conn_ms_per_session: f64,
}

/// Averages over a sample (calibration).
pub fn expect(sample: &[Shape], p: &Params) -> Expect {
    let mut segs = Vec::new();
    let (mut recs, mut conns, mut conn_ms) = (0.0, 0.0, 0.0);
    for s in sample {
        let d = s.dirs() as f64;
        recs += d * s.records_per_dir(p, &mut segs) as f64;
        conns += d;
        conn_ms += d * p.dur_ms(s.base_dur_ms) as f64;
    }
    let n = sample.len().max(1) as f64;
    Expect {
        records_per_session: recs / n,
        conns_per_session: conns / n,
        conn_ms_per_session: conn_ms / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params { active_ms: 60_000, inactive_ms: 15_000, scale: 1.0 }
    }

    #[test]
    fn ports_are_a_bijection_per_client() {
        let mut seen = vec![false; EPHEMERAL_PORTS as usize];
        for j in 0..EPHEMERAL_PORTS {
            let p = client_port(j * CLIENTS + 12345);
            assert!(p >= 1024);
            let k = (p - 1024) as usize;
            assert!(!seen[k], "port {p} twice");
            seen[k] = true;
        }
    }

    #[test]
    fn clients_are_a_bijection_and_disjoint_per_exporter() {
        let mut a: Vec<u32> = (0..CLIENTS).map(|n| client_addr(3, n)).collect();
        a.sort_unstable();
        a.dedup();
        assert_eq!(a.len() as u64, CLIENTS);
        assert!(a.iter().all(|x| x >> 16 == 0x0A03));
        assert_eq!(client_addr(3, 5), client_addr(3, 5 + CLIENTS));
        assert_ne!(client_addr(3, 5) >> 16, client_addr(4, 5) >> 16);
    }

    #[test]
    fn icmp_peers_are_distinct() {
        let mut v: Vec<u32> = (0..100_000u64).map(|j| icmp_peer(j * CLIENTS)).collect();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), 100_000);
    }

    #[test]
    fn cut_respects_timeouts() {
        let p = params();
        let mut out = Vec::new();
        cut(&[(0, 150_000)], &p, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[0],
            Chunk { first: 0, last: 59_999, ready: 60_000, seg_end: false, last_chunk: false }
        );
        assert_eq!(out[1].first, 60_000);
        assert_eq!(
            out[2],
            Chunk {
                first: 120_000,
                last: 150_000,
                ready: 165_000,
                seg_end: true,
                last_chunk: true
            }
        );
        cut(&[(0, 0)], &p, &mut out);
        assert_eq!(
            out,
            vec![Chunk { first: 0, last: 0, ready: 15_000, seg_end: true, last_chunk: true }]
        );
        for c in &out {
            assert!(c.last - c.first < p.active_ms);
        }
    }

    #[test]
    fn gaps_exceed_inactive_and_stay_inside() {
        let p = params();
        let mut rng = Rng::new(1, 0);
        let mut segs = Vec::new();
        let mut seen_gaps = 0;
        for _ in 0..20_000 {
            let s = draw_shape(&mut rng);
            s.segments(&p, &mut segs);
            let dur = p.dur_ms(s.base_dur_ms);
            assert_eq!(segs[0].0, 0);
            assert_eq!(segs.last().unwrap().1, dur);
            for w in segs.windows(2) {
                assert!(w[0].0 <= w[0].1);
                assert!(w[1].0 > w[0].1 + p.inactive_ms, "{segs:?}");
                seen_gaps += 1;
            }
        }
        assert!(seen_gaps > 10, "long sessions with gaps exist");
    }

    #[test]
    fn split_is_exact_and_positive() {
        let mut out = Vec::new();
        split(10, [5u64, 0, 100].into_iter(), &mut out);
        assert_eq!(out.iter().sum::<u64>(), 10);
        assert!(out.iter().all(|&x| x >= 1));
        split(3, [1u64, 1, 1].into_iter(), &mut out);
        assert_eq!(out, vec![1, 1, 1]);
        split(u32::MAX as u64 * 4, [1u64, 1_000_000, 7].into_iter(), &mut out);
        assert_eq!(out.iter().sum::<u64>(), u32::MAX as u64 * 4);
    }

    #[test]
    fn shapes_are_heavy_tailed_and_mixed() {
        let mut rng = Rng::new(9, 0);
        let shapes: Vec<Shape> = (0..50_000).map(|_| draw_shape(&mut rng)).collect();
        let tcp = shapes.iter().filter(|s| s.proto == TCP).count();
        let udp = shapes.iter().filter(|s| s.proto == UDP).count();
        let icmp = shapes.iter().filter(|s| s.proto == ICMP).count();
        assert!(tcp > 30_000 && udp > 5_000 && icmp > 1_000, "{tcp} {udp} {icmp}");
        let mut pk: Vec<u64> = shapes.iter().map(|s| s.fwd_pkts).collect();
        pk.sort_unstable();
        let median = pk[pk.len() / 2];
        let top = pk[pk.len() - pk.len() / 1000];
        assert!(top > 100 * median, "heavy tail: median {median}, p99.9 {top}");
        assert!(shapes.iter().any(|s| s.end == End::Fin));
        assert!(shapes.iter().any(|s| s.end == End::RstFwd));
        assert!(shapes.iter().any(|s| s.end == End::Scan));
    }
}
