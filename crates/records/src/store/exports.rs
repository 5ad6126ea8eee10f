//! The `exports` and `export_files` tables: each research export a researcher started, its
//! progress and outcome, and its de-identified NDJSON files (nothing else is in them).

use alloy::primitives::{Address, B256};
use sqlx::Row;

use crate::{
    db::{Db, DbRow},
    error::Result,
    model::address_key,
    model::unix_now,
};

/// An export as stored.
pub(crate) struct ExportRow {
    pub(crate) id: String,
    pub(crate) study: u64,
    pub(crate) state: String,
    pub(crate) done_patients: u64,
    pub(crate) total_patients: u64,
    /// Its report, as JSON.
    pub(crate) report: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) files_hash: Option<B256>,
    pub(crate) export_id: Option<u64>,
    pub(crate) tx_hash: Option<B256>,
    pub(crate) created_at: i64,
    pub(crate) finished_at: Option<i64>,
}

fn export_from(row: &DbRow) -> Result<ExportRow> {
    let parse_hash = |s: Option<String>| s.and_then(|s| s.parse().ok());
    Ok(ExportRow {
        id: row.try_get("id")?,
        study: row.try_get::<i64, _>("study")? as u64,
        state: row.try_get("state")?,
        done_patients: row.try_get::<i64, _>("done_patients")? as u64,
        total_patients: row.try_get::<i64, _>("total_patients")? as u64,
        report: row.try_get("report")?,
        error: row.try_get("error")?,
        files_hash: parse_hash(row.try_get("files_hash")?),
        export_id: row
            .try_get::<Option<i64>, _>("export_id")?
            .map(|n| n as u64),
        tx_hash: parse_hash(row.try_get("tx_hash")?),
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

#[derive(Clone, Copy)]
pub(crate) struct Exports<'a>(pub(crate) &'a Db);

impl Exports<'_> {
    /// Marks failed, with `why`, every export still running that started before `before` (a
    /// stopped server cut it off).
    pub(crate) async fn fail_stale(self, before: i64, why: &str) -> Result<()> {
        sqlx::query(
            "UPDATE exports SET state = 'failed', error = $1, finished_at = $2 WHERE state = 'running' AND created_at < $3",
        )
        .bind(why)
        .bind(unix_now())
        .bind(before)
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// The export of `study` running now, if any.
    pub(crate) async fn running_of(self, study: u64) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM exports WHERE study = $1 AND state = 'running'")
                .bind(study as i64)
                .fetch_optional(self.0)
                .await?,
        )
    }

    pub(crate) async fn start(self, id: &str, study: u64, researcher: Address) -> Result<()> {
        sqlx::query(
            "INSERT INTO exports (id, study, researcher, state, created_at) VALUES ($1, $2, $3, 'running', $4)",
        )
        .bind(id)
        .bind(study as i64)
        .bind(address_key(researcher))
        .bind(unix_now())
        .execute(self.0)
        .await?;
        Ok(())
    }

    pub(crate) async fn fail(self, id: &str, why: &str) -> Result<()> {
        sqlx::query(
            "UPDATE exports SET state = 'failed', error = $1, finished_at = $2 WHERE id = $3",
        )
        .bind(why)
        .bind(unix_now())
        .bind(id)
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// How many patients it looks at in all.
    pub(crate) async fn total(self, id: &str, patients: u64) -> Result<()> {
        sqlx::query("UPDATE exports SET total_patients = $1 WHERE id = $2")
            .bind(patients as i64)
            .bind(id)
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// How many patients it has looked at so far.
    pub(crate) async fn progress(self, id: &str, patients: u64) -> Result<()> {
        sqlx::query("UPDATE exports SET done_patients = $1 WHERE id = $2")
            .bind(patients as i64)
            .bind(id)
            .execute(self.0)
            .await?;
        Ok(())
    }

    pub(crate) async fn add_file(self, id: &str, kind: &str, lines: u64, body: &str) -> Result<()> {
        sqlx::query("INSERT INTO export_files (export, kind, lines, body) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(kind)
            .bind(lines as i64)
            .bind(body)
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// It finished: its report, its files' hash and, when it included anyone, the transaction
    /// that recorded it on chain and the chain's id for it.
    pub(crate) async fn done(
        self,
        id: &str,
        report: &str,
        files_hash: &B256,
        recorded: Option<(B256, Option<u64>)>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE exports SET state = 'done', report = $1, files_hash = $2, tx_hash = $3, export_id = $4, finished_at = $5 WHERE id = $6",
        )
        .bind(report)
        .bind(files_hash.to_string())
        .bind(recorded.map(|(tx, _)| tx.to_string()))
        .bind(recorded.and_then(|(_, n)| n).map(|n| n as i64))
        .bind(unix_now())
        .bind(id)
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// `researcher`'s export `id`.
    pub(crate) async fn of_researcher(
        self,
        id: &str,
        researcher: Address,
    ) -> Result<Option<ExportRow>> {
        let row = sqlx::query("SELECT * FROM exports WHERE id = $1 AND researcher = $2")
            .bind(id)
            .bind(address_key(researcher))
            .fetch_optional(self.0)
            .await?;
        row.as_ref().map(export_from).transpose()
    }

    /// `researcher`'s exports, the latest first.
    pub(crate) async fn all_of(self, researcher: Address) -> Result<Vec<ExportRow>> {
        let rows =
            sqlx::query("SELECT * FROM exports WHERE researcher = $1 ORDER BY created_at DESC, id")
                .bind(address_key(researcher))
                .fetch_all(self.0)
                .await?;
        rows.iter().map(export_from).collect()
    }

    /// Export `id`'s files: type and lines.
    pub(crate) async fn files(self, id: &str) -> Result<Vec<(String, u64)>> {
        let files: Vec<(String, i64)> =
            sqlx::query_as("SELECT kind, lines FROM export_files WHERE export = $1 ORDER BY kind")
                .bind(id)
                .fetch_all(self.0)
                .await?;
        Ok(files.into_iter().map(|(k, n)| (k, n as u64)).collect())
    }

    /// The body of export `id`'s file of `kind`.
    pub(crate) async fn file(self, id: &str, kind: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT body FROM export_files WHERE export = $1 AND kind = $2")
                .bind(id)
                .bind(kind)
                .fetch_optional(self.0)
                .await?,
        )
    }
}
