//! Who is who: the accounts this server keeps, the roles the chain gives them, and the public
//! directory of hospitals and doctors, read from the Registry. Every use case that must know
//! who is asking or who someone is asks here; nothing here writes.

use alloy::primitives::{Address, U256};
use serde::{Deserialize, Serialize};

use crate::{
    contracts::Registry,
    db::Db,
    error::{Error, Result},
    ledger::{Contracts, Ledger},
    model::Account,
    model::Role,
    person::Person,
    store::users::Users,
};

/// A hospital as the directory shows it (public data only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hospital {
    pub id: u64,
    pub name: String,
    pub city: String,
    pub address: String,
    pub specialties: String,
    pub services: String,
    pub contact: String,
    pub active: bool,
}

/// A doctor as the directory shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Doctor {
    pub address: Address,
    pub username: Option<String>,
    pub name: String,
    pub specialty: String,
    pub licence_id: String,
    pub hospital_id: u64,
    pub active: bool,
}

fn hospital_from(h: Registry::Hospital) -> Hospital {
    Hospital {
        id: h.id,
        name: h.name,
        city: h.city,
        address: h.addr,
        specialties: h.specialties,
        services: h.services,
        contact: h.contact,
        active: h.active,
    }
}

/// Case-insensitive "contains", for directory search.
fn matches(haystack: &str, needle: Option<&str>) -> bool {
    needle.is_none_or(|n| haystack.to_lowercase().contains(&n.trim().to_lowercase()))
}

/// The accounts and the directory (`Users`, the Registry).
#[derive(Clone)]
pub struct People {
    db: Db,
    ledger: Ledger,
    contracts: Contracts,
}

impl People {
    pub(crate) fn new(db: Db, ledger: Ledger, contracts: Contracts) -> People {
        People {
            db,
            ledger,
            contracts,
        }
    }

    pub(crate) fn require_role(&self, person: &Person, role: Role) -> Result<()> {
        if person.role == role {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "only {} may do this",
                match role {
                    Role::Admin => "an admin",
                    Role::Patient => "a patient",
                    Role::Doctor => "a doctor",
                    Role::Researcher => "a researcher",
                    Role::None => "nobody",
                }
            )))
        }
    }
    pub(crate) fn require_admin(&self, person: &Person) -> Result<()> {
        self.require_role(person, Role::Admin)
    }

    pub(crate) fn require_patient(&self, person: &Person) -> Result<()> {
        self.require_role(person, Role::Patient)
    }

    pub(crate) fn require_doctor(&self, person: &Person) -> Result<()> {
        self.require_role(person, Role::Doctor)
    }

    /// A doctor whom the chain holds active at an active hospital; a suspension takes effect on
    /// the very next request.
    pub(crate) async fn require_active_doctor(&self, person: &Person) -> Result<()> {
        self.require_doctor(person)?;
        let active = self
            .contracts
            .registry_on(&self.ledger)
            .isActiveDoctor(person.address)
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))?;
        if active {
            Ok(())
        } else {
            Err(Error::forbidden(
                "your doctor account or your hospital is suspended",
            ))
        }
    }

    pub async fn hospital(&self, id: u64) -> Result<Hospital> {
        let h = self
            .contracts
            .registry_on(&self.ledger)
            .getHospital(id)
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))?;
        Ok(hospital_from(h))
    }

    /// Every hospital, filtered by city and specialty (case-insensitive substrings).
    pub async fn hospitals(
        &self,
        city: Option<&str>,
        specialty: Option<&str>,
    ) -> Result<Vec<Hospital>> {
        let count = self
            .contracts
            .registry_on(&self.ledger)
            .hospitalCount()
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))?;
        let mut out = Vec::new();
        for id in 1..=count {
            let h = self.hospital(id).await?;
            if matches(&h.city, city) && matches(&h.specialties, specialty) {
                out.push(h);
            }
        }
        Ok(out)
    }

    pub async fn doctor(&self, account: Address) -> Result<Doctor> {
        let d = self
            .contracts
            .registry_on(&self.ledger)
            .getDoctor(account)
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))?;
        let username = self.account_by_address(account).await?.map(|a| a.username);
        Ok(Doctor {
            address: d.account,
            username,
            name: d.name,
            specialty: d.specialty,
            licence_id: d.licenceId,
            hospital_id: d.hospitalId,
            active: d.active,
        })
    }

    /// Every doctor, optionally only those of one hospital.
    pub async fn doctors(&self, hospital: Option<u64>) -> Result<Vec<Doctor>> {
        let count = self
            .contracts
            .registry_on(&self.ledger)
            .doctorCount()
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))?;
        let mut out = Vec::new();
        let mut i = U256::ZERO;
        while i < count {
            let account = self
                .contracts
                .registry_on(&self.ledger)
                .doctorAt(i)
                .call()
                .await
                .map_err(|e| self.ledger.call_error(e))?;
            let doctor = self.doctor(account).await?;
            if hospital.is_none_or(|h| h == doctor.hospital_id) {
                out.push(doctor);
            }
            i += U256::from(1);
        }
        Ok(out)
    }

    pub async fn account_by_name(&self, username: &str) -> Result<Option<Account>> {
        Ok(Users(&self.db).by_name(username).await?.map(|u| u.account))
    }

    pub async fn account_by_address(&self, address: Address) -> Result<Option<Account>> {
        Ok(Users(&self.db)
            .by_address(address)
            .await?
            .map(|u| u.account))
    }

    pub async fn accounts_with_role(&self, role: Role) -> Result<Vec<Account>> {
        Users(&self.db).with_role(role).await
    }

    /// A name to show for an account: a doctor's directory name, else the user name.
    pub(crate) async fn display_name(&self, account: Address) -> Result<Option<String>> {
        if self.role_on_chain(account).await? == Role::Doctor {
            return Ok(Some(self.doctor(account).await?.name));
        }
        Ok(self.account_by_address(account).await?.map(|a| a.username))
    }
    /// The on-chain role of `account`, as the Registry says.
    pub async fn role_on_chain(&self, account: Address) -> Result<Role> {
        let role = self
            .contracts
            .registry_on(&self.ledger)
            .roleOf(account)
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))?;
        Role::try_from(role).map_err(|v| Error::internal("roleOf", format!("unknown role {v}")))
    }
    /// How many hospitals, doctors and patients the Registry holds.
    pub async fn directory_counts(&self) -> Result<(u64, u64, u64)> {
        let registry = self.contracts.registry_on(&self.ledger);
        let e = |e| self.ledger.call_error(e);
        let hospitals = registry.hospitalCount().call().await.map_err(e)?;
        let doctors = registry.doctorCount().call().await.map_err(e)?;
        let patients = registry.patientCount().call().await.map_err(e)?;
        Ok((
            hospitals,
            doctors.try_into().unwrap_or(u64::MAX),
            patients.try_into().unwrap_or(u64::MAX),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_match_case_insensitive_substrings() {
        assert!(matches("Lyon", Some("ly")));
        assert!(matches("Cardiology, Oncology", Some(" oncology ")));
        assert!(!matches("Paris", Some("lyon")));
        assert!(matches("anything", None));
    }
}
