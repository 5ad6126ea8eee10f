//! Sessions: random opaque tokens mapped to an unlocked `Person` held in memory only (their keys
//! never touch the disk unencrypted). A token travels as an HttpOnly SameSite cookie for browsers
//! or a bearer token for API clients; it ends after 30 idle minutes, 12 hours in all, at logout,
//! or when the password changes elsewhere.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use medledger_records::primitives::keccak256;
use medledger_records::{Kind, Person};
use rand::{RngCore, rngs::OsRng};

use crate::{ApiState, error::ApiError};

pub const COOKIE: &str = "medledger_session";
pub const IDLE: Duration = Duration::from_secs(30 * 60);
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);

struct Entry {
    person: Arc<Person>,
    created: Instant,
    last_seen: Instant,
    /// The role needs a second factor the account has not set up: only that is allowed.
    restricted: bool,
}

/// The live sessions, keyed by a hash of the token, so the map itself holds no usable token.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Entry>>,
    idle: Option<Duration>,
}

fn key(token: &str) -> [u8; 32] {
    keccak256(token.as_bytes()).0
}

impl Sessions {
    /// Sessions whose idle limit is `idle` (tests shorten it).
    pub fn with_idle(idle: Duration) -> Sessions {
        Sessions {
            map: Mutex::default(),
            idle: Some(idle),
        }
    }

    fn idle(&self) -> Duration {
        self.idle.unwrap_or(IDLE)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session and returns its token.
    pub fn start(&self, person: Person) -> String {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let now = Instant::now();
        let idle = self.idle();
        let mut map = self.lock();
        map.retain(|_, e| live(e, now, idle));
        let restricted = person.must_set_up_second_factor;
        map.insert(
            key(&token),
            Entry {
                person: Arc::new(person),
                created: now,
                last_seen: now,
                restricted,
            },
        );
        token
    }

    /// The person behind `token`, if the session is live and not restricted to setting up a
    /// second factor; touching it resets the idle clock.
    pub fn get(&self, token: &str) -> Option<Arc<Person>> {
        self.lookup(token)
            .and_then(|(person, restricted)| (!restricted).then_some(person))
    }

    /// The person behind a live `token`, and whether the session may only set up a second
    /// factor.
    pub fn lookup(&self, token: &str) -> Option<(Arc<Person>, bool)> {
        let now = Instant::now();
        let idle = self.idle();
        let mut map = self.lock();
        let k = key(token);
        match map.get_mut(&k) {
            Some(e) if live(e, now, idle) => {
                e.last_seen = now;
                Some((e.person.clone(), e.restricted))
            }
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        }
    }

    /// The session's second factor is set up: it may do everything its role may.
    pub fn lift_restriction(&self, token: &str) {
        if let Some(e) = self.lock().get_mut(&key(token)) {
            e.restricted = false;
        }
    }

    pub fn end(&self, token: &str) {
        self.lock().remove(&key(token));
    }

    /// Ends every session of user `id` except the one with token `keep`.
    pub fn end_others(&self, id: i64, keep: &str) {
        let keep = key(keep);
        self.lock().retain(|k, e| e.person.id != id || *k == keep);
    }
}

fn live(e: &Entry, now: Instant, idle: Duration) -> bool {
    now.duration_since(e.last_seen) < idle && now.duration_since(e.created) < ABSOLUTE
}

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
        let (person, restricted) = state.sessions.lookup(&token).ok_or_else(unauthenticated)?;
        if restricted && !SETUP_PATHS.contains(&parts.uri.path()) {
            return Err(ApiError::new(
                Kind::SecondFactorSetupRequired,
                "your role must have a second factor: set it up first (POST /api/v1/me/mfa, then POST /api/v1/me/mfa/confirm with a code)",
            ));
        }
        Ok(Auth { person, token })
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
        Ok(MaybeAuth(
            token_of(parts).and_then(|t| state.sessions.get(&t)),
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
    use medledger_records::model::Role;

    fn person(id: i64) -> Person {
        let signer = alloy::signers::local::PrivateKeySigner::random();
        Person {
            id,
            username: format!("user{id}"),
            role: Role::Patient,
            address: signer.address(),
            secret: medledger_records::accounts::encryption_key(&signer),
            signer,
            must_set_up_second_factor: false,
        }
    }

    #[test]
    fn sessions_expire_when_idle_and_end_on_request() {
        let sessions = Sessions::with_idle(Duration::from_millis(150));
        let token = sessions.start(person(1));
        assert_eq!(token.len(), 64);
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(60));
            assert!(sessions.get(&token).is_some(), "use keeps it alive");
        }
        std::thread::sleep(Duration::from_millis(200));
        assert!(sessions.get(&token).is_none(), "idle too long");

        let a = sessions.start(person(1));
        let b = sessions.start(person(1));
        let other = sessions.start(person(2));
        sessions.end_others(1, &a);
        assert!(sessions.get(&a).is_some());
        assert!(sessions.get(&b).is_none());
        assert!(sessions.get(&other).is_some());
        sessions.end(&a);
        assert!(sessions.get(&a).is_none());
        assert!(sessions.get("not-a-token").is_none());
    }

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
