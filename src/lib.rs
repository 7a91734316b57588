//! nfstitch: a NetFlow v5, v9 and IPFIX collector and online flow restitcher.
//!
//! Routers cut every long connection into many records; nfstitch receives
//! them (live, or from captures), decodes them, and restitches the records of
//! one flow back into one flow, emitted when it has ended (FIN/RST plus a
//! linger), gone idle, been evicted by the capacity limit, or at shutdown.
//!
//! # The live collector: threads and queues
//! ```text
//!  exporters ──UDP──► SO_REUSEPORT group: one socket per worker (platform)
//!                        │ recvmmsg batch + kernel rx time + drop counter
//!   worker i (pinned)    ▼
//!   ├ ingest: decode in place, count, sequence-track        (ingest, wire)
//!   ├ route: shard = hash(key) mod N; own records applied,
//!   │        others batched to the owner's inbox ──► ArrayQueue ──► worker j
//!   ├ shard: flow table + slab + timer wheel                (flow, timer)
//!   └ finished flows / dump rows ──► ArrayQueue ─┐          (collect::handoff)
//!                                                ▼
//!                         writer thread: format (output) + sinks (sink),
//!                         flush on size or interval, rotate, SIGHUP reopen
//!   signal thread: SIGINT/SIGTERM stop, SIGHUP reopen; metrics thread: /metrics
//! ```
//! Each worker owns its socket(s), its shard and its counters; the one lock
//! on the hot path is its exporter's sequence state (shared so that one
//! exporter spread over workers is one tracker; taken once per datagram,
//! uncontended unless the exporter is spread). Queues are bounded and lock-free; a full queue is
//! backpressure (the pusher drains its own inbox while it waits, so workers
//! never deadlock), counted as a stall, never a silent drop.
//!
//! # Replay
//! ```text
//!  pcap / pcapng / raw files ─► capture ─► ingest ─► flow::Shard ─► output
//! ```
//! One thread; the capture timestamp is the clock; the end of input flushes
//! every flow.
//!
//! # The rooms, in data-flow order
//! - [`platform`]: the only module with `unsafe` and platform code: sockets,
//!   `recvmmsg`/`sendmmsg`, CPU pinning and the prefetch hint, `/proc` readers.
//! - [`capture`]: captures and raw files into UDP payloads with timestamps.
//! - [`wire`]: v5 decode and encode over byte slices; typed rejections.
//!   [`wire::template`] decodes v9 and IPFIX with its template cache.
//! - [`ingest`]: decode and count each datagram exactly once, per exporter,
//!   with sequence tracking; hands records on as values or in place (v5),
//!   or decoded (v9/IPFIX: one template cache per thread, data held for its
//!   template, templates saved across restarts, and the IPv6 seam).
//! - [`flow`]: what a record adds, the record, the key, the shard that
//!   restitches; [`timer`]: the hierarchical wheel the shard expires flows with.
//! - [`pair`]: `--pair`, the two directions of a connection stitched into
//!   one Zeek-style connection behind each shard (symmetric routing).
//! - [`collect`]: the live collector's threads and the queues between them.
//! - [`replay`]: the offline pipeline.
//! - [`results`]: where a run's results go, for both modes: opening the flow
//!   output, the final report and `--stats-json`.
//! - [`output`]: JSON lines, CSV, Zeek TSV, rotation; [`sink`]: ClickHouse.
//! - [`stats`]: the final report and `--stats-json`; [`hist`]: latency
//!   histograms and their plots.
//! - The command line, in three places: [`cli`] defines the flags (and
//!   [`config_file`] turns `--config FILE` into flags); [`config`] validates
//!   them into options with defaults, each message naming the flag to change;
//!   [`run`] hands the options to the mode.
//!
//! # Where data can be dropped, and which counter says so
//! Every datagram sent is received, dropped by the kernel, or rejected, and
//! each is counted; every accepted record ends in exactly one emitted flow.
//! - The kernel's receive buffer was full: `kernel_drops` (`SO_RXQ_OVFL`,
//!   per worker and in total).
//! - A datagram failed validation: `rejected.<reason>` (`too_short`,
//!   `bad_version`, `bad_count`, `length_mismatch`; v9/IPFIX framing also
//!   `set_too_short`, `set_overrun`), was longer than the receive buffer
//!   (`truncated`: over 9216 bytes, cut by the socket), or came from a source outside
//!   `--allow`: `rejected.not_allowed`. Never a panic. A bad v9/IPFIX
//!   template, set or record inside an accepted datagram:
//!   `templated_rejected.<reason>`.
//! - v9/IPFIX data before its template: held, then decoded
//!   (`templated.held_sets_decoded`), or `held_sets_expired` /
//!   `held_sets_dropped` (too old, no room).
//! - v9/IPFIX records the flow table could not take: in `records`, in no
//!   flow, counted in `ipv6_records_pending` (packets, octets too) at the
//!   one seam, `ingest::stitchable_now`; always 0 since IPv6 records are
//!   stitched (the shard's IPv6 slot family, `flow/slab6.rs`).
//! - Datagrams still queued in a socket when shutdown's bounded read ran out
//!   of time: `unread_at_shutdown` (read and counted, not processed).
//! - Records the exporter sent that never arrived, per its sequence numbers:
//!   `seq_lost_records` (late datagrams give theirs back: `seq_late_datagrams`;
//!   duplicates fill nothing: `seq_duplicate_datagrams`; exporter restarts:
//!   `seq_restarts`). One tracker per exporter, shared by every worker.
//! - A source or engine past the caps on per-exporter state:
//!   `exporters_overflow`, `engines_overflow` (counted in the totals, named
//!   in a warning, never merged into a shared bucket).
//! - A capture frame without a UDP payload: `frames_skipped.<reason>` (replay).
//! - The rest of a replay input whose framing broke part-way (a record
//!   header past the end of the file, a capture cut short):
//!   `frames_skipped.truncated_capture` and `damaged_captures` (file and
//!   offset); everything before it is kept, and the replay exits non-zero.
//! - A flow pushed out by `--max-flows` is *emitted* with reason `evicted`
//!   (counted in `evictions`), not dropped: its sums are kept.
//! - `--pair`: a direction that waited for its partner past the pairing
//!   stage's cap is *emitted* alone early (`conns.pair_overflow`), not
//!   dropped; a partner that comes later is a connection of its own.
//! - The output failed (disk full): `writer_error`, `unwritten_flows`,
//!   `unwritten_dump_rows` (exactly the rows the OS did not accept, those
//!   still buffered included: [`output::written`]), and a non-zero exit.
//! - Records routed to another worker's shard are never left behind at
//!   shutdown: every worker waits for all its peers to hand theirs over
//!   (`records` = the sum of `workers[].applied_records`).
//! - A sink could not deliver: its own counters under `sinks.<name>`
//!   (ClickHouse: `rows_spooled`, `insert_errors`, `permanent_error`, ...);
//!   flows it could not keep: `dropped_flows` (the spool at
//!   `--spool-max-bytes`) and `rows_dropped` (the spool could not be written).
//! - A full queue between threads is not a drop: `queue_stalls`.
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
pub mod pair;
#[allow(unsafe_code)]
pub mod platform;
pub mod replay;
pub mod results;
pub mod run;
pub mod sink;
pub mod stats;
pub mod timer;
pub mod wire;
