//! The `studies` table: each study an admin registered for a researcher — its details (title,
//! description, the data asked for) as JSON, whose hash is what the chain holds, its end, and
//! the chain's id for it once the registration is mined.

use alloy::primitives::{Address, B256};
use sqlx::Row;

use crate::{
    db::{Db, DbRow},
    error::{Error, Result},
    model::address_key,
    model::unix_now,
};

/// A registered study.
pub(crate) struct StudyRow {
    pub(crate) id: u64,
    pub(crate) details_hash: B256,
    pub(crate) researcher: Address,
    /// Its details, as JSON (`research::StudyDetails`).
    pub(crate) details: String,
    pub(crate) ends_at: u64,
    pub(crate) tx_hash: Option<B256>,
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T> {
    s.parse()
        .map_err(|_| Error::internal("stored study", format!("bad {what}")))
}

fn study_from(row: &DbRow) -> Result<StudyRow> {
    let tx: Option<String> = row.try_get("tx_hash")?;
    Ok(StudyRow {
        id: row.try_get::<i64, _>("id")? as u64,
        details_hash: parse(&row.try_get::<String, _>("details_hash")?, "hash")?,
        researcher: parse(&row.try_get::<String, _>("researcher")?, "researcher")?,
        details: row.try_get("details")?,
        ends_at: row.try_get::<i64, _>("ends_at")? as u64,
        tx_hash: tx.as_deref().map(|t| parse(t, "tx")).transpose()?,
    })
}

#[derive(Clone, Copy)]
pub(crate) struct Studies<'a>(pub(crate) &'a Db);

impl Studies<'_> {
    /// A study's details, stored before its registration is sent.
    pub(crate) async fn insert(
        self,
        hash: &B256,
        researcher: Address,
        details: &str,
        ends_at: u64,
        created_by: Address,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO studies (details_hash, researcher, details, ends_at, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(hash.to_string())
        .bind(address_key(researcher))
        .bind(details)
        .bind(ends_at as i64)
        .bind(address_key(created_by))
        .bind(unix_now())
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// The registration was mined: the chain's id and its transaction.
    pub(crate) async fn mined(self, hash: &B256, id: u64, tx: &B256) -> Result<()> {
        sqlx::query("UPDATE studies SET id = $1, tx_hash = $2 WHERE details_hash = $3")
            .bind(id as i64)
            .bind(tx.to_string())
            .bind(hash.to_string())
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// Removes the details of a registration that never landed.
    pub(crate) async fn forget_unregistered(self, hash: &B256) -> Result<()> {
        sqlx::query("DELETE FROM studies WHERE details_hash = $1 AND id IS NULL")
            .bind(hash.to_string())
            .execute(self.0)
            .await?;
        Ok(())
    }

    pub(crate) async fn by_hash(self, hash: &B256) -> Result<Option<StudyRow>> {
        let row = sqlx::query("SELECT * FROM studies WHERE details_hash = $1 AND id IS NOT NULL")
            .bind(hash.to_string())
            .fetch_optional(self.0)
            .await?;
        row.as_ref().map(study_from).transpose()
    }

    /// The registered studies (of `researcher`, when given), by id.
    pub(crate) async fn registered(self, researcher: Option<Address>) -> Result<Vec<StudyRow>> {
        let rows =
            match researcher {
                None => {
                    sqlx::query("SELECT * FROM studies WHERE id IS NOT NULL ORDER BY id")
                        .fetch_all(self.0)
                        .await?
                }
                Some(r) => sqlx::query(
                    "SELECT * FROM studies WHERE id IS NOT NULL AND researcher = $1 ORDER BY id",
                )
                .bind(address_key(r))
                .fetch_all(self.0)
                .await?,
            };
        rows.iter().map(study_from).collect()
    }

    pub(crate) async fn researcher_of(self, id: u64) -> Result<Option<Address>> {
        let r: Option<String> = sqlx::query_scalar("SELECT researcher FROM studies WHERE id = $1")
            .bind(id as i64)
            .fetch_optional(self.0)
            .await?;
        r.map(|r| parse(&r, "researcher")).transpose()
    }

    /// Study `id`'s details (JSON).
    pub(crate) async fn details_of(self, id: u64) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT details FROM studies WHERE id = $1")
                .bind(id as i64)
                .fetch_optional(self.0)
                .await?,
        )
    }

    /// The chain's ids of every registered study.
    pub(crate) async fn ids(self) -> Result<Vec<u64>> {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM studies WHERE id IS NOT NULL")
            .fetch_all(self.0)
            .await?;
        Ok(ids.into_iter().map(|i| i as u64).collect())
    }
}
