//! The table's columns ([`COLUMNS`], one table: name, value, type in each
//! schema), the two schemas the sink writes ([`Schema`]), which one a
//! server gets ([`Schema::for_server`]), the row formats of batches and
//! spool files ([`Format`]), and the per-column encoder ([`put`]): one
//! function that writes a value as a column's type wants it, used both by
//! the writer's row encoder ([`encode_row`], the column list expanded into
//! straight code, as fast as a hand-written encoder) and by the sender's
//! [`Plan`], which rewrites a batch for the columns an existing table
//! really has. Pure functions over a [`Flow`]: no I/O, no clock.
//!
//! - [`Schema::Legacy`], for ClickHouse 18.16 up to 20.2 (what Debian 12
//!   ships): addresses as `UInt32` (IPv4; 0 for an IPv6 address) *and*
//!   every address, IPv4 mapped, in `src_addr6`/`dst_addr6`/`nexthop6`
//!   (`FixedString(16)`); times as `UInt64` nanoseconds; the exporter as
//!   `FixedString(16)`.
//! - [`Schema::Native`], for ClickHouse 20.3 and later ([`NATIVE_SINCE`]: the
//!   first LTS release with `DateTime64`, which came in 20.1; `IPv6`, codecs
//!   and TTL came in 19.x): addresses as `IPv6` (IPv4 mapped,
//!   `::ffff:a.b.c.d`), times as `DateTime64(9)`, a codec on every column.
//!
//! Both hold ifIndex and AS numbers as `UInt32` and the exporter's
//! flowEndReason (`exporter_end_reason`). Tables and spool files of
//! releases before that ([`Format::Legacy1`], [`Format::Native1`]) have
//! `UInt16` ifIndex and AS and neither the `*6` columns nor
//! `exporter_end_reason`; the sender adds the missing columns to such a
//! table and writes what the table's types hold, counting every value
//! that does not fit (`values_clamped`).
//!
//! Every column is fixed-width, so a row of a format is always
//! [`Format::row_size`] bytes and a spool file's row count is its length
//! divided by it.

use std::net::{IpAddr, Ipv6Addr};

use crate::flow::{EndReason, Flow};

/// The first ClickHouse version that gets [`Schema::Native`]: 20.3, the first
/// long-term-support release with `DateTime64` (20.1). Older servers get
/// [`Schema::Legacy`].
pub(crate) const NATIVE_SINCE: (u32, u32) = (20, 3);

/// Which column types a new table gets (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Schema {
    /// ClickHouse 18.16 to 20.2: integers for addresses and times.
    Legacy,
    /// ClickHouse 20.3 and later: `IPv6`, `DateTime64(9)`, codecs.
    Native,
}

impl Schema {
    /// Bytes of one RowBinary row of this schema's columns.
    pub const fn row_size(self) -> usize {
        Format::of(self).row_size()
    }

    /// The schema for a server whose `SELECT version()` answered `version`
    /// (`18.16.1`, `24.8.4.13`, `26.9.2.1`, maybe with a suffix). `None`
    /// when it is not a version.
    pub(crate) fn for_server(version: &str) -> Option<Schema> {
        let mut it = version.trim().split('.');
        let major: u32 = it.next()?.parse().ok()?;
        let minor: u32 = it.next()?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
        Some(if (major, minor) >= NATIVE_SINCE { Schema::Native } else { Schema::Legacy })
    }

    /// The schema of an existing table, by the type of its `src_addr`
    /// column (`UInt32` or `IPv6`; `None` for anything else).
    pub(crate) fn of_src_addr_type(ty: &str) -> Option<Schema> {
        match ty.trim() {
            "UInt32" => Some(Schema::Legacy),
            "IPv6" => Some(Schema::Native),
            _ => None,
        }
    }

    /// A column's type in this schema (`None`: not in it), with the
    /// `DEFAULT` of the legacy `*6` columns and, with `codec`, the native
    /// codec.
    pub(crate) fn column_type(self, c: &Column, codec: bool) -> Option<String> {
        let (ty, extra) = match self {
            Schema::Legacy => (c.legacy?, c.default.map(|d| format!(" DEFAULT {d}"))),
            Schema::Native => {
                (c.native?, c.codec.filter(|_| codec).map(|k| format!(" CODEC({k})")))
            }
        };
        Some(format!("{}{}", ty.sql, extra.unwrap_or_default()))
    }

    /// A column's type in this schema without default and codec (for
    /// `Distributed` tables); `None`: not in it.
    pub(crate) fn bare_type(self, c: &Column) -> Option<&'static str> {
        match self {
            Schema::Legacy => c.legacy.map(|t| t.sql),
            Schema::Native => c.native.map(|t| t.sql),
        }
    }

    /// The columns of this schema: (column, type).
    pub(crate) fn columns(self) -> impl Iterator<Item = (&'static Column, Sql)> {
        Format::of(self).columns()
    }
}

/// The row layout of a batch in memory or a spool file: the columns of a
/// schema as this release writes them, or as an earlier release wrote them
/// (spool files it left are read, never written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Format {
    /// Releases before IPv6: `UInt16` ifIndex and AS, no `*6` columns, no
    /// `exporter_end_reason`. Spool files `batch-<seq>.rowbinary`.
    Legacy1,
    /// The same for the native schema: `batch-<seq>.native.rowbinary`.
    Native1,
    /// [`Schema::Legacy`]: `batch-<seq>.legacy2.rowbinary`.
    Legacy,
    /// [`Schema::Native`]: `batch-<seq>.native2.rowbinary`.
    Native,
}

impl Format {
    /// Every format, for reading spool file names.
    pub(crate) const ALL: [Format; 4] =
        [Format::Legacy1, Format::Native1, Format::Legacy, Format::Native];

    /// The format this release writes for `schema`.
    pub(crate) const fn of(schema: Schema) -> Format {
        match schema {
            Schema::Legacy => Format::Legacy,
            Schema::Native => Format::Native,
        }
    }

    /// The schema whose table this format's rows were made for.
    pub(crate) const fn schema(self) -> Schema {
        match self {
            Format::Legacy1 | Format::Legacy => Schema::Legacy,
            Format::Native1 | Format::Native => Schema::Native,
        }
    }

    /// The tag in spool file names (`batch-<seq>.<tag>.rowbinary`); the
    /// first legacy format has none (the names of the first releases).
    pub(crate) const fn tag(self) -> Option<&'static str> {
        match self {
            Format::Legacy1 => None,
            Format::Native1 => Some("native"),
            Format::Legacy => Some("legacy2"),
            Format::Native => Some("native2"),
        }
    }

    /// A column's type in this format (`None`: not in it).
    const fn column(self, c: &Column) -> Option<Sql> {
        let t = match self.schema() {
            Schema::Legacy => c.legacy,
            Schema::Native => c.native,
        };
        match (self, c.v1) {
            (Format::Legacy | Format::Native, _) | (_, V1::Same) => t,
            (_, V1::Absent) => None,
            (_, V1::UInt16) => Some(UINT16),
        }
    }

    /// The columns of this format, in row order: (column, type).
    pub(crate) fn columns(self) -> impl Iterator<Item = (&'static Column, Sql)> {
        COLUMNS.iter().filter_map(move |c| Some((c, self.column(c)?)))
    }

    /// Bytes of one row.
    pub(crate) const fn row_size(self) -> usize {
        let (mut n, mut i) = (0, 0);
        while i < COLUMNS.len() {
            if let Some(t) = self.column(&COLUMNS[i]) {
                n += t.ty.width();
            }
            i += 1;
        }
        n
    }
}

/// How the per-column encoder writes a value: the RowBinary shape of a
/// ClickHouse type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    /// `UInt8`, `Enum8`.
    U8,
    U16,
    /// `UInt32`, `DateTime`.
    U32,
    /// `UInt64`, or nanoseconds as `DateTime64(9)` (an `Int64` of ns: the
    /// same 8 bytes until 2262).
    U64,
    /// An address as `UInt32`: IPv4 only.
    Ip4,
    /// An address as 16 bytes in network order, IPv4 mapped:
    /// `FixedString(16)` or `IPv6`.
    Ip16,
}

impl Ty {
    /// Bytes of a value.
    pub(crate) const fn width(self) -> usize {
        match self {
            Ty::U8 => 1,
            Ty::U16 => 2,
            Ty::U32 | Ty::Ip4 => 4,
            Ty::U64 => 8,
            Ty::Ip16 => 16,
        }
    }

    /// How to write a value of `class` into a column of server type `sql`
    /// (as `system.columns` says it: no codec, no default); `None` for a
    /// type the sink cannot write (a `String`, `Nullable`, `DateTime64(3)`:
    /// not a table of ours).
    pub(crate) fn of_server(sql: &str, class: Class) -> Option<Ty> {
        let sql = sql.trim();
        let ty = match sql {
            "UInt8" => Ty::U8,
            "UInt16" => Ty::U16,
            "UInt32" | "DateTime" => Ty::U32,
            "UInt64" => Ty::U64,
            "FixedString(16)" | "IPv6" => Ty::Ip16,
            s if s.starts_with("Enum8(") => Ty::U8,
            s if s.starts_with("DateTime(") => Ty::U32,
            s if s == "DateTime64(9)" || s.starts_with("DateTime64(9,") => Ty::U64,
            _ => return None,
        };
        match (class, ty) {
            (Class::Addr, Ty::U32) => Some(Ty::Ip4),
            (Class::Addr, Ty::Ip16) | (Class::Int, Ty::U8 | Ty::U16 | Ty::U32 | Ty::U64) => {
                Some(ty)
            }
            _ => None,
        }
    }
}

/// What a column holds: a number or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Int,
    Addr,
}

/// A column's type: how it is encoded and its SQL name (without codec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sql {
    pub(crate) ty: Ty,
    pub(crate) sql: &'static str,
}

/// What a column was in the formats of releases before IPv6.
#[derive(Debug, Clone, Copy)]
enum V1 {
    /// As now.
    Same,
    /// `UInt16` (ifIndex, AS).
    UInt16,
    /// Not there.
    Absent,
}

/// One value of a row, as the per-column encoder takes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val {
    Int(u64),
    Ip(IpAddr),
}

impl Val {
    /// The value as a column of type `ty` holds it in `b` (`ty.width()`
    /// bytes).
    pub(crate) fn read(ty: Ty, b: &[u8]) -> Val {
        let mut w = [0u8; 8];
        match ty {
            Ty::Ip4 => {
                Val::Ip(IpAddr::V4(u32::from_le_bytes(b[..4].try_into().expect("4")).into()))
            }
            Ty::Ip16 => {
                let a = Ipv6Addr::from(<[u8; 16]>::try_from(&b[..16]).expect("16"));
                Val::Ip(a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4))
            }
            _ => {
                w[..ty.width()].copy_from_slice(&b[..ty.width()]);
                Val::Int(u64::from_le_bytes(w))
            }
        }
    }

    /// Is this the value a missing column reads as (0, `::`, `0.0.0.0`)?
    pub(crate) fn is_zero(self) -> bool {
        match self {
            Val::Int(v) => v == 0,
            Val::Ip(a) => a.is_unspecified() || ipv6_octets(a) == ipv6_octets(IpAddr::V4(0.into())),
        }
    }
}

/// The per-column encoder: append `v` as a column of type `ty` wants it
/// (little-endian integers, addresses in network order). `true` when the
/// column holds the value exactly; `false` when it does not fit (a number
/// over the column's maximum is written as the maximum, an IPv6 address in
/// a `UInt32` column as 0, a value of the other class as 0). Inlined into
/// the writer's straight code, where `ty` is a constant.
#[inline(always)]
pub(crate) fn put(ty: Ty, v: Val, out: &mut Vec<u8>) -> bool {
    match (ty, v) {
        (Ty::U8, Val::Int(x)) => {
            out.push(x.min(u8::MAX.into()) as u8);
            x <= u8::MAX.into()
        }
        (Ty::U16, Val::Int(x)) => {
            out.extend_from_slice(&(x.min(u16::MAX.into()) as u16).to_le_bytes());
            x <= u16::MAX.into()
        }
        (Ty::U32, Val::Int(x)) => {
            out.extend_from_slice(&(x.min(u32::MAX.into()) as u32).to_le_bytes());
            x <= u32::MAX.into()
        }
        (Ty::U64, Val::Int(x)) => {
            out.extend_from_slice(&x.to_le_bytes());
            true
        }
        (Ty::Ip4, Val::Ip(a)) => {
            let v4 = match a {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(a) => a.to_ipv4_mapped(),
            };
            out.extend_from_slice(&v4.map_or(0, u32::from).to_le_bytes());
            v4.is_some()
        }
        (Ty::Ip16, Val::Ip(a)) => {
            out.extend_from_slice(&ipv6_octets(a));
            true
        }
        (ty, v) => {
            out.resize(out.len() + ty.width(), 0);
            v.is_zero()
        }
    }
}

/// 16 bytes in network order, IPv4 mapped as `::ffff:a.b.c.d` (what both
/// `FixedString(16)` with `IPv6NumToString` and the `IPv6` type read).
pub(crate) fn ipv6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// One column: its name (that of the JSON output, or `<address>6`), the
/// value it holds (the `*6` columns hold the same address as their
/// `UInt32` twin), its type in each schema (`None`: not in that schema),
/// the native codec, the legacy `DEFAULT` and what it was before IPv6.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) value: &'static str,
    legacy: Option<Sql>,
    native: Option<Sql>,
    codec: Option<&'static str>,
    default: Option<&'static str>,
    v1: V1,
}

impl Column {
    /// A number or an address.
    pub(crate) fn class(&self) -> Class {
        match self.legacy.or(self.native).map(|t| t.ty) {
            Some(Ty::Ip4 | Ty::Ip16) => Class::Addr,
            _ => Class::Int,
        }
    }
}

const UINT8: Sql = Sql { ty: Ty::U8, sql: "UInt8" };
const UINT16: Sql = Sql { ty: Ty::U16, sql: "UInt16" };
const UINT32: Sql = Sql { ty: Ty::U32, sql: "UInt32" };
const UINT64: Sql = Sql { ty: Ty::U64, sql: "UInt64" };
const IPV4: Sql = Sql { ty: Ty::Ip4, sql: "UInt32" };
const FIXED16: Sql = Sql { ty: Ty::Ip16, sql: "FixedString(16)" };
const IPV6: Sql = Sql { ty: Ty::Ip16, sql: "IPv6" };
const NANOS: Sql = Sql { ty: Ty::U64, sql: "DateTime64(9)" };
const SECONDS: Sql = Sql { ty: Ty::U32, sql: "DateTime" };
const END_REASON: Sql =
    Sql { ty: Ty::U8, sql: "Enum8('fin' = 1, 'idle' = 2, 'evicted' = 3, 'shutdown' = 4)" };
/// IPFIX flowEndReason (IE 136) by the names of the JSON output
/// ([`exporter_end_reason_name`](crate::flow::exporter_end_reason_name)):
/// `''` for none, the unassigned codes 6 to 255 as `reserved`.
const EXPORTER_END_REASON: Sql = Sql {
    ty: Ty::U8,
    sql: "Enum8('' = 0, 'idle' = 1, 'active' = 2, 'end_of_flow' = 3, 'forced_end' = 4, \
          'lack_of_resources' = 5, 'reserved' = 127)",
};
const SAMPLING_MODE: Sql =
    Sql { ty: Ty::U8, sql: "Enum8('none' = 0, 'deterministic' = 1, 'random' = 2, 'reserved' = 3)" };

/// Codecs of the native schema. ZSTD everywhere; counters: T64 drops the
/// unused high bits first; times: Delta, because flows are close in time
/// (rows are sorted by `time`); `time`, sorted on: DoubleDelta makes a run
/// of equal or rising seconds nearly free.
/// Enums have none (as in the first native tables).
const Z: Option<&str> = Some("ZSTD(1)");
const COUNTER: Option<&str> = Some("T64, ZSTD(1)");
const DELTA: Option<&str> = Some("Delta, ZSTD(1)");
const NONE: Option<&str> = None;

/// Defines [`COLUMNS`] and the row encoder from one list: per column its
/// name (and, after `=`, the value it holds when another column's),
/// legacy type, native type, codec, type before IPv6, and its value. The
/// encoder is straight code (each column's getter inlined into [`put`]
/// with a constant type), as fast as a hand-written one.
macro_rules! columns {
    ($($name:literal $(= $value:literal)?, $legacy:expr, $native:expr, $codec:expr,
       $default:expr, $v1:ident, |$f:ident| $get:expr;)*) => {
        /// The table's columns, in RowBinary order (a schema writes those
        /// it has a type for). The names are those of the JSON output,
        /// plus `time`, the second of `start` (collector clock), for
        /// partitioning and ordering, and the legacy schema's `*6`.
        pub(crate) const COLUMNS: &[Column] = &[
            $(Column {
                name: $name,
                value: columns!(@value $name $(, $value)?),
                legacy: $legacy,
                native: $native,
                codec: $codec,
                default: $default,
                v1: V1::$v1,
            },)*
        ];

        /// One row of `schema`'s columns for `f`.
        #[inline]
        fn encode<const NATIVE: bool>(f: &Flow, out: &mut Vec<u8>) {
            $({
                let ty: Option<Sql> = if NATIVE { $native } else { $legacy };
                if let Some(t) = ty {
                    let $f = f;
                    // Every column of a schema holds its value (the
                    // legacy UInt32 addresses have their *6 twins).
                    put(t.ty, $get, out);
                }
            })*
        }
    };
    (@value $name:literal) => { $name };
    (@value $name:literal, $value:literal) => { $value };
}

use Val::{Int, Ip};

columns! {
    "exporter", Some(FIXED16), Some(IPV6), Z, None, Same, |f| Ip(f.rec.exporter);
    "engine_type", Some(UINT8), Some(UINT8), Z, None, Same, |f| Int(f.rec.engine_type.into());
    "engine_id", Some(UINT8), Some(UINT8), Z, None, Same, |f| Int(f.rec.engine_id.into());
    "src_addr", Some(IPV4), Some(IPV6), Z, None, Same, |f| Ip(f.rec.src_addr);
    "src_port", Some(UINT16), Some(UINT16), Z, None, Same, |f| Int(f.rec.src_port.into());
    "dst_addr", Some(IPV4), Some(IPV6), Z, None, Same, |f| Ip(f.rec.dst_addr);
    "dst_port", Some(UINT16), Some(UINT16), Z, None, Same, |f| Int(f.rec.dst_port.into());
    "proto", Some(UINT8), Some(UINT8), Z, None, Same, |f| Int(f.rec.proto.into());
    "records", Some(UINT64), Some(UINT64), COUNTER, None, Same, |f| Int(f.records);
    "packets", Some(UINT64), Some(UINT64), COUNTER, None, Same, |f| Int(f.packets);
    "octets", Some(UINT64), Some(UINT64), COUNTER, None, Same, |f| Int(f.octets);
    "tcp_flags", Some(UINT8), Some(UINT8), Z, None, Same, |f| Int(f.tcp_flags.into());
    "first", Some(UINT64), Some(NANOS), DELTA, None, Same, |f| Int(f.first_ns);
    "last", Some(UINT64), Some(NANOS), DELTA, None, Same, |f| Int(f.last_ns);
    "end_reason", Some(END_REASON), Some(END_REASON), NONE, None, Same,
        |f| Int(end_reason_code(f.end_reason));
    "start", Some(UINT64), Some(NANOS), DELTA, None, Same, |f| Int(f.start_ns);
    "end", Some(UINT64), Some(NANOS), DELTA, None, Same, |f| Int(f.end_ns);
    "input", Some(UINT32), Some(UINT32), Z, None, UInt16, |f| Int(f.rec.input.into());
    "output", Some(UINT32), Some(UINT32), Z, None, UInt16, |f| Int(f.rec.output.into());
    "nexthop", Some(IPV4), Some(IPV6), Z, None, Same, |f| Ip(f.rec.nexthop);
    "tos", Some(UINT8), Some(UINT8), Z, None, Same, |f| Int(f.rec.tos.into());
    "src_as", Some(UINT32), Some(UINT32), Z, None, UInt16, |f| Int(f.rec.src_as.into());
    "dst_as", Some(UINT32), Some(UINT32), Z, None, UInt16, |f| Int(f.rec.dst_as.into());
    "src_mask", Some(UINT8), Some(UINT8), Z, None, Same, |f| Int(f.rec.src_mask.into());
    "dst_mask", Some(UINT8), Some(UINT8), Z, None, Same, |f| Int(f.rec.dst_mask.into());
    "sampling_mode", Some(SAMPLING_MODE), Some(SAMPLING_MODE), NONE, None, Same,
        |f| Int((f.rec.sampling >> 14).into());
    "sampling_interval", Some(UINT16), Some(UINT16), Z, None, Same,
        |f| Int((f.rec.sampling & 0x3fff).into());
    "time", Some(SECONDS), Some(SECONDS), Some("DoubleDelta, ZSTD(1)"), None, Same,
        |f| Int((f.start_ns / 1_000_000_000).min(u32::MAX.into()));
    // Added with IPv6 (tables of earlier releases get them by ALTER TABLE).
    "exporter_end_reason", Some(EXPORTER_END_REASON), Some(EXPORTER_END_REASON), NONE, None,
        Absent,
        |f| Int(exporter_end_reason_code(f.exporter_end_reason));
    // The legacy schema's every address, IPv4 mapped; rows written before
    // the column existed read their UInt32 twin.
    "src_addr6" = "src_addr", Some(FIXED16), None, Z, Some("IPv4ToIPv6(`src_addr`)"), Absent,
        |f| Ip(f.rec.src_addr);
    "dst_addr6" = "dst_addr", Some(FIXED16), None, Z, Some("IPv4ToIPv6(`dst_addr`)"), Absent,
        |f| Ip(f.rec.dst_addr);
    "nexthop6" = "nexthop", Some(FIXED16), None, Z, Some("IPv4ToIPv6(`nexthop`)"), Absent,
        |f| Ip(f.rec.nexthop);
}

/// Bytes of one RowBinary row of the legacy schema of releases before IPv6
/// (the untagged spool files).
pub(crate) const LEGACY1_ROW_SIZE: usize = 111;

const _: () = {
    assert!(Format::Legacy1.row_size() == LEGACY1_ROW_SIZE);
    assert!(Format::Native1.row_size() == LEGACY1_ROW_SIZE + 3 * 12);
};

fn end_reason_code(r: EndReason) -> u64 {
    match r {
        EndReason::Fin => 1,
        EndReason::Idle => 2,
        EndReason::Evicted => 3,
        EndReason::Shutdown => 4,
    }
}

/// The `exporter_end_reason` value: the IPFIX code 1 to 5 (0: none), every
/// unassigned code as `reserved` (127), as the JSON output names them.
fn exporter_end_reason_code(r: u8) -> u64 {
    match r {
        0..=5 => r.into(),
        _ => 127,
    }
}

/// Append one flow as a RowBinary row of `schema`'s columns.
#[inline]
pub fn encode_row(schema: Schema, f: &Flow, out: &mut Vec<u8>) {
    match schema {
        Schema::Legacy => encode::<false>(f, out),
        Schema::Native => encode::<true>(f, out),
    }
}
