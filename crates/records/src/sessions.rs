//! Sessions, kept in the app database so that any app server answers any request of a
//! deployment and a restart logs nobody out. A token is 64 random bytes that only the client
//! holds: the first half, hashed, finds the session; the second half is the key the person's
//! unlocked private key (for a wallet account: the encryption key its signature gave) is sealed
//! under. The database alone (a backup, a stolen copy) opens no
//! session and no key. A session ends after 30 idle minutes, 12 hours in all, at logout, or when
//! the password changes elsewhere; a session of a role that must have a second factor the
//! account has not set up is restricted to setting it up.

use std::{sync::Arc, time::Duration};

use alloy::{primitives::keccak256, signers::local::PrivateKeySigner};
use medledger_vault::{Dek, SecretKey, open, seal};
use rand::{RngCore, rngs::OsRng};
use sqlx::Row;

use crate::{
    accounts::{Person, Signer, encryption_key},
    app::{App, unix_now_ms},
    error::{Error, Result},
};

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// And after this long in any case.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// `last_seen` is written at most this often (a write per request would cost a disk flush), or
/// half the idle limit if that is shorter.
const TOUCH_EVERY_MS: i64 = 30_000;

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub person: Arc<Person>,
    /// Only setting up a second factor is allowed.
    pub restricted: bool,
}

/// The token a session's page forms carry against cross-site requests: derived from the session
/// token (which the browser keeps in an HttpOnly cookie and no other site can read), so any app
/// server checks it without storing anything, and it ends with the session.
pub fn form_token(session_token: &str) -> String {
    let mut input = b"medledger form token v1:".to_vec();
    input.extend_from_slice(session_token.trim().as_bytes());
    hex::encode(keccak256(&input))
}

/// A token's two halves: the lookup id (as stored: its hash) and the sealing key.
struct Token {
    id: String,
    key: Dek,
}

fn split(token: &str) -> Option<Token> {
    let bytes = hex::decode(token.trim()).ok()?;
    let (id, key) = bytes.split_at_checked(32)?;
    let key: [u8; 32] = key.try_into().ok()?;
    Some(Token {
        id: keccak256(id).to_string(),
        key: Dek::from_bytes(key),
    })
}

impl App {
    /// How long a session may go without a request, in milliseconds (tests shorten it).
    fn session_idle_ms(&self) -> i64 {
        self.session_idle().as_millis() as i64
    }

    /// Starts a session for `person` and returns its token (128 hex digits).
    pub async fn start_session(&self, person: &Person) -> Result<String> {
        let mut bytes = [0u8; 64];
        OsRng.fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let Some(parts) = split(&token) else {
            return Err(Error::internal("session", "a fresh token does not split"));
        };
        let key = match &person.signer {
            Signer::Custodial(signer) => zeroize::Zeroizing::new(signer.to_bytes().0),
            Signer::Wallet(_) => zeroize::Zeroizing::new(person.secret.to_bytes()),
        };
        let sealed = seal(&parts.key, parts.id.as_bytes(), key.as_slice());
        let now = unix_now_ms();
        sqlx::query(
            "INSERT INTO sessions (id, user_id, sealed_key, restricted, created_at, last_seen)
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&parts.id)
        .bind(person.id)
        .bind(sealed)
        .bind(i64::from(person.must_set_up_second_factor))
        .bind(now)
        .execute(self.db())
        .await?;
        // Sessions long dead are swept as new ones start.
        sqlx::query("DELETE FROM sessions WHERE last_seen < $1 OR created_at < $2")
            .bind(now - self.session_idle_ms())
            .bind(now - ABSOLUTE.as_millis() as i64)
            .execute(self.db())
            .await?;
        Ok(token)
    }

    /// The live session of `token`, if there is one; using it resets its idle clock.
    pub async fn session(&self, token: &str) -> Result<Option<Session>> {
        let Some(parts) = split(token) else {
            return Ok(None);
        };
        let now = unix_now_ms();
        let row = sqlx::query(
            "SELECT s.sealed_key, s.restricted, s.created_at, s.last_seen,
                    u.id, u.username, u.role, u.address, u.mode, u.enc_public
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
        )
        .bind(&parts.id)
        .fetch_optional(self.db())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (created_at, last_seen): (i64, i64) =
            (row.try_get("created_at")?, row.try_get("last_seen")?);
        let idle = self.session_idle_ms();
        if now - last_seen >= idle || now - created_at >= ABSOLUTE.as_millis() as i64 {
            self.end_session(token).await?;
            return Ok(None);
        }
        let sealed: Vec<u8> = row.try_get("sealed_key")?;
        // A token whose second half is wrong opens nothing (and is no session).
        let Ok(key) = open(&parts.key, parts.id.as_bytes(), &sealed) else {
            return Ok(None);
        };
        let address: String = row.try_get("address")?;
        let address = address
            .parse()
            .map_err(|e| Error::internal("stored address", e))?;
        let (signer, secret) = if row.try_get::<String, _>("mode")? == "wallet" {
            let secret =
                SecretKey::from_bytes(&key).map_err(|e| Error::internal("a session's key", e))?;
            if secret.public_key().to_hex() != row.try_get::<String, _>("enc_public")? {
                // A session from before the account moved to its wallet, or a key that does
                // not fit: no session.
                return Ok(None);
            }
            (Signer::Wallet(address), secret)
        } else {
            let signer = PrivateKeySigner::from_slice(&key)
                .map_err(|e| Error::internal("a session's key", e))?;
            if signer.address() != address {
                return Err(Error::internal(
                    "session",
                    "the sealed key does not match the account",
                ));
            }
            let secret = encryption_key(&signer);
            (Signer::Custodial(signer), secret)
        };
        let role: String = row.try_get("role")?;
        let restricted = row.try_get::<i64, _>("restricted")? != 0;
        if now - last_seen >= TOUCH_EVERY_MS.min(idle / 2) {
            sqlx::query("UPDATE sessions SET last_seen = $1 WHERE id = $2")
                .bind(now)
                .bind(&parts.id)
                .execute(self.db())
                .await?;
        }
        Ok(Some(Session {
            person: Arc::new(Person {
                id: row.try_get("id")?,
                username: row.try_get("username")?,
                role: role.parse()?,
                address,
                secret,
                signer,
                must_set_up_second_factor: restricted,
            }),
            restricted,
        }))
    }

    /// The session's second factor is set up: it may do everything its role may.
    pub async fn lift_session_restriction(&self, token: &str) -> Result<()> {
        if let Some(parts) = split(token) {
            sqlx::query("UPDATE sessions SET restricted = 0 WHERE id = $1")
                .bind(&parts.id)
                .execute(self.db())
                .await?;
        }
        Ok(())
    }

    /// Ends the session of `token` (logout).
    pub async fn end_session(&self, token: &str) -> Result<()> {
        if let Some(parts) = split(token) {
            sqlx::query("DELETE FROM sessions WHERE id = $1")
                .bind(&parts.id)
                .execute(self.db())
                .await?;
        }
        Ok(())
    }

    /// Ends every session of user `user_id` but the one of `keep` (a password changed).
    pub async fn end_other_sessions(&self, user_id: i64, keep: &str) -> Result<()> {
        let keep = split(keep).map(|p| p.id).unwrap_or_default();
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .bind(user_id)
            .bind(keep)
            .execute(self.db())
            .await?;
        Ok(())
    }
}
