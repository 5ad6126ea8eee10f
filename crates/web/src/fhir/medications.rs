//! MedicationRequest: each line of the prescriptions the reader may see (a patient's, or those a
//! doctor wrote), then the MedicationRequests of the bundles patients shared, searched and paged
//! across both.

use axum::extract::{Path, State};
use medledger_records::{Kind, Person, model::Role};
use serde_json::Value;

use super::clinical;
use super::r4::{
    clinical::{Filters, clinical_type},
    ids::id_of,
    model::{MedicationRequest, Reference, Resource},
    resources::medication_requests_of,
    search::Search,
};
use super::search::{answer, patient_of, patients_in_scope};
use super::{Fhir, FhirError, FhirResult, Reader};
use crate::ApiState;

/// Every line of the prescriptions the reader may see, as a MedicationRequest.
pub(super) async fn all_medication_requests(
    state: &ApiState,
    reader: &Person,
) -> FhirResult<Vec<MedicationRequest>> {
    Ok(state
        .app
        .reports()
        .prescriptions(reader)
        .await?
        .iter()
        .flat_map(medication_requests_of)
        .collect())
}

/// `GET /fhir/MedicationRequest`: a patient's prescriptions, or those a doctor wrote, then the
/// MedicationRequests of the bundles patients shared; filtered, then paged across both.
pub(crate) async fn medication_requests(
    State(state): State<ApiState>,
    reader: Reader,
    search: Search,
) -> FhirResult<Fhir> {
    let t = clinical_type("MedicationRequest").expect("a clinical type");
    let filters = Filters::of(t, &search)?;
    let person = reader.require("MedicationRequest")?;
    let patient = patient_of(&search, person)?;
    let prescribed: Vec<Value> = all_medication_requests(&state, person)
        .await?
        .into_iter()
        .filter(|m| {
            patient.is_none_or(|p| {
                m.subject.reference == Reference::to("Patient", &id_of(p)).reference
            })
        })
        .map(|m| m.to_json())
        .filter(|m| filters.keep_served(m["id"].as_str().unwrap_or_default(), m))
        .collect();
    let (offset, count) = search.page()?;
    let mut entries: Vec<Value> = prescribed
        .iter()
        .skip(offset)
        .take(count)
        .cloned()
        .collect();
    // The imported ones: of the patients in scope, as for any imported type. A suspended
    // doctor still sees the prescriptions they wrote, and no patient's bundles.
    let skip = offset.saturating_sub(prescribed.len());
    let imported = async {
        let patients = patients_in_scope(&state, person, &search).await?;
        clinical::page(
            &state,
            person,
            &patients,
            &filters,
            (skip, count - entries.len()),
        )
        .await
    };
    let (imported, page) = match imported.await {
        Err(FhirError(e)) if e.kind == Kind::Forbidden && person.role == Role::Doctor => {
            (0, Vec::new())
        }
        other => other?,
    };
    entries.extend(page);
    let entries = entries
        .into_iter()
        .map(|r| {
            (
                format!("MedicationRequest/{}", r["id"].as_str().unwrap_or_default()),
                r,
            )
        })
        .collect();
    Ok(answer(
        &state,
        "MedicationRequest",
        &search,
        (offset, count),
        prescribed.len() + imported,
        entries,
    ))
}

/// `GET /fhir/MedicationRequest/{id}`: a prescription's line, or an imported one.
pub(crate) async fn medication_request(
    State(state): State<ApiState>,
    reader: Reader,
    Path(id): Path<String>,
) -> FhirResult<Fhir> {
    let person = reader.require("MedicationRequest")?;
    if let Some(m) = all_medication_requests(&state, person)
        .await?
        .into_iter()
        .find(|m| m.id == id)
    {
        return Ok(Fhir(m.to_json()));
    }
    let t = clinical_type("MedicationRequest").expect("a clinical type");
    clinical::read(t, &state, person, &id).await
}
