//! Research: researchers' invitations (admins), studies (registered by admins, listed for
//! everyone who takes part), and patients' opt-ins and withdrawals.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use medledger_records::research::{Choice, NewStudy};
use serde::Deserialize;
use serde_json::json;

use super::{bad_param, directory::invited, written};
use crate::{ApiState, Json, error::ApiResult, session::Auth};

#[derive(Deserialize)]
pub(crate) struct ResearcherInvite {
    name: String,
}

/// `POST /api/v1/researchers` (admin): an invitation for a researcher, and its enrolment link.
pub(crate) async fn invite_researcher(
    State(state): State<ApiState>,
    auth: Auth,
    Json(body): Json<ResearcherInvite>,
) -> ApiResult<Response> {
    let (invite, tx) = state
        .app
        .enrolment()
        .invite_researcher(&auth.person, &body.name)
        .await?;
    Ok(written(StatusCode::CREATED, invited(&state, &invite), &tx))
}

/// `GET /api/v1/researchers` (admin, researcher).
pub(crate) async fn researchers(State(state): State<ApiState>, auth: Auth) -> ApiResult<Response> {
    let list = state.app.research().researchers(&auth.person).await?;
    Ok(axum::Json(json!({ "researchers": list })).into_response())
}

/// `POST /api/v1/studies` (admin): a study registered on chain for a researcher.
pub(crate) async fn register_study(
    State(state): State<ApiState>,
    auth: Auth,
    Json(body): Json<NewStudy>,
) -> ApiResult<Response> {
    let (study, tx) = state
        .app
        .research()
        .register_study(&auth.person, &body)
        .await?;
    Ok(written(StatusCode::CREATED, study, &tx))
}

/// `GET /api/v1/studies`: every study for a patient (with whether they are in it) or an admin;
/// a researcher's own.
pub(crate) async fn studies(State(state): State<ApiState>, auth: Auth) -> ApiResult<Response> {
    let list = state.app.research().studies(&auth.person).await?;
    Ok(axum::Json(json!({ "studies": list })).into_response())
}

fn study_id(raw: &str) -> ApiResult<u64> {
    raw.parse().map_err(|_| bad_param("study id"))
}

/// `GET /api/v1/studies/{id}`.
pub(crate) async fn study(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let study = state
        .app
        .research()
        .study(&auth.person, study_id(&id)?)
        .await?;
    Ok(axum::Json(study).into_response())
}

/// `POST /api/v1/studies/{id}/opt-in` (patient): joins the study, by the patient's own
/// transaction.
pub(crate) async fn opt_in(
    state: State<ApiState>,
    auth: Auth,
    id: Path<String>,
) -> ApiResult<Response> {
    take_part(state, auth, id, Choice::Join).await
}

/// `POST /api/v1/studies/{id}/withdraw` (patient): leaves it; no later export includes them.
pub(crate) async fn withdraw(
    state: State<ApiState>,
    auth: Auth,
    id: Path<String>,
) -> ApiResult<Response> {
    take_part(state, auth, id, Choice::Leave).await
}

async fn take_part(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
    choice: Choice,
) -> ApiResult<Response> {
    let id = study_id(&id)?;
    let tx = state
        .app
        .research()
        .take_part(&auth.person, id, choice)
        .await?;
    let study = state.app.research().study(&auth.person, id).await?;
    Ok(written(StatusCode::OK, study, &tx))
}
