//! The FHIR R4 (4.0.1) face of medledger under `/fhir`: the same domain as the REST API, the
//! same bearer tokens and the same rule (the chain decides who sees what, and every response
//! with a patient's data is logged on chain before it leaves), written as FHIR resources in
//! `application/fhir+json`, errors as OperationOutcome.
//!
//! The rules of R4 that need no IO (search parameters, paging, ids, the resources written from
//! the domain's views) are in `r4`, tested on plain values; the handlers, one file per family of
//! resources, read through `App` and go through `search` for what every search shares. This file
//! holds the routes, the answer and error types, and the reader with their SMART scopes.

mod bulk;
mod capability;
mod clinical;
mod consent;
mod directory;
mod documents;
mod medications;
mod patient;
mod r4;
mod search;

use axum::{
    Router,
    extract::FromRequestParts,
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};
use medledger_records::{Error, Kind, Person};
use serde_json::{Value, json};
use std::sync::Arc;

use self::r4::capability::{reads, scopes_of};
use crate::{ApiState, error::ApiError, session};

/// FHIR's JSON media type, with the version this server speaks.
pub const FHIR_JSON: &str = "application/fhir+json; fhirVersion=4.0";

/// The routes under `/fhir` (and SMART's discovery document at the root), built on their own:
/// `crate::router` merges them with the REST API and the pages.
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/fhir/metadata", get(capability::metadata))
        .route(
            "/fhir/.well-known/smart-configuration",
            get(capability::smart_configuration),
        )
        .route(
            "/.well-known/smart-configuration",
            get(capability::smart_configuration),
        )
        .route("/fhir/Patient", get(patient::patients))
        .route("/fhir/Patient/{id}", get(patient::patient))
        .route("/fhir/Patient/{id}/$everything", get(patient::everything))
        .route("/fhir/Practitioner", get(directory::practitioners))
        .route("/fhir/Practitioner/{id}", get(directory::practitioner))
        .route("/fhir/PractitionerRole", get(directory::practitioner_roles))
        .route(
            "/fhir/PractitionerRole/{id}",
            get(directory::practitioner_role),
        )
        .route("/fhir/Organization", get(directory::organizations))
        .route("/fhir/Organization/{id}", get(directory::organization))
        .route("/fhir/DocumentReference", get(documents::documents))
        .route("/fhir/DocumentReference/{id}", get(documents::document))
        .route("/fhir/Binary/{id}", get(documents::binary))
        .route(
            "/fhir/MedicationRequest",
            get(medications::medication_requests),
        )
        .route(
            "/fhir/MedicationRequest/{id}",
            get(medications::medication_request),
        )
        .route("/fhir/Observation", clinical::search_route("Observation"))
        .route(
            "/fhir/Observation/{id}",
            clinical::read_route("Observation"),
        )
        .route("/fhir/Condition", clinical::search_route("Condition"))
        .route("/fhir/Condition/{id}", clinical::read_route("Condition"))
        .route(
            "/fhir/MedicationStatement",
            clinical::search_route("MedicationStatement"),
        )
        .route(
            "/fhir/MedicationStatement/{id}",
            clinical::read_route("MedicationStatement"),
        )
        .route("/fhir/Encounter", clinical::search_route("Encounter"))
        .route("/fhir/Encounter/{id}", clinical::read_route("Encounter"))
        .route(
            "/fhir/DiagnosticReport",
            clinical::search_route("DiagnosticReport"),
        )
        .route(
            "/fhir/DiagnosticReport/{id}",
            clinical::read_route("DiagnosticReport"),
        )
        .route("/fhir/Procedure", clinical::search_route("Procedure"))
        .route("/fhir/Procedure/{id}", clinical::read_route("Procedure"))
        .route("/fhir/Immunization", clinical::search_route("Immunization"))
        .route(
            "/fhir/Immunization/{id}",
            clinical::read_route("Immunization"),
        )
        .route(
            "/fhir/AllergyIntolerance",
            clinical::search_route("AllergyIntolerance"),
        )
        .route(
            "/fhir/AllergyIntolerance/{id}",
            clinical::read_route("AllergyIntolerance"),
        )
        .route("/fhir/CarePlan", clinical::search_route("CarePlan"))
        .route("/fhir/CarePlan/{id}", clinical::read_route("CarePlan"))
        .route("/fhir/Consent", get(consent::consents))
        .route("/fhir/Consent/{id}", get(consent::consent))
        .route("/fhir/AuditEvent", get(consent::audit_events))
        .route("/fhir/Provenance", get(consent::provenances))
        .route("/fhir/Provenance/{id}", get(consent::provenance))
        .route("/fhir/Group/{id}/$export", get(bulk::kick_off))
        .route("/fhir/bulkstatus/{id}", get(bulk::status))
        .route("/fhir/bulkfiles/{id}/{file}", get(bulk::file))
        .route("/fhir/{*rest}", get(unknown))
}

/// The FHIR API's answer to a method a route does not take: it reads and searches only.
pub(crate) fn method_not_allowed() -> Response {
    let outcome = json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": "not-supported",
                    "diagnostics": "this FHIR server reads and searches only (GET); see /fhir/metadata" }],
    });
    (StatusCode::METHOD_NOT_ALLOWED, Fhir(outcome)).into_response()
}

async fn unknown() -> FhirError {
    FhirError::new(
        Kind::NotFound,
        "this server has no such FHIR resource type or operation; see /fhir/metadata",
    )
}

/// A FHIR answer: a resource or a Bundle, as `application/fhir+json`.
pub(crate) struct Fhir(pub Value);

impl IntoResponse for Fhir {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.0).unwrap_or_default();
        ([(header::CONTENT_TYPE, FHIR_JSON)], body).into_response()
    }
}

/// An error as FHIR says it: an OperationOutcome with the status the error's kind calls for.
#[derive(Debug)]
pub(crate) struct FhirError(pub Error);

pub(crate) type FhirResult<T> = Result<T, FhirError>;

impl FhirError {
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> FhirError {
        FhirError(Error::new(kind, message))
    }
}

/// A record read's refusal as FHIR gives it: the same 404 whether the record does not exist or
/// the reader may not see it (nor hold its key), so a reader learns nothing of records that are
/// not theirs to see. Other failures (an altered record, a node that does not answer, a read
/// waiting for the reader's wallet) keep their own answer.
pub(crate) fn unseen(kind: &'static str) -> impl FnOnce(Error) -> FhirError {
    move |e| match e.kind {
        Kind::NotFound | Kind::Forbidden => FhirError::new(
            Kind::NotFound,
            format!("no {kind} with this id that you may see"),
        ),
        _ => FhirError(e),
    }
}

impl From<Error> for FhirError {
    fn from(e: Error) -> FhirError {
        FhirError(e)
    }
}

impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> FhirError {
        FhirError(e.0)
    }
}

/// FHIR's issue type for each kind of error.
fn issue_code(kind: Kind) -> &'static str {
    match kind {
        Kind::Invalid | Kind::Unprocessable | Kind::UnsupportedType => "invalid",
        Kind::Unauthenticated | Kind::SecondFactorRequired => "login",
        Kind::SecondFactorSetupRequired | Kind::Forbidden => "forbidden",
        Kind::NotFound => "not-found",
        Kind::Conflict => "conflict",
        Kind::Integrity => "processing",
        Kind::TooLarge => "too-costly",
        Kind::TooManyAttempts => "throttled",
        Kind::Unavailable => "transient",
        Kind::Internal | Kind::Misconfigured => "exception",
        Kind::WalletSignature => "forbidden",
    }
}

impl IntoResponse for FhirError {
    fn into_response(mut self) -> Response {
        // A FHIR client cannot hand a transaction to the person's wallet: what it reads must
        // be logged on chain by the wallet, through the REST API or the pages.
        if self.0.kind == Kind::WalletSignature {
            self.0 = medledger_records::Error::forbidden(
                "this account signs with its own wallet, and this read must be logged on chain by it: open it through the REST API (which answers 202 with the call for the wallet) or the web pages",
            );
        }
        let status = crate::error::answered(&self.0);
        let outcome = json!({
            "resourceType": "OperationOutcome",
            "issue": [{
                "severity": "error",
                "code": issue_code(self.0.kind),
                "diagnostics": self.0.message,
            }],
        });
        let mut response = (status, Fhir(outcome)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"medledger\""),
            );
        }
        response
    }
}

/// A logged-in person, by the same bearer token (or session cookie) as the REST API, with the
/// SMART scopes that token carries; a 401 OperationOutcome otherwise.
pub(crate) struct Reader {
    pub person: Arc<Person>,
}

impl FromRequestParts<ApiState> for Reader {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> FhirResult<Reader> {
        let auth = session::Auth::from_request_parts(parts, state).await?;
        Ok(Reader {
            person: auth.person,
        })
    }
}

impl Reader {
    /// The SMART v2 scopes this person's token carries: a patient reads and searches their own
    /// compartment, a doctor what the chain lets them (`user/`), an admin the directory.
    pub(crate) fn scopes(&self) -> &'static [&'static str] {
        scopes_of(self.person.role)
    }

    /// Refuses unless this token's scopes let it read resources of type `kind`.
    pub(crate) fn require(&self, kind: &str) -> FhirResult<&Person> {
        if !reads(self.scopes(), kind) {
            return Err(FhirError::new(
                Kind::Forbidden,
                format!(
                    "your token's scopes ({}) do not cover reading {kind}",
                    self.scopes().join(" ")
                ),
            ));
        }
        Ok(&self.person)
    }
}
