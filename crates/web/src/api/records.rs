//! Reports (shared by patients as a multipart upload, listed, opened) and prescriptions.

use axum::{
    extract::{Multipart, Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use medledger_records::primitives::Address;
use medledger_records::{
    model::Purpose,
    reports::{Opened, PrescriptionBody, parse_record_id},
};
use serde::Deserialize;
use serde_json::json;

use super::{directory::address, written};
use crate::{ApiState, Json, error::ApiResult, forms::ShareForm, session::Auth};

/// `POST /api/v1/records`: the share form (`file`, `title`, `kind`, `date`, `notes`, and
/// optionally `share_with` doctor addresses, repeated, or `hospital_id`, with `purpose` and
/// `expires_in_days`).
pub(crate) async fn share(
    State(state): State<ApiState>,
    auth: Auth,
    form: Multipart,
) -> ApiResult<Response> {
    let form = ShareForm::read(form, state.app.max_upload_bytes()).await?;
    let (report, with) = form.request()?;
    let shared = state
        .app
        .sharing()
        .share_report_with(&auth.person, report, &with)
        .await?;
    let grants: Vec<_> = shared
        .grants
        .iter()
        .map(|(grant, tx)| json!({ "grant": grant, "transaction": tx }))
        .collect();
    let mut body = serde_json::to_value(&shared.record).unwrap_or_default();
    body["grants"] = json!(grants);
    Ok(written(StatusCode::CREATED, body, &shared.tx))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    patient: Option<String>,
    purpose: Option<String>,
}

fn purpose(raw: Option<&str>) -> ApiResult<Purpose> {
    Ok(raw
        .map(|p| p.parse::<Purpose>().map_err(|e| e.on("purpose")))
        .transpose()?
        .unwrap_or_default())
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
                .reports()
                .records_for_doctor(&auth.person, patient, purpose(q.purpose.as_deref())?)
                .await?
        }
        None => state.app.reports().my_records(&auth.person, false).await?,
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
        .reports()
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
        .reports()
        .open_record(&auth.person, id, purpose(q.purpose.as_deref())?)
        .await?;
    Ok(attachment(&id, opened))
}

/// The answer carrying an opened record: an attachment (never rendered inline), named by the
/// record id, with the access transaction that logged the opening.
pub(crate) fn attachment(id: &medledger_records::primitives::B256, opened: Opened) -> Response {
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
        .reports()
        .prescribe(&auth.person, body.patient, &body.body)
        .await?;
    Ok(written(StatusCode::CREATED, view, &tx))
}

/// `GET /api/v1/prescriptions`: a patient's, or those a doctor wrote.
pub(crate) async fn prescriptions(
    State(state): State<ApiState>,
    auth: Auth,
) -> ApiResult<Response> {
    let list = state.app.reports().prescriptions(&auth.person).await?;
    Ok(axum::Json(json!({ "prescriptions": list })).into_response())
}
