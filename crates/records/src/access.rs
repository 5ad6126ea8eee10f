//! Who may see what, as the chain decides it: the Consent binding (`canAccess`, the open
//! emergency, `profileAccess`) and the Research binding (a live opt-in). This is the only code
//! that makes the proofs the keyring asks for before it uses a key (`Allowed`, `Participating`,
//! `Own`): their fields are private here, and the tidy test fails if any other file builds one.
//!
//! The escrow may stand in for a doctor's own wrapped key only where the chain allows the doctor
//! without one — a grant to their hospital from before they joined, or an emergency — and, under
//! an emergency, only if the server holds the emergency's reason sealed and its salted hash is
//! the one on chain: a declaration sent around the server opens nothing through the escrow.

use alloy::{
    primitives::{Address, B256, keccak256},
    sol_types::SolEvent,
};

use std::sync::Arc;

use alloy::providers::DynProvider;

use crate::{
    contracts::{Consent, Contracts},
    db::Db,
    error::{Error, Result},
    index::{Events, Indexer},
    keyring::Keyring,
    ledger::Ledger,
    model::{PROFILE_CONTACT, PROFILE_IDENTITY, Purpose, Role},
    person::Person,
    store::{
        emergencies::Emergencies,
        records::RecordRow,
        studies::Studies,
        wraps::{ObjectId, Wraps},
    },
};

/// Proof that the chain lets `reader` see `object` of `patient` at this moment. Only this module
/// makes one; the keyring unlocks nothing without it.
#[derive(Debug)]
pub(crate) struct Allowed {
    patient: Address,
    reader: Address,
    object: ObjectId,
    /// For a part of a profile: which fields it is.
    fields: u8,
    /// Whether the escrow may stand in for the reader's own wrapped key.
    escrow_stands_in: bool,
}

impl Allowed {
    /// A proof made up for the keyring's unit tests (which have no chain to ask).
    #[cfg(test)]
    pub(crate) fn for_tests(
        patient: Address,
        reader: Address,
        object: ObjectId,
        escrow_stands_in: bool,
    ) -> Allowed {
        Allowed {
            patient,
            reader,
            object,
            fields: 0,
            escrow_stands_in,
        }
    }

    pub(crate) fn patient(&self) -> Address {
        self.patient
    }

    pub(crate) fn reader(&self) -> Address {
        self.reader
    }

    pub(crate) fn object(&self) -> ObjectId {
        self.object
    }

    pub(crate) fn fields(&self) -> u8 {
        self.fields
    }

    pub(crate) fn escrow_may_stand_in(&self) -> bool {
        self.escrow_stands_in
    }
}

/// Proof that `patient`'s opt-in to a study is live on chain: the research key may hold and
/// open their bundles, for de-identified exports only.
#[derive(Debug)]
pub(crate) struct Participating {
    patient: Address,
}

impl Participating {
    #[cfg(test)]
    pub(crate) fn for_tests(patient: Address) -> Participating {
        Participating { patient }
    }

    pub(crate) fn patient(&self) -> Address {
        self.patient
    }
}

/// Proof that an object is the person's own: their second factor's secret, or an emergency's
/// reason they declared or are the patient of.
#[derive(Debug)]
pub(crate) struct Own {
    person: Address,
    object: ObjectId,
}

impl Own {
    pub(crate) fn person(&self) -> Address {
        self.person
    }

    pub(crate) fn object(&self) -> ObjectId {
        self.object
    }
}

/// The Consent and Research bindings, and what they need to decide: the ledger and the
/// contracts' addresses, the stored emergencies, the chain index (an emergency's declaration),
/// and the keyring (to read an emergency's reason with its doctor's own key).
#[derive(Clone)]
pub(crate) struct Access {
    db: Db,
    ledger: Ledger,
    contracts: Contracts,
    indexer: Indexer,
    keyring: Arc<Keyring>,
}

impl Access {
    pub(crate) fn new(
        db: Db,
        ledger: Ledger,
        contracts: Contracts,
        indexer: Indexer,
        keyring: Arc<Keyring>,
    ) -> Access {
        Access {
            db,
            ledger,
            contracts,
            indexer,
            keyring,
        }
    }

    fn consent(&self) -> Consent::ConsentInstance<DynProvider> {
        self.contracts.consent_on(&self.ledger)
    }

    /// Whether `patient`'s opt-in to study `id` is live, as the chain says now.
    pub(crate) async fn opted_in(&self, patient: Address, id: u64) -> Result<bool> {
        self.contracts
            .research_on(&self.ledger)
            .isOptedIn(patient, id)
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))
    }

    /// Whether any of `patient`'s opt-ins is live now.
    async fn takes_part(&self, patient: Address) -> Result<bool> {
        for id in Studies(&self.db).ids().await? {
            if self.opted_in(patient, id).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The sealed reason of an emergency that is `person`'s own (they declared it, or it is
    /// theirs as the patient), opened with their own key.
    pub(crate) async fn emergency_reason_of(
        &self,
        person: &Person,
        own: &Own,
    ) -> Result<Option<Reason>> {
        let Some(stored) = Emergencies(&self.db).get(&own.object()).await? else {
            return Ok(None);
        };
        let Some(key) = self
            .keyring
            .unlock_own(Wraps(&self.db), person, own)
            .await?
        else {
            return Ok(None);
        };
        let Some(plain) = key.open_own(&own.object().aad(), &stored.sealed_reason)? else {
            return Ok(None);
        };
        let body: serde_json::Value =
            serde_json::from_slice(&plain).map_err(|e| Error::internal("emergency reason", e))?;
        let (Some(text), Some(salt)) = (
            body["reason"].as_str(),
            body["salt"].as_str().and_then(|s| s.parse().ok()),
        ) else {
            return Ok(None);
        };
        Ok(Some(Reason {
            text: text.to_string(),
            salt,
        }))
    }

    /// Whether the chain lets `reader` open `record` of `patient` for `purpose`.
    pub(crate) async fn can_access(
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
            .map_err(|e| self.ledger.call_error(e))
    }

    /// Which parts of `patient`'s profile the chain lets `reader` see now, and whether only
    /// through an emergency.
    pub(crate) async fn profile_access(
        &self,
        patient: Address,
        reader: Address,
    ) -> Result<(u8, bool)> {
        let access = self
            .consent()
            .profileAccess(patient, reader)
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))?;
        Ok((access.fields, access.emergency))
    }

    /// Whether `doctor`'s emergency access to `patient` is open now.
    pub(crate) async fn emergency_open(&self, patient: Address, doctor: Address) -> Result<bool> {
        let until = self
            .consent()
            .emergencyUntil(patient, doctor)
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))?;
        Ok(until > self.ledger.now().await? && until > 0)
    }

    /// Whether the chain lets `reader` open `row` now: the proof every use of its key needs.
    /// The patient needs no question to the chain for their own.
    pub(crate) async fn record_allowed(
        &self,
        reader: &Person,
        row: &RecordRow,
        purpose: Purpose,
    ) -> Result<Option<Allowed>> {
        let proof = |escrow_stands_in| Allowed {
            patient: row.patient,
            reader: reader.address,
            object: ObjectId::Record(row.id),
            fields: 0,
            escrow_stands_in,
        };
        if reader.address == row.patient && reader.role == Role::Patient {
            return Ok(Some(proof(false)));
        }
        if !self
            .can_access(row.patient, reader.address, row.id, purpose)
            .await?
        {
            return Ok(None);
        }
        let escrow = self.escrow_may_stand_in(reader, row.patient).await?;
        Ok(Some(proof(escrow)))
    }

    /// `record_allowed`, or a refusal that says the same whether the record exists for someone
    /// else or not.
    pub(crate) async fn check_record_access(
        &self,
        reader: &Person,
        row: &RecordRow,
        purpose: Purpose,
    ) -> Result<Allowed> {
        self.record_allowed(reader, row, purpose)
            .await?
            .ok_or_else(|| {
                Error::forbidden(
                    "you have no access to this record: no live grant or emergency covers it",
                )
            })
    }

    /// The parts of `patient`'s profile in `want` the chain lets `reader` see now (identity
    /// first, then contact), and whether only through an emergency.
    pub(crate) async fn profile_allowed(
        &self,
        reader: &Person,
        patient: Address,
        want: u8,
    ) -> Result<(Vec<Allowed>, bool)> {
        let own = reader.address == patient && reader.role == Role::Patient;
        let (fields, emergency) = if own {
            (PROFILE_IDENTITY | PROFILE_CONTACT, false)
        } else {
            self.profile_access(patient, reader.address).await?
        };
        let fields = fields & want;
        let escrow = !own && fields != 0 && self.escrow_may_stand_in(reader, patient).await?;
        let mut out = Vec::new();
        for (field, object) in [
            (PROFILE_IDENTITY, ObjectId::Profile(patient)),
            (PROFILE_CONTACT, ObjectId::Contact(patient)),
        ] {
            if fields & field != 0 {
                out.push(Allowed {
                    patient,
                    reader: reader.address,
                    object,
                    fields: field,
                    escrow_stands_in: escrow,
                });
            }
        }
        Ok((out, emergency))
    }

    /// Whether the chain lets `grantee` see `object` of `patient` now through a grant (for
    /// `purpose`, for a record): the proof their own wrapped key needs before it is made.
    pub(crate) async fn grantee_allowed(
        &self,
        patient: Address,
        grantee: Address,
        object: ObjectId,
        purpose: Purpose,
    ) -> Result<Option<Allowed>> {
        let (allowed, fields) = match object {
            ObjectId::Record(id) => (self.can_access(patient, grantee, id, purpose).await?, 0),
            ObjectId::Profile(p) | ObjectId::Contact(p) if p == patient => {
                let field = match object {
                    ObjectId::Profile(_) => PROFILE_IDENTITY,
                    _ => PROFILE_CONTACT,
                };
                let (fields, emergency) = self.profile_access(patient, grantee).await?;
                (fields & field != 0 && !emergency, field)
            }
            _ => (false, 0),
        };
        Ok(allowed.then_some(Allowed {
            patient,
            reader: grantee,
            object,
            fields,
            escrow_stands_in: false,
        }))
    }

    /// Proof that `patient` takes part in a study now (one of their opt-ins is live on chain).
    pub(crate) async fn participating(&self, patient: Address) -> Result<Option<Participating>> {
        Ok(self
            .takes_part(patient)
            .await?
            .then_some(Participating { patient }))
    }

    /// Proof that `patient`'s opt-in to `study` is live on chain, for an export of that study.
    pub(crate) async fn participating_in(
        &self,
        patient: Address,
        study: u64,
    ) -> Result<Option<Participating>> {
        Ok(self
            .opted_in(patient, study)
            .await?
            .then_some(Participating { patient }))
    }

    /// Proof that `object` is `person`'s own (their second factor, or the reason of an emergency
    /// they declared or are the patient of), or `None`.
    pub(crate) async fn own(&self, person: &Person, object: ObjectId) -> Result<Option<Own>> {
        let mine =
            match object {
                ObjectId::SecondFactor(a) | ObjectId::SecondFactorPending(a) => a == person.address,
                ObjectId::Emergency(_) => {
                    Emergencies(&self.db).parties(&object).await?.is_some_and(
                        |(patient, doctor)| person.address == patient || person.address == doctor,
                    )
                }
                _ => false,
            };
        Ok(mine.then_some(Own {
            person: person.address,
            object,
        }))
    }

    /// Whether the escrow may stand in for `reader`'s own wrapped key to `patient`'s data: a
    /// doctor the chain allows without one, and, if an emergency is what allows them now, only
    /// one whose reason the server holds and whose hash is on chain.
    async fn escrow_may_stand_in(&self, reader: &Person, patient: Address) -> Result<bool> {
        if reader.role != Role::Doctor {
            return Ok(false);
        }
        if !self.emergency_open(patient, reader.address).await? {
            return Ok(true);
        }
        self.emergency_reason_held(reader, patient).await
    }

    /// Whether `doctor`'s latest emergency for `patient` (on chain) was declared through the
    /// server: its declaring transaction is the one a stored, sealed reason was sent with, and
    /// the reason, opened with the doctor's own key, hashes (with its salt) to what the chain
    /// holds.
    pub(crate) async fn emergency_reason_held(
        &self,
        doctor: &Person,
        patient: Address,
    ) -> Result<bool> {
        let Some((tx, reason_hash)) = self.latest_declaration(patient, doctor.address).await?
        else {
            return Ok(false);
        };
        let Some(object) = Emergencies(&self.db).declared_in(&tx).await? else {
            return Ok(false);
        };
        let Some(own) = self.own(doctor, object).await? else {
            return Ok(false);
        };
        let Some(reason) = self.emergency_reason_of(doctor, &own).await? else {
            return Ok(false);
        };
        Ok(reason.hash() == reason_hash)
    }

    /// The transaction and reason hash of `doctor`'s latest emergency declaration for
    /// `patient`, as the chain logged it.
    pub(crate) async fn latest_declaration(
        &self,
        patient: Address,
        doctor: Address,
    ) -> Result<Option<(B256, B256)>> {
        Ok(self
            .declarations_of(doctor)
            .await?
            .into_iter()
            .find(|(_, d)| d.patient == patient)
            .map(|(tx, d)| (tx, d.reasonHash)))
    }

    /// Every emergency `doctor` declared, newest first, with its transaction (from the chain
    /// index, brought up to the chain first).
    pub(crate) async fn declarations_of(
        &self,
        doctor: Address,
    ) -> Result<Vec<(B256, Consent::EmergencyDeclared)>> {
        self.indexer.index_chain().await?;
        let logs = self
            .indexer
            .indexed_events(Events {
                addresses: vec![self.contracts.consent],
                topics0: &[Consent::EmergencyDeclared::SIGNATURE_HASH],
                topic: Some((2, doctor.into_word())),
                since: 0,
                before: None,
                limit: None,
            })
            .await?;
        logs.iter()
            .filter_map(|log| log.transaction_hash.map(|tx| (tx, log)))
            .map(|(tx, log)| {
                Consent::EmergencyDeclared::decode_log_data(log.data())
                    .map(|d| (tx, d))
                    .map_err(|e| Error::internal("EmergencyDeclared", e))
            })
            .collect()
    }
}

/// An emergency's reason as the server keeps it sealed: the words and the salt its on-chain
/// hash was made with.
pub(crate) struct Reason {
    pub(crate) text: String,
    pub(crate) salt: B256,
}

impl Reason {
    /// The salted hash that goes on chain.
    pub(crate) fn hash(&self) -> B256 {
        let mut salted = self.salt.to_vec();
        salted.extend_from_slice(self.text.as_bytes());
        keccak256(&salted)
    }
}
impl Access {
    /// The reason of the emergency declared in `tx_hash` with `reason_hash` on chain, for its
    /// patient or its doctor, and whether it was declared around the server (no stored reason
    /// whose hash is that one): what its patient and the admins are told.
    pub(crate) async fn declared_reason(
        &self,
        reader: &Person,
        tx_hash: &B256,
        reason_hash: B256,
    ) -> Result<(Option<String>, bool)> {
        let Some(stored) = Emergencies(&self.db).by_tx(tx_hash).await? else {
            return Ok((None, true));
        };
        if stored.reason_hash.is_some_and(|h| h != reason_hash) {
            return Ok((None, true));
        }
        let Some(own) = self.own(reader, stored.object).await? else {
            return Ok((None, false));
        };
        Ok(match self.emergency_reason_of(reader, &own).await? {
            Some(reason) if reason.hash() == reason_hash => (Some(reason.text), false),
            Some(_) => (None, true),
            None => (None, false),
        })
    }
}
