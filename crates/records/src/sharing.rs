//! Consent as the patient gives it: grants to a doctor or a hospital (on chain, signed by the
//! patient) and the wrapped keys that follow them; revocation; a doctor's declared emergency; and
//! the audit trail of every opening, read back from the chain's `AccessLogged` events.

use std::collections::BTreeMap;

use alloy::{
    primitives::{Address, B256, U256},
    sol_types::SolCall,
};
use serde::{Deserialize, Serialize};

use crate::reports::{NewReport, RecordView};
use crate::{
    contracts::Consent,
    disclosure::{Logged, PROFILE_CONTACT, PROFILE_IDENTITY, Unlogged},
    error::{Error, Result},
    journal::Follow,
    ledger::TxInfo,
    model::{Purpose, RecordKind, Role, Scope},
    person::Person,
    store::{emergencies::Emergencies, grants::Grants},
};
use crate::{
    db::Db,
    directory::Directory,
    disclosure::ReadLog,
    follows::Writer,
    ledger::{Contracts, Ledger},
    people::People,
    reports::Reports,
};

/// A grant as a patient asks for it (the words of scope, kinds and purpose become the domain's
/// enums as the request is read; an unknown one is refused naming its field).
#[derive(Debug, Clone, Deserialize)]
pub struct GrantInput {
    /// Grant one doctor...
    pub doctor: Option<Address>,
    /// ...or every active doctor of a hospital.
    pub hospital_id: Option<u64>,
    #[serde(default)]
    pub scope: Scope,
    /// For scope `kinds`.
    #[serde(default)]
    pub kinds: Vec<RecordKind>,
    /// For scope `records`.
    #[serde(default)]
    pub record_ids: Vec<B256>,
    #[serde(default)]
    pub purpose: Purpose,
    /// Unix time the grant ends; or give `expires_in_days`.
    pub expires_at: Option<u64>,
    pub expires_in_days: Option<u64>,
}

/// Whom a grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grantee {
    Doctor(Address),
    /// Every active doctor of the hospital.
    Hospital(u64),
}

impl GrantInput {
    /// A grant of the given records to a doctor, for `days`.
    pub fn records(doctor: Address, records: Vec<B256>, purpose: Purpose, days: u64) -> Self {
        GrantInput {
            doctor: Some(doctor),
            hospital_id: None,
            scope: Scope::Records,
            kinds: Vec::new(),
            record_ids: records,
            purpose,
            expires_at: None,
            expires_in_days: Some(days),
        }
    }

    fn grantee(&self) -> Result<Grantee> {
        match (self.doctor, self.hospital_id) {
            (Some(doctor), None) => Ok(Grantee::Doctor(doctor)),
            (None, Some(hospital)) => Ok(Grantee::Hospital(hospital)),
            _ => Err(Error::invalid(
                "grant either a doctor (doctor) or a hospital (hospital_id)",
            )),
        }
    }
}

/// A patient who shared with a doctor (or whose emergency the doctor declared).
#[derive(Debug, Clone, Serialize)]
pub struct SharedPatient {
    pub address: Address,
    pub name: Option<String>,
    pub date_of_birth: Option<String>,
    /// The latest expiry of the live grants to this doctor (or the emergency's end).
    pub until: u64,
    pub emergency: bool,
}

pub use crate::wrapping::GrantView;

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
    pub grants: Vec<(GrantView, TxInfo)>,
}

/// A doctor's view of one patient.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub patient: Address,
    pub profile: Option<crate::directory::ProfileView>,
    /// Until when the doctor may see this patient, and whether by an emergency.
    pub entry: Option<SharedPatient>,
    pub records: Vec<crate::reports::RecordView>,
}

#[derive(Clone)]
pub struct Sharing {
    db: Db,
    ledger: Ledger,
    contracts: Contracts,
    directory: Directory,
    people: People,
    reports: Reports,
    readlog: ReadLog,
    writer: Writer,
}

impl Sharing {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        db: Db,
        ledger: Ledger,
        contracts: Contracts,
        directory: Directory,
        people: People,
        reports: Reports,
        readlog: ReadLog,
        writer: Writer,
    ) -> Sharing {
        Sharing {
            db,
            ledger,
            contracts,
            directory,
            people,
            reports,
            readlog,
            writer,
        }
    }
}

impl Sharing {
    /// A patient shares a report and, in the same step, grants it to whom `with` names. All of
    /// it is checked before anything is written: the report's fields, that every doctor and the
    /// hospital exist, the days. The API and the share page both come here.
    pub async fn share_report_with(
        &self,
        patient: &Person,
        report: NewReport,
        with: &ShareWith,
    ) -> Result<Shared> {
        self.people.require_patient(patient)?;
        let checked = self.reports.check_report(&report)?;
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
                self.people
                    .doctor(*doctor)
                    .await
                    .map_err(|e| e.on("share_with"))?;
            }
            if let Some(h) = with.hospital {
                self.people
                    .hospital(h)
                    .await
                    .map_err(|e| e.on("hospital_id"))?;
            }
        }
        let (record, tx) = self.reports.store_report(patient, report, checked).await?;
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

    /// A patient grants access, on chain, then wraps the covered records' keys for the grantees.
    pub async fn grant(&self, patient: &Person, input: &GrantInput) -> Result<(GrantView, TxInfo)> {
        self.people.require_patient(patient)?;
        let scope = input.scope;
        let grantee = input.grantee()?;
        let mask = input.kinds.iter().fold(0u8, |m, k| m | k.mask_bit());
        if scope == Scope::Kinds && mask == 0 {
            return Err(Error::invalid("scope kinds needs at least one kind"));
        }
        if scope == Scope::Records {
            if input.record_ids.is_empty() || input.record_ids.len() > 100 {
                return Err(Error::invalid("scope records needs 1 to 100 record ids"));
            }
            for id in &input.record_ids {
                let row = self.reports.record_row(id).await?;
                if row.patient != patient.address {
                    return Err(Error::not_found("there is no such record"));
                }
            }
        }
        let purpose = u8::from(input.purpose);
        let now = self.ledger.now().await?;
        let expires_at = match (input.expires_at, input.expires_in_days) {
            (Some(at), None) => at,
            (None, Some(days)) if (1..=3650).contains(&days) => now + days * 86_400,
            (None, Some(_)) => {
                return Err(Error::invalid("expires_in_days must be between 1 and 3650"));
            }
            (None, None) => return Err(Error::invalid("give expires_at or expires_in_days")),
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "give expires_at or expires_in_days, not both",
                ));
            }
        };
        let kinds_mask = if scope == Scope::Kinds { mask } else { 0 };
        let record_ids = if scope == Scope::Records {
            input.record_ids.clone()
        } else {
            Vec::new()
        };
        let call = match grantee {
            Grantee::Doctor(doctor) => Consent::grantDoctorCall {
                doctor,
                scope: u8::from(scope),
                kindsMask: kinds_mask,
                recordIds: record_ids,
                purpose,
                expiresAt: expires_at,
            }
            .abi_encode(),
            Grantee::Hospital(hospital_id) => Consent::grantHospitalCall {
                hospitalId: hospital_id,
                scope: u8::from(scope),
                kindsMask: kinds_mask,
                recordIds: record_ids,
                purpose,
                expiresAt: expires_at,
            }
            .abi_encode(),
        };
        let consent = self.contracts.consent;
        let (tx, receipt) = self
            .writer
            .write_after(
                &patient.signer,
                consent,
                call,
                Follow::Consent {
                    patient: patient.address,
                },
                Some(&patient.secret),
                async { Ok(()) },
            )
            .await?
            .mined()?;
        let granted = receipt
            .decoded_log::<Consent::Granted>()
            .ok_or_else(|| Error::internal("grant", "no Granted event"))?;
        let id: u64 = granted.data.id.try_into().unwrap_or(u64::MAX);
        Ok((self.grant_view(id).await?, tx))
    }

    pub async fn grant_view(&self, id: u64) -> Result<GrantView> {
        let g = self
            .contracts
            .consent_on(&self.ledger)
            .getGrant(U256::from(id))
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))?;
        crate::wrapping::view_from(g, self.ledger.now().await?)
    }

    /// The transaction that made grant `id`, as this server recorded it (none for a grant made
    /// elsewhere).
    pub async fn grant_tx(&self, id: u64) -> Result<Option<B256>> {
        Grants(&self.db).tx_of(id).await
    }

    /// A patient's grants (all of them, live or not), or those given to a doctor.
    pub async fn grants(&self, person: &Person) -> Result<Vec<GrantView>> {
        match person.role {
            Role::Patient => self.writer.wrapping().grants_of(person.address).await,
            Role::Doctor => {
                self.people.require_active_doctor(person).await?;
                self.grants_to(person).await
            }
            _ => Err(Error::forbidden("only patients and doctors have grants")),
        }
    }

    /// The grants given to a doctor or to their hospital (the caller checked they are active).
    async fn grants_to(&self, doctor: &Person) -> Result<Vec<GrantView>> {
        let hospital = self.people.doctor(doctor.address).await?.hospital_id;
        let mut out = Vec::new();
        for id in Grants(&self.db).to(doctor.address, hospital).await? {
            out.push(self.grant_view(id).await?);
        }
        Ok(out)
    }

    /// A patient revokes a grant; the grantees' wrapped keys go with it.
    pub async fn revoke(&self, patient: &Person, id: u64) -> Result<TxInfo> {
        self.people.require_patient(patient)?;
        let call = Consent::revokeCall { id: U256::from(id) };
        let consent = self.contracts.consent;
        let (tx, _) = self
            .writer
            .write_after(
                &patient.signer,
                consent,
                call.abi_encode(),
                Follow::Consent {
                    patient: patient.address,
                },
                Some(&patient.secret),
                async { Ok(()) },
            )
            .await?
            .mined()?;
        Ok(tx)
    }

    /// The patients who shared with `doctor` through a live grant, or whose emergency is open,
    /// with their names and dates of birth (logged on chain as viewed first).
    pub async fn my_patients(&self, doctor: &Person) -> Result<Vec<SharedPatient>> {
        let list = self.shared_patients(doctor).await?;
        Ok(self
            .readlog
            .disclose(doctor, list, Purpose::Treatment, Logged::Viewed)
            .await?
            .into_inner())
    }

    /// The patients who share with `doctor` now (a live grant or an open emergency), without
    /// their details: only addresses, which reveal nothing the chain does not already show.
    pub async fn sharing_patients(&self, doctor: &Person) -> Result<Vec<Address>> {
        Ok(self.sharing_with(doctor).await?.into_keys().collect())
    }

    /// `my_patients`, still to be logged.
    async fn shared_patients(&self, doctor: &Person) -> Result<Unlogged<Vec<SharedPatient>>> {
        let until = self.sharing_with(doctor).await?;
        let mut out = Unlogged::nothing(Vec::new());
        for (address, (until, emergency)) in until {
            let profile = self
                .directory
                .profile_parts(doctor, address, PROFILE_IDENTITY)
                .await?;
            out.push(profile.map(|profile| SharedPatient {
                address,
                name: profile.as_ref().map(|p| p.name.clone()),
                date_of_birth: profile.map(|p| p.date_of_birth),
                until,
                emergency,
            }));
        }
        Ok(out)
    }

    /// Each patient who shares with an active `doctor` now: until when, and whether only by an
    /// open emergency.
    async fn sharing_with(&self, doctor: &Person) -> Result<BTreeMap<Address, (u64, bool)>> {
        self.people.require_active_doctor(doctor).await?;
        // patient => (access until, by emergency)
        let mut until: BTreeMap<Address, (u64, bool)> = BTreeMap::new();
        for g in self.grants_to(doctor).await? {
            if g.active && g.purpose == Purpose::Treatment {
                let e = until.entry(g.patient).or_default();
                e.0 = e.0.max(g.expires_at);
            }
        }
        let now = self.ledger.now().await?;
        for patient in Emergencies(&self.db).patients_of(doctor.address).await? {
            let end = self
                .contracts
                .consent_on(&self.ledger)
                .emergencyUntil(patient, doctor.address)
                .call()
                .await
                .map_err(|e| self.ledger.call_error(e))?;
            if end > now {
                let e = until.entry(patient).or_default();
                e.0 = e.0.max(end);
                e.1 = true;
            }
        }
        Ok(until)
    }

    /// What a doctor's page about one patient shows — the patient's details, the records the
    /// doctor may open and until when — logged on chain as one view before it is returned.
    pub async fn patient_chart(&self, doctor: &Person, patient: Address) -> Result<Chart> {
        let records = self
            .reports
            .doctor_records(doctor, patient, Purpose::Treatment)
            .await?;
        let profile = self
            .directory
            .profile_parts(doctor, patient, PROFILE_IDENTITY | PROFILE_CONTACT)
            .await?;
        // Until when, and whether by an emergency: the chain's, nothing sealed.
        let entry = self.sharing_with(doctor).await?.remove(&patient);
        let shown = self
            .readlog
            .disclose(
                doctor,
                records.zip(profile),
                Purpose::Treatment,
                Logged::Viewed,
            )
            .await?;
        let (records, profile) = shown.into_inner();
        Ok(Chart {
            patient,
            entry: entry.map(|(until, emergency)| SharedPatient {
                address: patient,
                name: profile.as_ref().map(|p| p.name.clone()),
                date_of_birth: profile.as_ref().map(|p| p.date_of_birth.clone()),
                until,
                emergency,
            }),
            profile,
            records,
        })
    }
}
