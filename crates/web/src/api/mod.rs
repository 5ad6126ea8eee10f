//! The REST API's routes, in one table, and the few answers that belong to no topic (health,
//! the OpenAPI document, unknown routes).

mod auth;
mod directory;
mod records;
mod research;
mod sharing;
pub(crate) mod wallet;

use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use medledger_records::{Kind, TxInfo, index::Cursor};
use serde::Serialize;
use serde_json::{Value, json};

pub(crate) use records::attachment;

use crate::{ApiState, error::ApiError};

/// The OpenAPI 3.1 document describing every route below (a test holds the two together).
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route of the API, built on its own: `crate::router` merges it with the FHIR API and the
/// pages and gives them their state. Its answer to a route nobody serves is the whole
/// application's, since only one of the routers merged there may have a fallback (the FHIR API
/// answers the unknown paths under `/fhir` with a route of its own).
pub fn router(state: &ApiState) -> Router<ApiState> {
    let upload_limit = state.app.max_upload_bytes() + 1024 * 1024;
    Router::new()
        .route("/healthz", get(health))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/siwe/nonce", post(wallet::nonce))
        .route("/api/v1/auth/siwe", post(wallet::sign_in))
        .route(
            "/api/v1/writes/{id}",
            post(wallet::complete).delete(wallet::cancel),
        )
        .route("/api/v1/me/wallet", post(wallet::move_to_wallet))
        .route("/api/v1/me", get(auth::me))
        .route("/api/v1/me/password", post(auth::change_password))
        .route("/api/v1/me/keystore", get(auth::keystore))
        .route("/api/v1/me/mfa", post(auth::start_mfa))
        .route("/api/v1/me/sessions", get(auth::sessions))
        .route("/api/v1/security-events", get(auth::security_events))
        .route("/api/v1/me/sessions/{id}", delete(auth::end_session))
        .route("/api/v1/me/mfa/confirm", post(auth::confirm_mfa))
        .route("/api/v1/me/mfa/off", post(auth::mfa_off))
        .route(
            "/api/v1/patients",
            post(directory::sign_up).get(sharing::my_patients),
        )
        .route(
            "/api/v1/hospitals",
            post(directory::add_hospital).get(directory::hospitals),
        )
        .route(
            "/api/v1/hospitals/{id}",
            get(directory::hospital).put(directory::update_hospital),
        )
        .route(
            "/api/v1/hospitals/{id}/suspend",
            post(directory::suspend_hospital),
        )
        .route(
            "/api/v1/hospitals/{id}/reactivate",
            post(directory::reactivate_hospital),
        )
        .route(
            "/api/v1/doctors",
            post(directory::invite_doctor).get(directory::doctors),
        )
        .route("/api/v1/admins", post(directory::invite_admin))
        .route(
            "/api/v1/researchers",
            post(research::invite_researcher).get(research::researchers),
        )
        .route(
            "/api/v1/studies",
            post(research::register_study).get(research::studies),
        )
        .route("/api/v1/studies/{id}", get(research::study))
        .route("/api/v1/studies/{id}/opt-in", post(research::opt_in))
        .route("/api/v1/studies/{id}/withdraw", post(research::withdraw))
        .route("/api/v1/enrolments", get(directory::enrolments))
        .route(
            "/api/v1/enrolments/{key}",
            delete(directory::withdraw_enrolment),
        )
        .route(
            "/api/v1/enrol/{token}",
            get(directory::enrolment).post(directory::enrol),
        )
        .route("/api/v1/doctors/{address}", get(directory::doctor))
        .route(
            "/api/v1/doctors/{address}/suspend",
            post(directory::suspend_doctor),
        )
        .route(
            "/api/v1/doctors/{address}/reactivate",
            post(directory::reactivate_doctor),
        )
        .route(
            "/api/v1/records",
            post(records::share)
                .layer(DefaultBodyLimit::max(upload_limit))
                .get(records::list),
        )
        .route("/api/v1/records/{id}", get(records::metadata))
        .route("/api/v1/records/{id}/content", get(records::content))
        .route(
            "/api/v1/prescriptions",
            post(records::prescribe).get(records::prescriptions),
        )
        .route("/api/v1/grants", post(sharing::grant).get(sharing::grants))
        .route("/api/v1/grants/{id}", delete(sharing::revoke))
        .route("/api/v1/emergency", post(sharing::emergency))
        .route("/api/v1/emergencies", get(sharing::emergencies))
        .route("/api/v1/emergencies/{id}/end", post(sharing::end_emergency))
        .route("/api/v1/audit", get(sharing::audit))
        .fallback(not_found)
}

async fn not_found() -> ApiError {
    ApiError::new(
        Kind::NotFound,
        "there is no such route; see /api/v1/openapi.json",
    )
}

/// The REST API's answer to a method a route does not take (the pages' too: `crate::router`
/// gives every route outside `/fhir` this one).
pub(crate) fn method_not_allowed() -> Response {
    let body = json!({ "error": { "code": "method_not_allowed", "message": "this route does not take that method; see /api/v1/openapi.json" } });
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `GET /healthz`: each backend (database, blob store, chain) with its kind and whether it
/// answers (503 naming those that fail), and the faucet's balance.
async fn health(State(state): State<ApiState>) -> Response {
    let health = state.app.health().await;
    let status = if health.ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = serde_json::to_value(&health).unwrap_or(Value::Null);
    body["status"] = json!(if health.ok() { "ok" } else { "degraded" });
    body["degraded"] = json!(health.degraded());
    (status, axum::Json(body)).into_response()
}

/// A write's answer: what was done, and the transaction that did it.
pub(crate) fn written(status: StatusCode, body: impl Serialize, tx: &TxInfo) -> Response {
    let mut value = serde_json::to_value(body).unwrap_or(Value::Null);
    if !value.is_object() {
        value = json!({ "result": value });
    }
    value["transaction"] = serde_json::to_value(tx).unwrap_or(Value::Null);
    (status, axum::Json(value)).into_response()
}

/// A path parameter that did not parse.
/// `?before=BLOCK.POSITION`: where a listing, the most recent first, goes on.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Before {
    before: Option<String>,
}

impl Before {
    pub(crate) fn cursor(&self) -> medledger_records::Result<Option<Cursor>> {
        self.before.as_deref().map(Cursor::parse).transpose()
    }
}

pub(crate) fn bad_param(what: &str) -> ApiError {
    ApiError::new(Kind::Invalid, format!("bad {what} in the path"))
}
