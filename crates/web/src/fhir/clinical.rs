//! The resources of the FHIR Bundles patients shared as reports (Observation, Condition,
//! MedicationStatement, …): searched and read through `Reports::clinical_page`, which shows only
//! those of reports the chain lets the reader see, pages after that filtering, and logs on chain
//! the reports the page shows. Each is served under an id made of its report's and its place in
//! the bundle, with the bundle's references rewritten to what this server serves; the types, the
//! filters and the rewriting are `r4::clinical`'s.

use axum::{
    extract::{Path, State},
    routing::{MethodRouter, get},
};
use medledger_records::{Kind, Person, model::Purpose, primitives::Address};
use serde_json::Value;

use super::r4::{
    clinical::{ClinicalType, Filters, clinical_type, served},
    ids::parse_clinical_id,
    search::{Pager, Search},
};
use super::search::{answer, patients_in_scope};
use super::{Fhir, FhirError, FhirResult, Reader};
use crate::ApiState;

/// A search of one imported type over the patients `patients` names, `skip` then `take` after
/// filtering: the total and the page's resources.
pub(crate) async fn page(
    state: &ApiState,
    reader: &Person,
    patients: &[Address],
    filters: &Filters<'_>,
    page: (usize, usize),
) -> FhirResult<(usize, Vec<Value>)> {
    let mut pager = Pager::new(page);
    let mut out = Vec::new();
    for patient in patients {
        let (skip, take) = pager.window();
        let (kept, page) = state
            .app
            .reports()
            .clinical_page(
                reader,
                *patient,
                Purpose::Treatment,
                filters.t.words,
                |c| filters.keep(c),
                skip,
                take,
            )
            .await?;
        pager.took(kept, page.len());
        out.extend(page.iter().map(served));
    }
    Ok((pager.total, out))
}

/// `GET /fhir/{type}` for an imported type.
async fn search(
    t: &'static ClinicalType,
    state: ApiState,
    reader: Reader,
    search: Search,
) -> FhirResult<Fhir> {
    let filters = Filters::of(t, &search)?;
    let person = reader.require(t.name)?;
    let patients = patients_in_scope(&state, person, &search).await?;
    let (offset, count) = search.page()?;
    let (total, resources) = page(&state, person, &patients, &filters, (offset, count)).await?;
    let entries = resources
        .into_iter()
        .map(|r| {
            (
                format!("{}/{}", t.name, r["id"].as_str().unwrap_or_default()),
                r,
            )
        })
        .collect();
    Ok(answer(
        &state,
        t.name,
        &search,
        (offset, count),
        total,
        entries,
    ))
}

/// `GET /fhir/{type}/{id}` for an imported type.
pub(crate) async fn read(
    t: &'static ClinicalType,
    state: &ApiState,
    reader: &Person,
    id: &str,
) -> FhirResult<Fhir> {
    let missing = || {
        FhirError::new(
            Kind::NotFound,
            format!("no {} with this id that you may see", t.name),
        )
    };
    let (prefix, index) = parse_clinical_id(id).ok_or_else(missing)?;
    let found = state
        .app
        .reports()
        .clinical_resource(reader, prefix, index, Purpose::Treatment)
        .await
        .map_err(|e| match e.kind {
            Kind::NotFound | Kind::Forbidden => missing(),
            _ => e.into(),
        })?;
    if found.resource["resourceType"] != t.name {
        return Err(missing());
    }
    Ok(Fhir(served(&found)))
}

/// The search route of an imported type.
pub(crate) fn search_route(name: &'static str) -> MethodRouter<ApiState> {
    let t = clinical_type(name).expect("a clinical type");
    get(move |State(state): State<ApiState>, reader: Reader, q: Search| search(t, state, reader, q))
}

/// The read route of an imported type.
pub(crate) fn read_route(name: &'static str) -> MethodRouter<ApiState> {
    let t = clinical_type(name).expect("a clinical type");
    get(
        move |State(state): State<ApiState>, reader: Reader, Path(id): Path<String>| async move {
            read(t, &state, reader.require(t.name)?, &id).await
        },
    )
}
