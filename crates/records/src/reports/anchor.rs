//! What a record's anchor commits to, and whether a stored record still matches it: one record
//! as it is read, and every record and every anchor for `medledger verify`.
//!
//! A record's anchor (`Records.anchorRecord`, `anchorPrescription`) is one hash over everything
//! shown as the record: keccak256 of a fixed tag, then the keccak256 of its sealed body, of its
//! sealed metadata (title, date, notes, type, size) and of its sealed structured content (a FHIR
//! Bundle's resources; empty when it has none). A prescription's lines are its body. Whoever can
//! write to the database and the blob store can change none of these without the chain showing
//! it, and the hashes of sealed bytes let `verify` check every record with no key. Records
//! anchored before (their row has no body hash) committed to their body alone, and are reported
//! as such.

use alloy::{
    primitives::{B256, keccak256},
    providers::DynProvider,
    sol_types::SolEvent,
};
use medledger_vault::BlobStore;
use serde::Serialize;

use crate::store::records::blob_key;
use crate::{
    contracts::{Contracts, Records},
    db::{self, Database, Db},
    error::{Error, Result},
    ledger::Ledger,
    model::Integrity,
    store::records::{RecordRow, Records as RecordsTable},
};

/// The tag the commitment starts with, so it can never be taken for the hash of a body alone.
const TAG: &[u8] = b"medledger record anchor v2";

/// The hash a record is anchored by: over its sealed body's hash, its sealed metadata and its
/// sealed structured content.
pub(crate) fn commitment(blob_hash: B256, meta: &[u8], resources: Option<&[u8]>) -> B256 {
    let mut all = Vec::with_capacity(TAG.len() + 96);
    all.extend_from_slice(TAG);
    all.extend_from_slice(blob_hash.as_slice());
    all.extend_from_slice(keccak256(meta).as_slice());
    all.extend_from_slice(keccak256(resources.unwrap_or_default()).as_slice());
    keccak256(&all)
}

/// What a record's anchor covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Covers {
    /// Its body, metadata and structured content: everything shown as the record.
    Record,
    /// Its body alone (anchored before the anchor covered the rest).
    FileOnly,
}

impl Covers {
    pub(crate) fn of(row_has_blob_hash: bool) -> Covers {
        if row_has_blob_hash {
            Covers::Record
        } else {
            Covers::FileOnly
        }
    }
}

/// What the chain's anchor says of a stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    /// Whether what the row shows (patient, author, kind and, where the anchor covers them, its
    /// sealed metadata and structured content) is what was anchored. A record anchored by its
    /// body alone passes only with its body matching: a row cannot pass for one by forgetting
    /// its body hash.
    pub(crate) details: bool,
    /// The stored body's check, when the body was looked at.
    pub(crate) file: Option<Integrity>,
}

/// A stored record against its anchor on chain (`anchor`, never the database's copy), and its
/// body when given.
pub(crate) fn judge(
    anchor: &Records::Anchor,
    row: &RecordRow,
    body: Option<Option<&[u8]>>,
) -> Checked {
    let same_record = anchor.patient == row.patient
        && anchor.author == row.author
        && anchor.kind == u8::from(row.kind);
    let parts = match row.blob_hash {
        Some(blob_hash) => {
            same_record
                && commitment(blob_hash, &row.meta, row.resources.as_deref()) == anchor.contentHash
        }
        None => same_record,
    };
    let file = body.map(|body| match body {
        None => Integrity::Missing,
        Some(b) => {
            let matches = match row.blob_hash {
                Some(blob_hash) => parts && keccak256(b) == blob_hash,
                None => parts && keccak256(b) == anchor.contentHash,
            };
            if matches {
                Integrity::Verified
            } else {
                Integrity::Mismatch
            }
        }
    });
    let details = match row.blob_hash {
        Some(_) => parts,
        None => file == Some(Integrity::Verified),
    };
    Checked { details, file }
}

/// The anchors, a part of its own: the Records contract on the ledger, the stored rows and
/// bodies it judges against it.
#[derive(Clone)]
pub(crate) struct Anchors {
    db: Db,
    ledger: Ledger,
    contracts: Contracts,
    blobs: BlobStore,
}

impl Anchors {
    pub(crate) fn new(db: Db, ledger: Ledger, contracts: Contracts, blobs: BlobStore) -> Anchors {
        Anchors {
            db,
            ledger,
            contracts,
            blobs,
        }
    }

    fn records(&self) -> Records::RecordsInstance<DynProvider> {
        self.contracts.records_on(&self.ledger)
    }

    /// A stored record against its anchor on chain: its details always, its body when
    /// `with_body` (or when its anchor covers the body alone, since its details are then
    /// judged by its body); the body, when it was fetched and matches.
    pub(crate) async fn check_record(
        &self,
        row: &RecordRow,
        with_body: bool,
    ) -> Result<(Checked, Option<Vec<u8>>)> {
        let anchor = self
            .records()
            .getRecord(row.id)
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))?;
        if !with_body && row.blob_hash.is_some() {
            return Ok((judge(&anchor, row, None), None));
        }
        let body = self.blobs.get(&blob_key(&row.id)).await?;
        let checked = judge(&anchor, row, Some(body.as_deref()));
        let body = body.filter(|_| checked.file == Some(Integrity::Verified));
        Ok((checked, body))
    }

    /// Checks every stored record against its anchor on chain.
    pub(crate) async fn verify_blobs(&self) -> Result<BlobReport> {
        verify_rows(
            RecordsTable(&self.db),
            &self.ledger,
            &self.records(),
            self.contracts.deployed_at,
            &self.blobs,
        )
        .await
    }
}

/// What `verify` found in the app database and the blob store.
#[derive(Debug, Default)]
pub struct BlobReport {
    pub checked: usize,
    /// Of those, the records anchored by their body alone (before anchors covered the rest).
    pub file_only: usize,
    /// Anchors on chain, each of which must point at a stored record.
    pub anchors: usize,
    /// Records whose blob is missing or that do not match their anchor, and anchors whose
    /// record is not stored.
    pub bad: Vec<(B256, Problem)>,
}

/// What `verify` can find wrong with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The blob is not stored.
    Missing,
    /// The record (its body, metadata, structured content, patient, author or kind) does not
    /// match what is anchored on chain.
    Mismatch,
    /// An anchor on chain whose record (row or blob) is not stored.
    AnchorWithoutData,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Problem::Missing => "missing",
            Problem::Mismatch => "mismatch",
            Problem::AnchorWithoutData => "anchor without data",
        })
    }
}

async fn verify_rows(
    table: RecordsTable<'_>,
    ledger: &Ledger,
    records: &Records::RecordsInstance<DynProvider>,
    deployed_at: u64,
    blobs: &BlobStore,
) -> Result<BlobReport> {
    let mut report = BlobReport::default();
    for row in table.all_anchored().await? {
        report.checked += 1;
        if row.blob_hash.is_none() {
            report.file_only += 1;
        }
        let anchor = records
            .getRecord(row.id)
            .call()
            .await
            .map_err(|e| ledger.call_error(e))?;
        let body = blobs.get(&blob_key(&row.id)).await?;
        match judge(&anchor, &row, Some(body.as_deref())).file {
            Some(Integrity::Verified) => {}
            Some(Integrity::Missing) => report.bad.push((row.id, Problem::Missing)),
            _ => report.bad.push((row.id, Problem::Mismatch)),
        }
    }
    // The other way round: every anchor on chain points at a stored record. One whose write a
    // crash left open (stored, not yet marked anchored) is settled at the next start; its blob
    // must be there all the same.
    let filter = alloy::rpc::types::Filter::new()
        .address(*records.address())
        .event_signature(Records::RecordAnchored::SIGNATURE_HASH)
        .from_block(deployed_at);
    for log in ledger.logs(&filter).await? {
        let anchored = Records::RecordAnchored::decode_log_data(log.data())
            .map_err(|e| Error::internal("RecordAnchored", e))?;
        report.anchors += 1;
        if !table.exists(&anchored.id).await? || blobs.get(&blob_key(&anchored.id)).await?.is_none()
        {
            report.bad.push((anchored.id, Problem::AnchorWithoutData));
        }
    }
    Ok(report)
}

/// `medledger verify`'s second half: every record of the deployment in `database` against its
/// anchor on the chain `ledger` speaks to. Opens the database read-only and changes nothing.
pub async fn verify_store(
    database: &Database,
    ledger: &Ledger,
    blobs: &BlobStore,
) -> Result<BlobReport> {
    let db = db::connect(database, true).await?;
    let (chain_id, contracts) = crate::store::settings::load_contracts(&db)
        .await?
        .ok_or_else(|| Error::invalid("this database has no deployment yet"))?;
    if chain_id != ledger.chain_id() {
        return Err(Error::invalid(format!(
            "the database belongs to chain id {chain_id}, the node answers {}",
            ledger.chain_id()
        )));
    }
    let records = Records::new(contracts.records, ledger.provider().clone());
    verify_rows(
        RecordsTable(&db),
        ledger,
        &records,
        contracts.deployed_at,
        blobs,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commitment_changes_with_every_part_and_is_never_a_body_hash() {
        let body = keccak256(b"sealed body");
        let base = commitment(body, b"sealed meta", Some(b"sealed resources"));
        assert_ne!(
            base,
            commitment(body, b"sealed metA", Some(b"sealed resources"))
        );
        assert_ne!(
            base,
            commitment(body, b"sealed meta", Some(b"sealed resourceS"))
        );
        assert_ne!(base, commitment(body, b"sealed meta", None));
        assert_ne!(
            base,
            commitment(
                keccak256(b"other body"),
                b"sealed meta",
                Some(b"sealed resources")
            )
        );
        assert_ne!(base, body);
        assert_eq!(
            base,
            commitment(body, b"sealed meta", Some(b"sealed resources"))
        );
    }
}
