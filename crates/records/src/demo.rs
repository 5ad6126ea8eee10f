//! Demo data for `medledger serve --demo`: a few hospitals, doctors and patients, with reports and
//! grants, all created through the same operations (and transactions) as real use, so a newcomer
//! sees a working system at once.

use crate::{
    accounts::Accounts, directory::Directory, enrolment::Enrolment, people::People,
    reports::Reports, sharing::Sharing,
};
use crate::{
    accounts::{self, Person},
    directory::{HospitalInput, PatientSignup, Profile},
    enrolment::DoctorInvite,
    error::Result,
    model::{Purpose, RecordKind, Scope},
    reports::NewReport,
    sharing::GrantInput,
};

/// A login the demo created.
#[derive(Debug, Clone)]
pub struct Login {
    pub role: &'static str,
    pub username: String,
    pub password: String,
}

fn hospital(
    name: &str,
    city: &str,
    address: &str,
    specialties: &str,
    services: &str,
) -> HospitalInput {
    HospitalInput {
        name: name.into(),
        city: city.into(),
        address: address.into(),
        specialties: specialties.into(),
        services: services.into(),
        contact: format!("+33 4 00 00 00 {:02}", name.len()),
    }
}

#[derive(Clone)]
pub struct Demo {
    accounts: Accounts,
    directory: Directory,
    enrolment: Enrolment,
    people: People,
    reports: Reports,
    sharing: Sharing,
}

impl Demo {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        accounts: Accounts,
        directory: Directory,
        enrolment: Enrolment,
        people: People,
        reports: Reports,
        sharing: Sharing,
    ) -> Demo {
        Demo {
            accounts,
            directory,
            enrolment,
            people,
            reports,
            sharing,
        }
    }
}

impl Demo {
    /// Seeds the demo, signed by `admin`. Does nothing (and returns no logins) if the directory
    /// already has hospitals.
    pub async fn seed_demo(&self, admin: &Person) -> Result<Vec<Login>> {
        if !self.people.hospitals(None, None).await?.is_empty() {
            return Ok(Vec::new());
        }
        let mut logins = Vec::new();
        let hospitals = [
            hospital(
                "Hôpital Édouard Herriot",
                "Lyon",
                "5 Place d'Arsonval",
                "cardiology, emergency medicine",
                "24h emergency, imaging",
            ),
            hospital(
                "Clinique du Parc",
                "Lyon",
                "155 Boulevard de Stalingrad",
                "orthopaedics, radiology",
                "MRI, physiotherapy",
            ),
            hospital(
                "Hôpital Pitié-Salpêtrière",
                "Paris",
                "47 Boulevard de l'Hôpital",
                "neurology, oncology",
                "oncology day care",
            ),
        ];
        let mut ids = Vec::new();
        for h in &hospitals {
            ids.push(self.directory.add_hospital(admin, h).await?.0);
        }
        let doctors = [
            (
                "dr.martin",
                "Dr. Claire Martin",
                "cardiology",
                "FR-10001",
                ids[0],
            ),
            (
                "dr.bernard",
                "Dr. Louis Bernard",
                "radiology",
                "FR-10002",
                ids[1],
            ),
            (
                "dr.petit",
                "Dr. Amina Petit",
                "neurology",
                "FR-10003",
                ids[2],
            ),
        ];
        let mut doctor_accounts = Vec::new();
        for (username, name, specialty, licence, hospital_id) in doctors {
            let password = accounts::generate_password();
            let input = DoctorInvite {
                name: name.into(),
                specialty: specialty.into(),
                licence_id: licence.into(),
                hospital_id,
            };
            // Demo doctors take up their own enrolment links at once (with passwords made up
            // here and printed once): in real use each doctor opens theirs.
            let (invite, _) = self.enrolment.invite_doctor(admin, &input).await?;
            doctor_accounts.push(
                self.enrolment
                    .enrol(&invite.token, username, &password)
                    .await?
                    .0,
            );
            logins.push(Login {
                role: "doctor",
                username: username.into(),
                password,
            });
        }
        let patients = [
            ("alice", "Alice Moreau", "1984-03-12"),
            ("bob", "Bob Laurent", "1972-11-05"),
        ];
        for (i, (username, name, born)) in patients.into_iter().enumerate() {
            let password = accounts::generate_password();
            self.directory
                .sign_up_patient(&PatientSignup {
                    username: username.into(),
                    password: password.clone(),
                    wallet: None,
                    profile: Profile {
                        name: name.into(),
                        date_of_birth: born.into(),
                        contact: format!("{username}@example.org"),
                    },
                })
                .await?;
            let patient = self.accounts.login(username, &password).await?;
            let report = NewReport {
                title: if i == 0 {
                    "Blood test".into()
                } else {
                    "Chest X-ray report".into()
                },
                kind: RecordKind::Report,
                date: "2026-10-02".into(),
                notes: "Routine check-up.".into(),
                bytes: format!("Demo report for {name}.\nAll values within normal ranges.\n")
                    .into_bytes(),
            };
            self.reports.share_report(&patient, report).await?;
            let grant = GrantInput {
                doctor: Some(doctor_accounts[i].address),
                hospital_id: None,
                scope: Scope::All,
                kinds: Vec::new(),
                record_ids: Vec::new(),
                purpose: Purpose::Treatment,
                expires_at: None,
                expires_in_days: Some(30),
            };
            self.sharing.grant(&patient, &grant).await?;
            logins.push(Login {
                role: "patient",
                username: username.into(),
                password,
            });
        }
        Ok(logins)
    }
}
