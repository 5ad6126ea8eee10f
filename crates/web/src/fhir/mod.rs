//! The FHIR R4 (4.0.1) face of medledger under `/fhir`: the same domain as the REST API, the
//! same bearer tokens and the same rule (the chain decides who sees what, and every response
//! with a patient's data is logged on chain before it leaves), written as FHIR resources in
//! `application/fhir+json`, errors as OperationOutcome.

mod bulk;
mod clinical;
mod model;
mod resources;

use axum::{
    Router,
    extract::{FromRequestParts, Query},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};
use medledger_records::{Error, Kind, Person, primitives::Address};
use serde::Deserialize;
use serde_json::{Value, json};
use std::{collections::HashMap, sync::Arc};

use crate::{ApiState, error::ApiError, session};

/// FHIR's JSON media type, with the version this server speaks.
pub const FHIR_JSON: &str = "application/fhir+json; fhirVersion=4.0";

/// The routes under `/fhir` (and SMART's discovery document at the root), built on their own:
/// `crate::router` merges them with the REST API and the pages.
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/fhir/metadata", get(resources::metadata))
        .route(
            "/fhir/.well-known/smart-configuration",
            get(resources::smart_configuration),
        )
        .route(
            "/.well-known/smart-configuration",
            get(resources::smart_configuration),
        )
        .route("/fhir/Patient", get(resources::patients))
        .route("/fhir/Patient/{id}", get(resources::patient))
        .route("/fhir/Patient/{id}/$everything", get(resources::everything))
        .route("/fhir/Practitioner", get(resources::practitioners))
        .route("/fhir/Practitioner/{id}", get(resources::practitioner))
        .route("/fhir/PractitionerRole", get(resources::practitioner_roles))
        .route(
            "/fhir/PractitionerRole/{id}",
            get(resources::practitioner_role),
        )
        .route("/fhir/Organization", get(resources::organizations))
        .route("/fhir/Organization/{id}", get(resources::organization))
        .route("/fhir/DocumentReference", get(resources::documents))
        .route("/fhir/DocumentReference/{id}", get(resources::document))
        .route("/fhir/Binary/{id}", get(resources::binary))
        .route(
            "/fhir/MedicationRequest",
            get(resources::medication_requests),
        )
        .route(
            "/fhir/MedicationRequest/{id}",
            get(resources::medication_request),
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
        .route("/fhir/Consent", get(resources::consents))
        .route("/fhir/Consent/{id}", get(resources::consent))
        .route("/fhir/AuditEvent", get(resources::audit_events))
        .route("/fhir/Provenance", get(resources::provenances))
        .route("/fhir/Provenance/{id}", get(resources::provenance))
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
        let allowed = self.scopes().iter().any(|scope| {
            scope
                .split_once('/')
                .and_then(|(_, rest)| rest.split_once('.'))
                .is_some_and(|(ty, perms)| (ty == "*" || ty == kind) && perms.contains('r'))
        });
        if !allowed {
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

pub(crate) fn scopes_of(role: medledger_records::model::Role) -> &'static [&'static str] {
    use medledger_records::model::Role;
    match role {
        Role::Patient => &["patient/*.rs"],
        Role::Doctor => &["user/*.rs"],
        Role::Admin => &[
            "user/Practitioner.rs",
            "user/PractitionerRole.rs",
            "user/Organization.rs",
        ],
        // A researcher reads no patient's data through these: only de-identified exports.
        Role::Researcher => &[
            "user/Practitioner.rs",
            "user/PractitionerRole.rs",
            "user/Organization.rs",
        ],
        Role::None => &[],
    }
}

/// The query string of a search, every parameter kept (FHIR repeats some), so that unknown ones
/// are refused rather than ignored: a search that silently ignored a filter would show more than
/// was asked for.
#[derive(Debug, Default)]
pub(crate) struct Search {
    params: HashMap<String, Vec<String>>,
}

/// What every search takes besides its own parameters.
const COMMON: [&str; 3] = ["_count", "_offset", "_format"];

/// Results on a page when the client does not say, and at most.
const DEFAULT_COUNT: usize = 50;
const MAX_COUNT: usize = 200;

impl<S: Send + Sync> FromRequestParts<S> for Search {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> FhirResult<Search> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| FhirError::new(Kind::Invalid, format!("bad query string: {e}")))?;
        let mut params: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            params.entry(k).or_default().push(v);
        }
        Ok(Search { params })
    }
}

impl Search {
    /// Refuses any parameter outside `known` (and the common ones).
    pub(crate) fn only(&self, known: &[&str]) -> FhirResult<()> {
        let mut unknown: Vec<&str> = self
            .params
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k) && !COMMON.contains(k))
            .collect();
        unknown.sort_unstable();
        if let Some(first) = unknown.first() {
            return Err(FhirError::new(
                Kind::Invalid,
                format!(
                    "this server does not support the search parameter {first:?} here; supported: {}",
                    known.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The one value of `name`, if given (twice is refused: these parameters are not lists).
    pub(crate) fn one(&self, name: &str) -> FhirResult<Option<&str>> {
        match self.params.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) => Ok(Some(one.as_str())),
            Some(_) => Err(FhirError::new(Kind::Invalid, format!("give {name} once"))),
        }
    }

    /// Every value of `name` (repeated parameters are ANDed, as FHIR says).
    pub(crate) fn all(&self, name: &str) -> &[String] {
        self.params.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `_offset` and `_count`: where the page starts and how long it is.
    pub(crate) fn page(&self) -> FhirResult<(usize, usize)> {
        let number = |name: &str, default: usize| -> FhirResult<usize> {
            self.one(name)?
                .map(|v| {
                    v.parse::<usize>().map_err(|_| {
                        FhirError::new(
                            Kind::Invalid,
                            format!("{name} must be a whole number, not {v:?}"),
                        )
                    })
                })
                .transpose()
                .map(|v| v.unwrap_or(default))
        };
        let count = number("_count", DEFAULT_COUNT)?.min(MAX_COUNT);
        Ok((number("_offset", 0)?, count))
    }

    /// The query string again, with `_offset` replaced, for a page link.
    fn with_offset(&self, offset: usize) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        let mut keys: Vec<&String> = self.params.keys().collect();
        keys.sort();
        for k in keys {
            if k != "_offset" {
                for v in &self.params[k] {
                    pairs.push((k, v));
                }
            }
        }
        let offset = offset.to_string();
        pairs.push(("_offset", &offset));
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encodes a query string's key or value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A page of a search that runs patient by patient, counted across them all after its
/// filtering: each patient's part is asked for `window()`, and tells `took` how many it kept and
/// how many it showed.
pub(crate) struct Pager {
    skip: usize,
    take: usize,
    pub(crate) total: usize,
}

impl Pager {
    pub(crate) fn new((skip, take): (usize, usize)) -> Pager {
        Pager {
            skip,
            take,
            total: 0,
        }
    }

    /// What the next part skips and shows at most.
    pub(crate) fn window(&self) -> (usize, usize) {
        (self.skip, self.take)
    }

    pub(crate) fn took(&mut self, kept: usize, shown: usize) {
        self.total += kept;
        self.skip = self.skip.saturating_sub(kept);
        self.take = self.take.saturating_sub(shown);
    }
}

/// The server's FHIR base URL as the client reached it (for `fullUrl` and page links).
pub(crate) fn base_url(headers: &HeaderMap, state: &ApiState) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = if state.secure_cookies {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}/fhir")
}

/// A search's answer: one page of matches (already filtered by what the reader may see, so
/// `total` and the pages never count what they may not), with `self` and `next` links.
pub(crate) fn searchset(
    base: &str,
    kind: &str,
    search: &Search,
    (offset, count): (usize, usize),
    total: usize,
    entries: Vec<(String, Value)>,
) -> Value {
    let shown = entries.len();
    let mut links = vec![json!({
        "relation": "self",
        "url": format!("{base}/{kind}?{}", search.with_offset(offset)),
    })];
    if offset + shown < total && shown > 0 {
        links.push(json!({
            "relation": "next",
            "url": format!("{base}/{kind}?{}", search.with_offset(offset + count)),
        }));
    }
    if offset > 0 {
        links.push(json!({
            "relation": "previous",
            "url": format!("{base}/{kind}?{}", search.with_offset(offset.saturating_sub(count))),
        }));
    }
    let entry: Vec<Value> = entries
        .into_iter()
        .map(|(path, resource)| {
            json!({
                "fullUrl": format!("{base}/{path}"),
                "resource": resource,
                "search": { "mode": "match" },
            })
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
    });
    if !entry.is_empty() {
        bundle["entry"] = json!(entry);
    }
    bundle
}

/// A resource id that names an account: 40 hex digits, with or without `0x`.
pub(crate) fn account_id(id: &str) -> FhirResult<Address> {
    let hex = id.strip_prefix("0x").unwrap_or(id);
    if hex.len() != 40 {
        return Err(FhirError::new(
            Kind::NotFound,
            format!("no resource has the id {id:?}: ids here are 40 hex digits"),
        ));
    }
    hex.parse::<Address>()
        .map_err(|_| FhirError::new(Kind::NotFound, format!("no resource has the id {id:?}")))
}

/// An account's resource id: its address as 40 lowercase hex digits.
pub(crate) fn id_of(address: Address) -> String {
    hex::encode(address.as_slice())
}

/// A reference parameter (`patient=Patient/ID` or `patient=ID`) naming an account.
pub(crate) fn reference_param(value: &str, kind: &str) -> FhirResult<Address> {
    let id = value
        .strip_prefix(&format!("{kind}/"))
        .unwrap_or(value)
        .rsplit('/')
        .next()
        .unwrap_or(value);
    account_id(id).map_err(|_| {
        FhirError::new(
            Kind::Invalid,
            format!("{value:?} is not a {kind} of this server (Patient/ and 40 hex digits)"),
        )
    })
}

#[derive(Deserialize)]
pub(crate) struct Format {
    #[serde(rename = "_format")]
    pub format: Option<String>,
}
