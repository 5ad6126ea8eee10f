//! Break-glass: a doctor declares an emergency for a patient (bounded by the contract: one open
//! at a time, a daily cap), the patient sees it at once with its reason, and the patient or an
//! admin ends it. The reason stays off chain, sealed for the patient and the doctor.

use alloy::{
    primitives::{Address, B256, U256},
    sol_types::{SolCall, SolEvent},
};
use medledger_vault::{Dek, seal};
use serde::Serialize;

use crate::{
    access::Access,
    audit::Audit,
    db::Db,
    follows::Writer,
    index::Indexer,
    ledger::{Contracts, Ledger},
    people::People,
};
use crate::{
    access::Reason,
    audit::Action,
    contracts::Consent,
    error::{Error, Result},
    index::Events,
    journal::Follow,
    ledger::TxInfo,
    model::Role,
    model::unix_now,
    person::Person,
    store::{
        emergencies::{Emergencies, NewEmergency},
        wraps::{ObjectId, Reader},
    },
};

/// How long an ended emergency stays on its patient's pages.
pub const SHOWN_AFTER_END_SECS: u64 = 7 * 86_400;

/// A declared emergency, as its declaration answers.
#[derive(Debug, Clone, Serialize)]
pub struct Emergency {
    /// The Consent contract's id for it.
    pub id: u64,
    pub patient: Address,
    pub doctor: Address,
    pub until: u64,
}

/// An emergency as the patient, its doctor or an admin sees it.
#[derive(Debug, Clone, Serialize)]
pub struct EmergencyView {
    pub id: u64,
    pub patient: Address,
    pub doctor: Address,
    pub doctor_name: String,
    pub hospital: String,
    /// Unsealed for the patient and the doctor; nobody else sees it.
    pub reason: Option<String>,
    /// Declared on chain around medledger (signed by the doctor's own key, with a reason hash
    /// the server holds no reason for): no reason was given, and the escrow opens nothing
    /// under it.
    pub declared_outside: bool,
    pub start: u64,
    /// When it ends, or ended.
    pub until: u64,
    pub open: bool,
    /// Who ended it early.
    pub ended_by: Option<Address>,
    pub ended_by_name: Option<String>,
    /// What the doctor opened or viewed under it, as the patient's log says it (for the
    /// patient); how many times (for the others).
    pub used: Vec<String>,
    pub tx_hash: B256,
}

#[derive(Clone)]
pub struct BreakGlass {
    db: Db,
    ledger: Ledger,
    contracts: Contracts,
    access: Access,
    indexer: Indexer,
    people: People,
    audit: Audit,
    writer: Writer,
}

impl BreakGlass {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        db: Db,
        ledger: Ledger,
        contracts: Contracts,
        access: Access,
        indexer: Indexer,
        people: People,
        audit: Audit,
        writer: Writer,
    ) -> BreakGlass {
        BreakGlass {
            db,
            ledger,
            contracts,
            access,
            indexer,
            people,
            audit,
            writer,
        }
    }
}

impl BreakGlass {
    /// A doctor declares an emergency for a patient. The reason stays off chain, sealed for the
    /// patient and the doctor; the chain gets a salted hash of it.
    pub async fn declare_emergency(
        &self,
        doctor: &Person,
        patient: Address,
        reason: &str,
    ) -> Result<(Emergency, TxInfo)> {
        self.people.require_doctor(doctor)?;
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 2000 {
            return Err(Error::invalid("give a reason of 1 to 2000 characters"));
        }
        let patient_account = self
            .people
            .account_by_address(patient)
            .await?
            .filter(|a| a.role == Role::Patient)
            .ok_or_else(|| Error::not_found("there is no such patient"))?;
        let reason = Reason {
            text: reason.to_string(),
            salt: crate::model::random_b256(),
        };
        let reason_hash = reason.hash();
        let call = Consent::declareEmergencyCall {
            patient,
            reasonHash: reason_hash,
        };
        let dek = Dek::generate();
        let body = serde_json::json!({ "reason": reason.text, "salt": reason.salt });
        let object = ObjectId::Emergency(crate::model::random_b256());
        let sealed = seal(&dek, &object.aad(), body.to_string().as_bytes());
        // The sealed reason is stored first, so the patient can read why once the chain says it
        // (and the escrow opens nothing under a declaration whose reason is not held).
        let stored = async {
            Emergencies(&self.db)
                .insert(&NewEmergency {
                    object,
                    patient,
                    doctor: doctor.address,
                    sealed_reason: &sealed,
                    reason_hash,
                    created_at: unix_now(),
                })
                .await?;
            let wraps = crate::store::wraps::Wraps(&self.db);
            wraps
                .put(
                    &object,
                    Reader::Account(patient),
                    &patient_account.enc_public,
                    &dek,
                )
                .await?;
            wraps
                .put(
                    &object,
                    Reader::Account(doctor.address),
                    &doctor.secret.public_key(),
                    &dek,
                )
                .await
        };
        let consent = self.contracts.consent;
        let (tx, receipt) = self
            .writer
            .write_after(
                &doctor.signer,
                consent,
                call.abi_encode(),
                Follow::Emergency {
                    object: object.to_string(),
                },
                None,
                stored,
            )
            .await?
            .mined()?;
        let declared = receipt
            .decoded_log::<Consent::EmergencyDeclared>()
            .ok_or_else(|| Error::internal("emergency", "no EmergencyDeclared event"))?;
        Ok((
            Emergency {
                id: declared.data.id.try_into().unwrap_or(u64::MAX),
                patient,
                doctor: doctor.address,
                until: declared.data.until,
            },
            tx,
        ))
    }

    /// The patient, or an admin, ends an open emergency at once (on chain, signed by them).
    pub async fn end_emergency(&self, person: &Person, id: u64) -> Result<TxInfo> {
        let e = self.chain_emergency(id).await?;
        let allowed = match person.role {
            Role::Admin => true,
            Role::Patient => person.address == e.patient,
            _ => false,
        };
        if !allowed {
            return Err(Error::forbidden(
                "only the patient or an admin may end an emergency",
            ));
        }
        let call = Consent::endEmergencyCall {
            patient: e.patient,
            doctor: e.doctor,
        };
        let consent = self.contracts.consent;
        let (tx, _) = self
            .writer
            .write(&person.signer, consent, call.abi_encode(), Follow::Nothing)
            .await?
            .mined()?;
        Ok(tx)
    }

    async fn chain_emergency(&self, id: u64) -> Result<Consent::Emergency> {
        self.contracts
            .consent_on(&self.ledger)
            .getEmergency(U256::from(id))
            .call()
            .await
            .map_err(|e| {
                let e = self.ledger.call_error(e);
                if e.kind == crate::Kind::NotFound {
                    Error::not_found("there is no such emergency")
                } else {
                    e
                }
            })
    }

    /// The emergencies a person should see now: a patient's own while open and for a week
    /// after, with what was done under them; a doctor's own, the same; for an admin, every one
    /// still open.
    pub async fn emergencies(&self, person: &Person) -> Result<Vec<EmergencyView>> {
        let topic = match person.role {
            Role::Patient => Some((1, person.address.into_word())),
            Role::Doctor => Some((2, person.address.into_word())),
            Role::Admin => None,
            Role::Researcher => return Err(Error::forbidden("researchers see no emergency")),
            Role::None => return Err(Error::forbidden("log in to see emergencies")),
        };
        let now = self.ledger.now().await?;
        self.indexer.index_chain().await?;
        let logs = self
            .indexer
            .indexed_events(Events {
                addresses: vec![self.contracts.consent],
                topics0: &[Consent::EmergencyDeclared::SIGNATURE_HASH],
                topic,
                since: 0,
                before: None,
                limit: None,
            })
            .await?;
        let mut shown = Vec::new();
        for log in &logs {
            let declared = Consent::EmergencyDeclared::decode_log_data(log.data())
                .map_err(|e| Error::internal("EmergencyDeclared", e))?;
            let id: u64 = declared.id.try_into().unwrap_or(u64::MAX);
            let e = self.chain_emergency(id).await?;
            let open = e.until > now;
            let recent = e.until + SHOWN_AFTER_END_SECS > now;
            if open || (recent && person.role != Role::Admin) {
                shown.push((log, id, e, open));
            }
        }
        // What was done under them: the patient's log since the first of them.
        let since = shown.iter().filter_map(|(log, ..)| log.block_number).min();
        let events = match since {
            Some(since) if person.role == Role::Patient => {
                self.audit.audit_since(person, since).await?
            }
            _ => Vec::new(),
        };
        let mut out = Vec::new();
        for (log, id, e, open) in shown {
            let tx_hash = log.transaction_hash.unwrap_or_default();
            let (reason, declared_outside) = self
                .access
                .declared_reason(person, &tx_hash, e.reasonHash)
                .await?;
            let doctor = self.people.doctor(e.doctor).await?;
            let hospital = self
                .people
                .hospital(doctor.hospital_id)
                .await
                .map(|h| h.name)
                .unwrap_or_default();
            let ended_by = (e.endedBy != Address::ZERO).then_some(e.endedBy);
            let ended_by_name = match ended_by {
                Some(a) => self.people.display_name(a).await?,
                None => None,
            };
            let used = if person.role == Role::Patient {
                events
                    .iter()
                    .filter(|a| {
                        a.reader == e.doctor
                            && a.emergency
                            && (e.start..=e.until).contains(&a.time)
                            && a.action != Action::DeclaredEmergency
                    })
                    .map(|a| a.summary.clone())
                    .collect()
            } else {
                Vec::new()
            };
            out.push(EmergencyView {
                id,
                patient: e.patient,
                doctor: e.doctor,
                doctor_name: doctor.name,
                hospital,
                reason,
                declared_outside,
                start: e.start,
                until: e.until,
                open,
                ended_by,
                ended_by_name,
                used,
                tx_hash,
            });
        }
        Ok(out)
    }
}
