//! Logging in and out, who am I, changing a password, and downloading one's own keystore.

use axum::{
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use medledger_records::security::Event;
use serde::Deserialize;
use serde_json::json;

use crate::{
    ApiState, Json,
    error::ApiResult,
    session::{self, Auth},
};

#[derive(Deserialize)]
pub(crate) struct Login {
    username: String,
    password: String,
    /// The second factor's current code, for an account that has one.
    #[serde(default)]
    code: Option<String>,
}

/// `POST /api/v1/auth/login`: a session as a cookie and as a bearer token.
pub(crate) async fn login(
    State(state): State<ApiState>,
    crate::client::ClientAddr(client): crate::client::ClientAddr,
    Json(body): Json<Login>,
) -> ApiResult<Response> {
    let person = state
        .app
        .accounts()
        .login_with(&body.username, &body.password, body.code.as_deref())
        .await;
    crate::security::note(
        &state,
        (Event::SignedIn, Event::SignInRefused),
        &body.username,
        client,
        &person,
    )
    .await;
    let person = person?;
    let answer = json!({
        "username": person.username,
        "role": person.role.as_str(),
        "address": person.address,
        "idle_timeout_seconds": state.app.session_idle().as_secs(),
        "must_set_up_second_factor": person.must_set_up_second_factor,
    });
    let token = state.app.sessions().start_session(&person).await?;
    let mut answer = answer;
    answer["csrf"] = json!(medledger_records::sessions::form_token(&token));
    answer["token"] = json!(token);
    Ok((
        [(
            header::SET_COOKIE,
            session::cookie(&token, state.secure_cookies),
        )],
        axum::Json(answer),
    )
        .into_response())
}

/// `POST /api/v1/auth/logout`.
pub(crate) async fn logout(State(state): State<ApiState>, auth: Auth) -> ApiResult<Response> {
    state.app.sessions().end_session(&auth.token).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            session::clear_cookie(state.secure_cookies),
        )],
    )
        .into_response())
}

/// `GET /api/v1/me`: role, address, balance and second factor.
pub(crate) async fn me(State(state): State<ApiState>, auth: Auth) -> ApiResult<Response> {
    let p = &auth.person;
    let balance = state.app.ledger().balance(p.address).await?;
    Ok(axum::Json(json!({
        "username": p.username,
        "role": p.role.as_str(),
        "address": p.address,
        "mode": p.signer.mode(),
        "balance_wei": balance.to_string(),
        "chain_id": state.app.ledger().chain_id(),
        "second_factor": state.app.second_factors().second_factor_on(p).await?,
        "second_factor_required": state.app.second_factors().second_factor_required(p.role),
    }))
    .into_response())
}

/// `GET /api/v1/security-events` (admin): the latest security events, newest first.
pub(crate) async fn security_events(
    State(state): State<ApiState>,
    auth: Auth,
) -> ApiResult<Response> {
    let events = state.app.security().recent(&auth.person, 200).await?;
    Ok(axum::Json(json!({ "events": events })).into_response())
}

/// `GET /api/v1/me/sessions`: the person's live sessions, the one asking marked `current`.
pub(crate) async fn sessions(State(state): State<ApiState>, auth: Auth) -> ApiResult<Response> {
    let sessions = state
        .app
        .sessions()
        .sessions_of(&auth.person, &auth.token)
        .await?;
    Ok(axum::Json(json!({ "sessions": sessions })).into_response())
}

/// `DELETE /api/v1/me/sessions/{id}`: ends one of the person's sessions.
pub(crate) async fn end_session(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .app
        .sessions()
        .end_session_of(&auth.person, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
pub(crate) struct Replacing {
    /// A current code, when a second factor is on already.
    #[serde(default)]
    code: Option<String>,
}

/// `POST /api/v1/me/mfa`: a new TOTP secret to add to an authenticator app (pending until
/// confirmed); replacing one that is on takes a current `code` from it.
pub(crate) async fn start_mfa(
    State(state): State<ApiState>,
    auth: Auth,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    // The body is optional: none, or `{"code": "123456"}`.
    let body: Replacing = if body.iter().all(u8::is_ascii_whitespace) {
        Replacing::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            crate::error::ApiError::new(
                medledger_records::Kind::Unprocessable,
                format!("the request body is not acceptable: {e}"),
            )
        })?
    };
    let setup = state
        .app
        .second_factors()
        .start_second_factor(&auth.person, body.code.as_deref())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(setup)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct Code {
    code: String,
}

/// `POST /api/v1/me/mfa/confirm`: a code from the app turns the second factor on.
pub(crate) async fn confirm_mfa(
    State(state): State<ApiState>,
    crate::client::ClientAddr(client): crate::client::ClientAddr,
    auth: Auth,
    Json(body): Json<Code>,
) -> ApiResult<StatusCode> {
    let confirmed = state
        .app
        .second_factors()
        .confirm_second_factor(&auth.person, &body.code, &auth.token)
        .await;
    crate::security::note(
        &state,
        (Event::SecondFactorOn, Event::SignInRefused),
        &auth.person.username,
        client,
        &confirmed,
    )
    .await;
    confirmed?;
    state
        .app
        .sessions()
        .lift_session_restriction(&auth.token)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/me/mfa/off`: with a current code, turns it off (unless the role needs it).
pub(crate) async fn mfa_off(
    State(state): State<ApiState>,
    crate::client::ClientAddr(client): crate::client::ClientAddr,
    auth: Auth,
    Json(body): Json<Code>,
) -> ApiResult<StatusCode> {
    let off = state
        .app
        .second_factors()
        .turn_off_second_factor(&auth.person, &body.code, &auth.token)
        .await;
    crate::security::note(
        &state,
        (Event::SecondFactorOff, Event::SignInRefused),
        &auth.person.username,
        client,
        &off,
    )
    .await;
    off?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(crate) struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /api/v1/me/password`: re-seals the keystore and ends every other session.
pub(crate) async fn change_password(
    State(state): State<ApiState>,
    auth: Auth,
    Json(body): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    state
        .app
        .accounts()
        .change_password(&auth.person, &body.current_password, &body.new_password)
        .await?;
    state
        .app
        .sessions()
        .end_other_sessions(auth.person.id, &auth.token)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/me/keystore`: the person's key as a Web3 Secret Storage file, still encrypted
/// under their password (importable into MetaMask or geth).
pub(crate) async fn keystore(State(state): State<ApiState>, auth: Auth) -> ApiResult<Response> {
    let json = state.app.accounts().keystore(&auth.person).await?;
    let name = format!("medledger-{:#x}.json", auth.person.address);
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        json,
    )
        .into_response())
}
