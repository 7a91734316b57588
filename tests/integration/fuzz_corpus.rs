//! The fuzz bodies (`nfstitch::fuzz::{decode, replay}`, what `cargo fuzz`
//! runs from `fuzz/`) on stable Rust: over every seed in `fuzz/seeds/*`, the
//! two invalid public captures, and deterministic mutations of each (bit
//! flips, truncations, insertions, deletions, count and word edits): 3000 per
//! seed through `decode`; through `replay` as many in release builds, fewer in
//! debug (see [`replay_mutations`]); and the v9/IPFIX body over every case
//! of the shared `v9-ipfix/oracle.tsv` (its datagrams length-prefixed, as
//! `v9_ipfix` reads them) and mutations of each. None may panic. A failing input is written to the temp dir and named in
//! the panic message, ready to copy into `fuzz/seeds/<target>/crash-*`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use loadgen::rng::SplitMix64;

use crate::util::{skip, testdata};

/// Mutations per seed through `decode` (see [`replay_mutations`] for `replay`).
const DECODE_MUTATIONS: u32 = 3000;
/// Inputs never grow past this (the fuzzer's default max_len is 4096).
const MAX_LEN: usize = 8192;

/// Indices from loadgen's seeded splitmix64 (small, deterministic).
trait Below {
    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize;
}

impl Below for SplitMix64 {
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Values that sit on the decoder's edges (counts, versions, lengths).
const INTERESTING: [u8; 10] = [0, 1, 5, 9, 10, 29, 30, 31, 0x7f, 0xff];

/// Apply one to three random edits.
fn mutate(rng: &mut SplitMix64, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(3) {
        match rng.below(8) {
            // Flip one to four bits.
            0 if !v.is_empty() => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(v.len());
                    v[i] ^= 1 << rng.below(8);
                }
            }
            // Truncate.
            1 if !v.is_empty() => {
                let n = rng.below(v.len());
                v.truncate(n);
            }
            // Insert one to eight random bytes.
            2 => {
                let at = rng.below(v.len() + 1);
                for _ in 0..1 + rng.below(8) {
                    v.insert(at, rng.next_u64() as u8);
                }
            }
            // Delete a range.
            3 if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = (a + 1 + rng.below(64)).min(v.len());
                v.drain(a..b);
            }
            // Overwrite a byte with an edge value.
            4 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            // Edit a v5 count field (offset 2 of a datagram, or anywhere).
            5 if v.len() >= 4 => {
                let at = if rng.below(2) == 0 { 2 } else { rng.below(v.len() - 1) };
                let c: u16 = [0, 1, 29, 30, 31, 0xff, 0x100, 0xffff][rng.below(8)];
                v[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
            // Duplicate a chunk (grows streams by whole datagrams sometimes).
            6 if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = (a + 1 + rng.below(200)).min(v.len());
                let chunk = v[a..b].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk);
            }
            // Overwrite a 32-bit word with an edge value (lengths, timestamps, uptime).
            _ if v.len() >= 4 => {
                let at = rng.below(v.len() - 3);
                let w: u32 =
                    [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0xffff_fff0][rng.below(6)];
                v[at..at + 4].copy_from_slice(&w.to_be_bytes());
            }
            _ => v.push(rng.next_u64() as u8),
        }
    }
    v.truncate(MAX_LEN);
    v
}

/// Run one body; on a panic save the input and fail naming it.
fn check(body: &str, f: fn(&[u8]), name: &str, data: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| f(data))).is_err() {
        let safe: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let path = std::env::temp_dir().join(format!("nfstitch-fuzz-{body}-{safe}"));
        let _ = std::fs::write(&path, data);
        let hex: String = data.iter().take(256).map(|b| format!("{b:02x}")).collect();
        panic!(
            "fuzz body `{body}` panicked on {name} ({} bytes), saved to {}; first bytes: {hex}",
            data.len(),
            path.display()
        );
    }
}

fn check_both(name: &str, data: &[u8]) {
    check("decode", nfstitch::fuzz::decode, name, data);
    check("replay", nfstitch::fuzz::replay, name, data);
}

/// How many mutations of `seed` go through `replay`. `$NFSTITCH_FUZZ_MUTATIONS`
/// overrides; release builds run as many as `decode`. Debug builds run few:
/// one `replay` call costs milliseconds on a raw datagram and up to ~0.5 s on
/// a pcap/pcapng on a loaded machine (the capture reader zero-fills a 1 MiB
/// buffer per input, once per output format), and this test stays well
/// under 10 s.
fn replay_mutations(seed: &[u8]) -> u32 {
    if let Some(n) = std::env::var("NFSTITCH_FUZZ_MUTATIONS").ok().and_then(|v| v.parse().ok()) {
        return n;
    }
    if !cfg!(debug_assertions) {
        return DECODE_MUTATIONS;
    }
    let capture = seed.get(..4).is_some_and(|m| {
        let m = u32::from_le_bytes([m[0], m[1], m[2], m[3]]);
        matches!(m, 0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 | 0x0a0d_0d0a)
    });
    if capture {
        3
    } else {
        50
    }
}

fn seed_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for f in std::fs::read_dir(&dir).unwrap() {
                let f = f.unwrap().path();
                if f.is_file() {
                    files.push(f);
                }
            }
        }
    }
    files.sort();
    files
}

fn public_invalid() -> Vec<PathBuf> {
    let Some(dir) = testdata() else { return Vec::new() };
    let mut v = Vec::new();
    for n in ["netflow5_test_invalid01.dat", "netflow5_test_invalid02.dat"] {
        let p = dir.join("logstash-codec-netflow").join(n);
        if p.is_file() {
            v.push(p);
        } else {
            skip(&format!("{} not found", p.display()));
        }
    }
    v
}

#[test]
fn seeds_never_panic() {
    let files = seed_files();
    assert!(files.len() >= 10, "expected the committed seed corpus, found {files:?}");
    for f in files.iter().chain(public_invalid().iter()) {
        check_both(&f.display().to_string(), &std::fs::read(f).unwrap());
    }
}

#[test]
fn mutated_seeds_never_panic() {
    let files: Vec<PathBuf> = seed_files().into_iter().chain(public_invalid()).collect();
    let (mut n_decode, mut n_replay) = (0u64, 0u64);
    for f in &files {
        let seed = std::fs::read(f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let mut rng = SplitMix64::new(fnv1a(&name));
        let replays = replay_mutations(&seed);
        for i in 0..DECODE_MUTATIONS.max(replays) {
            let m = mutate(&mut rng, &seed);
            let what = format!("{name} mutation {i}");
            if i < DECODE_MUTATIONS {
                check("decode", nfstitch::fuzz::decode, &what, &m);
                n_decode += 1;
            }
            if i < replays {
                check("replay", nfstitch::fuzz::replay, &what, &m);
                n_replay += 1;
            }
        }
    }
    eprintln!(
        "fuzz_corpus: {} seeds, {n_decode} mutated inputs through decode, \
         {n_replay} through replay, no panic",
        files.len()
    );
}

#[test]
fn mutator_is_deterministic_and_bounded() {
    let seed: Vec<u8> = (0..=255).collect();
    let run = || {
        let mut rng = SplitMix64::new(42);
        (0..500).map(|_| mutate(&mut rng, &seed)).collect::<Vec<_>>()
    };
    let a = run();
    assert_eq!(a, run());
    assert!(a.iter().all(|m| m.len() <= MAX_LEN));
    assert!(a.iter().any(|m| m.len() < seed.len()) && a.iter().any(|m| m.len() > seed.len()));
}

/// The v9/IPFIX body as a [`check`] body.
fn v9_ipfix(data: &[u8]) {
    nfstitch::fuzz::v9_ipfix(data);
}

/// One seed per case of `v9-ipfix/oracle.tsv`: the case's datagrams, read by
/// the capture reader and each prefixed by its 2-byte length.
fn v9_ipfix_seeds() -> Vec<(String, Vec<u8>)> {
    let Some(dir) = testdata().map(|d| d.join("v9-ipfix")) else { return Vec::new() };
    let oracle = std::fs::read_to_string(dir.join("oracle.tsv")).expect("v9-ipfix/oracle.tsv");
    let mut seeds = Vec::new();
    for line in oracle.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let mut seed = Vec::new();
        for file in cols[1].split(',') {
            let mut skips = nfstitch::capture::SkipCounters::default();
            let damage = nfstitch::capture::read_path(&dir.join(file), None, &mut skips, |f| {
                seed.extend_from_slice(&(f.payload.len() as u16).to_be_bytes());
                seed.extend_from_slice(f.payload);
            })
            .expect("readable");
            assert_eq!(damage, None, "{file}");
        }
        seeds.push((cols[0].to_string(), seed));
    }
    seeds
}

#[test]
fn v9_ipfix_seeds_and_mutations_never_panic() {
    let seeds = v9_ipfix_seeds();
    let mut n = 0u64;
    for (name, seed) in &seeds {
        check("v9_ipfix", v9_ipfix, name, seed);
        // The seeds reach the data path: every case but the two without
        // templates (S10, S16) decodes flow records (the body feeds
        // each input three times).
        let records = nfstitch::fuzz::v9_ipfix(seed);
        assert_eq!(records == 0, matches!(name.as_str(), "S10" | "S16"), "{name}: {records}");
        let mut rng = SplitMix64::new(fnv1a(name));
        for i in 0..DECODE_MUTATIONS {
            let m = mutate(&mut rng, seed);
            check("v9_ipfix", v9_ipfix, &format!("{name} mutation {i}"), &m);
            n += 1;
        }
    }
    // Hand-made edges: empty, a bare length, headers alone, a set overrun.
    for edge in [&[][..], &[0, 0], &[0, 2, 0, 9], &[0, 16, 0, 10, 0, 16], &[0, 9, 0, 0, 0, 0, 0, 0]]
    {
        check("v9_ipfix", v9_ipfix, "edge", edge);
    }
    eprintln!("fuzz_corpus: {} v9/IPFIX seeds, {n} mutations, no panic", seeds.len());
}
