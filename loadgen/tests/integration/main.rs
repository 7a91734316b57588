//! loadgen's integration tests, one binary: the `loadgen` binary's flags and
//! files ([`cli`]), and what a real UDP socket on 127.0.0.1 receives from
//! live and `--pool` runs ([`gso`], [`pool`]), with shared helpers in [`util`].

mod cli;
mod gso;
mod pool;
mod templated;
// The main crate's one rule for a test that cannot run here.
#[allow(dead_code)]
#[path = "../../../tests/integration/skip.rs"]
mod skip;
mod util;
