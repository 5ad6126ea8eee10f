//! The app database: SQLite (the default: a file in the data directory) or PostgreSQL (one
//! database that several app servers share), behind sqlx's `Any` driver. The queries are written
//! once, in SQL both engines speak, with `$N` placeholders; each engine has its own migrations
//! (`migrations/sqlite`, `migrations/postgres`), kept in step by a test that compares the
//! schemas they make.

use std::{path::PathBuf, time::Duration};

use sqlx::{
    Executor,
    any::{AnyConnectOptions, AnyPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode},
};

use crate::error::{Error, Result};

/// The pool every query runs on.
pub type Db = sqlx::AnyPool;
/// A row of any engine.
pub type DbRow = sqlx::any::AnyRow;

/// Which database a deployment keeps its private half in.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://user:password@host:port/name`).
    Postgres(String),
}

/// Which engine a database runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// Shown to operators: the password of a URL is never printed.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "SQLite {}", path.display()),
            Database::Postgres(url) => match url::Url::parse(url) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    write!(f, "PostgreSQL {parsed}")
                }
                Err(_) => f.write_str("PostgreSQL (an unreadable URL)"),
            },
        }
    }
}

impl Database {
    /// A database named by URL: `postgres://…` (or `postgresql://…`), or `sqlite:PATH`.
    pub fn from_url(url: &str) -> Result<Database> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url::Url::parse(url).map_err(|e| {
                Error::invalid(format!("the database URL is not a URL ({e})")).on("database_url")
            })?;
            return Ok(Database::Postgres(url.to_string()));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or(url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(Error::invalid("a sqlite: URL needs a file path").on("database_url"));
            }
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        Err(Error::invalid(
            "the database URL must start with postgres:// (or postgresql://) or sqlite:",
        )
        .on("database_url"))
    }

    pub fn engine(&self) -> Engine {
        match self {
            Database::Sqlite(_) => Engine::Sqlite,
            Database::Postgres(_) => Engine::Postgres,
        }
    }
}

/// Opens the pool (creating a SQLite file if missing, unless `read_only`), without migrating.
pub async fn connect(database: &Database, read_only: bool) -> Result<Db> {
    sqlx::any::install_default_drivers();
    let unreachable = |e: sqlx::Error| {
        Error::misconfigured(format!("cannot open the database ({database}): {e}"))
    };
    match database {
        Database::Sqlite(path) => {
            let path = std::path::absolute(path).map_err(|e| {
                Error::misconfigured(format!("the database path {}: {e}", path.display()))
            })?;
            let native = SqliteConnectOptions::new()
                .filename(&path)
                .read_only(read_only)
                .create_if_missing(!read_only);
            if !read_only {
                // The write-ahead log is a property of the file: set it once, with the driver's
                // own options, before the pool of generic connections opens it.
                let setup = native.clone().journal_mode(SqliteJournalMode::Wal);
                let conn = sqlx::ConnectOptions::connect(&setup)
                    .await
                    .map_err(unreachable)?;
                sqlx::Connection::close(conn).await.map_err(unreachable)?;
            }
            let url = sqlx::ConnectOptions::to_url_lossy(&native);
            let options: AnyConnectOptions = url.as_str().parse().map_err(unreachable)?;
            AnyPoolOptions::new()
                .max_connections(8)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // Every acknowledged write is on disk before the answer goes out.
                        conn.execute(
                            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000",
                        )
                        .await?;
                        Ok(())
                    })
                })
                .connect_with(options)
                .await
                .map_err(unreachable)
        }
        Database::Postgres(url) => {
            let options: AnyConnectOptions = url.parse().map_err(unreachable)?;
            AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if read_only {
                            conn.execute("SET default_transaction_read_only = on")
                                .await?;
                        }
                        Ok(())
                    })
                })
                .connect_with(options)
                .await
                .map_err(unreachable)
        }
    }
}

/// Brings the schema up to date with this engine's migrations.
pub async fn migrate(db: &Db, engine: Engine) -> Result<()> {
    let migrated = match engine {
        Engine::Sqlite => sqlx::migrate!("./migrations/sqlite").run(db).await,
        Engine::Postgres => sqlx::migrate!("./migrations/postgres").run(db).await,
    };
    migrated.map_err(|e| Error::internal("migrating the database", e))
}

/// Whether the database answers a query at all (for the health check).
pub async fn ping(db: &Db) -> bool {
    sqlx::query("SELECT 1").execute(db).await.is_ok()
}

/// Whether the database has a table named `table` (before any migration ran, it may not).
pub async fn has_table(db: &Db, engine: Engine, table: &str) -> Result<bool> {
    let query = match engine {
        Engine::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        Engine::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    let n: i64 = sqlx::query_scalar(query).bind(table).fetch_one(db).await?;
    Ok(n > 0)
}

/// The tables of the app database (without the migrations' own), as its schema has them now.
pub async fn tables(db: &Db, engine: Engine) -> Result<Vec<String>> {
    let query = match engine {
        Engine::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name"
        }
        Engine::Postgres => {
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%' ORDER BY table_name"
        }
    };
    Ok(sqlx::query_scalar(query).fetch_all(db).await?)
}

/// Whether `database` holds a deployment already (contracts deployed, keys wrapped for an escrow
/// key): a new one may create its key files, an existing one needs them. Creates nothing.
pub async fn holds_deployment(database: &Database) -> Result<bool> {
    if let Database::Sqlite(path) = database
        && !path.exists()
    {
        return Ok(false);
    }
    let db = connect(database, true).await?;
    let held = has_table(&db, database.engine(), "settings").await?
        && sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = 'registry'")
            .fetch_optional(&db)
            .await?
            .is_some();
    db.close().await;
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sqlite_file_is_created_migrated_and_reopened_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::Sqlite(dir.path().join("a b?#.db"));
        assert!(!holds_deployment(&database).await.unwrap());
        let db = connect(&database, false).await.unwrap();
        migrate(&db, Engine::Sqlite).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(
            synchronous, 2,
            "FULL: a write is on disk before it is acknowledged"
        );
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2)")
            .bind("registry")
            .bind("0x01")
            .execute(&db)
            .await
            .unwrap();
        db.close().await;
        assert!(holds_deployment(&database).await.unwrap());
        let ro = connect(&database, true).await.unwrap();
        assert!(
            sqlx::query("DELETE FROM settings")
                .execute(&ro)
                .await
                .is_err(),
            "a read-only database refuses writes"
        );
    }

    #[test]
    fn urls_name_their_engine_and_never_show_a_password() {
        let pg = Database::from_url("postgres://medledger:s3cret@127.0.0.1:5432/records").unwrap();
        assert_eq!(pg.engine(), Engine::Postgres);
        assert!(!pg.to_string().contains("s3cret"), "{pg}");
        assert_eq!(
            Database::from_url("sqlite:/var/lib/m.db").unwrap(),
            Database::Sqlite("/var/lib/m.db".into())
        );
        let e = Database::from_url("mysql://x").unwrap_err();
        assert_eq!(e.field, Some("database_url"));
    }
}

/// Locks that the app servers of one deployment take turns on: on PostgreSQL, advisory locks
/// each held by a transaction on a small pool of its own (so a held lock never takes a
/// connection the queries need, and a lock whose holder dies is released with its connection);
/// on SQLite, whose file one server owns, there is nothing to take.
#[derive(Clone)]
pub struct Locks(Option<Db>);

/// A lock held until dropped.
pub struct Held(#[allow(dead_code)] Option<sqlx::Transaction<'static, sqlx::Any>>);

impl Locks {
    pub async fn open(database: &Database) -> Result<Locks> {
        match database {
            Database::Sqlite(_) => Ok(Locks(None)),
            Database::Postgres(url) => {
                let options: AnyConnectOptions = url.parse().map_err(|e| {
                    Error::misconfigured(format!("cannot open the database ({database}): {e}"))
                })?;
                let pool = AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(60))
                    .connect_with(options)
                    .await
                    .map_err(|e| {
                        Error::misconfigured(format!("cannot open the database ({database}): {e}"))
                    })?;
                Ok(Locks(Some(pool)))
            }
        }
    }

    /// Waits for the lock `name` and holds it until the result is dropped.
    pub async fn hold(&self, name: &str) -> Result<Held> {
        let Some(pool) = &self.0 else {
            return Ok(Held(None));
        };
        let digest = alloy::primitives::keccak256(name.as_bytes());
        let key = i64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
        let mut tx = pool.begin().await?;
        // Selected through a subquery: the lock function returns `void`, a type the generic
        // driver cannot carry.
        sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS held")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        Ok(Held(Some(tx)))
    }
}
