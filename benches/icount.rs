//! Instructions per record of the worker's path without syscalls (the
//! receive batches of `core`'s `ingest_to_shard`): a figure that does not
//! move with the machine's noise, for comparing builds. `benches/icount.sh`
//! runs this under valgrind's cachegrind and subtracts a run that only sets
//! up and warms; run alone, it just does the work.
//!
//! Arguments, leading numbers only (from the first that starts with `-`,
//! such as cargo's `--bench`, the rest is ignored): FLOWS (3000) BATCHES (10)
//! MERGE (1: merge into the shard; 0: only check, count and note the
//! records) VERSION (5: v5 read in place; 9 or 10: the same records as v9
//! or IPFIX, decoded by `Ingest::templated`). Prints one JSON line.

mod common;
use common::ReceivePath;
use nfstitch::collect::worker::RECV_BATCH;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .take_while(|a| !a.starts_with('-'))
        .map(|a| a.parse().unwrap_or_else(|_| panic!("icount: {a:?} is not a number")))
        .collect();
    let flows = args.first().map_or(3000, |&f| f as u32);
    assert!(flows > 0, "icount: FLOWS must be at least 1");
    let batches = args.get(1).copied().unwrap_or(10);
    let merge = args.get(2).is_none_or(|&m| m != 0);
    let version = args.get(3).map_or(5, |&v| v as u16);
    assert!(matches!(version, 5 | 9 | 10), "icount: VERSION is 5, 9 or 10");
    let mut path = ReceivePath::with_version(flows, version);
    // Warm: two passes over the cycle, so every flow exists and later batches only merge.
    for _ in 0..(2 * path.datagrams()).div_ceil(RECV_BATCH) {
        path.batch(true);
    }
    let records: usize = (0..batches).map(|_| path.batch(merge)).sum();
    assert_eq!(path.emitted, 0, "recurring flows never end here");
    println!("{{\"flows\":{flows},\"batches\":{batches},\"merge\":{merge},\"records\":{records}}}");
}
