//! Whether stored reports still match what the chain anchors: one record as it is opened, and
//! every record and every anchor for `medledger verify`.

use alloy::{
    primitives::{B256, keccak256},
    providers::DynProvider,
    sol_types::SolEvent,
};
use medledger_vault::BlobStore;

use super::{Row_, blob_key, object_id, row_from};
use crate::{
    app::App,
    contracts::Records,
    db::{self, Database, Db},
    error::{Error, Result},
    ledger::Ledger,
    model::Integrity,
};

impl App {
    /// Checks every stored blob against its anchor on chain.
    pub async fn verify_blobs(&self) -> Result<BlobReport> {
        let deployed_at = self.contracts().deployed_at;
        verify_rows(
            self.db(),
            self.ledger(),
            &self.records(),
            deployed_at,
            self.blobs(),
        )
        .await
    }
}

/// What `verify` found in the blob store.
#[derive(Debug, Default)]
pub struct BlobReport {
    pub checked: usize,
    /// Anchors on chain, each of which must point at a stored record.
    pub anchors: usize,
    /// Records whose blob is missing or does not match its anchor, and anchors whose record
    /// is not stored.
    pub bad: Vec<(B256, Problem)>,
}

/// What `verify` can find wrong with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The blob is not stored.
    Missing,
    /// The blob does not match the hash anchored on chain.
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

/// Compares a record's stored blob with the hash anchored on chain (not the database's copy).
pub(super) async fn check_blob(
    ledger: &Ledger,
    records: &Records::RecordsInstance<DynProvider>,
    blobs: &BlobStore,
    row: &Row_,
) -> Result<(Integrity, Option<Vec<u8>>)> {
    let anchor = records
        .getRecord(row.id)
        .call()
        .await
        .map_err(|e| ledger.call_error(e))?;
    let Some(blob) = blobs.get(&blob_key(&row.id)).await? else {
        return Ok((Integrity::Missing, None));
    };
    if keccak256(&blob) == anchor.contentHash && anchor.patient == row.patient {
        Ok((Integrity::Verified, Some(blob)))
    } else {
        Ok((Integrity::Mismatch, None))
    }
}

async fn verify_rows(
    db: &Db,
    ledger: &Ledger,
    records: &Records::RecordsInstance<DynProvider>,
    deployed_at: u64,
    blobs: &BlobStore,
) -> Result<BlobReport> {
    let rows = sqlx::query("SELECT * FROM records WHERE tx_hash IS NOT NULL ORDER BY id")
        .fetch_all(db)
        .await?;
    let mut report = BlobReport::default();
    for row in &rows {
        let row = row_from(row)?;
        let (status, _) = check_blob(ledger, records, blobs, &row).await?;
        report.checked += 1;
        match status {
            Integrity::Verified => {}
            Integrity::Missing => report.bad.push((row.id, Problem::Missing)),
            Integrity::Mismatch => report.bad.push((row.id, Problem::Mismatch)),
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
        let stored: Option<String> = sqlx::query_scalar("SELECT id FROM records WHERE id = $1")
            .bind(object_id(&anchored.id).to_string())
            .fetch_optional(db)
            .await?;
        if stored.is_none() || blobs.get(&blob_key(&anchored.id)).await?.is_none() {
            report.bad.push((anchored.id, Problem::AnchorWithoutData));
        }
    }
    Ok(report)
}

/// `medledger verify`'s second half: every blob of the deployment in `database` against its
/// anchor on the chain `ledger` speaks to. Opens the database read-only and changes nothing.
pub async fn verify_store(
    database: &Database,
    ledger: &Ledger,
    blobs: &BlobStore,
) -> Result<BlobReport> {
    let db = db::connect(database, true).await?;
    let (chain_id, contracts) = crate::app::load_contracts(&db)
        .await?
        .ok_or_else(|| Error::invalid("this database has no deployment yet"))?;
    if chain_id != ledger.chain_id() {
        return Err(Error::invalid(format!(
            "the database belongs to chain id {chain_id}, the node answers {}",
            ledger.chain_id()
        )));
    }
    let records = Records::new(contracts.records, ledger.provider().clone());
    verify_rows(&db, ledger, &records, contracts.deployed_at, blobs).await
}
