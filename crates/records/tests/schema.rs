//! The two sets of migrations (`migrations/sqlite`, `migrations/postgres`) make the same schema:
//! the same tables, columns (with each engine's type for the same data), nullability and
//! indexes. A migration added to one set and not the other fails here.

use std::collections::BTreeSet;

use medledger_records::db::{self, Database, Engine};
use sqlx::Row;

/// (table, column, type, not null), with each engine's type named as the other's.
type Columns = BTreeSet<(String, String, String, bool)>;

async fn sqlite_schema(db: &db::Db) -> (Columns, BTreeSet<String>) {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let mut columns = Columns::new();
    for table in &tables {
        // A name from sqlite_master, not input.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA table_info({table})")))
            .fetch_all(db)
            .await
            .unwrap();
        for row in rows {
            let name: String = row.get("name");
            let kind: String = row.get("type");
            let not_null: i64 = row.get("notnull");
            let pk: i64 = row.get("pk");
            let kind = match kind.as_str() {
                "INTEGER" => "bigint",
                "TEXT" => "text",
                "BLOB" => "bytea",
                other => {
                    panic!("{table}.{name}: a type the PostgreSQL twin has no rule for: {other}")
                }
            };
            columns.insert((
                table.clone(),
                name,
                kind.to_string(),
                not_null == 1 || pk > 0,
            ));
        }
    }
    let indexes = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    (columns, indexes)
}

async fn postgres_schema(db: &db::Db) -> (Columns, BTreeSet<String>) {
    let rows = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let columns = rows
        .iter()
        .map(|row| {
            let nullable: String = row.get("is_nullable");
            (
                row.get("table_name"),
                row.get("column_name"),
                row.get("data_type"),
                nullable == "NO",
            )
        })
        .collect();
    // Primary keys and UNIQUE constraints are columns' properties in SQLite (autoindexes).
    let indexes = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema()
         AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    (columns, indexes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_engines_migrations_make_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = db::connect(&Database::Sqlite(dir.path().join("m.db")), false)
        .await
        .unwrap();
    db::migrate(&sqlite, Engine::Sqlite).await.unwrap();
    let server = medledger_testkit::Postgres::start();
    let postgres = db::connect(&Database::from_url(&server.new_database()).unwrap(), false)
        .await
        .unwrap();
    db::migrate(&postgres, Engine::Postgres).await.unwrap();

    let (lite_columns, lite_indexes) = sqlite_schema(&sqlite).await;
    let (pg_columns, pg_indexes) = postgres_schema(&postgres).await;
    assert!(lite_columns.len() > 40, "{lite_columns:?}");
    let only_sqlite: Vec<_> = lite_columns.difference(&pg_columns).collect();
    let only_postgres: Vec<_> = pg_columns.difference(&lite_columns).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "columns only in SQLite: {only_sqlite:?}\ncolumns only in PostgreSQL: {only_postgres:?}"
    );
    assert_eq!(lite_indexes, pg_indexes, "the indexes differ");
    postgres.close().await;
}
