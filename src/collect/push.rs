//! The two push policies of a worker, for when a queue is full. Neither
//! drops silently:
//!
//! - **To a peer's inbox** ([`to_peer`]): backpressure. The worker counts a
//!   stall, wakes the peer, and while it waits keeps draining its own inbox
//!   (the caller's `while_full`), so two workers pushing to each other can
//!   never deadlock.
//! - **To the writer** ([`to_writer`]): backpressure. The worker counts a
//!   stall and sleeps briefly (the writer never waits on a worker). Once the
//!   writer has failed, messages are discarded instead, and the dump rows
//!   among them counted (`unwritten_dump_rows`; lost flows are counted as
//!   emitted less written).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::handoff::{Mailbox, RecordBatch, Shared, ToWriter};

/// How long a worker sleeps between tries on a full writer queue.
const WRITER_RETRY: Duration = Duration::from_micros(50);

/// What a worker's pushes waited for or gave up.
#[derive(Debug, Default, Clone, Copy)]
pub struct PushStats {
    /// Tries on a full peer inbox.
    pub queue_stalls: u64,
    /// Tries on a full writer queue.
    pub writer_stalls: u64,
    /// Dump rows discarded because the writer had failed.
    pub unwritten_rows: u64,
}

/// Push `item` into `peer`'s inbox, waiting while it is full: each failed
/// try counts a stall, wakes the peer and calls `while_full` (drain the own
/// inbox; false if there was nothing to do, then the thread yields).
/// Returns the stalls.
pub fn to_peer(peer: &Mailbox, mut item: RecordBatch, mut while_full: impl FnMut() -> bool) -> u64 {
    let mut stalls = 0;
    loop {
        match peer.inbox.push(item) {
            Ok(()) => break,
            Err(back) => {
                item = back;
                stalls += 1;
                peer.notify();
                // Keep our own inbox moving while we wait: no deadlock.
                if !while_full() {
                    std::thread::yield_now();
                }
            }
        }
    }
    peer.notify();
    stalls
}

/// Queue `msg` on worker `id`'s writer queue; waits (counted in `stats`)
/// while it is full, discards (counted) once the writer has failed.
pub fn to_writer(shared: &Shared, id: usize, mut msg: ToWriter, stats: &mut PushStats) {
    let q = &shared.mailboxes[id].to_writer;
    loop {
        if shared.writer_failed.load(Ordering::Relaxed) {
            // The process is exiting with the writer's error; dump rows
            // that could not be written are counted for its message
            // (flows are: emitted less written).
            if let ToWriter::Dump(d) = &msg {
                stats.unwritten_rows += d.len() as u64;
            }
            return;
        }
        match q.push(msg) {
            Ok(()) => {
                shared.wake_writer();
                return;
            }
            Err(back) => {
                msg = back;
                stats.writer_stalls += 1;
                std::thread::sleep(WRITER_RETRY);
            }
        }
    }
}
