//! Sessions as HTTP carries them: the token (`Authorization: Bearer T` or an HttpOnly SameSite
//! cookie), and the extractors that turn it into the person behind it. The sessions themselves
//! live in the domain (`medledger_records::sessions`), in the app database, so any app server
//! answers any request.

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use medledger_records::{Kind, Person, sessions::ABSOLUTE};

use crate::{ApiState, error::ApiError};

pub const COOKIE: &str = "medledger_session";

/// The token a request carries: `Authorization: Bearer T` or the session cookie.
pub fn token_of(parts: &Parts) -> Option<String> {
    if let Some(auth) = parts.headers.get(header::AUTHORIZATION)
        && let Ok(value) = auth.to_str()
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_string());
    }
    for cookie in parts.headers.get_all(header::COOKIE) {
        let Ok(cookie) = cookie.to_str() else {
            continue;
        };
        for pair in cookie.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=')
                && name == COOKIE
            {
                return Some(value.to_string());
            }
        }
    }
    None
}

/// A logged-in person, or 401.
pub struct Auth {
    pub person: Arc<Person>,
    pub token: String,
}

impl FromRequestParts<ApiState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Auth, ApiError> {
        let unauthenticated = || {
            ApiError::new(
                Kind::Unauthenticated,
                "log in first (your session may have expired)",
            )
        };
        let token = token_of(parts).ok_or_else(unauthenticated)?;
        let session = state
            .app
            .session(&token)
            .await?
            .ok_or_else(unauthenticated)?;
        if session.restricted && !SETUP_PATHS.contains(&parts.uri.path()) {
            return Err(ApiError::new(
                Kind::SecondFactorSetupRequired,
                "your role must have a second factor: set it up first (POST /api/v1/me/mfa, then POST /api/v1/me/mfa/confirm with a code)",
            ));
        }
        Ok(Auth {
            person: session.person,
            token,
        })
    }
}

/// What a session that must first set up a second factor may call.
const SETUP_PATHS: [&str; 4] = [
    "/api/v1/me",
    "/api/v1/me/mfa",
    "/api/v1/me/mfa/confirm",
    "/api/v1/auth/logout",
];

/// A logged-in person if there is one (for routes anyone may call).
pub struct MaybeAuth(pub Option<Arc<Person>>);

impl FromRequestParts<ApiState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<MaybeAuth, ApiError> {
        let Some(token) = token_of(parts) else {
            return Ok(MaybeAuth(None));
        };
        let session = state.app.session(&token).await?;
        Ok(MaybeAuth(
            session.filter(|s| !s.restricted).map(|s| s.person),
        ))
    }
}

/// The `Set-Cookie` value that starts a session (Secure when served over HTTPS).
pub fn cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ABSOLUTE.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends it.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_bearer_header_or_the_cookie() {
        let request = axum::http::Request::builder()
            .header(header::COOKIE, "theme=dark; medledger_session=abc123")
            .body(())
            .unwrap();
        let (parts, _) = request.into_parts();
        assert_eq!(token_of(&parts).as_deref(), Some("abc123"));
        let request = axum::http::Request::builder()
            .header(header::AUTHORIZATION, "Bearer xyz")
            .body(())
            .unwrap();
        let (parts, _) = request.into_parts();
        assert_eq!(token_of(&parts).as_deref(), Some("xyz"));
        assert!(cookie("t", true).contains("; Secure"));
        assert!(!cookie("t", false).contains("Secure"));
    }
}
