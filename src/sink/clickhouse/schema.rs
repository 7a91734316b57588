//! The table's columns ([`COLUMNS`]) in the two schemas the sink writes
//! ([`Schema`]), which one a server gets ([`Schema::for_server`]), and the
//! RowBinary encoding of one flow as one row ([`encode_row`]), one code path
//! for both schemas: one list of columns (`columns!`) gives each column its
//! value and its kind, whose per-column encoder (`put!`) writes the value
//! the way the schema's type wants it; the list is expanded into straight
//! code, as fast as a hand-written encoder (BENCHMARKS.md).
//! Pure functions over a [`Flow`]: no I/O, no clock.
//!
//! - [`Schema::Legacy`], for ClickHouse 18.16 up to 20.2 (what Debian 12
//!   ships): addresses as `UInt32`, times as `UInt64` nanoseconds, the
//!   exporter as `FixedString(16)`. The schema of every earlier release.
//! - [`Schema::Native`], for ClickHouse 20.3 and later ([`NATIVE_SINCE`]: the
//!   first LTS release with `DateTime64`, which came in 20.1; `IPv6`, codecs
//!   and TTL came in 19.x): addresses as `IPv6` (IPv4 mapped,
//!   `::ffff:a.b.c.d`), times as `DateTime64(9)`, a codec on every column.
//!
//! Every column is fixed-width in both, so a row is always
//! [`Schema::row_size`] bytes and a spool file's row count is its length
//! divided by it. The two encodings differ only in the address columns, so a
//! batch written for one schema is turned into the other by [`transcode`]
//! (the sink encodes before it knows the server; see `sender`).

use std::net::IpAddr;

use crate::flow::{EndReason, Flow};

/// The first ClickHouse version that gets [`Schema::Native`]: 20.3, the first
/// long-term-support release with `DateTime64` (20.1). Older servers get
/// [`Schema::Legacy`].
pub const NATIVE_SINCE: (u32, u32) = (20, 3);

/// Which column types a table has (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Schema {
    /// ClickHouse 18.16 to 20.2: integers for addresses and times.
    Legacy,
    /// ClickHouse 20.3 and later: `IPv6`, `DateTime64(9)`, codecs.
    Native,
}

impl Schema {
    /// Bytes of one RowBinary row.
    pub const fn row_size(self) -> usize {
        match self {
            Schema::Legacy => ROW_SIZE,
            // Three addresses of 16 bytes instead of 4.
            Schema::Native => ROW_SIZE + 3 * 12,
        }
    }

    /// The schema for a server whose `SELECT version()` answered `version`
    /// (`18.16.1`, `24.8.4.13`, `26.9.2.1`, maybe with a suffix). `None`
    /// when it is not a version.
    pub fn for_server(version: &str) -> Option<Schema> {
        let mut it = version.trim().split('.');
        let major: u32 = it.next()?.parse().ok()?;
        let minor: u32 = it.next()?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
        Some(if (major, minor) >= NATIVE_SINCE { Schema::Native } else { Schema::Legacy })
    }

    /// The schema of an existing table, by the type of its `src_addr`
    /// column (`UInt32` or `IPv6`; `None` for anything else).
    pub fn of_src_addr_type(ty: &str) -> Option<Schema> {
        match ty.trim() {
            "UInt32" => Some(Schema::Legacy),
            "IPv6" => Some(Schema::Native),
            _ => None,
        }
    }

    /// The tag in spool file names (`batch-<seq>.<tag>.rowbinary`); the
    /// legacy schema has none (the names of earlier releases).
    pub fn tag(self) -> Option<&'static str> {
        match self {
            Schema::Legacy => None,
            Schema::Native => Some("native"),
        }
    }

    /// A column's type without its codec (for `Distributed` tables).
    pub fn bare_type(self, c: &Column) -> &'static str {
        let t = self.column_type(c);
        t.split(" CODEC(").next().unwrap_or(t)
    }

    /// A column's type (and codec) in this schema.
    pub fn column_type(self, c: &Column) -> &'static str {
        match self {
            Schema::Legacy => c.legacy,
            Schema::Native => c.native,
        }
    }
}

/// How a column is written: its per-column encoder (the `put!` arm of
/// the same name) and its width in each schema. Only `Ipv4` differs between
/// the schemas.
#[derive(Debug, Clone, Copy)]
enum Kind {
    U8,
    U16,
    U32,
    /// `UInt64`, or nanoseconds as `DateTime64(9)` (an `Int64` of ns: the
    /// same 8 bytes until 2262).
    U64,
    /// An IPv4 address: `UInt32` (legacy) or `IPv6` IPv4-mapped (native).
    Ipv4,
    /// Any address as 16 bytes, IPv4 mapped: `FixedString(16)` or `IPv6`.
    Ip,
}

impl Kind {
    /// Bytes of this column in `schema`.
    const fn width(self, schema: Schema) -> usize {
        match (self, schema) {
            (Kind::U8, _) => 1,
            (Kind::U16, _) => 2,
            (Kind::U32, _) | (Kind::Ipv4, Schema::Legacy) => 4,
            (Kind::U64, _) => 8,
            (Kind::Ipv4, Schema::Native) | (Kind::Ip, _) => 16,
        }
    }
}

/// The per-column encoders: append value `$v` of a column of kind `$kind`
/// as `$schema` wants it (little-endian integers, addresses in network order).
macro_rules! put {
    (U8, $schema:expr, $v:expr, $out:expr) => {
        $out.push($v)
    };
    (U16, $schema:expr, $v:expr, $out:expr) => {
        $out.extend_from_slice(&u16::to_le_bytes($v))
    };
    (U32, $schema:expr, $v:expr, $out:expr) => {
        $out.extend_from_slice(&u32::to_le_bytes($v))
    };
    (U64, $schema:expr, $v:expr, $out:expr) => {
        $out.extend_from_slice(&u64::to_le_bytes($v))
    };
    (Ipv4, $schema:expr, $v:expr, $out:expr) => {
        put_ipv4($schema, $v, $out)
    };
    (Ip, $schema:expr, $v:expr, $out:expr) => {
        $out.extend_from_slice(&ipv6_octets($v))
    };
}

/// 16 bytes in network order, IPv4 mapped as `::ffff:a.b.c.d` (what both
/// `FixedString(16)` with `IPv6NumToString` and the `IPv6` type read).
pub fn ipv6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// An address of an `Ipv4` column. The legacy schema's `UInt32` holds
/// IPv4 only: an IPv6 address is written as 0 there (the native schema's
/// `IPv6` holds both).
fn put_ipv4(schema: Schema, a: IpAddr, out: &mut Vec<u8>) {
    match schema {
        Schema::Legacy => {
            let v4 = match a {
                IpAddr::V4(a) => a.to_bits(),
                IpAddr::V6(_) => 0,
            };
            out.extend_from_slice(&v4.to_le_bytes())
        }
        Schema::Native => out.extend_from_slice(&ipv6_octets(a)),
    }
}

/// One column: its name (that of the JSON output), its type in each schema,
/// and its kind (how it is encoded).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    legacy: &'static str,
    native: &'static str,
    kind: Kind,
}

const END_REASON: &str = "Enum8('fin' = 1, 'idle' = 2, 'evicted' = 3, 'shutdown' = 4)";
const SAMPLING_MODE: &str = "Enum8('none' = 0, 'deterministic' = 1, 'random' = 2, 'reserved' = 3)";
/// Times: `DateTime64(9)`; `Delta` because flows are close in time (rows
/// are sorted by `time`), then ZSTD.
const NANOS: &str = "DateTime64(9) CODEC(Delta, ZSTD(1))";

/// Defines [`COLUMNS`] and the row encoder from one list: per column its
/// name, legacy type, native type, kind and value. The encoder is straight
/// code (each column's getter inlined into its kind's `put!`), as fast as
/// a hand-written one.
macro_rules! columns {
    ($($name:literal, $legacy:expr, $native:expr, $kind:ident, |$f:ident| $get:expr;)*) => {
        /// The table's columns, in RowBinary order. The names are those of
        /// the JSON output, plus `time`, the second of `start` (collector
        /// clock), for partitioning and ordering.
        pub const COLUMNS: &[Column] = &[
            $(Column { name: $name, legacy: $legacy, native: $native, kind: Kind::$kind },)*
        ];

        /// One row of [`COLUMNS`] for `f`, in the schema `NATIVE` says.
        #[inline]
        fn encode<const NATIVE: bool>(f: &Flow, out: &mut Vec<u8>) {
            let schema = if NATIVE { Schema::Native } else { Schema::Legacy };
            $({
                let $f = f;
                put!($kind, schema, $get, out);
            })*
        }
    };
}

columns! {
    "exporter", "FixedString(16)", "IPv6 CODEC(ZSTD(1))", Ip, |f| f.rec.exporter;
    "engine_type", "UInt8", "UInt8 CODEC(ZSTD(1))", U8, |f| f.rec.engine_type;
    "engine_id", "UInt8", "UInt8 CODEC(ZSTD(1))", U8, |f| f.rec.engine_id;
    "src_addr", "UInt32", "IPv6 CODEC(ZSTD(1))", Ipv4, |f| f.rec.src_addr;
    "src_port", "UInt16", "UInt16 CODEC(ZSTD(1))", U16, |f| f.rec.src_port;
    "dst_addr", "UInt32", "IPv6 CODEC(ZSTD(1))", Ipv4, |f| f.rec.dst_addr;
    "dst_port", "UInt16", "UInt16 CODEC(ZSTD(1))", U16, |f| f.rec.dst_port;
    "proto", "UInt8", "UInt8 CODEC(ZSTD(1))", U8, |f| f.rec.proto;
    // Counters: T64 drops the unused high bits, then ZSTD.
    "records", "UInt64", "UInt64 CODEC(T64, ZSTD(1))", U64, |f| f.records;
    "packets", "UInt64", "UInt64 CODEC(T64, ZSTD(1))", U64, |f| f.packets;
    "octets", "UInt64", "UInt64 CODEC(T64, ZSTD(1))", U64, |f| f.octets;
    "tcp_flags", "UInt8", "UInt8 CODEC(ZSTD(1))", U8, |f| f.tcp_flags;
    "first", "UInt64", NANOS, U64, |f| f.first_ns;
    "last", "UInt64", NANOS, U64, |f| f.last_ns;
    "end_reason", END_REASON, END_REASON, U8, |f| end_reason_code(f.end_reason);
    "start", "UInt64", NANOS, U64, |f| f.start_ns;
    "end", "UInt64", NANOS, U64, |f| f.end_ns;
    "input", "UInt16", "UInt16 CODEC(ZSTD(1))", U16, |f| sat16(f.rec.input);
    "output", "UInt16", "UInt16 CODEC(ZSTD(1))", U16, |f| sat16(f.rec.output);
    "nexthop", "UInt32", "IPv6 CODEC(ZSTD(1))", Ipv4, |f| f.rec.nexthop;
    "tos", "UInt8", "UInt8 CODEC(ZSTD(1))", U8, |f| f.rec.tos;
    "src_as", "UInt16", "UInt16 CODEC(ZSTD(1))", U16, |f| sat16(f.rec.src_as);
    "dst_as", "UInt16", "UInt16 CODEC(ZSTD(1))", U16, |f| sat16(f.rec.dst_as);
    "src_mask", "UInt8", "UInt8 CODEC(ZSTD(1))", U8, |f| f.rec.src_mask;
    "dst_mask", "UInt8", "UInt8 CODEC(ZSTD(1))", U8, |f| f.rec.dst_mask;
    "sampling_mode", SAMPLING_MODE, SAMPLING_MODE, U8, |f| (f.rec.sampling >> 14) as u8;
    "sampling_interval", "UInt16", "UInt16 CODEC(ZSTD(1))", U16, |f| f.rec.sampling & 0x3fff;
    // Sorted on: DoubleDelta makes a run of equal or rising seconds nearly free.
    "time", "DateTime", "DateTime CODEC(DoubleDelta, ZSTD(1))", U32,
        |f| (f.start_ns / 1_000_000_000).min(u32::MAX as u64) as u32;
}

/// Bytes of one RowBinary row of the legacy schema (see [`Schema::row_size`]).
pub const ROW_SIZE: usize = 111;

const _: () = {
    // The row sizes are the sums of the column widths.
    let (mut legacy, mut native, mut i) = (0, 0, 0);
    while i < COLUMNS.len() {
        legacy += COLUMNS[i].kind.width(Schema::Legacy);
        native += COLUMNS[i].kind.width(Schema::Native);
        i += 1;
    }
    assert!(legacy == Schema::Legacy.row_size() && native == Schema::Native.row_size());
};

/// A 32-bit value in a `UInt16` column (ifIndex and AS of v9/IPFIX
/// records): saturated at 65535.
fn sat16(v: u32) -> u16 {
    v.min(u16::MAX as u32) as u16
}

fn end_reason_code(r: EndReason) -> u8 {
    match r {
        EndReason::Fin => 1,
        EndReason::Idle => 2,
        EndReason::Evicted => 3,
        EndReason::Shutdown => 4,
    }
}

/// Append one flow as a RowBinary row of [`COLUMNS`] in `schema`
/// (little-endian integers, addresses as the schema's type wants them).
#[inline]
pub fn encode_row(schema: Schema, f: &Flow, out: &mut Vec<u8>) {
    match schema {
        Schema::Legacy => encode::<false>(f, out),
        Schema::Native => encode::<true>(f, out),
    }
}

/// Rows written for `from` (whole rows: `data.len()` a multiple of
/// `from.row_size()`), rewritten for `to`: only the IPv4 address columns
/// change (`UInt32` little-endian ↔ IPv4-mapped `IPv6`). A native address
/// that is not IPv4-mapped (the sink never writes one: flows' addresses are
/// IPv4) becomes 0.0.0.0 in the legacy schema.
pub fn transcode(from: Schema, to: Schema, data: &[u8]) -> Vec<u8> {
    if from == to {
        return data.to_vec();
    }
    let rows = data.len() / from.row_size();
    let mut out = Vec::with_capacity(rows * to.row_size());
    for row in data.chunks_exact(from.row_size()) {
        let mut off = 0;
        for c in COLUMNS {
            let w = c.kind.width(from);
            let v = &row[off..off + w];
            off += w;
            match c.kind {
                Kind::Ipv4 => put_ipv4(to, IpAddr::V4(ipv4_of(from, v).into()), &mut out),
                _ => out.extend_from_slice(v),
            }
        }
    }
    out
}

/// The IPv4 address of an `Ipv4` column's bytes in `schema`.
fn ipv4_of(schema: Schema, v: &[u8]) -> u32 {
    match schema {
        Schema::Legacy => u32::from_le_bytes(v.try_into().expect("4 bytes")),
        Schema::Native => {
            let a = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(v).expect("16 bytes"));
            a.to_ipv4_mapped().map_or(0, u32::from)
        }
    }
}
