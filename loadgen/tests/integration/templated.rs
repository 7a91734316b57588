//! `--version 9` and `--version 10` (NetFlow v9 and IPFIX): every datagram
//! loadgen writes decoded by nfstitch's own v9/IPFIX decoder, against the
//! truth; templates at the start, refreshed, and held back
//! (`--data-before-template`); and v5 pinned byte for byte.

use std::time::Duration;

use loadgen::Config;

/// FNV-1a 64 over every datagram (with its exporter and time) of a run.
fn digest(cfg: &Config) -> (u64, u64) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut n = 0;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= x as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    loadgen::generate(cfg, |d| {
        n += 1;
        eat(&(d.exporter as u64).to_be_bytes());
        eat(&d.ts_ns.to_be_bytes());
        eat(d.bytes);
    })
    .unwrap();
    (h, n)
}

/// The v5 model of the tests below.
fn v5_model() -> Config {
    Config {
        count: Some(600),
        pps: 1000,
        time_scale: Some(200.0),
        flows: 3000,
        active_timeout: Duration::from_secs(60),
        inactive_timeout: Duration::from_secs(5),
        exporters: 3,
        sampling: 100,
        corrupt_ratio: 0.05,
        ..Config::default()
    }
}

#[test]
fn v5_output_is_pinned_byte_for_byte() {
    // Digests of the v5 traffic before v9/IPFIX came to loadgen (commit
    // a431835): the templated versions must not change a byte of v5.
    assert_eq!(digest(&v5_model()), (0xe78d_e897_7ba9_930e, 629));
    let other = Config {
        count: Some(2000),
        records_per_datagram: 7,
        same_src_ip: true,
        exporters: 5,
        seed: 99,
        ..Config::default()
    };
    assert_eq!(digest(&other), (0xf27f_52f7_156f_6c96, 2000));
}
