//! nfstitch: a NetFlow v5 collector and online flow restitcher.
//!
//! # Data flow
//! ```text
//! socket / capture ─► input ─► ingest (wire decode, count, seq) ─► flow::Shard ─► output
//!                                                      (timer wheel)
//! ```
//! - [`wire`]: v5 decode and encode over byte slices; typed rejections.
//! - [`capture`]: captures and raw files into UDP payloads with timestamps.
//! - [`ingest`]: decode + count each datagram exactly once, per exporter, with sequence tracking.
//! - [`flow`]: the key, the shard (flow table + [`timer`] wheel) that restitches records.
//! - [`output`]: JSON lines, CSV, Zeek TSV.
//! - [`stats`]: the report and `--stats-json`.
//! - [`results`]: where a run's results go, for both modes: the flow output, the final report.
//! - [`collect`] (live, multi-core) and [`replay`] (captures, one shard): the two modes.
//! - [`platform`]: the only module with `unsafe` and platform code (sockets, recvmmsg).
//!
//! # The command line, in three places
//! [`cli`] defines the flags (and [`config_file`] turns `--config FILE`
//! into flags); [`config`] validates them into options with defaults, each
//! message naming the flag to change; [`run`] hands the options to the mode.
//!
//! # Where data can be dropped, and how it is counted
//! - A datagram that fails validation: `rejected.<reason>` (never a panic).
//! - A capture frame without a UDP payload: `frames_skipped.<reason>` (replay).
//! - Records missing per the exporter's sequence numbers: `seq_lost_records`.
//! - A flow pushed out by the capacity limit is *emitted* with reason
//!   `evicted` (counted in `evictions`), not dropped: its sums are kept.
//!
//! Decode, shard and wheel never read a clock: time is a parameter.

pub mod capture;
pub mod cli;
pub mod collect;
pub mod config;
pub mod config_file;
pub mod flow;
pub mod fuzz;
pub mod hist;
pub mod ingest;
pub mod output;
#[allow(unsafe_code)]
pub mod platform;
pub mod replay;
pub mod results;
pub mod run;
pub mod sink;
pub mod stats;
pub mod timer;
pub mod wire;
