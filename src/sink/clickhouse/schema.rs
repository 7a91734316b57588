//! The table the sink writes: its columns ([`COLUMNS`]), the SQL that creates
//! and fills it, and the RowBinary encoding of one flow as one row
//! ([`encode_row`]). Pure functions over a [`Flow`]: no I/O, no clock.
//!
//! Every column is fixed-width, so a row is always [`ROW_SIZE`] bytes and a
//! spool file's row count is its length divided by it.

use std::net::IpAddr;

use crate::flow::{EndReason, Flow};

/// The table's columns, in RowBinary order: name and ClickHouse type
/// (ClickHouse 18.16 and later). The names are those of the JSON output,
/// plus `time`, the second of `start`, for partitioning and ordering.
pub const COLUMNS: &[(&str, &str)] = &[
    ("exporter", "FixedString(16)"),
    ("engine_type", "UInt8"),
    ("engine_id", "UInt8"),
    ("src_addr", "UInt32"),
    ("src_port", "UInt16"),
    ("dst_addr", "UInt32"),
    ("dst_port", "UInt16"),
    ("proto", "UInt8"),
    ("records", "UInt64"),
    ("packets", "UInt64"),
    ("octets", "UInt64"),
    ("tcp_flags", "UInt8"),
    ("first", "UInt64"),
    ("last", "UInt64"),
    ("end_reason", "Enum8('fin' = 1, 'idle' = 2, 'evicted' = 3, 'shutdown' = 4)"),
    ("start", "UInt64"),
    ("end", "UInt64"),
    ("input", "UInt16"),
    ("output", "UInt16"),
    ("nexthop", "UInt32"),
    ("tos", "UInt8"),
    ("src_as", "UInt16"),
    ("dst_as", "UInt16"),
    ("src_mask", "UInt8"),
    ("dst_mask", "UInt8"),
    ("sampling_mode", "Enum8('none' = 0, 'deterministic' = 1, 'random' = 2, 'reserved' = 3)"),
    ("sampling_interval", "UInt16"),
    ("time", "DateTime"),
];

/// Bytes of one RowBinary row: every column is fixed-width, so a spool
/// file's row count is its length / `ROW_SIZE`.
pub const ROW_SIZE: usize = 111;

/// `db.table` → `` `db`.`table` ``.
fn quote_table(table: &str) -> String {
    table.split('.').map(|p| format!("`{p}`")).collect::<Vec<_>>().join(".")
}

/// The `CREATE TABLE IF NOT EXISTS` statement for `table`.
pub fn create_table_sql(table: &str) -> String {
    let cols: Vec<String> = COLUMNS.iter().map(|(n, t)| format!("`{n}` {t}")).collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({}) ENGINE = MergeTree \
         PARTITION BY toYYYYMMDD(`time`) ORDER BY (`time`, `exporter`, `src_addr`, `dst_addr`)",
        quote_table(table),
        cols.join(", ")
    )
}

/// The `INSERT` statement (columns named, so a table with extra columns that
/// have defaults still takes the rows).
pub fn insert_sql(table: &str) -> String {
    let cols: Vec<String> = COLUMNS.iter().map(|(n, _)| format!("`{n}`")).collect();
    format!("INSERT INTO {} ({}) FORMAT RowBinary", quote_table(table), cols.join(", "))
}

fn end_reason_code(r: EndReason) -> u8 {
    match r {
        EndReason::Fin => 1,
        EndReason::Idle => 2,
        EndReason::Evicted => 3,
        EndReason::Shutdown => 4,
    }
}

/// Append one flow as a RowBinary row of [`COLUMNS`] (little-endian integers,
/// the exporter as 16 IPv6 bytes, IPv4 mapped as `::ffff:a.b.c.d`).
pub fn encode_row(f: &Flow, out: &mut Vec<u8>) {
    let r = &f.rec;
    let exporter = match r.exporter {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    out.extend_from_slice(&exporter);
    out.push(r.engine_type);
    out.push(r.engine_id);
    out.extend_from_slice(&r.src_addr.to_le_bytes());
    out.extend_from_slice(&r.src_port.to_le_bytes());
    out.extend_from_slice(&r.dst_addr.to_le_bytes());
    out.extend_from_slice(&r.dst_port.to_le_bytes());
    out.push(r.proto);
    out.extend_from_slice(&f.records.to_le_bytes());
    out.extend_from_slice(&f.packets.to_le_bytes());
    out.extend_from_slice(&f.octets.to_le_bytes());
    out.push(f.tcp_flags);
    out.extend_from_slice(&f.first_ns.to_le_bytes());
    out.extend_from_slice(&f.last_ns.to_le_bytes());
    out.push(end_reason_code(f.end_reason));
    out.extend_from_slice(&f.start_ns.to_le_bytes());
    out.extend_from_slice(&f.end_ns.to_le_bytes());
    out.extend_from_slice(&r.input.to_le_bytes());
    out.extend_from_slice(&r.output.to_le_bytes());
    out.extend_from_slice(&r.nexthop.to_le_bytes());
    out.push(r.tos);
    out.extend_from_slice(&r.src_as.to_le_bytes());
    out.extend_from_slice(&r.dst_as.to_le_bytes());
    out.push(r.src_mask);
    out.push(r.dst_mask);
    out.push((r.sampling >> 14) as u8);
    out.extend_from_slice(&(r.sampling & 0x3fff).to_le_bytes());
    let secs = (f.start_ns / 1_000_000_000).min(u32::MAX as u64) as u32;
    out.extend_from_slice(&secs.to_le_bytes());
}
