//! The public directory on chain: hospitals and doctors (added and suspended by an admin, read by
//! everyone) and patient sign-up. Patients' names and details stay off chain, sealed.

use alloy::{primitives::Address, sol_types::SolCall};
use medledger_vault::{Dek, seal};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::{
    access::Access, accounts::Accounts, db::Db, disclosure::ReadLog, follows::Writer,
    keyring::Keyring, ledger::Contracts, limits::Limiter, people::People,
};
use crate::{
    access::Allowed,
    accounts::{Account, NewKey, Person},
    contracts::Registry,
    disclosure::{Logged, PROFILE_CONTACT, PROFILE_IDENTITY, Unlogged},
    error::{Error, Result},
    journal::Follow,
    ledger::TxInfo,
    model::{Purpose, Role},
    store::{
        users::Users,
        wraps::{ObjectId, Reader},
    },
};

pub use crate::people::{Doctor, Hospital};

/// What an admin writes about a hospital.
#[derive(Debug, Clone, Deserialize)]
pub struct HospitalInput {
    pub name: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub specialties: String,
    #[serde(default)]
    pub services: String,
    #[serde(default)]
    pub contact: String,
}

impl HospitalInput {
    fn check(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::invalid("a hospital needs a name"));
        }
        for (field, value) in [
            ("name", &self.name),
            ("city", &self.city),
            ("address", &self.address),
            ("specialties", &self.specialties),
            ("services", &self.services),
            ("contact", &self.contact),
        ] {
            if value.len() > 500 {
                return Err(Error::invalid(format!(
                    "{field} is too long (500 characters at most)"
                )));
            }
        }
        Ok(())
    }
}

/// A patient's sign-up: the account and the personal details kept sealed off chain.
#[derive(Debug, Clone, Deserialize)]
pub struct PatientSignup {
    pub username: String,
    /// Empty for a wallet's sign-up (its key stays in the wallet).
    #[serde(default)]
    pub password: String,
    /// A wallet's proof of its account, instead of a password.
    #[serde(default)]
    pub wallet: Option<crate::wallet::WalletProof>,
    #[serde(flatten)]
    pub profile: Profile,
}

/// A patient's personal details: sealed, readable by the patient and those they share with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub date_of_birth: String,
    #[serde(default)]
    pub contact: String,
}

impl Profile {
    fn check(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::invalid("a name is required"));
        }
        if self.name.len() > 200 || self.contact.len() > 500 {
            return Err(Error::invalid("name or contact is too long"));
        }
        if !self.date_of_birth.is_empty() && !is_iso_date(&self.date_of_birth) {
            return Err(Error::invalid(
                "date_of_birth must be a date like 1980-04-23",
            ));
        }
        Ok(())
    }
}

/// `YYYY-MM-DD` with a plausible month and day.
pub fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
    matches!(
        (num(0..4), num(5..7), num(8..10)),
        (Some(1800..=2200), Some(1..=12), Some(1..=31))
    )
}

/// The object a patient's name and date of birth are sealed as.
pub(crate) fn profile_object(patient: Address) -> ObjectId {
    ObjectId::Profile(patient)
}

/// The object a patient's contact details are sealed as (kept apart: a grant of single records
/// shows who the patient is, not how to reach them).
pub(crate) fn contact_object(patient: Address) -> ObjectId {
    ObjectId::Contact(patient)
}

/// A patient's name and date of birth, as sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Identity {
    name: String,
    #[serde(default)]
    date_of_birth: String,
}

/// A patient's details as a reader may see them: the contact only where the chain allows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProfileView {
    pub name: String,
    pub date_of_birth: String,
    pub contact: Option<String>,
    /// Seen only through an open emergency.
    pub emergency: bool,
}

#[derive(Clone)]
pub struct Directory {
    db: Db,
    contracts: Contracts,
    access: Access,
    keyring: Arc<Keyring>,
    limiter: Limiter,
    accounts: Accounts,
    people: People,
    readlog: ReadLog,
    writer: Writer,
}

impl Directory {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        db: Db,
        contracts: Contracts,
        access: Access,
        keyring: Arc<Keyring>,
        limiter: Limiter,
        accounts: Accounts,
        people: People,
        readlog: ReadLog,
        writer: Writer,
    ) -> Directory {
        Directory {
            db,
            contracts,
            access,
            keyring,
            limiter,
            accounts,
            people,
            readlog,
            writer,
        }
    }
}

impl Directory {
    /// An admin's write to the Registry, signed by the admin.
    async fn registry_write(
        &self,
        admin: &Person,
        input: Vec<u8>,
    ) -> Result<(TxInfo, alloy::rpc::types::TransactionReceipt)> {
        self.people.require_role(admin, Role::Admin)?;
        let registry = self.contracts.registry;
        self.writer
            .write(&admin.signer, registry, input, Follow::Nothing)
            .await?
            .mined()
    }

    pub async fn add_hospital(
        &self,
        admin: &Person,
        input: &HospitalInput,
    ) -> Result<(u64, TxInfo)> {
        self.people.require_role(admin, Role::Admin)?;
        input.check()?;
        let call = Registry::addHospitalCall {
            name: input.name.trim().to_string(),
            city: input.city.trim().to_string(),
            addr: input.address.trim().to_string(),
            specialties: input.specialties.trim().to_string(),
            services: input.services.trim().to_string(),
            contact: input.contact.trim().to_string(),
        };
        let (tx, receipt) = self.registry_write(admin, call.abi_encode()).await?;
        let id = receipt
            .decoded_log::<Registry::HospitalAdded>()
            .map(|l| l.data.id)
            .ok_or_else(|| Error::internal("addHospital", "no HospitalAdded event"))?;
        Ok((id, tx))
    }

    pub async fn update_hospital(
        &self,
        admin: &Person,
        id: u64,
        input: &HospitalInput,
    ) -> Result<TxInfo> {
        self.people.require_role(admin, Role::Admin)?;
        input.check()?;
        let call = Registry::updateHospitalCall {
            id,
            name: input.name.trim().to_string(),
            city: input.city.trim().to_string(),
            addr: input.address.trim().to_string(),
            specialties: input.specialties.trim().to_string(),
            services: input.services.trim().to_string(),
            contact: input.contact.trim().to_string(),
        };
        Ok(self.registry_write(admin, call.abi_encode()).await?.0)
    }

    pub async fn set_hospital_active(
        &self,
        admin: &Person,
        id: u64,
        active: bool,
    ) -> Result<TxInfo> {
        let input = if active {
            Registry::reactivateHospitalCall { id }.abi_encode()
        } else {
            Registry::suspendHospitalCall { id }.abi_encode()
        };
        Ok(self.registry_write(admin, input).await?.0)
    }

    pub async fn set_doctor_active(
        &self,
        admin: &Person,
        account: Address,
        active: bool,
    ) -> Result<TxInfo> {
        let input = if active {
            Registry::reactivateDoctorCall { account }.abi_encode()
        } else {
            Registry::suspendDoctorCall { account }.abi_encode()
        };
        Ok(self.registry_write(admin, input).await?.0)
    }

    /// A patient signs up: an account, their sealed details, and their registration on chain
    /// signed by their own new key.
    pub async fn sign_up_patient(&self, signup: &PatientSignup) -> Result<(Account, TxInfo)> {
        self.sign_up_patient_from(signup, None).await
    }

    /// `sign_up_patient` by a web client at `client` (as the web layer saw it): counted against
    /// the sign-ups allowed per client, once the input is known to be good.
    pub async fn sign_up_patient_from(
        &self,
        signup: &PatientSignup,
        client: Option<std::net::IpAddr>,
    ) -> Result<(Account, TxInfo)> {
        self.sign_up_patient_with(signup, &NewKey::fresh(&signup.password), client)
            .await
    }

    /// A patient signs up with `key`: a fresh custodial key under their password, or their own
    /// wallet (whose registration is then prepared for it: `Kind::WalletSignature`).
    pub async fn sign_up_patient_with(
        &self,
        signup: &PatientSignup,
        key: &NewKey<'_>,
        client: Option<std::net::IpAddr>,
    ) -> Result<(Account, TxInfo)> {
        signup.profile.check()?;
        self.accounts
            .check_new_account(&signup.username, key.password())
            .await?;
        self.limiter.count_sign_up(client).await?;
        let address = key.address();
        let identity = Identity {
            name: signup.profile.name.trim().to_string(),
            date_of_birth: signup.profile.date_of_birth.clone(),
        };
        let contact = serde_json::json!({ "contact": signup.profile.contact });
        let sealed = [
            (
                profile_object(address),
                serde_json::to_vec(&identity).map_err(|e| Error::internal("profile", e))?,
            ),
            (contact_object(address), contact.to_string().into_bytes()),
        ]
        .map(|(object, plain)| {
            let dek = Dek::generate();
            let sealed = seal(&dek, &object.aad(), &plain);
            (object, dek, sealed)
        });
        let also = async |account: &Account| {
            Users(&self.db)
                .set_profile(account.id, &sealed[0].2, &sealed[1].2)
                .await?;
            let (wraps, escrow) = (
                crate::store::wraps::Wraps(&self.db),
                self.keyring.as_ref().escrow_public(),
            );
            for (object, dek, _) in &sealed {
                wraps
                    .put(
                        object,
                        Reader::Account(account.address),
                        &account.enc_public,
                        dek,
                    )
                    .await?;
                wraps.put(object, Reader::Escrow, &escrow, dek).await?;
            }
            Ok(())
        };
        let call = Registry::registerPatientCall {}.abi_encode();
        self.accounts
            .register_account(key, Role::Patient, &signup.username, call, also)
            .await
    }

    /// A patient's details as `reader` may see them now (the chain decides which parts, if
    /// any); shown to anyone but the patient only once the view is logged on chain.
    pub async fn profile(&self, reader: &Person, patient: Address) -> Result<Option<ProfileView>> {
        let shown = self
            .profile_parts(reader, patient, PROFILE_IDENTITY | PROFILE_CONTACT)
            .await?;
        Ok(self
            .readlog
            .disclose(reader, shown, Purpose::Treatment, Logged::Viewed)
            .await?
            .into_inner())
    }

    /// The parts of `patient`'s profile in `want` that the chain lets `reader` see now, still
    /// to be logged. An expired grant reveals nothing: no wrapped key is used without the
    /// chain's word.
    pub(crate) async fn profile_parts(
        &self,
        reader: &Person,
        patient: Address,
        want: u8,
    ) -> Result<Unlogged<Option<ProfileView>>> {
        let (proofs, emergency) = self.access.profile_allowed(reader, patient, want).await?;
        let part = |field| proofs.iter().find(|a| a.fields() == field);
        let Some(identity) = part(PROFILE_IDENTITY) else {
            return Ok(Unlogged::nothing(None));
        };
        let Some(identity) = self.open_profile_part(reader, patient, identity).await? else {
            return Ok(Unlogged::nothing(None));
        };
        let identity = identity.and_then(|plain| {
            serde_json::from_slice::<Identity>(&plain).map_err(|e| Error::internal("profile", e))
        })?;
        let contact = match part(PROFILE_CONTACT) {
            Some(allowed) => self.open_profile_part(reader, patient, allowed).await?,
            None => None,
        };
        let view = |identity: Identity, contact| ProfileView {
            name: identity.name,
            date_of_birth: identity.date_of_birth,
            contact,
            emergency,
        };
        Ok(match contact {
            Some(contact) => {
                let contact = contact.and_then(|plain| {
                    let value: serde_json::Value = serde_json::from_slice(&plain)
                        .map_err(|e| Error::internal("contact", e))?;
                    Ok(value["contact"].as_str().unwrap_or_default().to_string())
                })?;
                identity
                    .zip(contact)
                    .map(|(identity, contact)| Some(view(identity, Some(contact))))
            }
            None => identity.map(|identity| Some(view(identity, None))),
        })
    }

    /// Opens one sealed part of a profile (its own column of the patient's row) with the key
    /// `allowed` unlocks: the reader's own wrapped key, or a doctor's way in without one (an
    /// emergency whose reason is held, a grant to their hospital from before they joined)
    /// through the escrow's.
    async fn open_profile_part(
        &self,
        reader: &Person,
        patient: Address,
        allowed: &Allowed,
    ) -> Result<Option<Unlogged<Vec<u8>>>> {
        let Some(key) = self
            .keyring
            .as_ref()
            .unlock(crate::store::wraps::Wraps(&self.db), reader, allowed)
            .await?
        else {
            return Ok(None);
        };
        let object = allowed.object();
        let Some(sealed) = Users(&self.db).sealed_profile(patient, &object).await? else {
            return Ok(None);
        };
        Ok(Some(key.open(&object.aad(), &sealed)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_iso() {
        assert!(is_iso_date("1980-04-23"));
        assert!(!is_iso_date("1980-13-01"));
        assert!(!is_iso_date("23/04/1980"));
    }
}
