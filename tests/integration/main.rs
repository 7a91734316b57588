//! Integration tests: they drive the real `nfstitch` binary.

mod clickhouse;
mod collect;
mod histograms;
mod loadgen;
mod ops;
mod reliability;
mod replay;
mod util;
