//! The table as the server has it: its columns (`system.columns`,
//! [`columns_sql`]), the columns a table of an earlier release lacks and
//! the `ALTER TABLE` that adds them ([`alter_sql`]), and the [`Plan`] that
//! writes a batch of any [`Format`] into the columns the table really has,
//! through the per-column encoder ([`put`]), so that no column ever gets
//! bytes of another width.
//!
//! ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS` (a syntax error
//! there), so the sender reads the columns, adds those missing with plain
//! `ADD COLUMN` (a collector that raced it gets "column already exists",
//! and both read the columns again), and writes what the table has.
//! Existing columns are never changed: a `MODIFY COLUMN` rewrites every
//! part of a table, not a thing to do unasked at a collector's start. A
//! value that an older, narrower column cannot hold (an ifIndex over 65535
//! in a `UInt16`, an IPv6 address in a `UInt32` without its `*6` twin,
//! a column the table lacks) is written clamped and counted
//! (`values_clamped`), and the column named once in the log.

use std::collections::HashMap;

use super::ddl::{quote_table, rollup_suffixes, suffixed};
use super::http::{Client, PostError};
use super::schema::{put, Column, Format, Schema, Ty, Val, COLUMNS};

/// The columns of `table` (name and type, in table order); no rows when
/// the table does not exist.
pub(crate) fn columns_sql(table: &str) -> String {
    let (db, name) = match table.split_once('.') {
        Some((db, name)) => (format!("'{db}'"), name),
        None => ("currentDatabase()".to_string(), table),
    };
    format!(
        "SELECT name, type FROM system.columns WHERE database = {db} AND table = '{name}' \
         FORMAT TSV"
    )
}

/// `columns_sql`'s answer: (name, type).
pub(crate) fn parse_columns(answer: &str) -> Vec<(String, String)> {
    answer
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, t)| (n.to_string(), t.replace("\\'", "'")))
        .collect()
}

/// The columns of `schema` that `have` (a table's columns) lacks.
pub(crate) fn missing(schema: Schema, have: &[(String, String)]) -> Vec<&'static Column> {
    schema.columns().map(|(c, _)| c).filter(|c| !have.iter().any(|(n, _)| n == c.name)).collect()
}

/// `ALTER TABLE` adding `cols` in `schema`'s types (with their defaults and,
/// unless `bare` (a `Distributed` table), codecs); `None` when there is
/// nothing to add.
pub(crate) fn alter_sql(
    table: &str,
    schema: Schema,
    cols: &[&Column],
    bare: bool,
) -> Option<String> {
    let adds: Vec<String> = cols
        .iter()
        .filter_map(|c| {
            let ty = if bare {
                schema.bare_type(c)?.to_string()
            } else {
                schema.column_type(c, true)?
            };
            Some(format!("ADD COLUMN `{}` {ty}", c.name))
        })
        .collect();
    (!adds.is_empty()).then(|| format!("ALTER TABLE {} {}", quote_table(table), adds.join(", ")))
}

/// One column of the insert: where its value is in a source row and how
/// the table's type wants it.
#[derive(Debug, Clone)]
struct Step {
    col: &'static Column,
    /// Offset and type of the value in a source row (`None`: the source
    /// format has no such value; written as 0).
    src: Option<(usize, Ty)>,
    ty: Ty,
    /// The index of its value in `Plan::values`.
    value: usize,
}

/// How rows of one [`Format`] go into one table: the columns to name in
/// the `INSERT` and how each is encoded. The identity (the table has the
/// format's columns in its types) sends a batch as it is.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    from: Format,
    steps: Vec<Step>,
    /// Each value of a source row: its offset and type, the widest column
    /// holding it (to tell a value no column of the table keeps).
    values: Vec<(&'static str, usize, Ty)>,
    /// The table has the format's columns in its types.
    identity: bool,
    /// `INSERT INTO table (<columns>) FORMAT RowBinary`.
    pub(crate) insert: String,
}

/// What a [`Plan::convert`] could not keep.
#[derive(Debug, Default)]
pub(crate) struct Clamped {
    /// Values written clamped or not at all.
    pub(crate) values: u64,
    /// The columns (or values without a column) that lost one, first time
    /// seen first.
    pub(crate) columns: Vec<&'static str>,
}

impl Plan {
    /// The plan for rows of `from` into `table`, whose columns are `have`
    /// (`None`: unknown, taken to be those of `schema`, the table's). `Err`
    /// with the reason when one of our columns has a type the sink cannot
    /// write.
    pub(crate) fn new(
        table: &str,
        from: Format,
        have: Option<&[(String, String)]>,
        schema: Schema,
    ) -> Result<Plan, String> {
        let mut values: Vec<(&'static str, usize, Ty)> = Vec::new();
        let mut off = 0;
        for (c, t) in from.columns() {
            match values.iter_mut().find(|v| v.0 == c.value) {
                Some(v) if t.ty.width() > v.2.width() => *v = (c.value, off, t.ty),
                Some(_) => {}
                None => values.push((c.value, off, t.ty)),
            }
            off += t.ty.width();
        }
        let target: Vec<(&'static Column, Ty)> = match have {
            None => schema.columns().map(|(c, t)| (c, t.ty)).collect(),
            Some(have) => {
                let mut v = Vec::new();
                for (name, sql) in have {
                    let Some(c) = COLUMNS.iter().find(|c| c.name == name) else {
                        // Not ours: the table's default fills it.
                        continue;
                    };
                    let ty = Ty::of_server(sql, c.class()).ok_or_else(|| {
                        format!(
                            "column `{name}` of {table} is {sql}, which nfstitch cannot write \
                             (not a table of nfstitch's?)"
                        )
                    })?;
                    v.push((c, ty));
                }
                v
            }
        };
        let mut steps = Vec::new();
        for (col, ty) in target {
            // A value the source has under any column (the widest).
            let value = match values.iter().position(|v| v.0 == col.value) {
                Some(i) => i,
                None => {
                    values.push((col.value, usize::MAX, ty));
                    values.len() - 1
                }
            };
            // The value's widest column in the source (a UInt32 address
            // reads its `*6` twin: it holds IPv6 too).
            let src = match values[value] {
                (_, usize::MAX, _) => None,
                (_, off, ty) => Some((off, ty)),
            };
            steps.push(Step { col, src, ty, value });
        }
        // The same columns in the same types: the same bytes (a column
        // read from its wider twin gets what its own bytes hold).
        let identity = steps.len() == from.columns().count()
            && from.columns().zip(&steps).all(|((c, t), s)| c.name == s.col.name && t.ty == s.ty);
        let names: Vec<String> = steps.iter().map(|s| format!("`{}`", s.col.name)).collect();
        let insert =
            format!("INSERT INTO {} ({}) FORMAT RowBinary", quote_table(table), names.join(", "));
        Ok(Plan { from, steps, values, identity, insert })
    }

    /// The batch goes as it is.
    pub(crate) fn is_identity(&self) -> bool {
        self.identity
    }

    /// Rows of `self.from` (whole rows) rewritten for the table: each
    /// column through [`put`], what does not fit counted in `clamped`.
    pub(crate) fn convert(&self, data: &[u8], clamped: &mut Clamped) -> Vec<u8> {
        let row = self.from.row_size();
        let width: usize = self.steps.iter().map(|s| s.ty.width()).sum();
        let mut out = Vec::with_capacity(data.len() / row * width);
        let mut held = vec![false; self.values.len()];
        for r in data.chunks_exact(row) {
            held.iter_mut().for_each(|h| *h = false);
            for s in &self.steps {
                let v = match s.src {
                    Some((off, ty)) => Val::read(ty, &r[off..off + ty.width()]),
                    None => zero(s.ty),
                };
                held[s.value] |= put(s.ty, v, &mut out);
            }
            for (i, &(value, off, ty)) in self.values.iter().enumerate() {
                if held[i]
                    || off == usize::MAX
                    || Val::read(ty, &r[off..off + ty.width()]).is_zero()
                {
                    continue;
                }
                clamped.values += 1;
                let blame = self
                    .steps
                    .iter()
                    .filter(|s| s.value == i)
                    .map(|s| s.col.name)
                    .next()
                    .unwrap_or(value);
                if !clamped.columns.contains(&blame) {
                    clamped.columns.push(blame);
                }
            }
        }
        out
    }
}

/// The value a column of `ty` gets when the source has none.
fn zero(ty: Ty) -> Val {
    match ty {
        Ty::Ip4 | Ty::Ip16 => Val::Ip(std::net::Ipv4Addr::UNSPECIFIED.into()),
        _ => Val::Int(0),
    }
}

/// The plans of one table, by format, made when first needed; `reset`
/// when its columns are read again.
#[derive(Debug, Default)]
pub(crate) struct Plans {
    columns: Option<Vec<(String, String)>>,
    /// The table's schema, when known.
    schema: Option<Schema>,
    plans: HashMap<Format, Result<Plan, String>>,
}

impl Plans {
    /// The table's columns as just read (`None`: unknown) and its schema.
    pub(crate) fn reset(&mut self, columns: Option<Vec<(String, String)>>, schema: Schema) {
        self.columns = columns;
        self.schema = Some(schema);
        self.plans.clear();
    }

    /// The type of the table's column `name`, when known.
    pub(crate) fn column_type(&self, name: &str) -> Option<String> {
        self.columns.as_ref()?.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone())
    }

    /// The plan for rows of `from` (made once per reading of the columns).
    pub(crate) fn get(&mut self, table: &str, from: Format) -> &Result<Plan, String> {
        let cols = self.columns.as_deref();
        // Before any probe: the batch's own schema (the table may exist).
        let schema = self.schema.unwrap_or(from.schema());
        self.plans.entry(from).or_insert_with(|| Plan::new(table, from, cols, schema))
    }
}

/// A note on why `column` of `table` (type `sql`) lost values, for the log.
pub(crate) fn clamp_note(
    table: &str,
    column: &str,
    have: Option<&str>,
    want: Option<&str>,
) -> String {
    match (have, want) {
        (Some(have), Some(want)) => format!(
            "column `{column}` of {table} is {have}, which cannot hold every value (nfstitch \
             writes {want}); such values are written clamped and counted in values_clamped \
             (ALTER TABLE {table} MODIFY COLUMN `{column}` {want} keeps them)"
        ),
        _ => format!(
            "{table} has no column `{column}`; its values are not stored and are counted in \
             values_clamped"
        ),
    }
}

/// Read `table`'s columns and add those of `schema` it lacks (`bare`: a
/// `Distributed` table, no defaults or codecs). The columns as they are
/// after that; `None` when they could not be read (no table yet, no grant:
/// the caller writes the schema's own columns). What the server refused
/// goes to `refused`; `Err` only for a failure without an answer.
pub(crate) fn migrate(
    client: &Client,
    table: &str,
    schema: Schema,
    bare: bool,
    refused: &mut Vec<String>,
) -> Result<Option<Vec<(String, String)>>, PostError> {
    let read = |refused: &mut Vec<String>| match client.query(&columns_sql(table)) {
        Ok(a) => Ok(Some(parse_columns(&a)).filter(|c| !c.is_empty())),
        Err(PostError::Http(c, m)) => {
            refused.push(format!("columns of {table}: HTTP {c}: {m}"));
            Ok(None)
        }
        Err(e) => Err(e),
    };
    let Some(have) = read(refused)? else { return Ok(None) };
    let add = missing(schema, &have);
    let Some(sql) = alter_sql(table, schema, &add, bare) else { return Ok(Some(have)) };
    let names: Vec<&str> = add.iter().map(|c| c.name).collect();
    let mut why = Vec::new();
    client.ddl(&sql, &mut why)?;
    match why.first() {
        None => eprintln!(
            "nfstitch: clickhouse: {table} was made by an earlier release: added the columns {}",
            names.join(", ")
        ),
        // Another collector may have added them first: read again.
        Some(w) => eprintln!(
            "nfstitch: clickhouse: {table} lacks the columns {}; adding them failed: {w}",
            names.join(", ")
        ),
    }
    refused.extend(why.into_iter().filter(|w| !w.contains("already exists")));
    read(refused)
}

/// The rollup views of `table` made by a release before IPv6: in the
/// legacy schema they lack `src_addr6`, so they sum every IPv6 pair under
/// 0.0.0.0 (a view is not altered: dropping it has the sender make it
/// again, from then on). Their names; empty when they cannot be read.
pub(crate) fn old_rollups(client: &Client, table: &str, schema: Schema) -> Vec<String> {
    if schema != Schema::Legacy {
        return Vec::new();
    }
    rollup_suffixes()
        .map(|suffix| suffixed(table, suffix))
        .filter(|view| {
            let cols = client.query(&columns_sql(view)).map(|a| parse_columns(&a));
            cols.is_ok_and(|c| !c.is_empty() && !c.iter().any(|(n, _)| n == "src_addr6"))
        })
        .collect()
}
