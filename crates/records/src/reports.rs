//! Health reports and prescriptions: sealed under a fresh key each, stored as blobs named by their
//! random id, anchored on chain by the hash of the ciphertext, and opened only after the chain
//! says the reader may (`Consent.canAccess`), the blob matches its anchor, and the opening is
//! logged on chain signed by the reader.

use alloy::{
    primitives::{Address, B256, keccak256},
    sol_types::SolCall,
};
use medledger_vault::{Dek, seal};
use serde::{Deserialize, Serialize};

mod anchor;
mod prescriptions;
pub mod structured;

pub(crate) use anchor::Anchors;
pub use anchor::{BlobReport, Covers, Problem, verify_store};
pub use prescriptions::{Medication, PrescriptionBody, PrescriptionView};
pub use structured::Entry;

use self::anchor::Checked;
pub(crate) use crate::store::records::{RecordRow, Whose};
use crate::store::records::{blob_key, object_id};
use std::sync::Arc;

use medledger_vault::BlobStore;

use crate::{
    access::Access,
    db::Db,
    disclosure::ReadLog,
    follows::Writer,
    keyring::Keyring,
    ledger::{Contracts, Ledger},
    people::People,
};
use crate::{
    access::Allowed,
    contracts::Records,
    disclosure::{Logged, Unlogged},
    error::{Error, Kind, Result},
    journal::Follow,
    ledger::TxInfo,
    model::unix_now,
    model::{Integrity, Purpose, RecordKind, Role},
    person::Person,
    store::{records::Records as RecordsTable, wraps::Reader},
};

/// What a patient shares: the file and the share form's fields.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub title: String,
    pub kind: RecordKind,
    /// The date of the examination, `YYYY-MM-DD` (may be empty).
    pub date: String,
    pub notes: String,
    pub bytes: Vec<u8>,
}

/// The sealed metadata of a record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub title: String,
    pub date: String,
    pub notes: String,
    pub media_type: String,
    pub size: u64,
    /// keccak256 of the file as shared (so a client such as `medledger import` can tell a file
    /// it shared before); empty for records shared before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// For a FHIR Bundle: how many resources of each type it holds, kept as structured content.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub resources: std::collections::BTreeMap<String, u64>,
}

/// A record as its reader sees it. `meta` is absent when the reader holds no key to it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordView {
    pub id: B256,
    pub patient: Address,
    pub author: Address,
    pub kind: RecordKind,
    pub meta: Option<Meta>,
    pub created_at: i64,
    pub anchor: Anchor,
}

/// Where a record is anchored, what the anchor covers, and whether its stored file still
/// matches.
#[derive(Debug, Clone, Serialize)]
pub struct Anchor {
    pub content_hash: B256,
    pub tx_hash: Option<B256>,
    pub block_number: Option<u64>,
    /// Everything shown as the record (`record`), or, for a record anchored before that, its
    /// file alone (`file_only`).
    pub covers: Covers,
    /// When checked: whether the stored file still matches the anchor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Integrity>,
}

impl Anchor {
    fn of(row: &RecordRow, integrity: Option<Integrity>) -> Anchor {
        Anchor {
            content_hash: row.content_hash,
            tx_hash: row.tx_hash,
            block_number: row.block_number,
            covers: Covers::of(row.blob_hash.is_some()),
            integrity,
        }
    }
}

/// The bytes of a record, opened for an allowed reader, and the access event that logged it.
pub struct Opened {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub access_tx: TxInfo,
    pub emergency: bool,
}

/// Judges a file's type from its bytes, never from its name or the client's claim: PDF, PNG,
/// JPEG, JSON (FHIR resources included) or plain UTF-8 text.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        return Some("application/pdf");
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some("image/jpeg");
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let trimmed = text.trim_start();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
    {
        return Some(if value.get("resourceType").is_some() {
            "application/fhir+json"
        } else {
            "application/json"
        });
    }
    let printable = text
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'));
    (printable && !text.is_empty()).then_some("text/plain")
}

fn meta_aad(id: &B256) -> Vec<u8> {
    format!("meta:{id}").into_bytes()
}

pub(crate) fn resources_aad(id: &B256) -> Vec<u8> {
    format!("resources:{id}").into_bytes()
}

/// Parses a record id given by a client.
pub fn parse_record_id(s: &str) -> Result<B256> {
    s.parse()
        .map_err(|_| Error::invalid("a record id is 0x followed by 64 hex digits"))
}

#[derive(Clone)]
pub struct Reports {
    db: Db,
    ledger: Ledger,
    contracts: Contracts,
    blobs: BlobStore,
    access: Access,
    anchors: Anchors,
    keyring: Arc<Keyring>,
    people: People,
    readlog: ReadLog,
    writer: Writer,
    max_upload_bytes: usize,
}

impl Reports {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        db: Db,
        ledger: Ledger,
        contracts: Contracts,
        blobs: BlobStore,
        access: Access,
        anchors: Anchors,
        keyring: Arc<Keyring>,
        people: People,
        readlog: ReadLog,
        writer: Writer,
        max_upload_bytes: usize,
    ) -> Reports {
        Reports {
            db,
            ledger,
            contracts,
            blobs,
            access,
            anchors,
            keyring,
            people,
            readlog,
            writer,
            max_upload_bytes,
        }
    }
}

impl Reports {
    pub(crate) async fn record_row(&self, id: &B256) -> Result<RecordRow> {
        RecordsTable(&self.db).get(id).await
    }

    /// A patient's (or an author's) anchored records; those whose anchor is not mined yet are
    /// not there for anyone.
    pub(crate) async fn record_rows(&self, whose: Whose, who: Address) -> Result<Vec<RecordRow>> {
        RecordsTable(&self.db).of(whose, who).await
    }

    /// The rules a shared report's fields must meet; returns its media type, judged from its
    /// bytes, and, for a FHIR Bundle, its resources (which must meet R4's rules).
    pub(crate) fn check_report(
        &self,
        report: &NewReport,
    ) -> Result<(&'static str, Option<Vec<Entry>>)> {
        if report.kind == RecordKind::Prescription {
            return Err(Error::invalid(
                "a patient shares reports or other records; prescriptions come from doctors",
            )
            .on("kind"));
        }
        let title = report.title.trim();
        if title.is_empty() || title.len() > 200 {
            return Err(Error::invalid("a title of 1 to 200 characters is required").on("title"));
        }
        if report.notes.len() > 10_000 {
            return Err(Error::invalid("notes are limited to 10,000 characters").on("notes"));
        }
        if !report.date.is_empty() && !crate::directory::is_iso_date(&report.date) {
            return Err(Error::invalid("date must look like 2026-11-25").on("date"));
        }
        if report.bytes.is_empty() {
            return Err(Error::invalid("the file is empty").on("file"));
        }
        if report.bytes.len() > self.max_upload_bytes {
            return Err(Error::new(
                Kind::TooLarge,
                format!(
                    "the file is larger than the {} MiB limit",
                    self.max_upload_bytes / (1024 * 1024)
                ),
            )
            .on("file"));
        }
        let media_type = sniff(&report.bytes).ok_or_else(|| {
            Error::new(
                Kind::UnsupportedType,
                "this kind of file is not accepted: share a PDF, PNG, JPEG, plain text or JSON (FHIR) file",
            )
            .on("file")
        })?;
        if media_type != "application/fhir+json" {
            return Ok((media_type, None));
        }
        let value: serde_json::Value = serde_json::from_slice(&report.bytes)
            .map_err(|e| Error::internal("sniffed JSON", e))?;
        if value["resourceType"] != "Bundle" {
            return Ok((media_type, None));
        }
        Ok((media_type, Some(structured::bundle_entries(&value)?)))
    }

    /// A patient shares a report: sealed, stored, anchored on chain (signed by the patient),
    /// and its key wrapped for the patient, the emergency escrow and every live grantee.
    pub async fn share_report(
        &self,
        patient: &Person,
        report: NewReport,
    ) -> Result<(RecordView, TxInfo)> {
        self.people.require_patient(patient)?;
        let checked = self.check_report(&report)?;
        self.store_report(patient, report, checked).await
    }

    /// `share_report` of a report `check_report` has judged (its media type and, for a
    /// bundle, its resources), so a bundle is parsed and checked once.
    pub(crate) async fn store_report(
        &self,
        patient: &Person,
        report: NewReport,
        (media_type, entries): (&'static str, Option<Vec<Entry>>),
    ) -> Result<(RecordView, TxInfo)> {
        let meta = Meta {
            title: report.title.trim().to_string(),
            date: report.date,
            notes: report.notes,
            media_type: media_type.to_string(),
            size: report.bytes.len() as u64,
            digest: keccak256(&report.bytes).to_string(),
            resources: entries
                .as_deref()
                .map(structured::count_by_type)
                .unwrap_or_default(),
        };
        let (view, tx) = self
            .store_record(
                patient,
                patient.address,
                report.kind,
                &meta,
                &report.bytes,
                entries.as_deref(),
            )
            .await?;
        self.writer
            .wrapping()
            .sync_wraps(patient.address, Some(&patient.secret))
            .await?;
        // A bundle shared while taking part in a study is the study's to export too.
        if entries.is_some() {
            self.writer
                .wrapping()
                .sync_research_wraps(patient.address, Some(&patient.secret))
                .await?;
        }
        Ok((view, tx))
    }

    /// Seals, stores and anchors a record written by `author` about `patient`.
    async fn store_record(
        &self,
        author: &Person,
        patient: Address,
        kind: RecordKind,
        meta: &Meta,
        bytes: &[u8],
        entries: Option<&[Entry]>,
    ) -> Result<(RecordView, TxInfo)> {
        let id = crate::model::random_b256();
        let dek = Dek::generate();
        let object = object_id(&id);
        let sealed = seal(&dek, &object.aad(), bytes);
        let sealed_meta = seal(
            &dek,
            &meta_aad(&id),
            &serde_json::to_vec(meta).map_err(|e| Error::internal("meta", e))?,
        );
        let sealed_resources = entries
            .map(|e| {
                serde_json::to_vec(e)
                    .map(|plain| seal(&dek, &resources_aad(&id), &plain))
                    .map_err(|e| Error::internal("resources", e))
            })
            .transpose()?;
        let blob_hash = keccak256(&sealed);
        let hash = anchor::commitment(blob_hash, &sealed_meta, sealed_resources.as_deref());
        let now = unix_now();
        let input = match kind {
            RecordKind::Prescription => Records::anchorPrescriptionCall {
                id,
                patient,
                contentHash: hash,
            }
            .abi_encode(),
            _ => Records::anchorRecordCall {
                id,
                kind: u8::from(kind),
                contentHash: hash,
            }
            .abi_encode(),
        };
        let row = RecordRow {
            id,
            patient,
            author: author.address,
            kind,
            meta: sealed_meta,
            resources: sealed_resources,
            content_hash: hash,
            blob_hash: Some(blob_hash),
            tx_hash: None,
            block_number: None,
            created_at: now,
        };
        // The blob, the row and the wrapped keys go first, so an anchor on chain never points
        // at nothing; the journal removes them only once the anchor surely never lands.
        let stored = async {
            self.blobs.put(&blob_key(&id), sealed).await?;
            RecordsTable(&self.db).insert(&row).await?;
            let patient_key = self
                .people
                .account_by_address(patient)
                .await?
                .ok_or_else(|| Error::not_found("there is no such patient"))?
                .enc_public;
            let wraps = crate::store::wraps::Wraps(&self.db);
            wraps
                .put(&object, Reader::Account(patient), &patient_key, &dek)
                .await?;
            if author.address != patient {
                wraps
                    .put(
                        &object,
                        Reader::Account(author.address),
                        &author.secret.public_key(),
                        &dek,
                    )
                    .await?;
            }
            let escrow = self.keyring.as_ref().escrow_public();
            wraps.put(&object, Reader::Escrow, &escrow, &dek).await
        };
        let records = self.contracts.records;
        let (tx, _) = self
            .writer
            .write_after(
                &author.signer,
                records,
                input,
                Follow::AnchorRecord { record: id },
                None,
                stored,
            )
            .await?
            .mined()?;
        let view = RecordView {
            id,
            patient,
            author: author.address,
            kind,
            meta: Some(meta.clone()),
            created_at: now,
            anchor: Anchor {
                content_hash: hash,
                tx_hash: Some(tx.hash),
                block_number: Some(tx.block_number),
                covers: Covers::Record,
                integrity: Some(Integrity::Verified),
            },
        };
        Ok((view, tx))
    }

    /// The metadata of `row`, opened with the key `allowed` unlocks (the reader's own, or the
    /// escrow's where it may stand in), still to be logged; `None` when the reader has no key.
    async fn open_meta(
        &self,
        reader: &Person,
        row: &RecordRow,
        allowed: &Allowed,
    ) -> Result<Option<Unlogged<Meta>>> {
        let Some(key) = self
            .keyring
            .as_ref()
            .unlock(crate::store::wraps::Wraps(&self.db), reader, allowed)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(key.open(&meta_aad(&row.id), &row.meta)?.and_then(
            |plain| serde_json::from_slice(&plain).map_err(|e| Error::internal("meta", e)),
        )?))
    }

    /// A record as `reader` may see it: with its details (still to be logged) when `allowed`
    /// lets them be opened and `details` (they are what the chain anchors), without otherwise.
    async fn view(
        &self,
        reader: &Person,
        row: &RecordRow,
        allowed: Option<&Allowed>,
        details: bool,
        file: Option<Integrity>,
    ) -> Result<Unlogged<RecordView>> {
        let bare = RecordView {
            id: row.id,
            patient: row.patient,
            author: row.author,
            kind: row.kind,
            meta: None,
            created_at: row.created_at,
            anchor: Anchor::of(row, file),
        };
        let meta = match allowed {
            Some(allowed) if details => self.open_meta(reader, row, allowed).await?,
            _ => None,
        };
        Ok(match meta {
            Some(meta) => meta.map(|m| RecordView {
                meta: Some(m),
                ..bare
            }),
            None => Unlogged::nothing(bare),
        })
    }

    /// A record's view for a listing: its details checked against the anchor (a record whose
    /// details were altered is listed without them, and says so).
    async fn listed(
        &self,
        reader: &Person,
        row: &RecordRow,
        allowed: Option<&Allowed>,
        with_body: bool,
    ) -> Result<Unlogged<RecordView>> {
        let (checked, _) = self.anchors.check_record(row, with_body).await?;
        let file = match checked.file {
            None if !checked.details => Some(Integrity::Mismatch),
            file => file,
        };
        self.view(reader, row, allowed, checked.details, file).await
    }

    /// A record's metadata and anchor, with a fresh check of its details and file against the
    /// anchor; shown to anyone but its patient only once the view is logged on chain. Details
    /// that are not what the chain anchors are refused (409), never shown.
    pub async fn record(&self, reader: &Person, id: B256, purpose: Purpose) -> Result<RecordView> {
        let row = self.record_row(&id).await?;
        let allowed = self
            .access
            .check_record_access(reader, &row, purpose)
            .await?;
        let (checked, _) = self.anchors.check_record(&row, true).await?;
        if !checked.details {
            return Err(altered());
        }
        let view = self
            .view(reader, &row, Some(&allowed), true, checked.file)
            .await?;
        Ok(self
            .readlog
            .disclose(reader, view, purpose, Logged::Viewed)
            .await?
            .into_inner())
    }

    /// A patient's own records (reports and others; prescriptions are listed apart), each
    /// checked against its anchor (with its file too when `verify` is set).
    pub async fn my_records(&self, patient: &Person, verify: bool) -> Result<Vec<RecordView>> {
        self.people.require_patient(patient)?;
        let mut out = Vec::new();
        for row in self.record_rows(Whose::Patient, patient.address).await? {
            if row.kind != RecordKind::Prescription {
                let own = self
                    .access
                    .record_allowed(patient, &row, Purpose::Treatment)
                    .await?;
                let view = self.listed(patient, &row, own.as_ref(), verify).await?;
                out.push(own_only(patient, view)?);
            }
        }
        Ok(out)
    }

    /// A record's title, for its own patient's audit trail (nobody else's).
    pub(crate) async fn record_title(&self, patient: &Person, id: &B256) -> Result<Option<String>> {
        let Ok(row) = self.record_row(id).await else {
            return Ok(None);
        };
        if row.patient != patient.address || patient.role != Role::Patient {
            return Ok(None);
        }
        let Some(own) = self
            .access
            .record_allowed(patient, &row, Purpose::Treatment)
            .await?
        else {
            return Ok(None);
        };
        Ok(match self.open_meta(patient, &row, &own).await {
            Ok(Some(meta)) => own_only(patient, meta)?.title.into(),
            _ => None,
        })
    }

    /// The records of `patient` that `doctor` may open now, as the chain decides, with their
    /// details; the view is logged on chain first.
    pub async fn records_for_doctor(
        &self,
        doctor: &Person,
        patient: Address,
        purpose: Purpose,
    ) -> Result<Vec<RecordView>> {
        let list = self.doctor_records(doctor, patient, purpose).await?;
        Ok(self
            .readlog
            .disclose(doctor, list, purpose, Logged::Viewed)
            .await?
            .into_inner())
    }

    /// One page of the reports of `patient` that `reader` may see now (the patient their own,
    /// a doctor what the chain allows), those `keep` accepts, `skip` then at most `take`, and how
    /// many were kept in all. `keep` sees what is not sealed (kind, dates, ids: a `RecordView`
    /// without its details), so the total reveals nothing sealed; only the page's records are
    /// opened, and logged on chain as viewed before they are returned.
    pub async fn reports_page(
        &self,
        reader: &Person,
        patient: Address,
        purpose: Purpose,
        keep: impl Fn(&RecordView) -> bool,
        skip: usize,
        take: usize,
    ) -> Result<(usize, Vec<RecordView>)> {
        match reader.role {
            Role::Patient if reader.address != patient => {
                return Err(Error::forbidden("a patient sees only their own records"));
            }
            Role::Patient => {}
            _ => self.people.require_active_doctor(reader).await?,
        }
        let mut kept = Vec::new();
        for row in self.record_rows(Whose::Patient, patient).await? {
            if row.kind == RecordKind::Prescription {
                continue;
            }
            let Some(allowed) = self.access.record_allowed(reader, &row, purpose).await? else {
                continue;
            };
            let bare = self.view(reader, &row, None, false, None).await?;
            let bare = bare
                .own(reader)
                .map_err(|_| Error::internal("reports", "a bare view reveals nothing"))?;
            if keep(&bare) {
                kept.push((row, allowed));
            }
        }
        let total = kept.len();
        let mut page = Unlogged::nothing(Vec::new());
        for (row, allowed) in kept.into_iter().skip(skip).take(take) {
            page.push(self.listed(reader, &row, Some(&allowed), false).await?);
        }
        let page = self
            .readlog
            .disclose(reader, page, purpose, Logged::Viewed)
            .await?
            .into_inner();
        Ok((total, page))
    }

    /// The records of `patient` that `doctor` may open now, with their details, still to be
    /// logged.
    pub(crate) async fn doctor_records(
        &self,
        doctor: &Person,
        patient: Address,
        purpose: Purpose,
    ) -> Result<Unlogged<Vec<RecordView>>> {
        self.people.require_active_doctor(doctor).await?;
        let mut out = Unlogged::nothing(Vec::new());
        for row in self.record_rows(Whose::Patient, patient).await? {
            if let Some(allowed) = self.access.record_allowed(doctor, &row, purpose).await? {
                out.push(self.listed(doctor, &row, Some(&allowed), false).await?);
            }
        }
        Ok(out)
    }

    /// Opens a record's bytes: access on chain, the record against its anchor, then the
    /// opening logged on chain signed by the reader, and only then the plaintext.
    pub async fn open_record(&self, reader: &Person, id: B256, purpose: Purpose) -> Result<Opened> {
        let row = self.record_row(&id).await?;
        let allowed = self
            .access
            .check_record_access(reader, &row, purpose)
            .await?;
        let key = self
            .keyring
            .as_ref()
            .unlock(crate::store::wraps::Wraps(&self.db), reader, &allowed)
            .await?
            .ok_or_else(|| {
                Error::forbidden(
                    "no key to this record was shared with you; ask the patient to share it",
                )
            })?;
        let (checked, body) = self.anchors.check_record(&row, true).await?;
        let body = match (checked, body) {
            (Checked { details: true, .. }, Some(body)) => body,
            (
                Checked {
                    file: Some(Integrity::Missing),
                    ..
                },
                _,
            ) => {
                return Err(Error::new(
                    Kind::Integrity,
                    "the stored file of this record is missing",
                ));
            }
            _ => return Err(altered()),
        };
        let meta = key.open(&meta_aad(&row.id), &row.meta)?;
        let bytes = key.open(&object_id(&row.id).aad(), &body)?;
        let opened = meta.zip(bytes).and_then(|(meta, bytes)| {
            let meta: Meta =
                serde_json::from_slice(&meta).map_err(|e| Error::internal("meta", e))?;
            Ok((meta.media_type, bytes))
        })?;
        let disclosed = self
            .readlog
            .disclose(reader, opened, purpose, Logged::Opened)
            .await?;
        let (tx, emergency) = (disclosed.tx.clone(), disclosed.emergency);
        let (media_type, bytes) = disclosed.into_inner();
        Ok(Opened {
            bytes,
            media_type,
            access_tx: tx
                .ok_or_else(|| Error::internal("opening", "an opening is always logged"))?,
            emergency,
        })
    }
}

/// What a record whose stored parts no longer match its anchor is answered with.
fn altered() -> Error {
    Error::new(
        Kind::Integrity,
        "the stored record does not match its on-chain anchor: it was altered, and is not returned",
    )
}

/// The patient's own data, which needs no log.
fn own_only<T>(patient: &Person, data: Unlogged<T>) -> Result<T> {
    data.own(patient)
        .map_err(|_| Error::internal("own records", "a patient's listing holds another's data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_judged_from_the_bytes() {
        assert_eq!(sniff(b"%PDF-1.7\n..."), Some("application/pdf"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0"), Some("image/png"));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(
            sniff(br#"{"resourceType":"Observation","status":"final"}"#),
            Some("application/fhir+json")
        );
        assert_eq!(sniff(br#"[1,2]"#), Some("application/json"));
        assert_eq!(sniff(b"blood pressure 120/80\n"), Some("text/plain"));
        assert_eq!(sniff(b"MZ\x90\0\x03"), None, "an executable");
        assert_eq!(sniff(b"<html>\x00</html>"), None);
        assert_eq!(sniff(b"{not json"), Some("text/plain"));
    }
}
