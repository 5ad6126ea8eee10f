//! Health reports and prescriptions: sealed under a fresh key each, stored as blobs named by their
//! random id, anchored on chain by the hash of the ciphertext, and opened only after the chain
//! says the reader may (`Consent.canAccess`), the blob matches its anchor, and the opening is
//! logged on chain signed by the reader.

use alloy::{
    primitives::{Address, B256, keccak256},
    sol_types::SolCall,
};
use medledger_vault::{Dek, open, seal};
use serde::{Deserialize, Serialize};
use sqlx::Row;

mod integrity;
mod prescriptions;
pub mod structured;

pub use integrity::{BlobReport, Problem, verify_store};
pub use prescriptions::{Medication, PrescriptionBody, PrescriptionView};
pub use structured::Entry;

use crate::{
    accounts::{Person, address_key},
    app::{App, unix_now},
    contracts::{Consent, Records},
    disclosure::Disclosure,
    error::{Error, Kind, Result},
    journal::Follow,
    ledger::TxInfo,
    model::{Integrity, Purpose, RecordKind, Role},
    sharing::GrantInput,
    wraps::{ObjectId, Reader},
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

/// With whom a report is shared as it is shared: each doctor, and every doctor of a hospital,
/// gets a grant of this one record, for one purpose, for a number of days.
#[derive(Debug, Clone)]
pub struct ShareWith {
    pub doctors: Vec<Address>,
    pub hospital: Option<u64>,
    pub purpose: Purpose,
    pub days: u64,
}

/// A report shared, and the grants made with it.
#[derive(Debug, Clone)]
pub struct Shared {
    pub record: RecordView,
    pub tx: TxInfo,
    pub grants: Vec<(crate::sharing::GrantView, TxInfo)>,
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

/// Where a record is anchored, and whether its stored ciphertext still matches.
#[derive(Debug, Clone, Serialize)]
pub struct Anchor {
    pub content_hash: B256,
    pub tx_hash: Option<B256>,
    pub block_number: Option<u64>,
    /// When checked: whether the stored ciphertext still matches the anchor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Integrity>,
}

/// Proof that the chain allows a reader a record at this moment (only `App::allowed` makes
/// one): no record's key is used without it.
pub(crate) struct Allowed(());

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

fn blob_key(id: &B256) -> String {
    hex::encode(id)
}

fn meta_aad(id: &B256) -> Vec<u8> {
    format!("meta:{id}").into_bytes()
}

fn resources_aad(id: &B256) -> Vec<u8> {
    format!("resources:{id}").into_bytes()
}

fn object_id(id: &B256) -> ObjectId {
    ObjectId::Record(*id)
}

/// Whose records a listing is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Whose {
    /// The patient's the records are.
    Patient,
    /// Their author's (a prescription's doctor).
    Author,
}

/// A stored record row.
pub(crate) struct Row_ {
    pub(crate) id: B256,
    pub(crate) patient: Address,
    pub(crate) author: Address,
    pub(crate) kind: RecordKind,
    pub(crate) meta: Vec<u8>,
    /// The sealed structured content (a FHIR Bundle's resources), if any.
    pub(crate) resources: Option<Vec<u8>>,
    pub(crate) content_hash: B256,
    pub(crate) tx_hash: Option<B256>,
    pub(crate) block_number: Option<u64>,
    pub(crate) created_at: i64,
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T> {
    s.parse()
        .map_err(|_| Error::internal("stored record", format!("bad {what}")))
}

fn row_from(row: &crate::db::DbRow) -> Result<Row_> {
    let kind: i64 = row.try_get("kind")?;
    let tx: Option<String> = row.try_get("tx_hash")?;
    let block: Option<i64> = row.try_get("block_number")?;
    Ok(Row_ {
        id: parse(&row.try_get::<String, _>("id")?, "id")?,
        patient: parse(&row.try_get::<String, _>("patient")?, "patient")?,
        author: parse(&row.try_get::<String, _>("author")?, "author")?,
        kind: RecordKind::try_from(kind as u8)
            .map_err(|_| Error::internal("stored record", "bad kind"))?,
        meta: row.try_get("meta")?,
        resources: row.try_get("resources")?,
        content_hash: parse(&row.try_get::<String, _>("content_hash")?, "hash")?,
        tx_hash: tx.as_deref().map(|t| parse(t, "tx")).transpose()?,
        block_number: block.map(|b| b as u64),
        created_at: row.try_get("created_at")?,
    })
}

/// Parses a record id given by a client.
pub fn parse_record_id(s: &str) -> Result<B256> {
    s.parse()
        .map_err(|_| Error::invalid("a record id is 0x followed by 64 hex digits"))
}

impl App {
    /// Removes a record whose anchor will never be mined: its wrapped keys, row and blob.
    pub(crate) async fn forget_record(&self, id: &B256) -> Result<()> {
        let object = object_id(id);
        self.drop_wraps(&object).await?;
        sqlx::query("DELETE FROM records WHERE id = $1")
            .bind(object.to_string())
            .execute(self.db())
            .await?;
        self.blobs().delete(&blob_key(id)).await?;
        Ok(())
    }

    pub(crate) async fn record_row(&self, id: &B256) -> Result<Row_> {
        let row = sqlx::query("SELECT * FROM records WHERE id = $1 AND tx_hash IS NOT NULL")
            .bind(object_id(id).to_string())
            .fetch_optional(self.db())
            .await?
            .ok_or_else(|| Error::not_found("there is no such record"))?;
        row_from(&row)
    }

    /// A patient's (or an author's) anchored records; those whose anchor is not mined yet are
    /// not there for anyone.
    pub(crate) async fn record_rows(&self, whose: Whose, who: Address) -> Result<Vec<Row_>> {
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
            .fetch_all(self.db())
            .await?;
        rows.iter().map(row_from).collect()
    }

    /// A patient shares a report and, in the same step, grants it to whom `with` names. All of
    /// it is checked before anything is written: the report's fields, that every doctor and the
    /// hospital exist, the days. The API and the share page both come here.
    pub async fn share_report_with(
        &self,
        patient: &Person,
        report: NewReport,
        with: &ShareWith,
    ) -> Result<Shared> {
        self.require_patient(patient)?;
        let checked = self.check_report(&report)?;
        if !with.doctors.is_empty() || with.hospital.is_some() {
            // Each step is its own transaction in the person's wallet: sharing, then each
            // grant. One page cannot chain them, so they are asked for one at a time.
            if matches!(patient.signer, crate::accounts::Signer::Wallet(_)) {
                return Err(Error::unprocessable(
                    "with your own wallet, share the report first, then give access from Sharing: each is its own transaction to confirm",
                )
                .on("share_with"));
            }
            if !(1..=3650).contains(&with.days) {
                return Err(
                    Error::invalid("a number of days between 1 and 3650").on("expires_in_days")
                );
            }
            for doctor in &with.doctors {
                self.doctor(*doctor).await.map_err(|e| e.on("share_with"))?;
            }
            if let Some(h) = with.hospital {
                self.hospital(h).await.map_err(|e| e.on("hospital_id"))?;
            }
        }
        let (record, tx) = self.store_report(patient, report, checked).await?;
        let mut grants = Vec::new();
        let targets = with
            .doctors
            .iter()
            .map(|d| (Some(*d), None))
            .chain(with.hospital.map(|h| (None, Some(h))));
        for (doctor, hospital_id) in targets {
            let input = GrantInput {
                doctor,
                hospital_id,
                ..GrantInput::records(Address::ZERO, vec![record.id], with.purpose, with.days)
            };
            grants.push(self.grant(patient, &input).await?);
        }
        Ok(Shared { record, tx, grants })
    }

    /// The rules a shared report's fields must meet; returns its media type, judged from its
    /// bytes, and, for a FHIR Bundle, its resources (which must meet R4's rules).
    fn check_report(&self, report: &NewReport) -> Result<(&'static str, Option<Vec<Entry>>)> {
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
        if report.bytes.len() > self.max_upload_bytes() {
            return Err(Error::new(
                Kind::TooLarge,
                format!(
                    "the file is larger than the {} MiB limit",
                    self.max_upload_bytes() / (1024 * 1024)
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
        self.require_patient(patient)?;
        let checked = self.check_report(&report)?;
        self.store_report(patient, report, checked).await
    }

    /// `share_report` of a report `check_report` has judged (its media type and, for a
    /// bundle, its resources), so a bundle is parsed and checked once.
    async fn store_report(
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
        self.sync_wraps(patient.address, Some(&patient.secret))
            .await?;
        // A bundle shared while taking part in a study is the study's to export too.
        if entries.is_some() {
            self.sync_research_wraps(patient.address, Some(&patient.secret))
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
        let id = crate::app::random_b256();
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
        let hash = keccak256(&sealed);
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
        // The blob, the row and the wrapped keys go first, so an anchor on chain never points
        // at nothing; the journal removes them only once the anchor surely never lands.
        let stored = async {
            self.blobs().put(&blob_key(&id), sealed).await?;
            sqlx::query(
                "INSERT INTO records (id, patient, author, kind, meta, resources, content_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(object.to_string())
            .bind(address_key(patient))
            .bind(address_key(author.address))
            .bind(u8::from(kind) as i64)
            .bind(sealed_meta)
            .bind(sealed_resources)
            .bind(hash.to_string())
            .bind(now)
            .execute(self.db())
            .await?;
            let patient_key = self
                .account_by_address(patient)
                .await?
                .ok_or_else(|| Error::not_found("there is no such patient"))?
                .enc_public;
            self.put_wrap(&object, Reader::Account(patient), &patient_key, &dek)
                .await?;
            if author.address != patient {
                self.put_wrap(
                    &object,
                    Reader::Account(author.address),
                    &author.secret.public_key(),
                    &dek,
                )
                .await?;
            }
            self.escrow_wrap(&object, &dek).await
        };
        let records = self.contracts().records;
        let (tx, _) = self
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
                integrity: Some(Integrity::Verified),
            },
        };
        Ok((view, tx))
    }

    /// Whether the chain lets `reader` open `record` of `patient` for `purpose`.
    pub async fn can_access(
        &self,
        patient: Address,
        reader: Address,
        record: B256,
        purpose: Purpose,
    ) -> Result<bool> {
        self.consent()
            .canAccess(patient, reader, record, u8::from(purpose))
            .call()
            .await
            .map_err(|e| self.ledger().call_error(e))
    }

    /// Whether `doctor`'s emergency access to `patient` is open now.
    pub async fn emergency_open(&self, patient: Address, doctor: Address) -> Result<bool> {
        let until = self
            .consent()
            .emergencyUntil(patient, doctor)
            .call()
            .await
            .map_err(|e| self.ledger().call_error(e))?;
        Ok(until > self.ledger().now().await? && until > 0)
    }

    /// Whether the chain lets `reader` open `row` now: the proof every use of its key needs.
    /// The patient needs no question to the chain for their own.
    async fn allowed(
        &self,
        reader: &Person,
        row: &Row_,
        purpose: Purpose,
    ) -> Result<Option<Allowed>> {
        if reader.address == row.patient && reader.role == Role::Patient {
            return Ok(Some(Allowed(())));
        }
        Ok(self
            .can_access(row.patient, reader.address, row.id, purpose)
            .await?
            .then_some(Allowed(())))
    }

    /// The data key of `row` for `reader`, whom the chain allows (`Allowed`): their own wrap, or,
    /// where the chain gives a doctor access without one (an open emergency, a grant to their
    /// hospital that predates them), the escrow's.
    async fn key_for(&self, reader: &Person, row: &Row_, _: &Allowed) -> Result<Option<Dek>> {
        let object = object_id(&row.id);
        if let Some(dek) = self
            .take_wrap(&object, Reader::Account(reader.address), &reader.secret)
            .await?
        {
            return Ok(Some(dek));
        }
        if reader.role == Role::Doctor {
            return self.escrow_key_of(&object).await;
        }
        Ok(None)
    }

    fn open_meta(&self, row: &Row_, dek: &Dek) -> Result<Meta> {
        let plain = open(dek, &meta_aad(&row.id), &row.meta)?;
        serde_json::from_slice(&plain).map_err(|e| Error::internal("meta", e))
    }

    /// A record as `reader` sees it: its details only if the chain allows them (`allowed`).
    async fn view(
        &self,
        reader: &Person,
        row: &Row_,
        allowed: Option<&Allowed>,
        check: bool,
    ) -> Result<RecordView> {
        let meta = match allowed {
            Some(allowed) => match self.key_for(reader, row, allowed).await? {
                Some(dek) => Some(self.open_meta(row, &dek)?),
                None => None,
            },
            None => None,
        };
        let integrity = if check {
            Some(self.integrity(row).await?.0)
        } else {
            None
        };
        Ok(RecordView {
            id: row.id,
            patient: row.patient,
            author: row.author,
            kind: row.kind,
            meta,
            created_at: row.created_at,
            anchor: Anchor {
                content_hash: row.content_hash,
                tx_hash: row.tx_hash,
                block_number: row.block_number,
                integrity,
            },
        })
    }

    /// Compares the stored blob with the hash anchored on chain (not the database's copy).
    async fn integrity(&self, row: &Row_) -> Result<(Integrity, Option<Vec<u8>>)> {
        integrity::check_blob(self.ledger(), &self.records(), self.blobs(), row).await
    }

    /// Refuses unless the chain says `reader` may open `row` for `purpose`.
    async fn check_access(&self, reader: &Person, row: &Row_, purpose: Purpose) -> Result<Allowed> {
        // Same answer whether the record exists for someone else or not, to anyone but its
        // patient.
        self.allowed(reader, row, purpose).await?.ok_or_else(|| {
            Error::forbidden(
                "you have no access to this record: no live grant or emergency covers it",
            )
        })
    }

    /// A record's metadata and anchor, with a fresh integrity check; shown to anyone but its
    /// patient only once the view is logged on chain.
    pub async fn record(&self, reader: &Person, id: B256, purpose: Purpose) -> Result<RecordView> {
        let row = self.record_row(&id).await?;
        let allowed = self.check_access(reader, &row, purpose).await?;
        let view = self.view(reader, &row, Some(&allowed), true).await?;
        let mut shown = Disclosure::default();
        shown.record(reader, &view);
        self.disclose(reader, shown, purpose).await?;
        Ok(view)
    }

    /// A patient's own records (reports and others; prescriptions are listed apart), each with
    /// a fresh integrity check of its blob against its anchor when `verify` is set.
    pub async fn my_records(&self, patient: &Person, verify: bool) -> Result<Vec<RecordView>> {
        self.require_patient(patient)?;
        let mut out = Vec::new();
        for row in self.record_rows(Whose::Patient, patient.address).await? {
            if row.kind != RecordKind::Prescription {
                let own = self.allowed(patient, &row, Purpose::Treatment).await?;
                out.push(self.view(patient, &row, own.as_ref(), verify).await?);
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
        let own = Allowed(());
        Ok(match self.key_for(patient, &row, &own).await? {
            Some(dek) => self.open_meta(&row, &dek).ok().map(|m| m.title),
            None => None,
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
        let mut shown = Disclosure::default();
        let list = self
            .doctor_records(doctor, patient, purpose, &mut shown)
            .await?;
        self.disclose(doctor, shown, purpose).await?;
        Ok(list)
    }

    /// One page of the reports of `patient` that `reader` may see now (the patient their own,
    /// a doctor what the chain allows), those `keep` accepts, `skip` then at most `take`, and how
    /// many were kept in all: pages and totals count only what the reader may see. Only what is
    /// on the page is logged on chain as viewed, before it is returned.
    pub async fn reports_page(
        &self,
        reader: &Person,
        patient: Address,
        purpose: Purpose,
        keep: impl Fn(&RecordView) -> bool,
        skip: usize,
        take: usize,
    ) -> Result<(usize, Vec<RecordView>)> {
        let all = if reader.role == Role::Patient {
            if reader.address != patient {
                return Err(Error::forbidden("a patient sees only their own records"));
            }
            self.my_records(reader, false).await?
        } else {
            let mut unlogged = Disclosure::default();
            let mut list = self
                .doctor_records(reader, patient, purpose, &mut unlogged)
                .await?;
            list.retain(|v| v.kind != RecordKind::Prescription);
            list
        };
        let kept: Vec<RecordView> = all.into_iter().filter(|v| keep(v)).collect();
        let total = kept.len();
        let page: Vec<RecordView> = kept.into_iter().skip(skip).take(take).collect();
        let mut shown = Disclosure::default();
        for view in &page {
            shown.record(reader, view);
        }
        self.disclose(reader, shown, purpose).await?;
        Ok((total, page))
    }

    /// `records_for_doctor`, adding what it shows to `shown` instead of logging it.
    pub(crate) async fn doctor_records(
        &self,
        doctor: &Person,
        patient: Address,
        purpose: Purpose,
        shown: &mut Disclosure,
    ) -> Result<Vec<RecordView>> {
        self.require_active_doctor(doctor).await?;
        let mut out = Vec::new();
        for row in self.record_rows(Whose::Patient, patient).await? {
            if let Some(allowed) = self.allowed(doctor, &row, purpose).await? {
                let view = self.view(doctor, &row, Some(&allowed), false).await?;
                shown.record(doctor, &view);
                out.push(view);
            }
        }
        Ok(out)
    }

    /// Opens a record's bytes: access on chain, integrity against the anchor, then the opening
    /// logged on chain signed by the reader, and only then the plaintext.
    pub async fn open_record(&self, reader: &Person, id: B256, purpose: Purpose) -> Result<Opened> {
        let row = self.record_row(&id).await?;
        let allowed = self.check_access(reader, &row, purpose).await?;
        let dek = self.key_for(reader, &row, &allowed).await?.ok_or_else(|| {
            Error::forbidden(
                "no key to this record was shared with you; ask the patient to share it",
            )
        })?;

        let meta = self.open_meta(&row, &dek)?;
        let (status, blob) = self.integrity(&row).await?;
        let blob = match (status, blob) {
            (Integrity::Verified, Some(blob)) => blob,
            (Integrity::Missing, _) => {
                return Err(Error::new(
                    Kind::Integrity,
                    "the stored file of this record is missing",
                ));
            }
            _ => {
                return Err(Error::new(
                    Kind::Integrity,
                    "the stored file does not match its on-chain anchor: it was altered, and is not returned",
                ));
            }
        };
        let bytes = open(&dek, &object_id(&row.id).aad(), &blob)?;
        let call = Consent::logAccessCall {
            patient: row.patient,
            recordId: row.id,
            purpose: u8::from(purpose),
        };
        let consent = self.contracts().consent;
        let (access_tx, receipt) = self
            .log_read(&reader.signer, consent, call.abi_encode())
            .await?
            .mined()?;
        let emergency = receipt
            .decoded_log::<Consent::AccessLogged>()
            .is_some_and(|l| l.data.emergency);
        Ok(Opened {
            bytes,
            media_type: meta.media_type,
            access_tx,
            emergency,
        })
    }
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
