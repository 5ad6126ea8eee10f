//! FHIR Bulk Data export for research (the kick-off, status and file requests of the Bulk Data
//! Access IG): `GET /fhir/Group/{study}/$export` with `Prefer: respond-async` starts the
//! de-identified export of a study's cohort (the patients whose opt-in the chain holds live)
//! and answers 202 with the status URL; the status answers 202 with `X-Progress` while it runs
//! and then the manifest; each file is NDJSON of one resource type. Only the study's researcher
//! may do any of it.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use medledger_records::{Kind, Person, model::Role, model::rfc3339};
use serde_json::json;

use super::search::base_url;
use super::{Fhir, FhirError, FhirResult, Reader};
use crate::ApiState;

fn researcher(reader: &Reader) -> FhirResult<&Person> {
    if reader.person.role != Role::Researcher {
        return Err(FhirError::new(
            Kind::Forbidden,
            "only a study's researcher exports its data",
        ));
    }
    Ok(&reader.person)
}

/// `GET /fhir/Group/{study}/$export` (researcher, `Prefer: respond-async`).
pub(crate) async fn kick_off(
    State(state): State<ApiState>,
    reader: Reader,
    headers: HeaderMap,
    Path(study): Path<String>,
) -> FhirResult<Response> {
    let person = researcher(&reader)?;
    let asks_async = headers
        .get("prefer")
        .and_then(|p| p.to_str().ok())
        .is_some_and(|p| p.contains("respond-async"));
    if !asks_async {
        return Err(FhirError::new(
            Kind::Invalid,
            "a bulk export runs asynchronously: send the header Prefer: respond-async",
        ));
    }
    let study: u64 = study
        .parse()
        .map_err(|_| FhirError::new(Kind::NotFound, "a study's Group id is the study's number"))?;
    let id = state.app.research().start_export(person, study).await?;
    let base = base_url(&state);
    let mut response = (
        StatusCode::ACCEPTED,
        Fhir(json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "information", "code": "informational",
                        "diagnostics": "the export has started; follow Content-Location" }],
        })),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("{base}/bulkstatus/{id}")) {
        response
            .headers_mut()
            .insert(header::CONTENT_LOCATION, location);
    }
    Ok(response)
}

/// `GET /fhir/bulkstatus/{id}`: 202 and `X-Progress` while it runs, the manifest when done.
pub(crate) async fn status(
    State(state): State<ApiState>,
    reader: Reader,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let person = researcher(&reader)?;
    let export = state.app.research().export(person, &id).await?;
    match export.state.as_str() {
        "running" => {
            let mut response = StatusCode::ACCEPTED.into_response();
            let progress = format!(
                "{} of {} patients looked at",
                export.done_patients, export.total_patients
            );
            if let Ok(value) = HeaderValue::from_str(&progress) {
                response.headers_mut().insert("x-progress", value);
            }
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(response)
        }
        "failed" => Err(FhirError::new(
            Kind::Unavailable,
            format!(
                "the export failed: {}",
                export.error.unwrap_or_else(|| "no reason was kept".into())
            ),
        )),
        _ => {
            let base = base_url(&state);
            let output: Vec<_> = export
                .files
                .iter()
                .map(|(kind, count)| {
                    json!({
                        "type": kind,
                        "url": format!("{base}/bulkfiles/{id}/{kind}.ndjson"),
                        "count": count,
                    })
                })
                .collect();
            let manifest = json!({
                "transactionTime": rfc3339(export.finished_at.unwrap_or(export.created_at)),
                "request": format!("{base}/Group/{}/$export", export.study),
                "requiresAccessToken": true,
                "output": output,
                "error": [],
                "extension": {
                    "urn:medledger:export": {
                        "study": export.study,
                        "files_hash": export.files_hash,
                        "export_id": export.export_id,
                        "transaction": export.tx_hash,
                        "report": export.report,
                    }
                },
            });
            Ok((StatusCode::OK, axum::Json(manifest)).into_response())
        }
    }
}

/// `GET /fhir/bulkfiles/{id}/{Type}.ndjson`.
pub(crate) async fn file(
    State(state): State<ApiState>,
    reader: Reader,
    Path((id, file)): Path<(String, String)>,
) -> FhirResult<Response> {
    let person = researcher(&reader)?;
    let kind = file
        .strip_suffix(".ndjson")
        .ok_or_else(|| FhirError::new(Kind::NotFound, "an export's files are named Type.ndjson"))?;
    let body = state.app.research().export_file(person, &id, kind).await?;
    Ok(([(header::CONTENT_TYPE, "application/fhir+ndjson")], body).into_response())
}
