//! What this server says about itself: `GET /fhir/metadata` (the CapabilityStatement) and SMART's
//! discovery document, both written by `r4::capability` for the base URL the client reached.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};

use super::Fhir;
use super::r4::capability::{capability_statement, smart_configuration as smart_document};
use super::search::base_url;
use crate::ApiState;

/// `GET /fhir/metadata`: what this server does, exactly.
pub(crate) async fn metadata(State(state): State<ApiState>) -> Fhir {
    let base = base_url(&state);
    Fhir(capability_statement(&base))
}

/// `GET /.well-known/smart-configuration`: how a SMART client gets a token here.
pub(crate) async fn smart_configuration(State(state): State<ApiState>) -> Response {
    let base = base_url(&state);
    let root = base.trim_end_matches("/fhir");
    axum::Json(smart_document(root)).into_response()
}
