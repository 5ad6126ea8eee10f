//! The public directory as FHIR: Practitioner, PractitionerRole (a doctor at their hospital)
//! and Organization (a hospital), read by id and searched, with no patient's data in any.

use axum::extract::{Path, State};
use medledger_records::Kind;

use super::r4::{
    capability::params_of,
    directory::{organization_resource, practitioner_resource, role_resource},
    ids::{account_id, id_of, reference_param},
    matching::contains,
    model::Resource,
    search::Search,
};
use super::search::page_of;
use super::{Fhir, FhirError, FhirResult};
use crate::ApiState;

/// `GET /fhir/Practitioner/{id}` (the public directory).
pub(crate) async fn practitioner(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> FhirResult<Fhir> {
    let d = state.app.people().doctor(account_id(&id)?).await?;
    Ok(Fhir(practitioner_resource(&d).to_json()))
}

/// `GET /fhir/PractitionerRole/{id}`: a doctor at their hospital.
pub(crate) async fn practitioner_role(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> FhirResult<Fhir> {
    let d = state.app.people().doctor(account_id(&id)?).await?;
    Ok(Fhir(role_resource(&d).to_json()))
}

/// `GET /fhir/Organization/{id}`: a hospital.
pub(crate) async fn organization(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> FhirResult<Fhir> {
    let id: u64 = id.parse().map_err(|_| {
        FhirError::new(Kind::NotFound, format!("no Organization has the id {id:?}"))
    })?;
    let h = state.app.people().hospital(id).await?;
    Ok(Fhir(organization_resource(&h).to_json()))
}

/// `GET /fhir/Practitioner`.
pub(crate) async fn practitioners(
    State(state): State<ApiState>,
    search: Search,
) -> FhirResult<Fhir> {
    search.only(&params_of("Practitioner"))?;
    let id = search.one("_id")?;
    let name = search.one("name")?;
    let all = state
        .app
        .people()
        .doctors(None)
        .await?
        .iter()
        .filter(|d| id.is_none_or(|id| id_of(d.address) == id.trim_start_matches("0x")))
        .filter(|d| name.is_none_or(|n| contains(&d.name, n)))
        .map(practitioner_resource)
        .collect();
    page_of(&state, &search, all)
}

/// `GET /fhir/PractitionerRole`.
pub(crate) async fn practitioner_roles(
    State(state): State<ApiState>,
    search: Search,
) -> FhirResult<Fhir> {
    search.only(&params_of("PractitionerRole"))?;
    let id = search.one("_id")?;
    let practitioner = search
        .one("practitioner")?
        .map(|p| reference_param(p, "Practitioner"))
        .transpose()?;
    let organization = search
        .one("organization")?
        .map(|o| o.trim_start_matches("Organization/").to_string());
    let all = state
        .app
        .people()
        .doctors(None)
        .await?
        .iter()
        .filter(|d| id.is_none_or(|id| id_of(d.address) == id.trim_start_matches("0x")))
        .filter(|d| practitioner.is_none_or(|p| p == d.address))
        .filter(|d| {
            organization
                .as_ref()
                .is_none_or(|o| *o == d.hospital_id.to_string())
        })
        .map(role_resource)
        .collect();
    page_of(&state, &search, all)
}

/// `GET /fhir/Organization`.
pub(crate) async fn organizations(
    State(state): State<ApiState>,
    search: Search,
) -> FhirResult<Fhir> {
    search.only(&params_of("Organization"))?;
    let id = search.one("_id")?;
    let name = search.one("name")?;
    let all = state
        .app
        .people()
        .hospitals(None, None)
        .await?
        .iter()
        .filter(|h| id.is_none_or(|id| h.id.to_string() == id))
        .filter(|h| name.is_none_or(|n| contains(&h.name, n)))
        .map(organization_resource)
        .collect();
    page_of(&state, &search, all)
}
