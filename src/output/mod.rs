//! Output formats: JSON lines, CSV and Zeek-style TSV, over any `Write`.
//!
//! Owns: the row schemas (field names are a contract, see README "Output
//! schema") and their three encodings. One schema definition per row kind
//! ([`rows`]) drives all three formats, so the formats cannot drift apart.
//!
//! Several row kinds may share one stream (`--dump` interleaves headers and
//! records with flows): JSON lines carry a `type` field; CSV and Zeek write a
//! schema header (CSV column names, Zeek `#path`/`#fields`/`#types`) whenever
//! the row kind changes, which `zeek-cut` and CSV readers that split on the
//! `type` column both follow.
//!
//! Times: RFC 3339 UTC with 9 fractional digits (`2015-05-02T18:38:04.898330000Z`)
//! by default, or seconds since the epoch with 9 fixed decimals
//! (`1430591884.898330000`) with `--time-format epoch`. Zeek logs always use
//! the epoch form (Zeek's `time` type).
//!
//! Written by hand, on purpose: the three encoders are visitors over one
//! schema ([`Row::visit`]) that append to one reused `String`, so a row costs
//! no allocation and no intermediate value. `serde_json` and the `csv` crate
//! would each need a serializable struct per row kind and format, the schema
//! three times over, and would not write Zeek's header block. The calendar
//! arithmetic for RFC 3339 is a few lines and is checked against `humantime`
//! over the whole supported range (`output/tests.rs`).

pub mod rotate;
pub mod rows;
pub mod written;

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::IpAddr;
use std::str::FromStr;

pub use rows::{
    ConnRow, FlowRow, HeaderRow, RecordRow, Row, TemplatedHeaderRow, TemplatedRecordRow,
};
pub use written::{Buffered, OutWrite, RowCounts};
use written::{Ledger, RowKind};

/// The output encoding (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Jsonl,
    Csv,
    Zeek,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "jsonl" | "json" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "zeek" | "tsv" => Ok(Format::Zeek),
            _ => Err(format!("unknown format {s:?}; choose jsonl, csv or zeek")),
        }
    }
}

impl Format {
    /// File extension for rotated files and docs.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Zeek => "log",
        }
    }
}

/// How times are written (`--time-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeFormat {
    #[default]
    Rfc3339,
    Epoch,
}

impl FromStr for TimeFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rfc3339" => Ok(TimeFormat::Rfc3339),
            "epoch" => Ok(TimeFormat::Epoch),
            _ => Err(format!("unknown time format {s:?}; choose rfc3339 or epoch")),
        }
    }
}

/// Zeek column types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Count,
    Addr,
    Port,
    Time,
    Str,
    /// A duration (Zeek `interval`: seconds with decimals).
    Interval,
    /// A Zeek `enum` (a name, like conn.log's `proto`: `tcp`).
    Enum,
    /// Zeek `bool` and `set[string]`: only ever unset here (conn.log's
    /// `local_orig`, `tunnel_parents`).
    Bool,
    SetStr,
}

impl Ty {
    fn zeek(self) -> &'static str {
        match self {
            Ty::Count => "count",
            Ty::Addr => "addr",
            Ty::Port => "port",
            Ty::Time => "time",
            Ty::Str => "string",
            Ty::Interval => "interval",
            Ty::Enum => "enum",
            Ty::Bool => "bool",
            Ty::SetStr => "set[string]",
        }
    }
}

/// A row's fields, visited in schema order.
pub trait Visitor {
    fn num(&mut self, name: &'static str, ty: Ty, v: u64);
    fn addr(&mut self, name: &'static str, v: IpAddr);
    fn time(&mut self, name: &'static str, ns: u64);
    fn str(&mut self, name: &'static str, v: &str);
    /// A duration in ns: seconds with nine decimals in every format.
    fn interval(&mut self, name: &'static str, ns: u64);
    /// A string of Zeek type `ty` (`Str` or `Enum`); `None` is unset
    /// (Zeek `-`, JSON `null`, CSV empty).
    fn opt_str(&mut self, name: &'static str, ty: Ty, v: Option<&str>);
    /// A count that is unset (Zeek `-`, JSON `null`, CSV empty).
    fn unset(&mut self, name: &'static str, ty: Ty);
}

/// Writes rows in one format to one `Write`.
pub struct Output {
    format: Format,
    time: TimeFormat,
    w: Box<dyn OutWrite>,
    kind: Option<&'static str>,
    line: String,
    /// Rows handed to `w`, and which of them the OS accepted.
    ledger: Ledger,
    /// The time the Zeek `#open`/`#close` lines carry: the wall clock
    /// unless set ([`Output::set_clock`]: a replay's capture clock).
    clock: Option<u64>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("format", &self.format)
            .field("ledger", &self.ledger)
            .finish()
    }
}

impl Output {
    pub fn new(format: Format, time: TimeFormat, w: Box<dyn OutWrite>) -> Self {
        let time = if format == Format::Zeek { TimeFormat::Epoch } else { time };
        let line = String::with_capacity(512);
        Output { format, time, w, kind: None, line, ledger: Ledger::default(), clock: None }
    }

    /// The time (ns) that Zeek's `#open` and `#close` lines say from now on,
    /// instead of the wall clock: a replay sets its capture clock, so that
    /// its output is the same in every run.
    pub fn set_clock(&mut self, ns: u64) {
        self.clock = Some(ns);
    }

    fn now_ns(&self) -> u64 {
        self.clock.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        })
    }

    /// End the current Zeek log block with its `#close` line (real Zeek logs
    /// end with one); nothing for JSON and CSV, or when no block is open.
    /// [`Output::replace_writer`] and [`Output::finish`] do it themselves;
    /// call it before [`Output::into_writer`] and at the end of a stream
    /// that is only flushed.
    pub fn close(&mut self) -> io::Result<()> {
        if self.format != Format::Zeek || self.kind.is_none() {
            return Ok(());
        }
        self.kind = None;
        self.line.clear();
        let now = self.now_ns();
        push_zeek_stamp(&mut self.line, "#close", now);
        if let Err(e) = self.w.write_all(self.line.as_bytes()) {
            self.settle();
            return Err(e);
        }
        self.ledger.extra(self.line.len());
        Ok(())
    }

    /// Rows handed to the writer so far, by kind.
    pub fn handed(&self) -> RowCounts {
        self.ledger.handed_rows()
    }

    /// Rows known to be written: the OS accepted every byte of them (all
    /// that were handed, after a successful [`Output::flush`]).
    pub fn written(&self) -> RowCounts {
        self.ledger.written_rows()
    }

    /// Replace the underlying writer (SIGHUP reopen, rotation) and return the
    /// old one, flushed, for the caller to finish. The next row writes a schema header.
    pub fn replace_writer(&mut self, w: Box<dyn OutWrite>) -> io::Result<Box<dyn OutWrite>> {
        self.close()?;
        self.flush()?;
        self.ledger.new_stream();
        self.kind = None;
        Ok(std::mem::replace(&mut self.w, w))
    }

    /// Count the rows the OS has accepted so far.
    fn settle(&mut self) {
        if let Some(n) = self.w.accepted() {
            self.ledger.settle(n);
        }
    }

    /// Close the Zeek block, flush and finish the writer (end of output).
    pub fn finish(mut self) -> io::Result<()> {
        self.close()?;
        self.w.finish()
    }

    /// The writer, for the caller to finish (rotation names the file after).
    pub fn into_writer(self) -> Box<dyn OutWrite> {
        self.w
    }

    pub fn write<R: Row>(&mut self, row: &R) -> io::Result<()> {
        self.line.clear();
        if self.kind != Some(R::KIND) && self.format != Format::Jsonl {
            self.schema::<R>(row);
        }
        self.kind = Some(R::KIND);
        match self.format {
            Format::Jsonl => {
                self.line.push_str("{\"type\":\"");
                self.line.push_str(R::KIND);
                self.line.push('"');
                row.visit(&mut Jsonl { out: &mut self.line, time: self.time });
                self.line.push_str("}\n");
            }
            Format::Csv => {
                self.line.push_str(R::KIND);
                let mut d =
                    Delimited { out: &mut self.line, time: self.time, sep: ',', first: false };
                row.visit(&mut d);
                self.line.push('\n');
            }
            Format::Zeek => {
                // Zeek rows have no type column: no separator before the first field.
                let mut d =
                    Delimited { out: &mut self.line, time: self.time, sep: '\t', first: true };
                row.visit_zeek(&mut d);
                self.line.push('\n');
            }
        }
        if let Err(e) = self.w.write_all(self.line.as_bytes()) {
            self.settle();
            return Err(e);
        }
        let kind = if R::KIND == FlowRow::KIND || R::KIND == ConnRow::KIND {
            RowKind::Flow
        } else if R::KIND == RecordRow::KIND {
            RowKind::Record
        } else {
            RowKind::Header
        };
        self.ledger.handed(self.line.len(), kind);
        if self.ledger.pending() >= written::SETTLE_AT {
            self.settle();
            if self.ledger.pending() >= written::MAX_PENDING {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn schema<R: Row>(&mut self, row: &R) {
        let mut names = Names { names: Vec::new() };
        if self.format == Format::Zeek {
            row.visit_zeek(&mut names);
        } else {
            row.visit(&mut names);
        }
        match self.format {
            Format::Jsonl => {}
            Format::Csv => {
                self.line.push_str("type");
                for (n, _) in &names.names {
                    self.line.push(',');
                    self.line.push_str(n);
                }
                self.line.push('\n');
            }
            Format::Zeek => {
                // A block of another kind before: it ends as a Zeek log ends.
                let now = self.now_ns();
                if self.kind.is_some() {
                    push_zeek_stamp(&mut self.line, "#close", now);
                }
                let _ = write!(
                    self.line,
                    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\t{}\n",
                    R::ZEEK_PATH
                );
                push_zeek_stamp(&mut self.line, "#open", now);
                self.line.push_str("#fields");
                for (n, _) in &names.names {
                    let _ = write!(self.line, "\t{n}");
                }
                self.line.push_str("\n#types");
                for (_, t) in &names.names {
                    let _ = write!(self.line, "\t{}", t.zeek());
                }
                self.line.push('\n');
            }
        }
    }

    /// Flush the writer; then every row handed is written (or, if it
    /// fails, those the OS accepted).
    pub fn flush(&mut self) -> io::Result<()> {
        match self.w.flush() {
            Ok(()) => {
                self.ledger.all_written();
                Ok(())
            }
            Err(e) => {
                self.settle();
                Err(e)
            }
        }
    }
}

struct Names {
    names: Vec<(&'static str, Ty)>,
}

impl Visitor for Names {
    fn num(&mut self, name: &'static str, ty: Ty, _: u64) {
        self.names.push((name, ty));
    }
    fn addr(&mut self, name: &'static str, _: IpAddr) {
        self.names.push((name, Ty::Addr));
    }
    fn time(&mut self, name: &'static str, _: u64) {
        self.names.push((name, Ty::Time));
    }
    fn str(&mut self, name: &'static str, _: &str) {
        self.names.push((name, Ty::Str));
    }
    fn interval(&mut self, name: &'static str, _: u64) {
        self.names.push((name, Ty::Interval));
    }
    fn opt_str(&mut self, name: &'static str, ty: Ty, _: Option<&str>) {
        self.names.push((name, ty));
    }
    fn unset(&mut self, name: &'static str, ty: Ty) {
        self.names.push((name, ty));
    }
}

/// Append Zeek's `#open`/`#close` line: `TAG\tYYYY-MM-DD-HH-MM-SS\n` (UTC).
fn push_zeek_stamp(out: &mut String, tag: &str, ns: u64) {
    out.push_str(tag);
    out.push('\t');
    let start = out.len();
    push_civil(out, ns / 1_000_000_000);
    // `YYYY-MM-DDTHH:MM:SS` as Zeek writes it: `YYYY-MM-DD-HH-MM-SS`.
    let stamp: String =
        out[start..].chars().map(|c| if c == 'T' || c == ':' { '-' } else { c }).collect();
    out.truncate(start);
    out.push_str(&stamp);
    out.push('\n');
}

/// Append `v` as exactly nine digits (nanoseconds).
#[inline]
fn push_nanos(out: &mut String, v: u64) {
    let mut b = itoa::Buffer::new();
    let d = b.format(v % 1_000_000_000);
    for _ in d.len()..9 {
        out.push('0');
    }
    out.push_str(d);
}

/// Append a time in the chosen format.
pub fn push_time(out: &mut String, ns: u64, time: TimeFormat) {
    let secs = ns / 1_000_000_000;
    match time {
        TimeFormat::Epoch => {
            let mut b = itoa::Buffer::new();
            out.push_str(b.format(secs));
            out.push('.');
            push_nanos(out, ns);
        }
        TimeFormat::Rfc3339 => {
            push_civil(out, secs);
            out.push('.');
            push_nanos(out, ns);
            out.push('Z');
        }
    }
}

/// Append `v` (< 100) as two digits.
#[inline]
fn push2(out: &mut String, v: u64) {
    out.push((b'0' + (v / 10) as u8) as char);
    out.push((b'0' + (v % 10) as u8) as char);
}

/// Append `YYYY-MM-DDTHH:MM:SS` (UTC, proleptic Gregorian) for `secs` since
/// the epoch: days to civil date by Howard Hinnant's `civil_from_days`, no
/// allocation (a flow's five times fall in different seconds, so caching
/// the calendar part per second did not pay).
fn push_civil(out: &mut String, secs: u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = (yoe + era * 400 + i64::from(m <= 2)) as u64;
    push2(out, y / 100 % 100);
    push2(out, y % 100);
    out.push('-');
    push2(out, m as u64);
    out.push('-');
    push2(out, d as u64);
    out.push('T');
    push2(out, rem / 3600);
    out.push(':');
    push2(out, rem / 60 % 60);
    out.push(':');
    push2(out, rem % 60);
}

/// Append an address: IPv4 by hand (the hot case), IPv6 through `Display`.
#[inline]
fn push_addr(out: &mut String, v: IpAddr) {
    match v {
        IpAddr::V4(a) => {
            let mut b = itoa::Buffer::new();
            for (i, o) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(b.format(o));
            }
        }
        IpAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// `,"name":` (every JSON field after the first, which is `type`).
#[inline]
fn json_key(out: &mut String, name: &str) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
}

struct Jsonl<'a> {
    out: &'a mut String,
    time: TimeFormat,
}

impl Visitor for Jsonl<'_> {
    fn num(&mut self, name: &'static str, _: Ty, v: u64) {
        json_key(self.out, name);
        let mut b = itoa::Buffer::new();
        self.out.push_str(b.format(v));
    }
    fn addr(&mut self, name: &'static str, v: IpAddr) {
        json_key(self.out, name);
        self.out.push('"');
        push_addr(self.out, v);
        self.out.push('"');
    }
    fn time(&mut self, name: &'static str, ns: u64) {
        json_key(self.out, name);
        if self.time == TimeFormat::Epoch {
            push_time(self.out, ns, self.time);
        } else {
            self.out.push('"');
            push_time(self.out, ns, self.time);
            self.out.push('"');
        }
    }
    fn str(&mut self, name: &'static str, v: &str) {
        // Values are our own identifiers: no escaping needed.
        json_key(self.out, name);
        self.out.push('"');
        self.out.push_str(v);
        self.out.push('"');
    }
    fn interval(&mut self, name: &'static str, ns: u64) {
        json_key(self.out, name);
        push_time(self.out, ns, TimeFormat::Epoch);
    }
    fn opt_str(&mut self, name: &'static str, _: Ty, v: Option<&str>) {
        match v {
            Some(v) => self.str(name, v),
            None => {
                json_key(self.out, name);
                self.out.push_str("null");
            }
        }
    }
    fn unset(&mut self, name: &'static str, _: Ty) {
        json_key(self.out, name);
        self.out.push_str("null");
    }
}

struct Delimited<'a> {
    out: &'a mut String,
    time: TimeFormat,
    sep: char,
    /// The next field is the row's first: no separator before it.
    first: bool,
}

impl Delimited<'_> {
    #[inline]
    fn sep(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.out.push(self.sep);
        }
    }
}

impl Visitor for Delimited<'_> {
    fn num(&mut self, _: &'static str, _: Ty, v: u64) {
        self.sep();
        let mut b = itoa::Buffer::new();
        self.out.push_str(b.format(v));
    }
    fn addr(&mut self, _: &'static str, v: IpAddr) {
        self.sep();
        push_addr(self.out, v);
    }
    fn time(&mut self, _: &'static str, ns: u64) {
        self.sep();
        push_time(self.out, ns, self.time);
    }
    fn str(&mut self, _: &'static str, v: &str) {
        self.sep();
        if v.is_empty() && self.sep == '\t' {
            // Zeek's mark for an empty string (`#empty_field`).
            self.out.push_str("(empty)");
        } else {
            self.out.push_str(v);
        }
    }
    fn interval(&mut self, _: &'static str, ns: u64) {
        self.sep();
        push_time(self.out, ns, TimeFormat::Epoch);
    }
    fn opt_str(&mut self, _: &'static str, _: Ty, v: Option<&str>) {
        self.sep();
        self.unset_or(v);
    }
    fn unset(&mut self, _: &'static str, _: Ty) {
        self.sep();
        self.unset_or(None);
    }
}

impl Delimited<'_> {
    /// A value, or Zeek's unset mark `-` (CSV: an empty field).
    fn unset_or(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.out.push_str(v),
            None if self.sep == '\t' => self.out.push('-'),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests;
