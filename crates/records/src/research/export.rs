//! Research exports: made for a study by its researcher, in the background, from the bundles of
//! the patients whose opt-in the chain holds live at that moment; de-identified (Safe Harbor,
//! then k-anonymity); recorded on chain by the researcher (the hash of the files, the count,
//! the patients included, each of whom the contract checks again); kept as FHIR Bulk Data
//! NDJSON, one file per resource type, with a report of what was suppressed and why.

use std::collections::BTreeMap;

use alloy::{
    primitives::{B256, keccak256},
    sol_types::SolCall,
};
use serde::Serialize;

use super::deidentify::{SafeHarbor, Subject, Suppressed, deidentify};
use serde_json::Value;

use crate::{access::Participating, disclosure::Unlogged, model::RecordKind};
use crate::{
    contracts::Research as Contract,
    error::{Error, Kind, Result},
    journal::Follow,
    model::Role,
    model::unix_now,
    person::Person,
    research::Research,
    store::{
        exports::{ExportRow, Exports},
        users::Users,
    },
};

/// After this long a running export is taken to have been cut off (by a stopped server).
const STALE_SECS: i64 = 3600;

/// An export as its researcher follows it.
#[derive(Debug, Clone, Serialize)]
pub struct ExportView {
    pub id: String,
    pub study: u64,
    pub state: String,
    /// Patients looked at so far, of how many.
    pub done_patients: u64,
    pub total_patients: u64,
    pub report: Option<ExportReport>,
    pub error: Option<String>,
    pub files_hash: Option<B256>,
    pub export_id: Option<u64>,
    pub tx_hash: Option<B256>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// Resource type and lines, of each file.
    pub files: Vec<(String, u64)>,
}

/// What an export included and what it left out.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ExportReport {
    /// Patients with a live opt-in when the export ran.
    pub opted_in: usize,
    pub included_patients: usize,
    pub resources: usize,
    pub k: usize,
    pub small_group_patients: usize,
    pub small_group_resources: usize,
    pub uncoded_resources: usize,
    pub why: Vec<String>,
}

/// The hash of an export's files, as recorded on chain: keccak256 over each file's type and
/// keccak256, in type order.
pub fn files_hash(files: &BTreeMap<String, String>) -> B256 {
    let mut all = Vec::new();
    for (kind, body) in files {
        all.extend_from_slice(kind.as_bytes());
        all.extend_from_slice(keccak256(body.as_bytes()).as_slice());
    }
    keccak256(&all)
}

impl Research {
    /// The resources of every bundle a study's participant shared, opened with the research
    /// key's wraps (which exist only while they take part in a study), for the research export
    /// `participating` proves their live opt-in to. What leaves is de-identified, and only once
    /// the export is recorded on chain naming them (`Research.recordExport`).
    pub(crate) async fn research_resources(
        &self,
        participating: &Participating,
    ) -> Result<Vec<Value>> {
        let mut out = Unlogged::nothing(Vec::new());
        for row in crate::store::records::Records(&self.db)
            .of(
                crate::store::records::Whose::Patient,
                participating.patient(),
            )
            .await?
        {
            let Some(sealed) = &row.resources else {
                continue;
            };
            if row.kind == RecordKind::Prescription {
                continue;
            }
            let (checked, _) = self.anchors.check_record(&row, false).await?;
            if !checked.details {
                continue;
            }
            let Some(key) = self
                .keyring
                .as_ref()
                .unlock_for_research(crate::store::wraps::Wraps(&self.db), participating, &row)
                .await?
            else {
                continue;
            };
            out.push(
                key.open(&crate::reports::resources_aad(&row.id), sealed)?
                    .and_then(|plain| {
                        Ok(crate::reports::structured::entries_of(plain)?
                            .into_iter()
                            .map(|e| e.resource)
                            .collect::<Vec<Value>>())
                    })?,
            );
        }
        Ok(out
            .for_export(participating)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// A researcher starts an export for their running study; it runs in the background and
    /// its id is returned at once.
    pub async fn start_export(&self, researcher: &Person, study: u64) -> Result<String> {
        if researcher.role != Role::Researcher {
            return Err(Error::forbidden(
                "only a study's researcher exports its data",
            ));
        }
        let view = self.study(researcher, study).await?;
        if !view.running {
            return Err(Error::new(
                Kind::Unprocessable,
                "this study has ended: nothing more is exported for it",
            ));
        }
        // An export still "running" an hour after it started was cut off by a stopped server.
        let exports = Exports(&self.db);
        exports
            .fail_stale(
                unix_now() - STALE_SECS,
                "the server stopped during this export; start another",
            )
            .await?;
        if let Some(id) = exports.running_of(study).await? {
            return Err(Error::conflict(format!(
                "an export of this study is running already ({id}); wait for it to finish"
            )));
        }
        let id = hex::encode(&crate::model::random_b256()[..16]);
        exports.start(&id, study, researcher.address).await?;
        let app = self.clone();
        let signer = researcher.signer.clone();
        let job = id.clone();
        tokio::spawn(async move {
            let data = view.data.clone();
            if let Err(e) = app.run_export(&job, study, &data, &signer).await {
                tracing::warn!(export = %job, error = %e, "research export failed");
                let _ = Exports(&app.db).fail(&job, &e.message).await;
            }
        });
        Ok(id)
    }

    async fn run_export(
        &self,
        job: &str,
        study: u64,
        data: &[String],
        researcher: &crate::accounts::Signer,
    ) -> Result<()> {
        let patients = Users(&self.db).active_patients().await?;
        let exports = Exports(&self.db);
        exports.total(job, patients.len() as u64).await?;
        let mut subjects = Vec::new();
        for (n, patient) in patients.iter().copied().enumerate() {
            // Only a live opt-in opens a patient's data to the export.
            if let Some(participating) = self.access.participating_in(patient, study).await? {
                subjects.push(Subject {
                    patient,
                    date_of_birth: None,
                    resources: self.research_resources(&participating).await?,
                });
            }
            exports.progress(job, (n + 1) as u64).await?;
        }
        let rules = self.safe_harbor.clone();
        let this_year: i64 = crate::model::rfc3339(self.ledger.now().await? as i64)[..4]
            .parse()
            .unwrap_or(1970);
        let key = self.keyring.as_ref().pseudonym_key(study);
        let out = deidentify(&subjects, data, &key, &rules, this_year);
        let files: BTreeMap<String, String> = out
            .files
            .iter()
            .map(|(kind, lines)| {
                let body: String = lines
                    .iter()
                    .map(|l| format!("{l}\n"))
                    .collect::<Vec<_>>()
                    .concat();
                (kind.clone(), body)
            })
            .collect();
        let resources: usize = out
            .files
            .iter()
            .filter(|(k, _)| k.as_str() != "Patient")
            .map(|(_, v)| v.len())
            .sum();
        let report = report_of(
            subjects.len(),
            out.included.len(),
            resources,
            &rules,
            &out.suppressed,
        );
        let hash = files_hash(&files);
        for (kind, body) in &files {
            exports
                .add_file(job, kind, out.files[kind].len() as u64, body)
                .await?;
        }
        let report_json =
            serde_json::to_string(&report).map_err(|e| Error::internal("export report", e))?;
        if out.included.is_empty() {
            return exports.done(job, &report_json, &hash, None).await;
        }
        let call = Contract::recordExportCall {
            studyId: study,
            filesHash: hash,
            resources: resources as u32,
            patients: out.included.clone(),
        };
        let research = self.contracts.research;
        let (tx, receipt) = self
            .writer
            .write(researcher, research, call.abi_encode(), Follow::Nothing)
            .await?
            .mined()?;
        let export_id = receipt
            .decoded_log::<Contract::ExportRecorded>()
            .map(|l| l.data.exportId);
        exports
            .done(job, &report_json, &hash, Some((tx.hash, export_id)))
            .await
    }

    /// An export of the researcher's, as it stands.
    pub async fn export(&self, researcher: &Person, id: &str) -> Result<ExportView> {
        let row = Exports(&self.db)
            .of_researcher(id, researcher.address)
            .await?
            .ok_or_else(|| Error::not_found("there is no such export of yours"))?;
        self.export_view(row).await
    }

    /// The exports a researcher made, the latest first.
    pub async fn exports(&self, researcher: &Person) -> Result<Vec<ExportView>> {
        if researcher.role != Role::Researcher {
            return Err(Error::forbidden("only researchers make exports"));
        }
        let mut out = Vec::new();
        for row in Exports(&self.db).all_of(researcher.address).await? {
            out.push(self.export_view(row).await?);
        }
        Ok(out)
    }

    async fn export_view(&self, row: ExportRow) -> Result<ExportView> {
        let files = Exports(&self.db).files(&row.id).await?;
        Ok(ExportView {
            study: row.study,
            state: row.state,
            done_patients: row.done_patients,
            total_patients: row.total_patients,
            report: row.report.and_then(|r| serde_json::from_str(&r).ok()),
            error: row.error,
            files_hash: row.files_hash,
            export_id: row.export_id,
            tx_hash: row.tx_hash,
            created_at: row.created_at,
            finished_at: row.finished_at,
            files,
            id: row.id,
        })
    }

    /// One NDJSON file of a finished export of the researcher's.
    pub async fn export_file(&self, researcher: &Person, id: &str, kind: &str) -> Result<String> {
        let view = self.export(researcher, id).await?;
        if view.state != "done" {
            return Err(Error::conflict("this export has not finished"));
        }
        Exports(&self.db)
            .file(id, kind)
            .await?
            .ok_or_else(|| Error::not_found("this export has no such file"))
    }
}

fn report_of(
    opted_in: usize,
    included: usize,
    resources: usize,
    rules: &SafeHarbor,
    s: &Suppressed,
) -> ExportReport {
    let mut why = Vec::new();
    if s.small_group_patients > 0 {
        why.push(format!(
            "{} patients ({} resources) were suppressed: fewer than {} patients share their birth year, sex and three-digit ZIP code",
            s.small_group_patients, s.small_group_resources, rules.k
        ));
    }
    if s.uncoded_resources > 0 {
        why.push(format!(
            "{} resources were left out: nothing coded was left of them once free text was removed",
            s.uncoded_resources
        ));
    }
    ExportReport {
        opted_in,
        included_patients: included,
        resources,
        k: rules.k,
        small_group_patients: s.small_group_patients,
        small_group_resources: s.small_group_resources,
        uncoded_resources: s.uncoded_resources,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_hash_covers_every_file_and_its_type() {
        let mut files = BTreeMap::new();
        files.insert("Observation".to_string(), "{}\n".to_string());
        let one = files_hash(&files);
        files.insert("Patient".to_string(), "{}\n".to_string());
        assert_ne!(files_hash(&files), one);
    }
}
