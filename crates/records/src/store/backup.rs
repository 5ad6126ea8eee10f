//! A deployment's app database as plain data, for `medledger backup` and `restore`: every table
//! that holds the deployment (not sessions or counters, which a restored deployment starts
//! without), read in one snapshot, each row a JSON object of typed values; loaded into an empty,
//! migrated database of either engine (so a backup also moves a deployment from SQLite to
//! PostgreSQL). Everything sealed stays sealed: the rows are copied as they are stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Column as _, Row as _, ValueRef as _, any::AnyTypeInfoKind};

use crate::{
    db::{self, Database, Db, Engine},
    error::{Error, Result},
};

/// The tables a backup holds, in the order they are loaded: everything a restored deployment
/// needs (its research included: without the studies and exports, a patient could not withdraw
/// from a study after a restore).
pub const TABLES: [&str; 11] = [
    "settings",
    "users",
    "records",
    "wraps",
    "grants",
    "emergencies",
    "chain_writes",
    "invites",
    "studies",
    "exports",
    "export_files",
];

/// The tables a backup leaves out, and why: a restored deployment starts without them. A table
/// in neither list fails the test below, so a new table is never left out by accident.
pub const LEFT_OUT: [(&str, &str); 9] = [
    ("sessions", "everyone signs in again"),
    ("rate_limits", "counters start again"),
    ("siwe_nonces", "unused nonces expire in minutes"),
    (
        "security_events",
        "the operator's log, kept with the servers' logs",
    ),
    ("chain_blocks", "the chain index, rebuilt from the chain"),
    (
        "chain_account_txs",
        "the chain index, rebuilt from the chain",
    ),
    (
        "chain_account_counts",
        "the chain index, rebuilt from the chain",
    ),
    ("chain_events", "the chain index, rebuilt from the chain"),
    (
        "chain_event_counts",
        "the chain index, rebuilt from the chain",
    ),
];

/// One stored value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Value {
    Int(i64),
    Real(f64),
    Text(String),
    /// Hex.
    Bytes(String),
}

/// A row: its columns' values (`None`: NULL).
pub type Row = BTreeMap<String, Option<Value>>;

/// Every backed-up table's rows, read in one snapshot (a transaction: PostgreSQL's repeatable
/// read, SQLite's read transaction), so they agree with each other.
pub async fn dump(database: &Database) -> Result<Vec<(String, Vec<Row>)>> {
    let pool = db::connect(database, true).await?;
    let mut tx = pool.begin().await?;
    if database.engine() == Engine::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
    }
    let mut out = Vec::new();
    for table in TABLES {
        // A name from the list above, never input.
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT * FROM {table}")))
            .fetch_all(&mut *tx)
            .await?;
        let mut dumped = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut values = Row::new();
            for (i, column) in row.columns().iter().enumerate() {
                let raw = row.try_get_raw(i)?;
                let value = if raw.is_null() {
                    None
                } else {
                    Some(match raw.type_info().kind() {
                        AnyTypeInfoKind::Bool
                        | AnyTypeInfoKind::SmallInt
                        | AnyTypeInfoKind::Integer
                        | AnyTypeInfoKind::BigInt => Value::Int(row.try_get::<i64, _>(i)?),
                        AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => {
                            Value::Real(row.try_get::<f64, _>(i)?)
                        }
                        AnyTypeInfoKind::Text => Value::Text(row.try_get::<String, _>(i)?),
                        AnyTypeInfoKind::Blob => {
                            Value::Bytes(hex::encode(row.try_get::<Vec<u8>, _>(i)?))
                        }
                        AnyTypeInfoKind::Null => {
                            return Err(Error::internal(
                                "backup",
                                format!("{table}.{}: a value of no type", column.name()),
                            ));
                        }
                    })
                };
                values.insert(column.name().to_string(), value);
            }
            dumped.push(values);
        }
        out.push((table.to_string(), dumped));
    }
    tx.commit().await?;
    pool.close().await;
    Ok(out)
}

/// The kind of each column of `table` in the target database, for typing its NULLs.
async fn column_kinds(pool: &Db, engine: Engine, table: &str) -> Result<BTreeMap<String, String>> {
    let query = match engine {
        Engine::Sqlite => format!("SELECT name, type FROM pragma_table_info('{table}')"),
        Engine::Postgres => format!(
            "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{table}'"
        ),
    };
    // `table` is one of `TABLES` (checked by the caller).
    let rows: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(query)).fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|(name, kind)| (name, kind.to_lowercase()))
        .collect())
}

/// Loads `tables` into `database`, which must hold no deployment: migrated first, then every
/// row inserted in one transaction (all or nothing), then PostgreSQL's id sequences moved past
/// the restored ids.
pub async fn load(database: &Database, tables: &[(String, Vec<Row>)]) -> Result<u64> {
    if db::holds_deployment(database).await? {
        return Err(Error::conflict(format!(
            "{database} holds a deployment already: restore into an empty database"
        )));
    }
    let engine = database.engine();
    let pool = db::connect(database, false).await?;
    db::migrate(&pool, engine).await?;
    let mut loaded = 0u64;
    let mut tx = pool.begin().await?;
    for (table, rows) in tables {
        if !TABLES.contains(&table.as_str()) {
            return Err(Error::invalid(format!(
                "the backup holds a table {table:?} this version does not restore"
            )));
        }
        let kinds = column_kinds(&pool, engine, table).await?;
        for row in rows {
            let names: Vec<&String> = row.keys().collect();
            if let Some(unknown) = names.iter().find(|n| !kinds.contains_key(n.as_str())) {
                return Err(Error::invalid(format!(
                    "the backup's {table} has a column {unknown:?} this version does not have"
                )));
            }
            let columns = names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let params = (1..=names.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            // The table is one of `TABLES`, every column one the target database itself named.
            let sql = format!("INSERT INTO {table} ({columns}) VALUES ({params})");
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for name in &names {
                query = match &row[name.as_str()] {
                    Some(Value::Int(v)) => query.bind(*v),
                    Some(Value::Real(v)) => query.bind(*v),
                    Some(Value::Text(v)) => query.bind(v.clone()),
                    Some(Value::Bytes(v)) => query.bind(hex::decode(v).map_err(|_| {
                        Error::invalid(format!("the backup's {table}.{name} is not hex"))
                    })?),
                    None => match kinds[name.as_str()].as_str() {
                        "bigint" | "integer" | "smallint" => query.bind(None::<i64>),
                        "bytea" | "blob" => query.bind(None::<Vec<u8>>),
                        "double precision" | "real" => query.bind(None::<f64>),
                        _ => query.bind(None::<String>),
                    },
                };
            }
            query.execute(&mut *tx).await?;
            loaded += 1;
        }
    }
    tx.commit().await?;
    if engine == Engine::Postgres {
        let identities: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND is_identity = 'YES'",
        )
        .fetch_all(&pool)
        .await?;
        for (table, column) in identities {
            // Names the database itself gave.
            sqlx::query(AssertSqlSafe(format!(
                "SELECT 1 FROM (SELECT setval(pg_get_serial_sequence('{table}', '{column}'), COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)) AS moved"
            )))
            .execute(&pool)
            .await?;
        }
    }
    pool.close().await;
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table of the migrated schema is backed up or left out on purpose.
    #[tokio::test]
    async fn every_table_is_backed_up_or_left_out_on_purpose() {
        let dir = tempfile::tempdir().unwrap();
        let database =
            Database::from_url(&format!("sqlite://{}", dir.path().join("app.db").display()))
                .unwrap();
        let pool = db::connect(&database, false).await.unwrap();
        db::migrate(&pool, Engine::Sqlite).await.unwrap();
        let tables = db::tables(&pool, Engine::Sqlite).await.unwrap();
        assert!(tables.contains(&"records".to_string()), "{tables:?}");
        let missing: Vec<&String> = tables
            .iter()
            .filter(|t| {
                !TABLES.contains(&t.as_str()) && !LEFT_OUT.iter().any(|(name, _)| name == t)
            })
            .collect();
        assert!(
            missing.is_empty(),
            "tables neither backed up nor left out on purpose (store/backup.rs): {missing:?}"
        );
        for table in TABLES.iter().chain(LEFT_OUT.iter().map(|(name, _)| name)) {
            assert!(
                tables.contains(&table.to_string()),
                "{table} is not in the schema"
            );
        }
    }
}
