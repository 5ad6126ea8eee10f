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

use crate::{
    db::Db,
    error::{Error, Result},
    model::unix_now_ms,
    person::{Person, Signer, encryption_key},
    store::sessions::Sessions as Table,
};

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// And after this long in any case.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// `last_seen` is written at most this often (a write per request would cost a disk flush), or
/// half the idle limit if that is shorter.
const TOUCH_EVERY_MS: i64 = 30_000;

/// One of a person's live sessions, as their account page lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionView {
    /// A handle to end it by; it opens nothing.
    pub id: String,
    pub started_at: i64,
    pub last_seen: i64,
    /// The session asking.
    pub current: bool,
}

/// The handle of stored session id `id`: the first 16 bytes of its keccak hash, in hex.
fn handle(id: &str) -> String {
    hex::encode(&keccak256(id.as_bytes())[..16])
}

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

/// Sessions, a use case of its own: the `sessions` table (with the accounts it joins) and how
/// long a session may go without a request.
#[derive(Clone)]
pub struct Sessions {
    db: Db,
    idle: Duration,
}

impl Sessions {
    pub(crate) fn new(db: Db, idle: Duration) -> Sessions {
        Sessions { db, idle }
    }

    /// How long a session may go without a request.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// How long a session may go without a request, in milliseconds (tests shorten it).
    fn session_idle_ms(&self) -> i64 {
        self.idle.as_millis() as i64
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
        // Sessions long dead are swept as new ones start.
        Table(&self.db)
            .start(
                &parts.id,
                person.id,
                &sealed,
                person.must_set_up_second_factor,
                now,
                (
                    now - self.session_idle_ms(),
                    now - ABSOLUTE.as_millis() as i64,
                ),
            )
            .await?;
        Ok(token)
    }

    /// The live session of `token`, if there is one; using it resets its idle clock.
    pub async fn session(&self, token: &str) -> Result<Option<Session>> {
        let Some(parts) = split(token) else {
            return Ok(None);
        };
        let now = unix_now_ms();
        let Some(row) = Table(&self.db).get(&parts.id).await? else {
            return Ok(None);
        };
        let (created_at, last_seen) = (row.created_at, row.last_seen);
        let idle = self.session_idle_ms();
        if now - last_seen >= idle || now - created_at >= ABSOLUTE.as_millis() as i64 {
            self.end_session(token).await?;
            return Ok(None);
        }
        // A token whose second half is wrong opens nothing (and is no session).
        let Ok(key) = open(&parts.key, parts.id.as_bytes(), &row.sealed_key) else {
            return Ok(None);
        };
        let address = row.account.address;
        let (signer, secret) = if row.mode == "wallet" {
            let secret =
                SecretKey::from_bytes(&key).map_err(|e| Error::internal("a session's key", e))?;
            if secret.public_key() != row.account.enc_public {
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
        let restricted = row.restricted;
        if now - last_seen >= TOUCH_EVERY_MS.min(idle / 2) {
            Table(&self.db).touch(&parts.id, now).await?;
        }
        Ok(Some(Session {
            person: Arc::new(Person {
                id: row.account.id,
                username: row.account.username,
                role: row.account.role,
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
            Table(&self.db).lift_restriction(&parts.id).await?;
        }
        Ok(())
    }

    /// Ends the session of `token` (logout).
    pub async fn end_session(&self, token: &str) -> Result<()> {
        if let Some(parts) = split(token) {
            Table(&self.db).end(&parts.id).await?;
        }
        Ok(())
    }

    /// The live sessions of `person`, the most recently used first; `current` marks the one of
    /// that token. Each is named by a handle that opens nothing (a hash of its stored half).
    pub async fn sessions_of(&self, person: &Person, current: &str) -> Result<Vec<SessionView>> {
        let now = unix_now_ms();
        let current = split(current).map(|p| p.id).unwrap_or_default();
        let rows = Table(&self.db)
            .of_user(
                person.id,
                (
                    now - self.session_idle_ms(),
                    now - ABSOLUTE.as_millis() as i64,
                ),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, started, seen)| SessionView {
                id: handle(&id),
                started_at: started / 1000,
                last_seen: seen / 1000,
                current: id == current,
            })
            .collect())
    }

    /// Ends `person`'s session named `handle` (from `sessions_of`).
    pub async fn end_session_of(&self, person: &Person, handle_of: &str) -> Result<()> {
        let rows = Table(&self.db)
            .of_user(person.id, (i64::MIN, i64::MIN))
            .await?;
        let Some((id, _, _)) = rows.into_iter().find(|(id, _, _)| handle(id) == handle_of) else {
            return Err(Error::not_found("you have no such session"));
        };
        Table(&self.db).end_of_user(person.id, &id).await?;
        Ok(())
    }

    /// Ends every session of user `user_id` but the one of `keep` (a password changed).
    pub async fn end_other_sessions(&self, user_id: i64, keep: &str) -> Result<()> {
        let keep = split(keep).map(|p| p.id).unwrap_or_default();
        Table(&self.db).end_others(user_id, &keep).await
    }
}
