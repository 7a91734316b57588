//! The destination an output writes to ([`OutWrite`]), and which rows
//! reached the OS. Rows pass through a buffer (a `BufWriter`, a
//! compressor) before a `write(2)` takes them, so when a write fails the rows
//! still buffered are lost, and a row counts as written only once the OS
//! accepted its last byte.
//!
//! - [`Counted`] sits under the buffer, next to the file: it counts the bytes
//!   the OS accepted and, once a write has failed, refuses every later one
//!   (a buffer dropped after a failure retries its flush; refusing it keeps
//!   the count final, and keeps a half-written file from growing more
//!   fragments).
//! - [`Buffered`] is the plain buffered output over it (a file, stdout): it
//!   can say exactly how many of the bytes handed to it the OS took.
//! - [`Ledger`] notes where each row ends in the byte stream handed to the
//!   buffer and turns an accepted byte count into rows written, by kind.
//!
//! A writer that cannot map the OS's bytes back to the rows' (a compressor)
//! reports no count: its rows count as written when a flush after them
//! succeeded, and the output is flushed every [`MAX_PENDING`] rows
//! so that it stays bounded.

use std::collections::VecDeque;
use std::io::{self, BufWriter, Write};

/// A destination an [`Output`](super::Output) writes to, which can be finished (a
/// compressor's trailer written, the file flushed) when it is replaced.
pub trait OutWrite: Write + Send {
    fn finish(self: Box<Self>) -> io::Result<()>;

    /// How many of the bytes handed to it the OS accepted, if it can tell
    /// ([`Buffered`] can; a compressor cannot: see the module doc).
    fn accepted(&self) -> Option<u64> {
        None
    }
}

impl<W: Write + Send> OutWrite for io::BufWriter<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.flush()
    }
}

/// Rows the ledger holds before it asks the writer how far the OS got.
pub const SETTLE_AT: usize = 1024;
/// Rows the ledger holds at most for a writer that cannot say how far the
/// OS got: past this, the output is flushed (512 KiB of ledger).
pub const MAX_PENDING: usize = 1 << 15;

/// Bytes per buffered output (`-o PATH`, stdout, each rotated file).
pub const BUF_BYTES: usize = 1 << 16;

/// A writer that counts the bytes its inner writer accepted and fails
/// every call after the first failure (an interrupted call is not one).
#[derive(Debug)]
pub struct Counted<W> {
    inner: W,
    accepted: u64,
    failed: Option<(io::ErrorKind, String)>,
}

impl<W: Write> Counted<W> {
    pub fn new(inner: W) -> Self {
        Counted { inner, accepted: 0, failed: None }
    }

    /// Bytes the inner writer accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            None => Ok(()),
            Some((kind, msg)) => {
                Err(io::Error::new(*kind, format!("{msg} (an earlier write failed)")))
            }
        }
    }

    fn note<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed = Some((e.kind(), e.to_string()));
            }
        }
        r
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check()?;
        let r = self.inner.write(buf);
        let n = self.note(r)?;
        self.accepted += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        let r = self.inner.flush();
        self.note(r)
    }
}

/// The plain buffered output: a `BufWriter` over a [`Counted`] writer, so it
/// knows how many of the bytes handed to it the OS accepted.
#[derive(Debug)]
pub struct Buffered<W: Write>(BufWriter<Counted<W>>);

impl<W: Write> Buffered<W> {
    pub fn new(inner: W) -> Self {
        Buffered(BufWriter::with_capacity(BUF_BYTES, Counted::new(inner)))
    }
}

impl<W: Write> Write for Buffered<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send> OutWrite for Buffered<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }

    fn accepted(&self) -> Option<u64> {
        Some(self.0.get_ref().accepted())
    }
}

/// What a row is, for counting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Flow,
    /// A `--dump` record row.
    Record,
    /// A `--dump` header row.
    Header,
}

/// Rows by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RowCounts {
    pub rows: u64,
    pub flows: u64,
    pub records: u64,
}

impl RowCounts {
    fn add(&mut self, kind: RowKind) {
        self.rows += 1;
        self.flows += u64::from(kind == RowKind::Flow);
        self.records += u64::from(kind == RowKind::Record);
    }
}

/// Rows handed to the current writer whose bytes the OS may not have
/// accepted yet, and the counts of rows handed and written.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Bytes handed to the current writer.
    bytes: u64,
    /// (end offset in the current writer's stream, kind), oldest first.
    pending: VecDeque<(u64, RowKind)>,
    handed: RowCounts,
    written: RowCounts,
}

impl Ledger {
    /// A row of `len` bytes (its schema header included) was handed over.
    pub fn handed(&mut self, len: usize, kind: RowKind) {
        self.bytes += len as u64;
        self.pending.push_back((self.bytes, kind));
        self.handed.add(kind);
    }

    /// Bytes that belong to no row (Zeek's `#close` line) were handed over.
    pub fn extra(&mut self, len: usize) {
        self.bytes += len as u64;
    }

    /// Rows not yet known written.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The OS accepted the current writer's first `accepted` bytes: every
    /// row that ends there or before is written.
    pub fn settle(&mut self, accepted: u64) {
        while let Some(&(end, kind)) = self.pending.front() {
            if end > accepted {
                break;
            }
            self.pending.pop_front();
            self.written.add(kind);
        }
    }

    /// A flush succeeded: every row handed is written.
    pub fn all_written(&mut self) {
        self.settle(u64::MAX);
    }

    /// The writer was replaced (after a successful flush): offsets start over.
    pub fn new_stream(&mut self) {
        debug_assert!(self.pending.is_empty(), "{} rows pending", self.pending.len());
        self.bytes = 0;
    }

    /// Rows handed to the output (buffered or not).
    pub fn handed_rows(&self) -> RowCounts {
        self.handed
    }

    /// Rows whose every byte the OS accepted.
    pub fn written_rows(&self) -> RowCounts {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination that takes `room` bytes, then fails like a full disk.
    struct Room {
        room: usize,
        got: Vec<u8>,
    }

    impl Write for Room {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn counted_counts_what_was_taken_and_stays_failed() {
        let mut c = Counted::new(Room { room: 10, got: Vec::new() });
        assert!(c.write_all(b"0123456789abc").is_err());
        assert_eq!(c.accepted(), 10);
        c.inner.room = 100; // space again: a failed output stays failed
        assert!(c.write(b"x").is_err() && c.flush().is_err());
        assert_eq!((c.accepted(), c.get_ref().got.len()), (10, 10));
    }

    /// Rows through a buffered output into a destination that fills up at
    /// every possible byte: the rows counted written are exactly the
    /// complete rows in the destination, by kind.
    #[test]
    fn rows_written_are_the_complete_rows_the_os_took() {
        let rows: Vec<(String, RowKind)> = (0..300)
            .map(|i| {
                let kind = [RowKind::Flow, RowKind::Record, RowKind::Header][i % 3];
                (format!("{kind:?} row {i} {}\n", "x".repeat(i * 7 % 500)), kind)
            })
            .collect();
        let total: usize = rows.iter().map(|(r, _)| r.len()).sum();
        for room in (0..=total).step_by(97).chain([total]) {
            let mut w = Buffered::new(Room { room, got: Vec::new() });
            let mut l = Ledger::default();
            let mut failed = false;
            for (r, kind) in &rows {
                if w.write_all(r.as_bytes()).is_err() {
                    failed = true;
                    break;
                }
                l.handed(r.len(), *kind);
                if l.pending() >= SETTLE_AT {
                    l.settle(OutWrite::accepted(&w).unwrap());
                }
            }
            if !failed && w.flush().is_ok() {
                l.all_written();
            } else {
                l.settle(OutWrite::accepted(&w).unwrap());
            }
            let got = String::from_utf8(w.0.get_ref().get_ref().got.clone()).unwrap();
            let complete: Vec<&str> =
                got.split_inclusive('\n').filter(|s| s.ends_with('\n')).collect();
            let count = |k: &str| complete.iter().filter(|s| s.starts_with(k)).count() as u64;
            let want = RowCounts {
                rows: complete.len() as u64,
                flows: count("Flow"),
                records: count("Record"),
            };
            assert_eq!(l.written_rows(), want, "room {room}");
            assert!(l.handed_rows().rows >= want.rows, "room {room}");
            assert_eq!(room >= total, l.written_rows().rows == rows.len() as u64, "room {room}");
        }
    }
}
