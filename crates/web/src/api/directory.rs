//! The public directory: hospitals and doctors (admins write, anyone reads) and patient sign-up.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use medledger_records::primitives::Address;
use medledger_records::{
    directory::{HospitalInput, PatientSignup},
    enrolment::{DoctorInvite, NewInvite},
};
use serde::Deserialize;
use serde_json::json;

use super::{
    bad_param,
    wallet::{WalletSite, registration_prepared},
    written,
};
use crate::{ApiState, Json, error::ApiResult, session::Auth};
use medledger_records::NewKey;

#[derive(Deserialize)]
pub(crate) struct HospitalSearch {
    city: Option<String>,
    specialty: Option<String>,
}

/// `GET /api/v1/hospitals?city=&specialty=`.
pub(crate) async fn hospitals(
    State(state): State<ApiState>,
    Query(q): Query<HospitalSearch>,
) -> ApiResult<Response> {
    let list = state
        .app
        .people()
        .hospitals(q.city.as_deref(), q.specialty.as_deref())
        .await?;
    Ok(axum::Json(json!({ "hospitals": list })).into_response())
}

fn hospital_id(raw: &str) -> ApiResult<u64> {
    raw.parse().map_err(|_| bad_param("hospital id"))
}

/// `GET /api/v1/hospitals/{id}`.
pub(crate) async fn hospital(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let h = state.app.people().hospital(hospital_id(&id)?).await?;
    Ok(axum::Json(h).into_response())
}

/// `POST /api/v1/hospitals` (admin).
pub(crate) async fn add_hospital(
    State(state): State<ApiState>,
    auth: Auth,
    Json(body): Json<HospitalInput>,
) -> ApiResult<Response> {
    let (id, tx) = state
        .app
        .directory()
        .add_hospital(&auth.person, &body)
        .await?;
    let h = state.app.people().hospital(id).await?;
    Ok(written(StatusCode::CREATED, h, &tx))
}

/// `PUT /api/v1/hospitals/{id}` (admin).
pub(crate) async fn update_hospital(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<HospitalInput>,
) -> ApiResult<Response> {
    let id = hospital_id(&id)?;
    let tx = state
        .app
        .directory()
        .update_hospital(&auth.person, id, &body)
        .await?;
    let h = state.app.people().hospital(id).await?;
    Ok(written(StatusCode::OK, h, &tx))
}

async fn set_hospital(
    state: ApiState,
    auth: Auth,
    id: String,
    active: bool,
) -> ApiResult<Response> {
    let id = hospital_id(&id)?;
    let tx = state
        .app
        .directory()
        .set_hospital_active(&auth.person, id, active)
        .await?;
    let h = state.app.people().hospital(id).await?;
    Ok(written(StatusCode::OK, h, &tx))
}

/// `POST /api/v1/hospitals/{id}/suspend` (admin).
pub(crate) async fn suspend_hospital(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    set_hospital(state, auth, id, false).await
}

/// `POST /api/v1/hospitals/{id}/reactivate` (admin).
pub(crate) async fn reactivate_hospital(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    set_hospital(state, auth, id, true).await
}

#[derive(Deserialize)]
pub(crate) struct DoctorSearch {
    hospital_id: Option<u64>,
}

/// `GET /api/v1/doctors?hospital_id=`.
pub(crate) async fn doctors(
    State(state): State<ApiState>,
    Query(q): Query<DoctorSearch>,
) -> ApiResult<Response> {
    let list = state.app.people().doctors(q.hospital_id).await?;
    Ok(axum::Json(json!({ "doctors": list })).into_response())
}

pub(crate) fn address(raw: &str) -> ApiResult<Address> {
    raw.parse().map_err(|_| bad_param("account address"))
}

/// `GET /api/v1/doctors/{address}`.
pub(crate) async fn doctor(
    State(state): State<ApiState>,
    Path(account): Path<String>,
) -> ApiResult<Response> {
    let d = state.app.people().doctor(address(&account)?).await?;
    Ok(axum::Json(d).into_response())
}

/// `POST /api/v1/doctors` (admin): an invitation — the doctor's directory entry to be — and
/// its one-time enrolment link, through which the doctor chooses their own password.
pub(crate) async fn invite_doctor(
    State(state): State<ApiState>,
    auth: Auth,
    Json(body): Json<DoctorInvite>,
) -> ApiResult<Response> {
    let (invite, tx) = state
        .app
        .enrolment()
        .invite_doctor(&auth.person, &body)
        .await?;
    Ok(written(StatusCode::CREATED, invited(&state, &invite), &tx))
}

/// `POST /api/v1/admins` (admin): an invitation for another admin, and its enrolment link.
pub(crate) async fn invite_admin(State(state): State<ApiState>, auth: Auth) -> ApiResult<Response> {
    let (invite, tx) = state.app.enrolment().invite_admin(&auth.person).await?;
    Ok(written(StatusCode::CREATED, invited(&state, &invite), &tx))
}

/// A new invitation as the API answers it; its link on the deployment's public URL.
pub(super) fn invited(state: &ApiState, invite: &NewInvite) -> serde_json::Value {
    json!({
        "role": invite.role,
        "invite_key": invite.invite_key,
        "expires_at": invite.expires_at,
        "token": invite.token,
        "enrolment_url": format!("{}/enrol/{}", state.public.origin(), invite.token),
    })
}

/// `GET /api/v1/enrolments` (admin): the invitations nobody has taken up yet.
pub(crate) async fn enrolments(State(state): State<ApiState>, auth: Auth) -> ApiResult<Response> {
    let list = state.app.enrolment().open_invites(&auth.person).await?;
    Ok(axum::Json(json!({ "enrolments": list })).into_response())
}

/// `DELETE /api/v1/enrolments/{invite_key}` (admin): withdraws an invitation.
pub(crate) async fn withdraw_enrolment(
    State(state): State<ApiState>,
    auth: Auth,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let key = address(&key)?;
    let tx = state
        .app
        .enrolment()
        .withdraw_invite(&auth.person, key)
        .await?;
    Ok(written(
        StatusCode::OK,
        json!({ "invite_key": key, "withdrawn": true }),
        &tx,
    ))
}

/// `GET /api/v1/enrol/{token}` (the link's holder): what the link is for.
pub(crate) async fn enrolment(
    State(state): State<ApiState>,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let view = state.app.enrolment().link(&token).await?;
    Ok(axum::Json(view).into_response())
}

#[derive(Deserialize)]
pub(crate) struct Enrol {
    username: String,
    /// Empty when a wallet enrols (its key stays in the wallet).
    #[serde(default)]
    password: String,
    #[serde(default)]
    wallet: Option<medledger_records::wallet::WalletProof>,
}

/// `POST /api/v1/enrol/{token}` (the link's holder): their own login, and the invitation taken
/// up by their own new account.
pub(crate) async fn enrol(
    State(state): State<ApiState>,
    crate::client::ClientAddr(client): crate::client::ClientAddr,
    site: WalletSite,
    Path(token): Path<String>,
    Json(body): Json<Enrol>,
) -> ApiResult<Response> {
    if let Some(proof) = &body.wallet {
        let site = site.checked(&state).await?;
        let login = state.app.wallet().verify_wallet(proof, &site).await?;
        let outcome = state
            .app
            .enrolment()
            .enrol_with(&token, &body.username, &NewKey::Wallet(&login))
            .await;
        return registration_prepared(&state, login, outcome).await;
    }
    let enrolled = state
        .app
        .enrolment()
        .enrol(&token, &body.username, &body.password)
        .await;
    let event = medledger_records::security::Event::Enrolled;
    crate::security::note(&state, (event, event), &body.username, client, &enrolled).await;
    let (account, tx) = enrolled?;
    Ok(written(
        StatusCode::CREATED,
        json!({ "username": account.username, "address": account.address, "role": account.role.as_str() }),
        &tx,
    ))
}

async fn set_doctor(
    state: ApiState,
    auth: Auth,
    account: String,
    active: bool,
) -> ApiResult<Response> {
    let account = address(&account)?;
    let tx = state
        .app
        .directory()
        .set_doctor_active(&auth.person, account, active)
        .await?;
    let d = state.app.people().doctor(account).await?;
    Ok(written(StatusCode::OK, d, &tx))
}

/// `POST /api/v1/doctors/{address}/suspend` (admin).
pub(crate) async fn suspend_doctor(
    State(state): State<ApiState>,
    auth: Auth,
    Path(account): Path<String>,
) -> ApiResult<Response> {
    set_doctor(state, auth, account, false).await
}

/// `POST /api/v1/doctors/{address}/reactivate` (admin).
pub(crate) async fn reactivate_doctor(
    State(state): State<ApiState>,
    auth: Auth,
    Path(account): Path<String>,
) -> ApiResult<Response> {
    set_doctor(state, auth, account, true).await
}

/// `POST /api/v1/patients`: anyone may sign up as a patient.
pub(crate) async fn sign_up(
    State(state): State<ApiState>,
    site: WalletSite,
    client: crate::client::ClientAddr,
    Json(body): Json<PatientSignup>,
) -> ApiResult<Response> {
    if let Some(proof) = &body.wallet {
        let site = site.checked(&state).await?;
        let login = state.app.wallet().verify_wallet(proof, &site).await?;
        let outcome = state
            .app
            .directory()
            .sign_up_patient_with(&body, &NewKey::Wallet(&login), client.0)
            .await;
        return registration_prepared(&state, login, outcome).await;
    }
    let (account, tx) = state
        .app
        .directory()
        .sign_up_patient_from(&body, client.0)
        .await?;
    Ok(written(
        StatusCode::CREATED,
        json!({ "username": account.username, "address": account.address, "role": "patient" }),
        &tx,
    ))
}
