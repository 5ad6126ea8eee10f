//! The HTTP face of medledger: the web pages per role and the ledger explorer (`pages`), the REST
//! API under `/api/v1` (`api`, described by an OpenAPI document), the FHIR R4 API under `/fhir`
//! (`fhir`), sessions, and the health check.
//! Handlers are thin: they parse, call the domain (`medledger_records::App`), and answer.

pub mod api;
mod client;
pub mod error;
pub mod fhir;
mod forms;
pub mod origin;
pub mod pages;
pub(crate) mod security;
pub mod session;

use std::sync::Arc;

use axum::{
    Router,
    extract::{FromRequest, Request},
    http::{HeaderValue, Uri, header},
    response::Response,
};
use medledger_records::App;
use serde::de::DeserializeOwned;

use crate::{error::ApiError, pages::Templates};

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub app: App,
    pub templates: Arc<Templates>,
    /// Mark session cookies `Secure` (the server is behind HTTPS).
    pub secure_cookies: bool,
    /// Proxies whose `X-Forwarded-For` says who the client is (`--trusted-proxy`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The JSON-RPC URL wallets are told to add (`wallet_addEthereumChain`): the embedded
    /// node's, the external chain's, or `--wallet-rpc-url`.
    pub wallet_rpc_url: String,
    /// The one origin the deployment answers as (`--public-url`).
    pub public: origin::PublicUrl,
    /// How long a request may take (`--request-timeout-secs`): longer than a write waits for
    /// its receipt, so a write answers for itself first.
    pub request_limit: std::time::Duration,
    /// How long an upload or a research export's file may take.
    pub long_request_limit: std::time::Duration,
}

impl ApiState {
    pub fn new(app: App, public: origin::PublicUrl) -> ApiState {
        ApiState {
            app,
            public,
            templates: Arc::new(Templates::load()),
            secure_cookies: false,
            trusted_proxies: Vec::new(),
            wallet_rpc_url: String::new(),
            request_limit: std::time::Duration::from_secs(150),
            long_request_limit: std::time::Duration::from_secs(15 * 60),
        }
    }
}

/// A JSON body whose rejections answer in the API's error format.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Json(value))
    }
}

/// Headers on every answer: nothing here may be cached or sniffed into another type.
async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        // Same origin only: the page a form was posted from tells a wallet step where to go on
        // (`pages::Page`), and no other site ever learns which page linked to it.
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The whole HTTP application: the REST API, the FHIR API and the pages, each router built on
/// its own and merged here, the one place they meet, with the state and the layers they share.
pub fn router(state: ApiState) -> Router {
    let https = state.secure_cookies;
    let limits = (state.request_limit, state.long_request_limit);
    Router::new()
        .merge(api::router(&state))
        .merge(fhir::router())
        .merge(pages::router())
        // Last of all: axum gives this fallback only to the routes already registered.
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::map_response(harden))
        .layer(axum::middleware::map_response(move |response| {
            hsts(response, https)
        }))
        .layer(axum::middleware::from_fn(move |request, next| {
            time_limited(request, next, limits)
        }))
}

/// Every request has a time limit; an upload and a research export's file have a longer one.
/// A request stopped at its limit answers 503: what it had started writing is the journal's to
/// settle (as after a client that went away), never half-kept.
async fn time_limited(
    request: axum::extract::Request,
    next: axum::middleware::Next,
    (limit, long): (std::time::Duration, std::time::Duration),
) -> Response {
    let path = request.uri().path();
    let is_long = (request.method() == axum::http::Method::POST
        && matches!(path, "/api/v1/records" | "/patient/share"))
        || path.starts_with("/fhir/bulkfiles/");
    let limit = if is_long { long } else { limit };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                "a request took longer than {} s and was stopped",
                limit.as_secs()
            );
            axum::response::IntoResponse::into_response(ApiError::new(
                medledger_records::Kind::Unavailable,
                format!(
                    "this request took longer than {} s and was stopped; anything it wrote on the ledger is settled in the background: look before trying again",
                    limit.as_secs()
                ),
            ))
        }
    }
}

/// Behind HTTPS (`--secure-cookies`), browsers are told to come back only over HTTPS for a
/// year, to this host and its subdomains.
async fn hsts(mut response: Response, https: bool) -> Response {
    if https {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

/// A method a route does not take: under `/fhir` an OperationOutcome (the FHIR API reads only),
/// elsewhere the REST API's error.
async fn method_not_allowed(uri: Uri) -> Response {
    if uri.path().starts_with("/fhir/") {
        fhir::method_not_allowed()
    } else {
        api::method_not_allowed()
    }
}

/// Serves the application on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Each request knows its connection's peer (the limits counted per client need it).
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
