//! Integration tests: they drive the real `nfstitch` binary.

mod chdb;
mod ci;
mod clickhouse;
mod clickhouse_failures;
mod collect;
mod fuzz_corpus;
mod histograms;
mod interop;
mod ipv6_stitch;
mod layout;
mod loadgen;
mod ops;
mod output_file;
mod pair;
mod reliability;
mod replay;
mod sequence;
mod skip;
mod util;
mod v9_collect;
mod v9_ipfix;
mod v9_live;
mod zeek_logs;
