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
/// Its name over HTTPS (`--secure-cookies`): a `__Host-` cookie is only accepted by browsers when
/// Secure, for `/` and set by this very host, so a neighbouring subdomain cannot plant one.
pub const SECURE_COOKIE: &str = "__Host-medledger_session";

/// The session cookie's name.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure { SECURE_COOKIE } else { COOKIE }
}

/// The token a request carries: `Authorization: Bearer T` or the session cookie (of the name in
/// use: with secure cookies, only the `__Host-` one).
pub fn token_of(parts: &Parts, secure: bool) -> Option<String> {
    if let Some(token) = bearer_of(parts) {
        return Some(token);
    }
    cookie_token_of(parts, secure)
}

fn bearer_of(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    Some(value.strip_prefix("Bearer ")?.trim().to_string())
}

/// The header a page's script sends its CSRF token in (forms cannot send a header).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A cookie-authenticated request that changes something must show it came from this site's own
/// page: the page's CSRF token in `X-CSRF-Token` (a header no form of another site can send), and
/// an `Origin` and `Sec-Fetch-Site`, when the browser sends them, of this very origin. A cookie
/// alone is what a sibling subdomain or another port on the host can make a browser send. A
/// bearer token needs nothing more: no browser attaches one by itself.
fn check_cookie_write(parts: &Parts, state: &ApiState, token: &str) -> Result<(), ApiError> {
    if matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    ) || bearer_of(parts).is_some()
    {
        return Ok(());
    }
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let refused = |why: &str| {
        ApiError::new(
            Kind::Forbidden,
            format!(
                "{why}: a change made with the session cookie must come from this site's own page, with its CSRF token in the X-CSRF-Token header (scripts send Authorization: Bearer instead)"
            ),
        )
    };
    let expected = medledger_records::sessions::form_token(token);
    if !header(CSRF_HEADER).is_some_and(|t| constant_eq(t.as_bytes(), expected.as_bytes())) {
        return Err(refused("no CSRF token, or not this session's"));
    }
    if header("origin").is_some_and(|o| o != state.public.origin()) {
        return Err(refused("this request came from another site"));
    }
    if header("sec-fetch-site").is_some_and(|s| s != "same-origin" && s != "none") {
        return Err(refused("this request came from another site"));
    }
    Ok(())
}

/// A change refused as forged goes in the security log, with the path it was for.
async fn forged_refused(
    parts: &mut Parts,
    state: &ApiState,
    checked: Result<(), ApiError>,
) -> Result<(), ApiError> {
    if checked.is_err() {
        let crate::client::ClientAddr(client) =
            crate::client::ClientAddr::from_request_parts(parts, state)
                .await
                .unwrap_or(crate::client::ClientAddr(None));
        state
            .app
            .security()
            .record(
                medledger_records::security::Event::ForgedRequestRefused,
                &format!("{} {}", parts.method, parts.uri.path()),
                client,
                "forbidden",
            )
            .await;
    }
    checked
}

/// Byte strings compared in time that does not depend on where they differ.
pub(crate) fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie_token_of(parts: &Parts, secure: bool) -> Option<String> {
    for cookie in parts.headers.get_all(header::COOKIE) {
        let Ok(cookie) = cookie.to_str() else {
            continue;
        };
        for pair in cookie.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=')
                && name == cookie_name(secure)
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
        let token = token_of(parts, state.secure_cookies).ok_or_else(unauthenticated)?;
        forged_refused(parts, state, check_cookie_write(parts, state, &token)).await?;
        let session = state
            .app
            .sessions()
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
        let Some(token) = token_of(parts, state.secure_cookies) else {
            return Ok(MaybeAuth(None));
        };
        forged_refused(parts, state, check_cookie_write(parts, state, &token)).await?;
        let session = state.app.sessions().session(&token).await?;
        Ok(MaybeAuth(
            session.filter(|s| !s.restricted).map(|s| s.person),
        ))
    }
}

/// The `Set-Cookie` value that starts a session (`__Host-` and Secure when served over HTTPS).
pub fn cookie(token: &str, secure: bool) -> String {
    format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        cookie_name(secure),
        ABSOLUTE.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends it.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        cookie_name(secure),
        if secure { "; Secure" } else { "" }
    )
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
        assert_eq!(token_of(&parts, false).as_deref(), Some("abc123"));
        // Over HTTPS only the `__Host-` cookie counts: a plain one may come from a subdomain.
        assert_eq!(token_of(&parts, true), None);
        let request = axum::http::Request::builder()
            .header(
                header::COOKIE,
                "medledger_session=planted; __Host-medledger_session=own",
            )
            .body(())
            .unwrap();
        let (parts, _) = request.into_parts();
        assert_eq!(token_of(&parts, true).as_deref(), Some("own"));
        let request = axum::http::Request::builder()
            .header(header::AUTHORIZATION, "Bearer xyz")
            .body(())
            .unwrap();
        let (parts, _) = request.into_parts();
        assert_eq!(token_of(&parts, true).as_deref(), Some("xyz"));
        let secure = cookie("t", true);
        assert!(
            secure.starts_with("__Host-medledger_session=t; Path=/;"),
            "{secure}"
        );
        assert!(
            secure.ends_with("; Secure") && !secure.contains("Domain"),
            "{secure}"
        );
        assert!(!cookie("t", false).contains("Secure"));
        assert!(cookie("t", false).starts_with("medledger_session=t;"));
        assert!(clear_cookie(true).starts_with("__Host-medledger_session=;"));
        assert!(clear_cookie(true).ends_with("; Secure"));
    }
}
