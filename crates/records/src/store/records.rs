//! The `records` table: each report's and prescription's row — who it is about and by whom, its
//! kind, its sealed metadata and structured content, the hashes it is anchored by, and its
//! anchoring transaction once mined. Nothing here is readable without a key.

use alloy::primitives::{Address, B256};
use sqlx::Row;

use crate::{
    db::{Db, DbRow},
    error::{Error, Result},
    model::RecordKind,
    model::address_key,
};

/// A stored record row.
#[derive(Debug, Clone)]
pub(crate) struct RecordRow {
    pub(crate) id: B256,
    pub(crate) patient: Address,
    pub(crate) author: Address,
    pub(crate) kind: RecordKind,
    pub(crate) meta: Vec<u8>,
    /// The sealed structured content (a FHIR Bundle's resources), if any.
    pub(crate) resources: Option<Vec<u8>>,
    /// The anchored hash, as this row remembers it (the chain's is the one that counts).
    pub(crate) content_hash: B256,
    /// keccak256 of the sealed body, for a record whose anchor covers all its parts; `None` for
    /// one anchored by its body alone (before).
    pub(crate) blob_hash: Option<B256>,
    pub(crate) tx_hash: Option<B256>,
    pub(crate) block_number: Option<u64>,
    pub(crate) created_at: i64,
}

/// Whose records a listing is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Whose {
    /// The patient's the records are.
    Patient,
    /// Their author's (a prescription's doctor).
    Author,
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T> {
    s.parse()
        .map_err(|_| Error::internal("stored record", format!("bad {what}")))
}

fn row_from(row: &DbRow) -> Result<RecordRow> {
    let kind: i64 = row.try_get("kind")?;
    let tx: Option<String> = row.try_get("tx_hash")?;
    let blob: Option<String> = row.try_get("blob_hash")?;
    let block: Option<i64> = row.try_get("block_number")?;
    Ok(RecordRow {
        id: parse(&row.try_get::<String, _>("id")?, "id")?,
        patient: parse(&row.try_get::<String, _>("patient")?, "patient")?,
        author: parse(&row.try_get::<String, _>("author")?, "author")?,
        kind: RecordKind::try_from(kind as u8)
            .map_err(|_| Error::internal("stored record", "bad kind"))?,
        meta: row.try_get("meta")?,
        resources: row.try_get("resources")?,
        content_hash: parse(&row.try_get::<String, _>("content_hash")?, "hash")?,
        blob_hash: blob.as_deref().map(|b| parse(b, "blob hash")).transpose()?,
        tx_hash: tx.as_deref().map(|t| parse(t, "tx")).transpose()?,
        block_number: block.map(|b| b as u64),
        created_at: row.try_get("created_at")?,
    })
}

/// The `records` table.
#[derive(Clone, Copy)]
pub(crate) struct Records<'a>(pub(crate) &'a Db);

impl Records<'_> {
    /// Stores a new record's row, before its anchor is sent.
    pub(crate) async fn insert(self, row: &RecordRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO records (id, patient, author, kind, meta, resources, content_hash, blob_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(row.id.to_string())
        .bind(address_key(row.patient))
        .bind(address_key(row.author))
        .bind(u8::from(row.kind) as i64)
        .bind(&row.meta)
        .bind(&row.resources)
        .bind(row.content_hash.to_string())
        .bind(row.blob_hash.map(|h| h.to_string()))
        .bind(row.created_at)
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// Marks a record anchored by the mined transaction `tx` in block `block`.
    pub(crate) async fn anchored(self, id: &B256, tx: &B256, block: u64) -> Result<()> {
        sqlx::query("UPDATE records SET tx_hash = $1, block_number = $2 WHERE id = $3")
            .bind(tx.to_string())
            .bind(block as i64)
            .bind(id.to_string())
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// An anchored record; one whose anchor is not mined yet is not there for anyone.
    pub(crate) async fn get(self, id: &B256) -> Result<RecordRow> {
        let row = sqlx::query("SELECT * FROM records WHERE id = $1 AND tx_hash IS NOT NULL")
            .bind(id.to_string())
            .fetch_optional(self.0)
            .await?
            .ok_or_else(|| Error::not_found("there is no such record"))?;
        row_from(&row)
    }

    /// The id of the anchored record with structured content whose id begins with `prefix`
    /// (lower-case hex digits without 0x).
    pub(crate) async fn bundle_by_prefix(self, prefix: &str) -> Result<Option<B256>> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM records WHERE id LIKE $1 AND tx_hash IS NOT NULL AND resources IS NOT NULL",
        )
        .bind(format!("0x{prefix}%"))
        .fetch_optional(self.0)
        .await?;
        id.map(|id| parse(&id, "id")).transpose()
    }

    /// A patient's (or an author's) anchored records, oldest first.
    pub(crate) async fn of(self, whose: Whose, who: Address) -> Result<Vec<RecordRow>> {
        let sql = match whose {
            Whose::Patient => {
                "SELECT * FROM records WHERE patient = $1 AND tx_hash IS NOT NULL ORDER BY created_at, id"
            }
            Whose::Author => {
                "SELECT * FROM records WHERE author = $1 AND tx_hash IS NOT NULL ORDER BY created_at, id"
            }
        };
        let rows = sqlx::query(sql)
            .bind(address_key(who))
            .fetch_all(self.0)
            .await?;
        rows.iter().map(row_from).collect()
    }

    /// Every anchored record, for `verify`.
    pub(crate) async fn all_anchored(self) -> Result<Vec<RecordRow>> {
        let rows = sqlx::query("SELECT * FROM records WHERE tx_hash IS NOT NULL ORDER BY id")
            .fetch_all(self.0)
            .await?;
        rows.iter().map(row_from).collect()
    }

    /// Whether a row (anchored or not yet) is stored for `id`.
    pub(crate) async fn exists(self, id: &B256) -> Result<bool> {
        let stored: Option<String> = sqlx::query_scalar("SELECT id FROM records WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.0)
            .await?;
        Ok(stored.is_some())
    }

    pub(crate) async fn delete(self, id: &B256) -> Result<()> {
        sqlx::query("DELETE FROM records WHERE id = $1")
            .bind(id.to_string())
            .execute(self.0)
            .await?;
        Ok(())
    }
}

/// Where a record's sealed body lies in the blob store.
pub(crate) fn blob_key(id: &B256) -> String {
    hex::encode(id)
}

/// What a record's wrapped keys are keyed by.
pub(crate) fn object_id(id: &B256) -> super::wraps::ObjectId {
    super::wraps::ObjectId::Record(*id)
}
