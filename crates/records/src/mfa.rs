//! A second factor for logging in: TOTP (RFC 6238, six digits every 30 seconds, SHA-1 as every
//! authenticator app speaks it; the `totp-rs` crate). The shared secret is sealed under a key
//! wrapped for the person's own key, so it is read only once their password has unlocked
//! that key; a stolen database holds no usable secret. A code is accepted once. A role can be
//! made to need it (`--require-mfa`): such an account logs in to set it up and to nothing else.

use medledger_vault::{Dek, seal};
use serde::Serialize;
use totp_rs::{Algorithm, Builder, Totp};

use std::sync::Arc;

use crate::{
    access::Access,
    db::Db,
    error::{Error, Kind, Result},
    keyring::Keyring,
    model::unix_now,
    person::Person,
    store::{
        users::Users,
        wraps::{ObjectId, Reader, Wraps},
    },
};

/// What a person adds to their authenticator app.
#[derive(Debug, Clone, Serialize)]
pub struct SecondFactorSetup {
    /// The shared secret, base32, to type in.
    pub secret: String,
    /// The same as an `otpauth://` URI (what a QR code carries).
    pub otpauth_url: String,
}

fn object(person: &Person, pending: bool) -> ObjectId {
    match pending {
        true => ObjectId::SecondFactorPending(person.address),
        false => ObjectId::SecondFactor(person.address),
    }
}

fn totp(secret: Vec<u8>, username: &str) -> Result<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(secret)
        .with_account_name(username)
        .with_issuer(Some("medledger"))
        .build()
        .map_err(|e| Error::internal("totp", e))
}

fn wrong_code() -> Error {
    Error::new(
        Kind::Unauthenticated,
        "that code is wrong, expired or already used; enter the current one from your authenticator",
    )
}

/// Codes tried per account in a window, on every path that asks for one (a password login, a
/// wallet sign-in, replacing or turning off the factor); a right code starts it again.
const CODE_ATTEMPTS: crate::limits::Limit = crate::limits::Limit {
    max: 5,
    window: std::time::Duration::from_secs(15 * 60),
};

/// Second factors, a use case of their own: the users' sealed TOTP secrets, the keyring that
/// opens a person's own, the limit on codes tried, the sessions a change ends, and which roles
/// must have one.
#[derive(Clone)]
pub struct SecondFactors {
    db: Db,
    access: Access,
    keyring: Arc<Keyring>,
    limiter: crate::limits::Limiter,
    sessions: crate::sessions::Sessions,
    required: Vec<crate::model::Role>,
}

impl SecondFactors {
    pub(crate) fn new(
        db: Db,
        access: Access,
        keyring: Arc<Keyring>,
        limiter: crate::limits::Limiter,
        sessions: crate::sessions::Sessions,
        required: Vec<crate::model::Role>,
    ) -> SecondFactors {
        SecondFactors {
            db,
            access,
            keyring,
            limiter,
            sessions,
            required,
        }
    }

    /// Starts setting up a second factor: a fresh secret, kept pending (sealed) until a code
    /// made from it confirms the person's app has it. Replacing one that is on takes a
    /// `current` code from it: a session alone cannot swap it for the holder's own.
    pub async fn start_second_factor(
        &self,
        person: &Person,
        current: Option<&str>,
    ) -> Result<SecondFactorSetup> {
        if self.second_factor_on(person).await? {
            let Some(code) = current.filter(|c| !c.trim().is_empty()) else {
                return Err(Error::forbidden(
                    "a second factor is on: give a current code from it (\"code\") to replace it",
                ));
            };
            self.check_second_factor(person, code).await?;
        }
        let mut secret = vec![0u8; 20];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        let totp = totp(secret.clone(), &person.username)?;
        let sealed = self.seal_secret(person, true, &secret).await?;
        Users(&self.db).set_mfa_pending(person.id, &sealed).await?;
        Ok(SecondFactorSetup {
            secret: totp.secret().to_base32(),
            otpauth_url: totp.to_url().map_err(|e| Error::internal("totp url", e))?,
        })
    }

    /// Turns the second factor on, once `code` shows the person's app holds the pending secret;
    /// every other session of the account ends (`session`, the one asking, stays).
    pub async fn confirm_second_factor(
        &self,
        person: &Person,
        code: &str,
        session: &str,
    ) -> Result<()> {
        let Some(secret) = self.sealed_secret(person, true).await? else {
            return Err(Error::conflict(
                "there is no second factor being set up: start again",
            ));
        };
        let totp = totp(secret.clone(), &person.username)?;
        let step = totp
            .check(code.trim(), unix_now() as u64)
            .ok_or_else(wrong_code)?;
        let sealed = self.seal_secret(person, false, &secret).await?;
        Wraps(&self.db).drop_all(&object(person, true)).await?;
        Users(&self.db)
            .confirm_mfa(person.id, &sealed, step)
            .await?;
        self.sessions.end_other_sessions(person.id, session).await
    }

    /// Turns the second factor off (with a current code), unless the person's role needs one;
    /// every other session of the account ends.
    pub async fn turn_off_second_factor(
        &self,
        person: &Person,
        code: &str,
        session: &str,
    ) -> Result<()> {
        if self.second_factor_required(person.role) {
            return Err(Error::forbidden(
                "your role must have a second factor; it cannot be turned off",
            ));
        }
        if !self.second_factor_on(person).await? {
            return Err(Error::conflict("no second factor is on"));
        }
        self.check_second_factor(person, code).await?;
        Users(&self.db).clear_mfa(person.id).await?;
        Wraps(&self.db).drop_all(&object(person, false)).await?;
        self.sessions.end_other_sessions(person.id, session).await
    }

    /// Whether every account of `role` must have a second factor.
    pub fn second_factor_required(&self, role: crate::model::Role) -> bool {
        self.required.contains(&role)
    }

    /// Whether the person has a second factor on.
    pub async fn second_factor_on(&self, person: &Person) -> Result<bool> {
        Users(&self.db).mfa_on(person.id).await
    }

    /// Checks a code against the person's second factor, accepting each time step once (also
    /// across servers: the step is compared and moved on in one statement). Every try is
    /// counted against the account before it is judged; past `CODE_ATTEMPTS` in the window, no
    /// code is looked at until it passes.
    pub(crate) async fn check_second_factor(&self, person: &Person, code: &str) -> Result<()> {
        let Some(secret) = self.sealed_secret(person, false).await? else {
            return Ok(());
        };
        let key = format!("second factor {}", person.id);
        if !self.limiter.count_against(&key, CODE_ATTEMPTS).await? {
            return Err(Error::new(
                Kind::TooManyAttempts,
                "too many wrong codes for this account; try again in 15 minutes",
            ));
        }
        let totp = totp(secret, &person.username)?;
        let step = totp
            .check(code.trim(), unix_now() as u64)
            .ok_or_else(wrong_code)?;
        if !Users(&self.db).use_mfa_step(person.id, step).await? {
            return Err(wrong_code());
        }
        self.limiter.clear_count(&key).await
    }

    /// Seals a secret under a fresh key wrapped for the person's own key (replacing any).
    async fn seal_secret(&self, person: &Person, pending: bool, secret: &[u8]) -> Result<Vec<u8>> {
        let object = object(person, pending);
        let dek = Dek::generate();
        let wraps = Wraps(&self.db);
        wraps.drop_all(&object).await?;
        let me = Reader::Account(person.address);
        wraps
            .put(&object, me, &person.secret.public_key(), &dek)
            .await?;
        Ok(seal(&dek, &object.aad(), secret))
    }

    async fn sealed_secret(&self, person: &Person, pending: bool) -> Result<Option<Vec<u8>>> {
        let Some(sealed) = Users(&self.db).mfa_sealed(person.id, pending).await? else {
            return Ok(None);
        };
        let object = object(person, pending);
        let no_key = || Error::internal("second factor", "no wrapped key");
        let own = self.access.own(person, object).await?.ok_or_else(no_key)?;
        let key = self
            .keyring
            .unlock_own(Wraps(&self.db), person, &own)
            .await?
            .ok_or_else(no_key)?;
        key.open_own(&object.aad(), &sealed)?
            .ok_or_else(no_key)
            .map(Some)
    }
}
