//! The SQL the sender runs: the probe that tells which [`Schema`] a table
//! gets ([`probe_sql`], [`probe_answer`]), the `CREATE TABLE` of each schema
//! ([`create_table_sql`]), the rollup views ([`rollup_sql`]) and the
//! `INSERT` of a schema's rows ([`insert_sql`]; the sender's come from
//! `migrate::Plan`, for the columns the table has). Pure functions: no I/O.
//!
//! Table names are checked by the config (letters, digits, `_`, `.`), so
//! they are quoted with backquotes and used in string literals as they are.

use std::time::Duration;

use super::schema::{Schema, COLUMNS};

/// `db.table` → `` `db`.`table` ``.
pub(crate) fn quote_table(table: &str) -> String {
    table.split('.').map(|p| format!("`{p}`")).collect::<Vec<_>>().join(".")
}

/// `table` with `suffix` added to its name (`db.t` → `db.t_1m`).
pub(super) fn suffixed(table: &str, suffix: &str) -> String {
    format!("{table}{suffix}")
}

/// One query for what decides the schema: the server's version and, when
/// `table` exists, the type of its `src_addr` column (empty when it does
/// not). Works on 18.16 and later. TSV: `18.16.1\t\n`, `26.9.2.1\tIPv6\n`.
pub(crate) fn probe_sql(table: &str) -> String {
    let (db, name) = match table.split_once('.') {
        Some((db, name)) => (format!("'{db}'"), name),
        None => ("currentDatabase()".to_string(), table),
    };
    format!(
        "SELECT version(), (SELECT any(type) FROM system.columns WHERE database = {db} \
         AND table = '{name}' AND name = 'src_addr') FORMAT TSV"
    )
}

/// The schema to write, from the probe's answer: the existing table's, else
/// the one for the server's version. `Err` with the reason when the answer
/// says neither.
pub(crate) fn probe_answer(answer: &str) -> Result<Schema, String> {
    let line = answer.lines().next().unwrap_or("");
    let (version, ty) = line.split_once('\t').unwrap_or((line, ""));
    if let Some(s) = Schema::of_src_addr_type(ty) {
        return Ok(s);
    }
    Schema::for_server(version).ok_or_else(|| format!("not a ClickHouse version: {line:?}"))
}

/// The `CREATE TABLE IF NOT EXISTS` statement for `table` in `schema`: a
/// MergeTree partitioned by day and ordered by `(time, exporter, src_addr,
/// dst_addr)` (time ranges, then one exporter, then address lookups). With
/// `ttl` (native schema only: the caller checks), whole days older than it
/// are dropped.
pub fn create_table_sql(table: &str, schema: Schema, ttl: Option<Duration>) -> String {
    let cols: Vec<String> = COLUMNS
        .iter()
        .filter_map(|c| Some(format!("`{}` {}", c.name, schema.column_type(c, true)?)))
        .collect();
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS {} ({}) ENGINE = MergeTree \
         PARTITION BY toYYYYMMDD(`time`) ORDER BY (`time`, `exporter`, `src_addr`, `dst_addr`)",
        quote_table(table),
        cols.join(", ")
    );
    if let (Schema::Native, Some(ttl)) = (schema, ttl) {
        // ttl_only_drop_parts: a day's partition goes whole, no rewriting of parts.
        sql += &format!(
            " TTL `time` + INTERVAL {} SECOND SETTINGS ttl_only_drop_parts = 1",
            ttl.as_secs().max(1)
        );
    }
    sql
}

/// The rollup views' key columns in `schema`, after the bucket `time`: the
/// exporter, the protocol and the address pair (in the legacy schema the
/// `UInt32` addresses and their `*6` twins, so IPv6 pairs stay apart while
/// queries on `src_addr` keep working).
pub(crate) fn rollup_key(schema: Schema) -> &'static [&'static str] {
    match schema {
        Schema::Legacy => &["exporter", "proto", "src_addr", "dst_addr", "src_addr6", "dst_addr6"],
        Schema::Native => &["exporter", "proto", "src_addr", "dst_addr"],
    }
}

/// The rollup views' sums: (name, type).
pub(crate) const ROLLUP_SUMS: [(&str, &str); 3] =
    [("flows", "UInt64"), ("packets", "UInt64"), ("octets", "UInt64")];

/// The rollup views' buckets: (suffix, function of `time`).
const ROLLUPS: [(&str, &str); 2] = [("_1m", "toStartOfMinute"), ("_1h", "toStartOfHour")];

/// The suffixes of the rollup views' names.
pub(crate) fn rollup_suffixes() -> impl Iterator<Item = &'static str> {
    ROLLUPS.iter().map(|r| r.0)
}

/// The rollup views of `table`, `<table>_1m` and `<table>_1h`: per minute and
/// per hour (`time` the start of the bucket), by exporter, protocol and
/// address pair ([`rollup_key`]), the number of flows and the sums of
/// packets and octets ([`ROLLUP_SUMS`]). Materialized views into
/// SummingMergeTree tables: rows of one bucket and key are summed as parts
/// merge, so a query sums again (`SELECT time, sum(octets) ... GROUP BY
/// time`). They see the inserts made after they exist. ClickHouse 18.16 and
/// later, both schemas.
pub fn rollup_sql(table: &str, schema: Schema) -> Vec<String> {
    let cols: Vec<String> = rollup_key(schema).iter().map(|c| format!("`{c}`")).collect();
    let cols = cols.join(", ");
    let key = format!("`time`, {cols}");
    ROLLUPS
        .iter()
        .map(|(suffix, bucket)| {
            format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {} ENGINE = SummingMergeTree \
                 PARTITION BY toYYYYMMDD(`time`) ORDER BY ({key}) AS SELECT \
                 {bucket}(`time`) AS `time`, {cols}, \
                 count() AS `flows`, sum(`packets`) AS `packets`, sum(`octets`) AS `octets` \
                 FROM {} GROUP BY {key}",
                quote_table(&suffixed(table, suffix)),
                quote_table(table)
            )
        })
        .collect()
}

/// The `INSERT` statement of rows of `schema` (columns named, so a table
/// with extra columns that have defaults still takes the rows).
pub fn insert_sql(table: &str, schema: Schema) -> String {
    let cols: Vec<String> = schema.columns().map(|(c, _)| format!("`{}`", c.name)).collect();
    format!("INSERT INTO {} ({}) FORMAT RowBinary", quote_table(table), cols.join(", "))
}
