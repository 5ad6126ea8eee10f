//! Grants and revocations (patients), a doctor's patients, emergencies, and the audit trail.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use medledger_records::primitives::Address;
use medledger_records::sharing::GrantInput;
use serde::Deserialize;
use serde_json::json;

use super::{Before, bad_param, written};
use crate::{ApiState, Json, error::ApiResult, session::Auth};

/// `POST /api/v1/grants` (patient).
pub(crate) async fn grant(
    State(state): State<ApiState>,
    auth: Auth,
    Json(body): Json<GrantInput>,
) -> ApiResult<Response> {
    let (grant, tx) = state.app.sharing().grant(&auth.person, &body).await?;
    Ok(written(StatusCode::CREATED, grant, &tx))
}

/// `GET /api/v1/grants`: a patient's grants, or those given to a doctor.
pub(crate) async fn grants(State(state): State<ApiState>, auth: Auth) -> ApiResult<Response> {
    let list = state.app.sharing().grants(&auth.person).await?;
    Ok(axum::Json(json!({ "grants": list })).into_response())
}

/// `DELETE /api/v1/grants/{id}` (the patient who gave it).
pub(crate) async fn revoke(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id: u64 = id.parse().map_err(|_| bad_param("grant id"))?;
    let tx = state.app.sharing().revoke(&auth.person, id).await?;
    let grant = state.app.sharing().grant_view(id).await?;
    Ok(written(StatusCode::OK, grant, &tx))
}

/// `GET /api/v1/patients` (doctor): who shared with me, until when.
pub(crate) async fn my_patients(State(state): State<ApiState>, auth: Auth) -> ApiResult<Response> {
    let list = state.app.sharing().my_patients(&auth.person).await?;
    Ok(axum::Json(json!({ "patients": list })).into_response())
}

#[derive(Deserialize)]
pub(crate) struct EmergencyInput {
    patient: Address,
    reason: String,
}

/// `POST /api/v1/emergency` (doctor): break-glass access for the configured window.
pub(crate) async fn emergency(
    State(state): State<ApiState>,
    crate::client::ClientAddr(client): crate::client::ClientAddr,
    auth: Auth,
    Json(body): Json<EmergencyInput>,
) -> ApiResult<Response> {
    let declared = state
        .app
        .emergency()
        .declare_emergency(&auth.person, body.patient, &body.reason)
        .await;
    let event = medledger_records::security::Event::EmergencyDeclared;
    crate::security::note(
        &state,
        (event, event),
        &auth.person.username,
        client,
        &declared,
    )
    .await;
    let (emergency, tx) = declared?;
    Ok(written(StatusCode::CREATED, emergency, &tx))
}

/// `GET /api/v1/emergencies`: those open on me or ended within a week (patient), those I
/// declared (doctor), every open one (admin).
pub(crate) async fn emergencies(State(state): State<ApiState>, auth: Auth) -> ApiResult<Response> {
    let list = state.app.emergency().emergencies(&auth.person).await?;
    Ok(axum::Json(json!({ "emergencies": list })).into_response())
}

/// `POST /api/v1/emergencies/{id}/end` (the patient, or an admin): ends it at once.
pub(crate) async fn end_emergency(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id: u64 = id.parse().map_err(|_| bad_param("emergency id"))?;
    let tx = state
        .app
        .emergency()
        .end_emergency(&auth.person, id)
        .await?;
    Ok(written(
        StatusCode::OK,
        json!({ "id": id, "ended": true }),
        &tx,
    ))
}

/// `GET /api/v1/audit`: everything done with my data (patient), or everything I did (doctor):
/// openings, views of details and of profiles, emergencies declared and ended.
/// The most recent first, a page at a time: `next` is the next (older) page.
pub(crate) async fn audit(
    State(state): State<ApiState>,
    auth: Auth,
    Query(q): Query<Before>,
) -> ApiResult<Response> {
    let page = state.app.audit().audit(&auth.person, q.cursor()?).await?;
    let next = page
        .older
        .as_ref()
        .map(|c| format!("/api/v1/audit?before={c}"));
    Ok(axum::Json(json!({ "events": page.events, "next": next })).into_response())
}
