//! Reports (shared by patients as a multipart upload, listed, opened) and prescriptions.

use alloy::primitives::Address;
use axum::{
    extract::{Multipart, Path, Query, State, multipart::MultipartError},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use medledger_records::{
    Kind,
    model::{Purpose, RecordKind},
    reports::{NewReport, Opened, PrescriptionBody, parse_record_id},
    sharing::GrantInput,
};
use serde::Deserialize;
use serde_json::json;

use super::{directory::address, written};
use crate::{
    ApiState, Json,
    error::{ApiError, ApiResult},
    session::Auth,
};

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(Kind::TooLarge, "the upload is larger than the limit")
    } else {
        ApiError::new(
            Kind::Invalid,
            format!("bad multipart form: {}", e.body_text()),
        )
    }
}

/// `POST /api/v1/records`: the share form (`file`, `title`, `kind`, `date`, `notes`, and
/// optionally `share_with` doctor addresses, repeated, with `purpose` and `expires_in_days`).
pub(crate) async fn share(
    State(state): State<ApiState>,
    auth: Auth,
    mut form: Multipart,
) -> ApiResult<Response> {
    let limit = state.app.max_upload_bytes();
    let mut file: Option<Vec<u8>> = None;
    let mut fields = std::collections::HashMap::new();
    let mut share_with = Vec::new();
    while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let mut bytes = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                if bytes.len() + chunk.len() > limit {
                    // Read the rest (the body limit bounds it) so the client, still sending,
                    // gets this answer instead of a reset connection.
                    while let Ok(Some(_)) = field.chunk().await {}
                    while let Ok(Some(mut rest)) = form.next_field().await {
                        while let Ok(Some(_)) = rest.chunk().await {}
                    }
                    return Err(ApiError::new(
                        Kind::TooLarge,
                        format!(
                            "the file is larger than the {} MiB limit",
                            limit / (1024 * 1024)
                        ),
                    ));
                }
                bytes.extend_from_slice(&chunk);
            }
            file = Some(bytes);
        } else {
            let text = field.text().await.map_err(multipart_error)?;
            if text.len() > 20_000 {
                return Err(ApiError::new(
                    Kind::Invalid,
                    format!("field {name} is too long"),
                ));
            }
            if name == "share_with" {
                if !text.trim().is_empty() {
                    share_with.push(address(text.trim()).map_err(|_| {
                        ApiError::new(
                            Kind::Invalid,
                            "share_with must be a doctor's account address",
                        )
                    })?);
                }
            } else {
                fields.insert(name, text);
            }
        }
    }
    let file = file.ok_or_else(|| ApiError::new(Kind::Invalid, "the form needs a file field"))?;
    let field = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let kind = match field("kind").as_str() {
        "" => RecordKind::Report,
        k => RecordKind::parse(k)?,
    };
    // Check the grant's fields before anything is written.
    let purpose = match field("purpose").as_str() {
        "" => "treatment".to_string(),
        p => Purpose::parse(p)?.as_str().to_string(),
    };
    let days = match field("expires_in_days").as_str() {
        "" => 30,
        d => d.parse().map_err(|_| {
            ApiError::new(Kind::Invalid, "expires_in_days must be a number of days")
        })?,
    };
    for doctor in &share_with {
        state.app.doctor(*doctor).await?;
    }
    let (view, tx) = state
        .app
        .share_report(
            &auth.person,
            NewReport {
                title: field("title"),
                kind,
                date: field("date"),
                notes: field("notes"),
                bytes: file,
            },
        )
        .await?;
    let mut grants = Vec::new();
    for doctor in share_with {
        let input = GrantInput {
            doctor: Some(doctor),
            hospital_id: None,
            scope: "records".into(),
            kinds: Vec::new(),
            record_ids: vec![view.id],
            purpose: purpose.clone(),
            expires_at: None,
            expires_in_days: Some(days),
        };
        let (grant, grant_tx) = state.app.grant(&auth.person, &input).await?;
        grants.push(json!({ "grant": grant, "transaction": grant_tx }));
    }
    let mut body = serde_json::to_value(&view).unwrap_or_default();
    body["grants"] = json!(grants);
    Ok(written(StatusCode::CREATED, body, &tx))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    patient: Option<String>,
    purpose: Option<String>,
}

fn purpose(raw: Option<&str>) -> ApiResult<Purpose> {
    Ok(raw
        .map(Purpose::parse)
        .transpose()?
        .unwrap_or(Purpose::Treatment))
}

/// `GET /api/v1/records`: a patient's own; a doctor's `?patient=` those they may open.
pub(crate) async fn list(
    State(state): State<ApiState>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let list = match q.patient {
        Some(patient) => {
            let patient = address(&patient)?;
            state
                .app
                .records_for_doctor(&auth.person, patient, purpose(q.purpose.as_deref())?)
                .await?
        }
        None => state.app.my_records(&auth.person, false).await?,
    };
    Ok(axum::Json(json!({ "records": list })).into_response())
}

#[derive(Deserialize)]
pub(crate) struct PurposeQuery {
    purpose: Option<String>,
}

/// `GET /api/v1/records/{id}`: metadata, anchor and a fresh integrity check.
pub(crate) async fn metadata(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<PurposeQuery>,
) -> ApiResult<Response> {
    let id = parse_record_id(&id)?;
    let view = state
        .app
        .record(&auth.person, id, purpose(q.purpose.as_deref())?)
        .await?;
    Ok(axum::Json(view).into_response())
}

/// `GET /api/v1/records/{id}/content`: the original bytes, after the access is logged on chain.
pub(crate) async fn content(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<PurposeQuery>,
) -> ApiResult<Response> {
    let id = parse_record_id(&id)?;
    let opened = state
        .app
        .open_record(&auth.person, id, purpose(q.purpose.as_deref())?)
        .await?;
    Ok(attachment(&id, opened))
}

/// The answer carrying an opened record: an attachment (never rendered inline), named by the
/// record id, with the access transaction that logged the opening.
pub(crate) fn attachment(id: &alloy::primitives::B256, opened: Opened) -> Response {
    let extension = match opened.media_type.as_str() {
        "application/pdf" => "pdf",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "text/plain" => "txt",
        _ => "json",
    };
    (
        [
            (header::CONTENT_TYPE, opened.media_type.clone()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"record-{}.{extension}\"",
                    hex_short(&id.0)
                ),
            ),
            (
                header::HeaderName::from_static("x-medledger-access-tx"),
                opened.access_tx.hash.to_string(),
            ),
            (
                header::HeaderName::from_static("x-medledger-emergency"),
                opened.emergency.to_string(),
            ),
        ],
        opened.bytes,
    )
        .into_response()
}

fn hex_short(bytes: &[u8]) -> String {
    bytes[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Deserialize)]
pub(crate) struct NewPrescription {
    patient: Address,
    #[serde(flatten)]
    body: PrescriptionBody,
}

/// `POST /api/v1/prescriptions` (doctor).
pub(crate) async fn prescribe(
    State(state): State<ApiState>,
    auth: Auth,
    Json(body): Json<NewPrescription>,
) -> ApiResult<Response> {
    let (view, tx) = state
        .app
        .prescribe(&auth.person, body.patient, &body.body)
        .await?;
    Ok(written(StatusCode::CREATED, view, &tx))
}

/// `GET /api/v1/prescriptions`: a patient's, or those a doctor wrote.
pub(crate) async fn prescriptions(
    State(state): State<ApiState>,
    auth: Auth,
) -> ApiResult<Response> {
    let list = state.app.prescriptions(&auth.person).await?;
    Ok(axum::Json(json!({ "prescriptions": list })).into_response())
}
