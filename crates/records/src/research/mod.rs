//! Research with the patient's consent on chain: researchers (enrolled like doctors), studies
//! an admin registers on chain for one of them (the chain keeps the keccak256 of the study's
//! details and its end; the details live here), and patients' opt-ins and withdrawals, each the
//! patient's own transaction. The contract decides; the checks here only answer clearly first.

pub mod deidentify;
pub mod export;

use alloy::{
    primitives::{Address, B256, keccak256},
    sol_types::SolCall,
};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::{
    access::Access,
    db::Db,
    follows::Writer,
    keyring::Keyring,
    ledger::{Contracts, Ledger},
    people::People,
    reports::Anchors,
};
use crate::{
    contracts::Research as Contract,
    error::{Error, Kind, Result},
    journal::Follow,
    ledger::TxInfo,
    model::Role,
    person::Person,
    store::{
        invites::Invites,
        studies::{Studies, StudyRow},
        users::Users,
    },
};
use deidentify::SafeHarbor;

/// The FHIR resource types a study may ask for (structured data only: never report files).
pub const STUDY_DATA: [&str; 8] = [
    "Observation",
    "Condition",
    "MedicationStatement",
    "MedicationRequest",
    "Procedure",
    "Immunization",
    "AllergyIntolerance",
    "Encounter",
];

/// What a study is, as the admin registers it; its keccak256 (of this JSON) is on chain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StudyDetails {
    pub title: String,
    pub description: String,
    /// The resource types it asks for (of `STUDY_DATA`).
    pub data: Vec<String>,
    /// Makes two studies with the same words two hashes.
    pub nonce: String,
}

/// A study to register: for which researcher, what, until when (unix seconds).
#[derive(Debug, Clone, Deserialize)]
pub struct NewStudy {
    pub researcher: Address,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub data: Vec<String>,
    pub ends_at: u64,
}

/// A study as a person sees it; `opted_in` for a patient: whether their opt-in is live.
#[derive(Debug, Clone, Serialize)]
pub struct StudyView {
    pub id: u64,
    pub researcher: Address,
    pub researcher_name: String,
    pub title: String,
    pub description: String,
    pub data: Vec<String>,
    pub ends_at: u64,
    pub running: bool,
    pub details_hash: B256,
    pub tx_hash: Option<B256>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opted_in: Option<bool>,
}

/// A patient's choice about a study.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Join,
    Leave,
}

/// A researcher of the directory.
#[derive(Debug, Clone, Serialize)]
pub struct ResearcherView {
    pub address: Address,
    pub username: String,
    pub name: String,
}

#[derive(Clone)]
pub struct Research {
    db: Db,
    ledger: Ledger,
    contracts: Contracts,
    access: Access,
    keyring: Arc<Keyring>,
    anchors: Anchors,
    people: People,
    writer: Writer,
    safe_harbor: SafeHarbor,
}

impl Research {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        db: Db,
        ledger: Ledger,
        contracts: Contracts,
        access: Access,
        keyring: Arc<Keyring>,
        anchors: Anchors,
        people: People,
        writer: Writer,
        safe_harbor: SafeHarbor,
    ) -> Research {
        Research {
            db,
            ledger,
            contracts,
            access,
            keyring,
            anchors,
            people,
            writer,
            safe_harbor,
        }
    }
}

impl Research {
    /// The researchers enrolled, with the names their invitations gave them.
    pub async fn researchers(&self, person: &Person) -> Result<Vec<ResearcherView>> {
        if person.role != Role::Admin && person.role != Role::Researcher {
            return Err(Error::forbidden(
                "only admins and researchers list researchers",
            ));
        }
        Ok(Users(&self.db)
            .researchers()
            .await?
            .into_iter()
            .map(|r| ResearcherView {
                address: r.address,
                username: r.username,
                name: r.name,
            })
            .collect())
    }

    /// An admin registers a study on chain for a researcher: its details are stored first,
    /// the chain gets their hash.
    pub async fn register_study(
        &self,
        admin: &Person,
        study: &NewStudy,
    ) -> Result<(StudyView, TxInfo)> {
        self.people.require_admin(admin)?;
        let title = study.title.trim();
        if title.is_empty() || title.len() > 200 {
            return Err(Error::invalid("a title of 1 to 200 characters is required").on("title"));
        }
        if study.description.len() > 5_000 {
            return Err(
                Error::invalid("the description is limited to 5,000 characters").on("description"),
            );
        }
        if study.data.is_empty() {
            return Err(Error::invalid(format!(
                "name the data the study asks for, among {}",
                STUDY_DATA.join(", ")
            ))
            .on("data"));
        }
        if let Some(bad) = study
            .data
            .iter()
            .find(|d| !STUDY_DATA.contains(&d.as_str()))
        {
            return Err(Error::invalid(format!(
                "a study asks for structured data only ({}), not {bad:?}",
                STUDY_DATA.join(", ")
            ))
            .on("data"));
        }
        let now = self.ledger.now().await?;
        if study.ends_at <= now {
            return Err(
                Error::new(Kind::Unprocessable, "a study must end in the future").on("ends_at"),
            );
        }
        if !self
            .researchers(admin)
            .await?
            .iter()
            .any(|r| r.address == study.researcher)
        {
            return Err(Error::not_found("there is no such researcher").on("researcher"));
        }
        let details = StudyDetails {
            title: title.to_string(),
            description: study.description.trim().to_string(),
            data: study.data.clone(),
            nonce: hex::encode(crate::model::random_b256()),
        };
        let json = serde_json::to_string(&details).map_err(|e| Error::internal("study", e))?;
        let hash = keccak256(json.as_bytes());
        let call = Contract::registerStudyCall {
            researcher: study.researcher,
            detailsHash: hash,
            endsAt: study.ends_at,
        };
        let stored =
            Studies(&self.db).insert(&hash, study.researcher, &json, study.ends_at, admin.address);
        let research = self.contracts.research;
        let (tx, _) = self
            .writer
            .write_after(
                &admin.signer,
                research,
                call.abi_encode(),
                Follow::Study { details: hash },
                None,
                stored,
            )
            .await?
            .mined()?;
        let view = self
            .study_by_hash(&hash)
            .await?
            .ok_or_else(|| Error::internal("study", "not stored after it was mined"))?;
        Ok((view, tx))
    }

    async fn study_by_hash(&self, hash: &B256) -> Result<Option<StudyView>> {
        match Studies(&self.db).by_hash(hash).await? {
            Some(row) => {
                let now = self.ledger.now().await?;
                Ok(Some(self.study_view(&row, None, now).await?))
            }
            None => Ok(None),
        }
    }

    async fn study_view(
        &self,
        row: &StudyRow,
        patient: Option<Address>,
        now: u64,
    ) -> Result<StudyView> {
        let details: StudyDetails =
            serde_json::from_str(&row.details).map_err(|e| Error::internal("study details", e))?;
        let researcher = row.researcher;
        let name = Invites(&self.db).researcher_name(researcher).await?;
        let (id, ends_at) = (row.id, row.ends_at);
        let opted_in = match patient {
            Some(p) => Some(self.opted_in(p, id).await?),
            None => None,
        };
        Ok(StudyView {
            id,
            researcher,
            researcher_name: name.unwrap_or_default(),
            title: details.title,
            description: details.description,
            data: details.data,
            ends_at,
            running: ends_at > now,
            details_hash: row.details_hash,
            tx_hash: row.tx_hash,
            opted_in,
        })
    }

    /// The studies a person sees: a patient every study, with whether they are in it; a
    /// researcher their own; an admin all of them.
    pub async fn studies(&self, person: &Person) -> Result<Vec<StudyView>> {
        let rows = match person.role {
            Role::Patient | Role::Admin => Studies(&self.db).registered(None).await?,
            Role::Researcher => Studies(&self.db).registered(Some(person.address)).await?,
            _ => return Err(Error::forbidden("doctors take no part in studies")),
        };
        let patient = (person.role == Role::Patient).then_some(person.address);
        let now = self.ledger.now().await?;
        let mut out = Vec::new();
        for row in &rows {
            out.push(self.study_view(row, patient, now).await?);
        }
        Ok(out)
    }

    /// One study, as `studies` shows it.
    pub async fn study(&self, person: &Person, id: u64) -> Result<StudyView> {
        self.studies(person)
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| Error::not_found("there is no such study"))
    }

    /// Who runs study `id`, if it is registered here.
    pub(crate) async fn study_researcher(&self, id: u64) -> Result<Option<Address>> {
        Studies(&self.db).researcher_of(id).await
    }

    /// Study `id`'s title, if it is registered here.
    pub(crate) async fn study_title(&self, id: u64) -> Result<Option<String>> {
        let details = Studies(&self.db).details_of(id).await?;
        Ok(details
            .and_then(|d| serde_json::from_str::<StudyDetails>(&d).ok())
            .map(|d| d.title))
    }

    /// Whether `patient`'s opt-in to study `id` is live, as the chain says now.
    pub async fn opted_in(&self, patient: Address, id: u64) -> Result<bool> {
        self.access.opted_in(patient, id).await
    }

    /// A patient joins a running study, or leaves one, by their own transaction; from their
    /// leaving on, no export includes them.
    pub async fn take_part(&self, patient: &Person, id: u64, choice: Choice) -> Result<TxInfo> {
        self.people.require_patient(patient)?;
        let study = self.study(patient, id).await?;
        let joined = study.opted_in == Some(true);
        let input = match choice {
            Choice::Join if !study.running => {
                return Err(Error::new(
                    Kind::Unprocessable,
                    "this study has ended: it takes no one any more",
                ));
            }
            Choice::Join if joined => {
                return Err(Error::conflict("you are already in this study"));
            }
            Choice::Leave if !joined => return Err(Error::conflict("you are not in this study")),
            Choice::Join => Contract::optInCall { studyId: id }.abi_encode(),
            Choice::Leave => Contract::withdrawCall { studyId: id }.abi_encode(),
        };
        let research = self.contracts.research;
        let follow = Follow::Research {
            patient: patient.address,
        };
        Ok(self
            .writer
            .write_after(
                &patient.signer,
                research,
                input,
                follow,
                Some(&patient.secret),
                async { Ok(()) },
            )
            .await?
            .mined()?
            .0)
    }
}
