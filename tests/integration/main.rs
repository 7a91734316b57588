//! Integration tests: they drive the real `nfstitch` binary.

mod clickhouse;
mod collect;
mod histograms;
mod ops;
mod reliability;
mod replay;
mod util;
