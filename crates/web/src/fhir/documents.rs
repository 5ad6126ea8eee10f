//! DocumentReference and Binary: the reports the reader may see, searched and read through
//! `Reports::reports_page` and `Reports::record` (which log on chain what they show), and a report's
//! bytes opened like a download, the opening logged on chain before a byte leaves.

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use medledger_records::{
    Kind,
    model::{Purpose, RecordKind},
};
use serde::Deserialize;
use serde_json::json;

use super::r4::{
    capability::params_of,
    ids::{parse_record, record_id},
    model::Resource,
    resources::{DocumentFilters, document_resource},
    search::{Pager, Search},
};
use super::search::{answer, patients_in_scope};
use super::{Fhir, FhirError, FhirResult, Reader, unseen};
use crate::ApiState;

/// `_format`, which a client may give instead of `Accept` to ask for a Binary as FHIR JSON.
#[derive(Deserialize)]
pub(crate) struct Format {
    #[serde(rename = "_format")]
    format: Option<String>,
}

/// `GET /fhir/DocumentReference`: the reports the reader may see, filtered, paged after the
/// filtering; only the page is logged on chain as viewed.
pub(crate) async fn documents(
    State(state): State<ApiState>,
    reader: Reader,
    search: Search,
) -> FhirResult<Fhir> {
    search.only(&params_of("DocumentReference"))?;
    let (offset, count) = search.page()?;
    let filters = DocumentFilters::of(&search)?;
    let person = reader.require("DocumentReference")?;
    let mut pager = Pager::new((offset, count));
    let mut entries = Vec::new();
    for patient in patients_in_scope(&state, person, &search).await? {
        let (skip, take) = pager.window();
        let (kept, page) = state
            .app
            .reports()
            .reports_page(
                person,
                patient,
                Purpose::Treatment,
                |v| filters.keep(v),
                skip,
                take,
            )
            .await?;
        pager.took(kept, page.len());
        for v in &page {
            let d = document_resource(v);
            entries.push((format!("DocumentReference/{}", d.id), d.to_json()));
        }
    }
    Ok(answer(
        &state,
        "DocumentReference",
        &search,
        (offset, count),
        pager.total,
        entries,
    ))
}

/// `GET /fhir/DocumentReference/{id}`: a report's details (logged on chain as viewed).
pub(crate) async fn document(
    State(state): State<ApiState>,
    reader: Reader,
    Path(id): Path<String>,
) -> FhirResult<Fhir> {
    let id = parse_record(&id)?;
    let view = state
        .app
        .reports()
        .record(reader.require("DocumentReference")?, id, Purpose::Treatment)
        .await
        .map_err(unseen("DocumentReference"))?;
    if view.kind == RecordKind::Prescription {
        return Err(FhirError::new(
            Kind::NotFound,
            "this record is a prescription: read it as MedicationRequest",
        ));
    }
    Ok(Fhir(document_resource(&view).to_json()))
}

/// `GET /fhir/Binary/{id}`: a report's bytes, opened like a download (the opening logged on
/// chain, signed by the reader, before a byte leaves). As a Binary resource when the client
/// asks for FHIR JSON, the bytes themselves otherwise.
pub(crate) async fn binary(
    State(state): State<ApiState>,
    reader: Reader,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(format): Query<Format>,
) -> FhirResult<Response> {
    let id = parse_record(&id)?;
    let opened = state
        .app
        .reports()
        .open_record(reader.require("Binary")?, id, Purpose::Treatment)
        .await
        .map_err(unseen("Binary"))?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or("");
    let as_resource = accept.contains("application/fhir+json")
        || accept.contains("application/json")
        || format.format.as_deref().is_some_and(|f| f.contains("json"));
    if as_resource {
        let data = base64::engine::general_purpose::STANDARD.encode(&opened.bytes);
        let mut response = Fhir(json!({
            "resourceType": "Binary",
            "id": record_id(&id),
            "contentType": opened.media_type,
            "data": data,
        }))
        .into_response();
        response.headers_mut().insert(
            header::HeaderName::from_static("x-medledger-access-tx"),
            header::HeaderValue::from_str(&opened.access_tx.hash.to_string())
                .unwrap_or(header::HeaderValue::from_static("")),
        );
        return Ok(response);
    }
    Ok(crate::api::attachment(&id, opened))
}
