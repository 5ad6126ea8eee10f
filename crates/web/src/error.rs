//! The one place a domain error becomes an HTTP answer: `{"error": {"code", "message"}}` with the
//! status its kind calls for. Internal details never leave the server (the domain logged them).

use axum::{
    Json,
    extract::rejection::{JsonRejection, QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use medledger_records::{Error, Kind};
use serde_json::json;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

pub type ApiResult<T> = Result<T, ApiError>;

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError(e)
    }
}

impl ApiError {
    pub fn new(kind: Kind, message: impl Into<String>) -> ApiError {
        ApiError(Error::new(kind, message))
    }
}

pub(crate) fn status_of(kind: Kind) -> StatusCode {
    match kind {
        Kind::Invalid => StatusCode::BAD_REQUEST,
        Kind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        Kind::Unauthenticated | Kind::SecondFactorRequired => StatusCode::UNAUTHORIZED,
        Kind::SecondFactorSetupRequired => StatusCode::FORBIDDEN,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::Conflict | Kind::Integrity => StatusCode::CONFLICT,
        Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Kind::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
        Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Internal | Kind::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        Kind::WalletSignature => StatusCode::ACCEPTED,
    }
}

/// Logs an error as it becomes an answer (the one place it is logged): an internal failure's
/// detail and its chain of sources at error level, a dependency that does not answer at warn.
pub(crate) fn log(e: &Error) {
    match e.kind {
        Kind::Internal | Kind::Misconfigured => {
            let mut line = e.detail().unwrap_or(&e.message).to_string();
            let mut source = std::error::Error::source(e);
            // The detail already says the first source.
            source = source.and_then(std::error::Error::source);
            while let Some(s) = source {
                line.push_str(&format!(": {s}"));
                source = s.source();
            }
            tracing::error!("{line}");
        }
        Kind::Unavailable => tracing::warn!("{}", e.for_operator()),
        _ => {}
    }
}

/// The status a page answers an error with, the error logged on the way.
pub(crate) fn answered(e: &Error) -> StatusCode {
    log(e);
    status_of(e.kind)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        log(&self.0);
        let status = status_of(self.0.kind);
        let mut error = json!({ "code": self.0.kind.code(), "message": self.0.message });
        if let Some(field) = self.0.field {
            error["field"] = json!(field);
        }
        // Not a failure: the call the person's own wallet is to sign and send, and where to
        // hand back its hash.
        if let Some(prepared) = &self.0.wallet {
            let body = json!({
                "wallet": prepared,
                "message": self.0.message,
                "complete": format!("/api/v1/writes/{}", prepared.id),
            });
            return (status, Json(body)).into_response();
        }
        (status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        let kind = match r {
            JsonRejection::JsonDataError(_) => Kind::Unprocessable,
            JsonRejection::MissingJsonContentType(_) => Kind::UnsupportedType,
            JsonRejection::BytesRejection(ref b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Kind::TooLarge
            }
            _ => Kind::Invalid,
        };
        ApiError::new(
            kind,
            format!("the request body is not acceptable: {}", r.body_text()),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::new(
            Kind::Invalid,
            format!("bad query string: {}", r.body_text()),
        )
    }
}
