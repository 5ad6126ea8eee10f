//! Consent as the patient gives it: grants to a doctor or a hospital (on chain, signed by the
//! patient) and the wrapped keys that follow them; revocation; a doctor's declared emergency; and
//! the audit trail of every opening, read back from the chain's `AccessLogged` events.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    rpc::types::Filter,
    sol_types::{SolCall, SolEvent},
};
use medledger_vault::{Dek, SecretKey, seal};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{
    accounts::{Person, address_key},
    app::{App, ESCROW, unix_now},
    contracts::Consent,
    directory::profile_object,
    error::{Error, Result},
    journal::Follow,
    ledger::TxInfo,
    model::{Purpose, RecordKind, Role, Scope},
};

/// A grant as a patient asks for it.
#[derive(Debug, Clone, Deserialize)]
pub struct GrantInput {
    /// Grant one doctor...
    pub doctor: Option<Address>,
    /// ...or every active doctor of a hospital.
    pub hospital_id: Option<u64>,
    /// `all`, `kinds` or `records`.
    #[serde(default = "all")]
    pub scope: String,
    /// For scope `kinds`: `report`, `prescription`, `other`.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// For scope `records`.
    #[serde(default)]
    pub record_ids: Vec<B256>,
    /// `treatment` (default) or `research`.
    #[serde(default = "treatment")]
    pub purpose: String,
    /// Unix time the grant ends; or give `expires_in_days`.
    pub expires_at: Option<u64>,
    pub expires_in_days: Option<u64>,
}

fn all() -> String {
    "all".into()
}

fn treatment() -> String {
    "treatment".into()
}

/// A grant as the chain holds it.
#[derive(Debug, Clone, Serialize)]
pub struct GrantView {
    pub id: u64,
    pub patient: Address,
    pub doctor: Option<Address>,
    pub hospital_id: Option<u64>,
    pub scope: &'static str,
    pub kinds: Vec<&'static str>,
    pub record_ids: Vec<B256>,
    pub purpose: &'static str,
    pub expires_at: u64,
    pub revoked: bool,
    /// Neither revoked nor expired.
    pub active: bool,
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

/// One opening of a record, from the chain.
#[derive(Debug, Clone, Serialize)]
pub struct AccessEvent {
    pub patient: Address,
    pub reader: Address,
    /// The reader's name in the directory, or their user name.
    pub reader_name: Option<String>,
    pub record_id: B256,
    /// The record's title, when the one asking can read it.
    pub record_title: Option<String>,
    pub purpose: &'static str,
    pub emergency: bool,
    pub time: u64,
    pub block_number: u64,
    pub tx_hash: B256,
}

#[derive(Debug, Clone, Serialize)]
pub struct Emergency {
    pub patient: Address,
    pub doctor: Address,
    pub until: u64,
}

const KINDS: [RecordKind; 3] = [
    RecordKind::Report,
    RecordKind::Prescription,
    RecordKind::Other,
];

fn view_from(g: Consent::Grant, now: u64) -> Result<GrantView> {
    let scope = Scope::try_from(g.scope).map_err(|_| Error::internal("grant", "bad scope"))?;
    let purpose =
        Purpose::try_from(g.purpose).map_err(|_| Error::internal("grant", "bad purpose"))?;
    let id: u64 = g.id.try_into().unwrap_or(u64::MAX);
    Ok(GrantView {
        id,
        patient: g.patient,
        doctor: (g.doctor != Address::ZERO).then_some(g.doctor),
        hospital_id: (g.hospitalId != 0).then_some(g.hospitalId),
        scope: match scope {
            Scope::All => "all",
            Scope::Kinds => "kinds",
            Scope::Records => "records",
        },
        kinds: KINDS
            .iter()
            .filter(|k| scope == Scope::Kinds && g.kindsMask & k.mask_bit() != 0)
            .map(|k| k.as_str())
            .collect(),
        record_ids: g.recordIds,
        purpose: purpose.as_str(),
        expires_at: g.expiresAt,
        revoked: g.revoked,
        active: !g.revoked && g.expiresAt > now,
    })
}

impl GrantView {
    fn covers(&self, record: &B256, kind: RecordKind) -> bool {
        match self.scope {
            "all" => true,
            "kinds" => self.kinds.contains(&kind.as_str()),
            _ => self.record_ids.contains(record),
        }
    }
}

impl App {
    /// A patient grants access, on chain, then wraps the covered records' keys for the grantees.
    pub async fn grant(&self, patient: &Person, input: &GrantInput) -> Result<(GrantView, TxInfo)> {
        self.require_patient(patient)?;
        let scope = match input.scope.as_str() {
            "all" => Scope::All,
            "kinds" => Scope::Kinds,
            "records" => Scope::Records,
            other => {
                return Err(Error::invalid(format!(
                    "unknown scope {other:?}: use all, kinds or records"
                )));
            }
        };
        let mut mask = 0u8;
        for k in &input.kinds {
            mask |= RecordKind::parse(k)?.mask_bit();
        }
        if scope == Scope::Kinds && mask == 0 {
            return Err(Error::invalid("scope kinds needs at least one kind"));
        }
        if scope == Scope::Records {
            if input.record_ids.is_empty() || input.record_ids.len() > 100 {
                return Err(Error::invalid("scope records needs 1 to 100 record ids"));
            }
            for id in &input.record_ids {
                let row = self.record_row(id).await?;
                if row.patient != patient.address {
                    return Err(Error::not_found("there is no such record"));
                }
            }
        }
        let purpose = u8::from(Purpose::parse(&input.purpose)?);
        let now = self.ledger().now().await?;
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
        let call = match (input.doctor, input.hospital_id) {
            (Some(doctor), None) => Consent::grantDoctorCall {
                doctor,
                scope: u8::from(scope),
                kindsMask: kinds_mask,
                recordIds: record_ids,
                purpose,
                expiresAt: expires_at,
            }
            .abi_encode(),
            (None, Some(hospital_id)) => Consent::grantHospitalCall {
                hospitalId: hospital_id,
                scope: u8::from(scope),
                kindsMask: kinds_mask,
                recordIds: record_ids,
                purpose,
                expiresAt: expires_at,
            }
            .abi_encode(),
            _ => {
                return Err(Error::invalid(
                    "grant either a doctor (doctor) or a hospital (hospital_id)",
                ));
            }
        };
        let consent = self.contracts().consent;
        let (tx, receipt) = self
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
            .await?;
        let granted = receipt
            .decoded_log::<Consent::Granted>()
            .ok_or_else(|| Error::internal("grant", "no Granted event"))?;
        let id: u64 = granted.data.id.try_into().unwrap_or(u64::MAX);
        Ok((self.grant_view(id).await?, tx))
    }

    /// Keeps the grants a mined transaction made, to find them by grantee (their truth stays on
    /// chain). Safe to repeat.
    pub(crate) async fn index_grants(
        &self,
        receipt: &alloy::rpc::types::TransactionReceipt,
    ) -> Result<()> {
        for log in receipt.inner.logs() {
            let Ok(granted) = log.log_decode::<Consent::Granted>() else {
                continue;
            };
            if log.address() != self.contracts().consent {
                continue;
            }
            let g = granted.inner.data;
            sqlx::query(
                "INSERT INTO grants (id, patient, doctor, hospital_id, tx_hash, created_at)
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            )
            .bind(i64::try_from(g.id).unwrap_or(i64::MAX))
            .bind(address_key(g.patient))
            .bind((g.doctor != Address::ZERO).then(|| address_key(g.doctor)))
            .bind((g.hospitalId != 0).then_some(g.hospitalId as i64))
            .bind(receipt.transaction_hash.to_string())
            .bind(unix_now())
            .execute(self.db())
            .await?;
        }
        Ok(())
    }

    pub async fn grant_view(&self, id: u64) -> Result<GrantView> {
        let g = self
            .consent()
            .getGrant(U256::from(id))
            .call()
            .await
            .map_err(|e| self.ledger().call_error(e))?;
        view_from(g, self.ledger().now().await?)
    }

    /// A patient's grants (all of them, live or not), or those given to a doctor.
    pub async fn grants(&self, person: &Person) -> Result<Vec<GrantView>> {
        match person.role {
            Role::Patient => self.grants_of(person.address).await,
            Role::Doctor => {
                self.require_active_doctor(person).await?;
                self.grants_to(person).await
            }
            _ => Err(Error::forbidden("only patients and doctors have grants")),
        }
    }

    /// The grants given to a doctor or to their hospital (the caller checked they are active).
    async fn grants_to(&self, doctor: &Person) -> Result<Vec<GrantView>> {
        let hospital = self.doctor(doctor.address).await?.hospital_id as i64;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM grants WHERE doctor = ? OR hospital_id = ? ORDER BY id",
        )
        .bind(address_key(doctor.address))
        .bind(hospital)
        .fetch_all(self.db())
        .await?;
        let mut out = Vec::new();
        for id in ids {
            out.push(self.grant_view(id as u64).await?);
        }
        Ok(out)
    }

    async fn grants_of(&self, patient: Address) -> Result<Vec<GrantView>> {
        let ids = self
            .consent()
            .grantsOf(patient)
            .call()
            .await
            .map_err(|e| self.ledger().call_error(e))?;
        let now = self.ledger().now().await?;
        let mut out = Vec::new();
        for id in ids {
            let g = self
                .consent()
                .getGrant(id)
                .call()
                .await
                .map_err(|e| self.ledger().call_error(e))?;
            out.push(view_from(g, now)?);
        }
        Ok(out)
    }

    /// A patient revokes a grant; the grantees' wrapped keys go with it.
    pub async fn revoke(&self, patient: &Person, id: u64) -> Result<TxInfo> {
        self.require_patient(patient)?;
        let call = Consent::revokeCall { id: U256::from(id) };
        let consent = self.contracts().consent;
        let (tx, _) = self
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
            .await?;
        Ok(tx)
    }

    /// Makes the wrapped keys of a patient's records and profile match their live grants: keys
    /// for every grantee a live grant covers, none for anyone else (besides the patient, a
    /// prescription's author and the escrow). Re-wraps with the patient's own key when they are
    /// the one acting (`secret`); the journal, settling a grant after a crash, uses the escrow's.
    pub(crate) async fn sync_wraps(
        &self,
        patient: Address,
        secret: Option<&SecretKey>,
    ) -> Result<()> {
        let grants: Vec<GrantView> = self
            .grants_of(patient)
            .await?
            .into_iter()
            .filter(|g| g.active)
            .collect();
        let mut hospital_doctors: HashMap<u64, Vec<Address>> = HashMap::new();
        let mut grantees_of = Vec::new();
        for g in &grants {
            let grantees = match (g.doctor, g.hospital_id) {
                (Some(d), _) => vec![d],
                (None, Some(h)) => {
                    if let std::collections::hash_map::Entry::Vacant(slot) =
                        hospital_doctors.entry(h)
                    {
                        let ds = self.doctors(Some(h)).await?;
                        slot.insert(ds.into_iter().map(|d| d.address).collect());
                    }
                    hospital_doctors[&h].clone()
                }
                (None, None) => Vec::new(),
            };
            grantees_of.push(grantees);
        }
        let me = address_key(patient);
        // (object id, the record's id and kind (None for the profile), its author)
        type Object = (String, Option<(B256, RecordKind)>, Address);
        let mut objects: Vec<Object> = vec![(profile_object(patient), None, patient)];
        for row in self.record_rows("patient", patient).await? {
            objects.push((format!("{}", row.id), Some((row.id, row.kind)), row.author));
        }
        for (object, record, author) in objects {
            let mut wanted = BTreeSet::new();
            for (g, grantees) in grants.iter().zip(&grantees_of) {
                let covered = match record {
                    None => true,
                    Some((id, kind)) => g.covers(&id, kind),
                };
                if covered {
                    wanted.extend(grantees.iter().map(|a| address_key(*a)));
                }
            }
            let keep =
                |reader: &str| reader == me || reader == ESCROW || reader == address_key(author);
            let existing: Vec<String> =
                sqlx::query_scalar("SELECT reader FROM wraps WHERE object_id = ?")
                    .bind(&object)
                    .fetch_all(self.db())
                    .await?;
            for reader in &existing {
                if !keep(reader) && !wanted.contains(reader) {
                    sqlx::query("DELETE FROM wraps WHERE object_id = ? AND reader = ?")
                        .bind(&object)
                        .bind(reader)
                        .execute(self.db())
                        .await?;
                }
            }
            let missing: Vec<&String> = wanted.iter().filter(|r| !existing.contains(r)).collect();
            if missing.is_empty() {
                continue;
            }
            let dek = match secret {
                Some(secret) => self.take_wrap(&object, &me, secret).await?,
                None => self.take_wrap(&object, ESCROW, self.escrow()).await?,
            };
            let Some(dek) = dek else {
                continue;
            };
            for reader in missing {
                let address: Address = reader
                    .parse()
                    .map_err(|e| Error::internal("wrap reader", e))?;
                if let Some(account) = self.account_by_address(address).await? {
                    self.put_wrap(&object, reader, &account.enc_public, &dek)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// A doctor declares an emergency for a patient. The reason stays off chain, sealed for the
    /// patient and the doctor; the chain gets a salted hash of it.
    pub async fn declare_emergency(
        &self,
        doctor: &Person,
        patient: Address,
        reason: &str,
    ) -> Result<(Emergency, TxInfo)> {
        self.require_doctor(doctor)?;
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 2000 {
            return Err(Error::invalid("give a reason of 1 to 2000 characters"));
        }
        let patient_account = self
            .account_by_address(patient)
            .await?
            .filter(|a| a.role == Role::Patient)
            .ok_or_else(|| Error::not_found("there is no such patient"))?;
        let salt = crate::app::random_b256();
        let mut salted = salt.to_vec();
        salted.extend_from_slice(reason.as_bytes());
        let call = Consent::declareEmergencyCall {
            patient,
            reasonHash: keccak256(&salted),
        };
        let dek = Dek::generate();
        let body = serde_json::json!({ "reason": reason, "salt": salt });
        let object = format!("emergency:{}", crate::app::random_b256());
        let sealed = seal(&dek, object.as_bytes(), body.to_string().as_bytes());
        // The sealed reason is stored first, so the patient can read why once the chain says it.
        let stored = async {
            sqlx::query(
                "INSERT INTO emergencies (object, patient, doctor, reason, created_at)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&object)
            .bind(address_key(patient))
            .bind(address_key(doctor.address))
            .bind(sealed)
            .bind(unix_now())
            .execute(self.db())
            .await?;
            self.put_wrap(
                &object,
                &address_key(patient),
                &patient_account.enc_public,
                &dek,
            )
            .await?;
            self.put_wrap(
                &object,
                &address_key(doctor.address),
                &doctor.secret.public_key(),
                &dek,
            )
            .await
        };
        let consent = self.contracts().consent;
        let (tx, receipt) = self
            .write_after(
                &doctor.signer,
                consent,
                call.abi_encode(),
                Follow::Emergency {
                    object: object.clone(),
                },
                None,
                stored,
            )
            .await?;
        let until = receipt
            .decoded_log::<Consent::EmergencyDeclared>()
            .map(|l| l.data.until)
            .ok_or_else(|| Error::internal("emergency", "no EmergencyDeclared event"))?;
        Ok((
            Emergency {
                patient,
                doctor: doctor.address,
                until,
            },
            tx,
        ))
    }

    /// Completes a mined emergency declaration's row with its transaction and end.
    pub(crate) async fn emergency_mined(
        &self,
        object: &str,
        receipt: &alloy::rpc::types::TransactionReceipt,
    ) -> Result<()> {
        let until = receipt
            .decoded_log::<Consent::EmergencyDeclared>()
            .map(|l| l.data.until)
            .unwrap_or_default();
        sqlx::query("UPDATE emergencies SET until = ?, tx_hash = ? WHERE object = ?")
            .bind(until as i64)
            .bind(receipt.transaction_hash.to_string())
            .bind(object)
            .execute(self.db())
            .await?;
        Ok(())
    }

    /// The patients who shared with `doctor` through a live grant, or whose emergency is open.
    pub async fn my_patients(&self, doctor: &Person) -> Result<Vec<SharedPatient>> {
        self.require_active_doctor(doctor).await?;
        // patient => (access until, by emergency, by a grant to my hospital)
        let mut until: BTreeMap<Address, (u64, bool, bool)> = BTreeMap::new();
        for g in self.grants_to(doctor).await? {
            if g.active && g.purpose == "treatment" {
                let e = until.entry(g.patient).or_default();
                e.0 = e.0.max(g.expires_at);
                e.2 |= g.hospital_id.is_some();
            }
        }
        let now = self.ledger().now().await?;
        let rows = sqlx::query(
            "SELECT DISTINCT patient FROM emergencies WHERE doctor = ? AND tx_hash IS NOT NULL",
        )
        .bind(address_key(doctor.address))
        .fetch_all(self.db())
        .await?;
        for row in rows {
            let patient: Address = row
                .try_get::<String, _>("patient")?
                .parse()
                .map_err(|e| Error::internal("emergency patient", e))?;
            let end = self
                .consent()
                .emergencyUntil(patient, doctor.address)
                .call()
                .await
                .map_err(|e| self.ledger().call_error(e))?;
            if end > now {
                let e = until.entry(patient).or_default();
                e.0 = e.0.max(end);
                e.1 = true;
            }
        }
        let mut out = Vec::new();
        for (address, (until, emergency, via_hospital)) in until {
            let profile = match self.profile(doctor, address).await? {
                Some(p) => Some(p),
                None if emergency || via_hospital => {
                    match self
                        .take_wrap(&profile_object(address), ESCROW, self.escrow())
                        .await?
                    {
                        Some(dek) => Some(self.open_profile(address, &dek).await?),
                        None => None,
                    }
                }
                None => None,
            };
            out.push(SharedPatient {
                address,
                name: profile.as_ref().map(|p| p.name.clone()),
                date_of_birth: profile.map(|p| p.date_of_birth),
                until,
                emergency,
            });
        }
        Ok(out)
    }

    /// Whether a live grant from `patient` to `doctor`'s hospital (the doctor active there)
    /// covers `record` (or, with `None`, exists at all).
    pub(crate) async fn hospital_grant_covers(
        &self,
        patient: Address,
        doctor: Address,
        record: Option<(&B256, RecordKind)>,
    ) -> Result<bool> {
        let hospital = self
            .registry()
            .activeHospitalOf(doctor)
            .call()
            .await
            .map_err(|e| self.ledger().call_error(e))?;
        if hospital == 0 {
            return Ok(false);
        }
        Ok(self.grants_of(patient).await?.iter().any(|g| {
            g.active
                && g.hospital_id == Some(hospital)
                && record.is_none_or(|(id, kind)| g.covers(id, kind))
        }))
    }

    /// Every opening of a patient's records (for the patient), or every opening by a doctor
    /// (for the doctor), as the chain logged them.
    pub async fn audit(&self, person: &Person) -> Result<Vec<AccessEvent>> {
        let filter = Filter::new()
            .address(self.contracts().consent)
            .event_signature(Consent::AccessLogged::SIGNATURE_HASH)
            .from_block(self.contracts().deployed_at);
        let filter = match person.role {
            Role::Patient => filter.topic1(person.address.into_word()),
            Role::Doctor => filter.topic2(person.address.into_word()),
            _ => {
                return Err(Error::forbidden(
                    "only patients and doctors have an audit trail",
                ));
            }
        };
        let logs = self.ledger().logs(&filter).await?;
        let mut times: HashMap<u64, u64> = HashMap::new();
        let mut names: HashMap<Address, Option<String>> = HashMap::new();
        let mut out = Vec::new();
        for log in logs {
            let event = Consent::AccessLogged::decode_log_data(log.data())
                .map_err(|e| Error::internal("AccessLogged", e))?;
            let block = log.block_number.unwrap_or_default();
            let time = match times.get(&block) {
                Some(t) => *t,
                None => {
                    let t = self.ledger().block_time(block).await?;
                    times.insert(block, t);
                    t
                }
            };
            if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(event.reader) {
                slot.insert(self.display_name(event.reader).await?);
            }
            let title = self.record_title(person, &event.recordId).await?;
            out.push(AccessEvent {
                patient: event.patient,
                reader: event.reader,
                reader_name: names[&event.reader].clone(),
                record_id: event.recordId,
                record_title: title,
                purpose: Purpose::try_from(event.purpose)
                    .map(|p| p.as_str())
                    .unwrap_or("unknown"),
                emergency: event.emergency,
                time,
                block_number: block,
                tx_hash: log.transaction_hash.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// A name to show for an account: a doctor's directory name, else the user name.
    async fn display_name(&self, account: Address) -> Result<Option<String>> {
        if self.role_on_chain(account).await? == Role::Doctor {
            return Ok(Some(self.doctor(account).await?.name));
        }
        Ok(self.account_by_address(account).await?.map(|a| a.username))
    }
}
