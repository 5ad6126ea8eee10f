//! The part of every search that touches the request or the domain: the query string read as a
//! `Search`, the base URL the client reached, the patients a search covers, and the glue that
//! pages a list and answers it as a `searchset` Bundle. What a search means is `r4::search`'s.

use axum::{
    extract::{FromRequestParts, Query},
    http::request::Parts,
};
use medledger_records::{Kind, Person, model::Role, primitives::Address};
use serde_json::Value;

use super::r4::{
    ids::reference_param,
    model::Resource,
    search::{Search, searchset},
};
use super::{Fhir, FhirError, FhirResult};
use crate::ApiState;

impl<S: Send + Sync> FromRequestParts<S> for Search {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> FhirResult<Search> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| FhirError::new(Kind::Invalid, format!("bad query string: {e}")))?;
        Ok(Search::from_pairs(pairs))
    }
}

/// The server's FHIR base URL (for `fullUrl` and page links): on its public origin, never on
/// the `Host` a client sent.
pub(crate) fn base_url(state: &ApiState) -> String {
    format!("{}/fhir", state.public.origin())
}

/// A search's answer, as the client reached the server: `r4::search::searchset` at its base URL.
pub(crate) fn answer(
    state: &ApiState,
    kind: &str,
    search: &Search,
    page: (usize, usize),
    total: usize,
    entries: Vec<(String, Value)>,
) -> Fhir {
    let base = base_url(state);
    Fhir(searchset(&base, kind, search, page, total, entries))
}

/// The one page of `all` a search asks for, as a Bundle.
pub(crate) fn page_of<R: Resource>(
    state: &ApiState,
    search: &Search,
    all: Vec<R>,
) -> FhirResult<Fhir> {
    let page = search.page()?;
    let total = all.len();
    let entries = all
        .into_iter()
        .skip(page.0)
        .take(page.1)
        .map(|r| (format!("{}/{}", R::TYPE, r.id()), r.to_json()))
        .collect();
    Ok(answer(state, R::TYPE, search, page, total, entries))
}

/// The patient a search is about: `patient=` if given; otherwise a patient themselves.
pub(crate) fn patient_of(search: &Search, reader: &Person) -> FhirResult<Option<Address>> {
    match search.one("patient")? {
        Some(p) => {
            let patient = reference_param(p, "Patient")?;
            if reader.role == Role::Patient && patient != reader.address {
                return Err(FhirError::new(
                    Kind::Forbidden,
                    "a patient's token reads only their own compartment",
                ));
            }
            Ok(Some(patient))
        }
        None if reader.role == Role::Patient => Ok(Some(reader.address)),
        None => Ok(None),
    }
}

/// The patients a doctor's search without `patient=` covers: those who share with them.
pub(crate) async fn patients_in_scope(
    state: &ApiState,
    reader: &Person,
    search: &Search,
) -> FhirResult<Vec<Address>> {
    match patient_of(search, reader)? {
        Some(p) => Ok(vec![p]),
        None if reader.role == Role::Doctor => {
            Ok(state.app.sharing().sharing_patients(reader).await?)
        }
        None => Err(FhirError::new(
            Kind::Forbidden,
            "only patients and doctors read patients' data",
        )),
    }
}
