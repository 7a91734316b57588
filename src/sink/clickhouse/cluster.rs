//! `--clickhouse-cluster NAME`: many collectors writing into one ClickHouse
//! cluster through a `Distributed` table, without distributed DDL.
//!
//! `ON CLUSTER` needs ZooKeeper on 18.16 (and Keeper later), so the sender
//! makes the tables itself: it reads the cluster's replicas from the entry
//! node's `system.clusters`, creates the local table `<table>_local` (and,
//! with rollups, its views `<table>_local_1m`/`_1h`) on every replica over
//! HTTP, and then, on the entry node, the `Distributed` table `<table>` over
//! the local tables, sharded by `cityHash64(exporter)` (one exporter's flows
//! stay on one shard, so its per-exporter queries and rollups are local),
//! plus `Distributed` tables `<table>_1m`/`_1h` over the rollup views.
//!
//! A replica is reached at its `host_address` on the port, scheme,
//! credentials and parameters of the `--clickhouse` URL (the nodes of a
//! cluster share one configuration). Its local table goes into the
//! database of `--clickhouse-table db.name` when one is given (and the
//! `Distributed` table names it), else into the replica's
//! `default_database` from the cluster definition, else the connection's
//! default; the `Distributed` table then names no database (`''`: each
//! replica's default). Every statement is `IF NOT EXISTS`: collectors
//! racing at start, or a restart, change nothing.

use std::path::PathBuf;

use super::ddl::{
    create_table_sql, quote_table, rollup_key, rollup_sql, rollup_suffixes, ROLLUP_SUMS,
};
use super::http::{Client, PostError};
use super::migrate::migrate;
use super::schema::{Schema, COLUMNS};
use super::url::{with_host, ClickHouseUrl, Password};

/// The cluster and how to reach its replicas.
#[derive(Debug)]
pub(super) struct Cluster {
    name: String,
    url: ClickHouseUrl,
    password: Option<Password>,
    ca: Option<PathBuf>,
}

/// One replica of one shard, from `system.clusters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replica {
    pub(crate) shard: u32,
    pub(crate) host: String,
    /// `default_database` of the cluster definition ("" when none).
    pub(crate) database: String,
}

/// The replicas of cluster `name` (checked by the config: letters, digits, `_`).
pub(crate) fn replicas_sql(name: &str) -> String {
    format!(
        "SELECT shard_num, host_address, default_database FROM system.clusters \
         WHERE cluster = '{name}' ORDER BY shard_num, replica_num FORMAT TSV"
    )
}

/// `replicas_sql`'s answer.
pub(crate) fn parse_replicas(answer: &str) -> Result<Vec<Replica>, String> {
    answer
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            match f[..] {
                [shard, host, db] => Ok(Replica {
                    shard: shard.parse().map_err(|_| format!("bad shard_num in {l:?}"))?,
                    host: host.to_string(),
                    database: db.to_string(),
                }),
                _ => Err(format!("not a system.clusters row: {l:?}")),
            }
        })
        .collect()
}

/// The local table of `table` on a replica whose default database is
/// `replica_db` (see the module docs).
pub(crate) fn local_table(table: &str, replica_db: &str) -> String {
    match (table.contains('.'), replica_db) {
        (false, db) if !db.is_empty() => format!("{db}.{table}_local"),
        _ => format!("{table}_local"),
    }
}

/// `CREATE TABLE IF NOT EXISTS <dist> (<columns>) ENGINE = Distributed(...)`
/// over `<local>` of every shard of `cluster`, sharded by the exporter.
fn distributed_sql(dist: &str, columns: &[(&str, &str)], cluster: &str, local: &str) -> String {
    let (db, local) = match local.split_once('.') {
        Some((db, t)) => (db, t),
        None => ("", local),
    };
    let cols: Vec<String> = columns.iter().map(|(n, t)| format!("`{n}` {t}")).collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({}) ENGINE = Distributed('{cluster}', '{db}', '{local}', \
         cityHash64(`exporter`))",
        quote_table(dist),
        cols.join(", ")
    )
}

/// The `Distributed` tables on the entry node: `table` over `<table>_local`,
/// and with `rollups` `<table>_1m`/`_1h` over `<table>_local_1m`/`_1h`.
pub(crate) fn distributed_tables_sql(
    table: &str,
    schema: Schema,
    cluster: &str,
    rollups: bool,
) -> Vec<String> {
    let ty = |name: &str| {
        let c = COLUMNS.iter().find(|c| c.name == name).expect("column");
        schema.bare_type(c).expect("a column of the schema")
    };
    let all: Vec<(&str, &str)> =
        COLUMNS.iter().filter_map(|c| Some((c.name, schema.bare_type(c)?))).collect();
    let local = local_table(table, "");
    let mut v = vec![distributed_sql(table, &all, cluster, &local)];
    if rollups {
        // The columns of the rollup views (`ddl::rollup_sql`), one list.
        let mut cols: Vec<(&str, &str)> = vec![("time", ty("time"))];
        cols.extend(rollup_key(schema).iter().map(|n| (*n, ty(n))));
        cols.extend(ROLLUP_SUMS);
        for suffix in rollup_suffixes() {
            let dist = format!("{table}{suffix}");
            v.push(distributed_sql(&dist, &cols, cluster, &format!("{local}{suffix}")));
        }
    }
    v
}

impl Cluster {
    pub(super) fn new(
        name: &str,
        url: &ClickHouseUrl,
        password: Option<&Password>,
        ca: Option<PathBuf>,
    ) -> Cluster {
        Cluster { name: name.to_string(), url: url.clone(), password: password.cloned(), ca }
    }

    /// Make the local tables on every replica and the `Distributed` tables
    /// on the entry node (`client`). What a server refused goes to
    /// `refused`; `Err` for a failure without an answer from the entry node.
    pub(super) fn prepare(
        &self,
        client: &Client,
        table: &str,
        schema: Schema,
        ttl: Option<std::time::Duration>,
        rollups: bool,
        refused: &mut Vec<String>,
    ) -> Result<(), PostError> {
        let replicas = match client.query(&replicas_sql(&self.name)).map(|a| parse_replicas(&a)) {
            Ok(Ok(r)) if !r.is_empty() => r,
            Ok(Ok(_)) => {
                refused.push(format!("no cluster {:?} in system.clusters", self.name));
                return Ok(());
            }
            Ok(Err(why)) => {
                refused.push(why);
                return Ok(());
            }
            Err(PostError::Http(c, m)) => {
                refused.push(format!("system.clusters: HTTP {c}: {m}"));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        for r in &replicas {
            let local = local_table(table, &r.database);
            let views = if rollups { rollup_sql(&local, schema) } else { Vec::new() };
            let url = with_host(&self.url, &r.host);
            let shard = match Client::new(&url, self.password.as_ref(), self.ca.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    refused.push(format!("shard {} at {}: {e:#}", r.shard, url.redacted()));
                    continue;
                }
            };
            // A table of an earlier release gets the new columns before
            // the views that read them are made.
            let made = shard
                .ddl(&create_table_sql(&local, schema, ttl), refused)
                .and_then(|()| migrate(&shard, &local, schema, false, refused))
                .and_then(|_| views.iter().try_for_each(|sql| shard.ddl(sql, refused)));
            if let Err(e) = made {
                // A replica that is down now gets its table on a later attempt.
                refused.push(format!("shard {} at {}: {e}", r.shard, url.redacted()));
            }
        }
        for sql in distributed_tables_sql(table, schema, &self.name, rollups) {
            client.ddl(&sql, refused)?;
        }
        Ok(())
    }
}
