//! Prescriptions: written by a doctor who may treat the patient, sealed and anchored like a
//! report, and read by the two of them.

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

use super::{Anchor, Meta, RecordRow, Whose};
use crate::store::records::object_id;
use crate::{
    access::Allowed,
    disclosure::{Logged, Unlogged},
    error::{Error, Result},
    ledger::TxInfo,
    model::{Integrity, Purpose, RecordKind, Role},
    person::Person,
    reports::Reports,
};

/// One medication line of a prescription.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Medication {
    pub name: String,
    #[serde(default)]
    pub dose: String,
    #[serde(default)]
    pub frequency: String,
    #[serde(default)]
    pub duration: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PrescriptionBody {
    pub medications: Vec<Medication>,
    #[serde(default)]
    pub notes: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrescriptionView {
    pub id: B256,
    pub patient: Address,
    pub doctor: Address,
    pub created_at: i64,
    pub body: Option<PrescriptionBody>,
    pub anchor: Anchor,
}

impl Reports {
    /// A doctor prescribes for a patient they may treat (the contract decides; we check first to
    /// answer clearly).
    pub async fn prescribe(
        &self,
        doctor: &Person,
        patient: Address,
        body: &PrescriptionBody,
    ) -> Result<(PrescriptionView, TxInfo)> {
        self.people.require_doctor(doctor)?;
        if body.medications.is_empty() || body.medications.len() > 50 {
            return Err(Error::invalid(
                "a prescription has 1 to 50 medication lines",
            ));
        }
        for m in &body.medications {
            if m.name.trim().is_empty() {
                return Err(Error::invalid("every medication line needs a name"));
            }
            if [&m.name, &m.dose, &m.frequency, &m.duration]
                .iter()
                .any(|f| f.len() > 200)
            {
                return Err(Error::invalid(
                    "a medication field is too long (200 at most)",
                ));
            }
        }
        if body.notes.len() > 10_000 {
            return Err(Error::invalid("notes are limited to 10,000 characters"));
        }
        let can_treat = self
            .contracts
            .consent_on(&self.ledger)
            .canTreat(patient, doctor.address)
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))?;
        if !can_treat {
            return Err(Error::forbidden(
                "you may not treat this patient: no live treatment grant or emergency",
            ));
        }
        let bytes = serde_json::to_vec(body).map_err(|e| Error::internal("prescription", e))?;
        let meta = Meta {
            title: "Prescription".into(),
            date: String::new(),
            notes: String::new(),
            media_type: "application/json".into(),
            size: bytes.len() as u64,
            digest: String::new(),
            resources: Default::default(),
        };
        let (view, tx) = self
            .store_record(
                doctor,
                patient,
                RecordKind::Prescription,
                &meta,
                &bytes,
                None,
            )
            .await?;
        Ok((
            PrescriptionView {
                id: view.id,
                patient,
                doctor: doctor.address,
                created_at: view.created_at,
                body: Some(body.clone()),
                anchor: view.anchor,
            },
            tx,
        ))
    }

    /// A patient's prescriptions, or those a doctor wrote: a doctor sees the lines of those the
    /// chain still lets them read, once that view is logged on chain. Lines whose prescription
    /// no longer matches its anchor are not shown, and it says so.
    pub async fn prescriptions(&self, person: &Person) -> Result<Vec<PrescriptionView>> {
        let rows = match person.role {
            Role::Patient => self.record_rows(Whose::Patient, person.address).await?,
            Role::Doctor => self.record_rows(Whose::Author, person.address).await?,
            _ => {
                return Err(Error::forbidden(
                    "only patients and doctors have prescriptions",
                ));
            }
        };
        let mut out = Unlogged::nothing(Vec::new());
        for row in rows
            .into_iter()
            .filter(|r| r.kind == RecordKind::Prescription)
        {
            let allowed = self
                .access
                .record_allowed(person, &row, Purpose::Treatment)
                .await?;
            let (body, integrity) = match allowed {
                Some(allowed) => self.prescription_body(person, &row, &allowed).await?,
                None => (None, None),
            };
            let view = |body| PrescriptionView {
                id: row.id,
                patient: row.patient,
                doctor: row.author,
                created_at: row.created_at,
                body,
                anchor: Anchor::of(&row, integrity),
            };
            out.push(match body {
                Some(body) => body.map(|b| view(Some(b))),
                None => Unlogged::nothing(view(None)),
            });
        }
        Ok(self
            .readlog
            .disclose(person, out, Purpose::Treatment, Logged::Viewed)
            .await?
            .into_inner())
    }

    /// A prescription's lines, if they are what its anchor covers, still to be logged; and its
    /// check when it does not match.
    async fn prescription_body(
        &self,
        reader: &Person,
        row: &RecordRow,
        allowed: &Allowed,
    ) -> Result<(Option<Unlogged<PrescriptionBody>>, Option<Integrity>)> {
        let (checked, body) = self.anchors.check_record(row, true).await?;
        let Some(blob) = body.filter(|_| checked.details) else {
            return Ok((None, checked.file));
        };
        let Some(key) = self
            .keyring
            .as_ref()
            .unlock(crate::store::wraps::Wraps(&self.db), reader, allowed)
            .await?
        else {
            return Ok((None, checked.file));
        };
        let body = key
            .open(&object_id(&row.id).aad(), &blob)?
            .and_then(|plain| {
                serde_json::from_slice(&plain).map_err(|e| Error::internal("prescription", e))
            })?;
        Ok((Some(body), checked.file))
    }
}
