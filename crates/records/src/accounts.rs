//! People and their keys: user names, argon2id password hashes, Ethereum keys kept only as Web3
//! Secret Storage keystores, login with per-name throttling, and the unlocked `Person` a session
//! holds in memory.

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};
use rand::{Rng, rngs::OsRng};

use std::sync::Arc;

use crate::{
    db::Db,
    error::{Error, Kind, Result},
    faucet::Faucet,
    follows::Writer,
    ledger::Contracts,
    limits::Limiter,
    mfa::SecondFactors,
    model::Role,
    people::People,
    store::users::{NewUser, Users},
};

pub const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_CHARS: usize = 1024;
/// Logins tried per user name in a window (a success starts it again) before further tries are
/// refused.
const LOGIN_ATTEMPTS: crate::limits::Limit = crate::limits::Limit {
    max: 5,
    window: std::time::Duration::from_secs(15 * 60),
};

pub use crate::person::{Person, Signer, encryption_key};

pub use crate::model::{Account, address_key};

/// A hash to check wrong passwords of unknown names against, so they take as long as known ones.
pub(crate) fn dummy_hash() -> String {
    hash_password("medledger dummy password").unwrap_or_default()
}

/// What a wallet account is told when it asks for what only a custodial one has.
pub(crate) fn no_password() -> Error {
    Error::unprocessable(
        "this account's key is in your own wallet: it has no password and no keystore here",
    )
}

/// Checks a user name: 3 to 64 characters, lower-case letters, digits, `.`, `_`, `-`.
pub fn check_username(name: &str) -> Result<()> {
    let ok = (3..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "a user name has 3 to 64 characters: lower-case letters, digits, '.', '_' or '-'",
        ))
    }
}

pub fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(Error::invalid("that password is too long"));
    }
    Ok(())
}

/// A strong random password (for the first admin when none is given): 24 characters drawn from
/// 57 unambiguous letters and digits, about 140 bits.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = OsRng;
    (0..24)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(crate) fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::internal("hashing a password", e))
}

fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Seals a private key into a keystore JSON under `password`. eth-keystore writes files only, so
/// it writes into a private temporary directory that is removed at once.
pub(crate) fn encrypt_keystore(signer: &PrivateKeySigner, password: &str) -> Result<String> {
    let dir = tempfile::tempdir().map_err(|e| Error::internal("keystore temp dir", e))?;
    PrivateKeySigner::encrypt_keystore(
        dir.path(),
        &mut OsRng,
        signer.to_bytes(),
        password,
        Some("key.json"),
    )
    .map_err(|e| Error::internal("encrypting a keystore", e))?;
    std::fs::read_to_string(dir.path().join("key.json"))
        .map_err(|e| Error::internal("reading a keystore", e))
}

fn decrypt_keystore(json: &str, password: &str) -> Result<PrivateKeySigner> {
    let dir = tempfile::tempdir().map_err(|e| Error::internal("keystore temp dir", e))?;
    let path = dir.path().join("key.json");
    std::fs::write(&path, json).map_err(|e| Error::internal("writing a keystore", e))?;
    PrivateKeySigner::decrypt_keystore(&path, password)
        .map_err(|e| Error::internal("decrypting a keystore", e))
}

/// How a new account will sign: a fresh key the server keeps sealed under a password, or the
/// person's own wallet (whose signature gave the account's encryption key).
pub enum NewKey<'a> {
    Custodial {
        signer: PrivateKeySigner,
        password: &'a str,
    },
    Wallet(&'a crate::person::WalletLogin),
}

impl NewKey<'_> {
    /// A fresh custodial key, sealed under `password`.
    pub fn fresh(password: &str) -> NewKey<'_> {
        NewKey::Custodial {
            signer: PrivateKeySigner::random_with(&mut OsRng),
            password,
        }
    }

    pub fn address(&self) -> Address {
        match self {
            NewKey::Custodial { signer, .. } => signer.address(),
            NewKey::Wallet(login) => login.address,
        }
    }

    pub(crate) fn signer(&self) -> Signer {
        match self {
            NewKey::Custodial { signer, .. } => Signer::Custodial(signer.clone()),
            NewKey::Wallet(login) => Signer::Wallet(login.address),
        }
    }

    fn mode(&self) -> &'static str {
        self.signer().mode()
    }

    pub(crate) fn password(&self) -> Option<&str> {
        match self {
            NewKey::Custodial { password, .. } => Some(password),
            NewKey::Wallet(_) => None,
        }
    }
}

#[derive(Clone)]
pub struct Accounts {
    db: Db,
    contracts: Contracts,
    faucet: Faucet,
    limiter: Limiter,
    second_factors: SecondFactors,
    people: People,
    writer: Writer,
    kdf_slots: Arc<tokio::sync::Semaphore>,
    dummy_hash: Arc<str>,
}

impl Accounts {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        db: Db,
        contracts: Contracts,
        faucet: Faucet,
        limiter: Limiter,
        second_factors: SecondFactors,
        people: People,
        writer: Writer,
        kdf_slots: Arc<tokio::sync::Semaphore>,
        dummy_hash: Arc<str>,
    ) -> Accounts {
        Accounts {
            db,
            contracts,
            faucet,
            limiter,
            second_factors,
            people,
            writer,
            kdf_slots,
            dummy_hash,
        }
    }
}

impl Accounts {
    /// Runs a key-derivation step (argon2id, scrypt) on the blocking pool, at most one per core
    /// at a time.
    pub(crate) async fn kdf<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _slot = self
            .kdf_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::internal("kdf slots", e))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::internal("kdf task", e))?
    }

    /// Stores an account for `key`, funded from the faucet, pending until the caller's
    /// registration of it on chain is mined (signed by the right person, journalled).
    pub(crate) async fn create_account(
        &self,
        role: Role,
        username: &str,
        key: &NewKey<'_>,
    ) -> Result<Account> {
        let (keystore, hash, enc_public) = match key {
            NewKey::Custodial { signer, password } => {
                let (signer, password) = (signer.clone(), password.to_string());
                let enc_public = encryption_key(&signer).public_key();
                let (keystore, hash) = self
                    .kdf(move || {
                        Ok((
                            encrypt_keystore(&signer, &password)?,
                            hash_password(&password)?,
                        ))
                    })
                    .await?;
                (Some(keystore), Some(hash), enc_public)
            }
            NewKey::Wallet(login) => {
                if self
                    .people
                    .account_by_address(login.address)
                    .await?
                    .is_some()
                {
                    return Err(Error::conflict(
                        "this wallet's account has an account here already: sign in with it",
                    ));
                }
                (None, None, login.secret.public_key())
            }
        };
        let address = key.address();
        self.faucet.fund(address).await?;
        let id = Users(&self.db)
            .insert_pending(&NewUser {
                username,
                role,
                address,
                mode: key.mode(),
                keystore,
                password_hash: hash,
                enc_public: enc_public.to_hex(),
                funded_wei: self.faucet.funding().to_string(),
            })
            .await?
            .ok_or_else(|| Error::conflict("this user name is taken"))?;
        Ok(Account {
            id,
            username: username.to_string(),
            role,
            address,
            enc_public,
        })
    }

    /// A new account registered on chain by its own key's transaction `call` to the Registry
    /// (journalled): the account is stored first, pending, with whatever `also` adds to it, and
    /// may log in once the registration is mined. For a wallet the call is prepared for it
    /// (`Kind::WalletSignature`), and the account becomes active once its transaction is.
    pub(crate) async fn register_account(
        &self,
        key: &NewKey<'_>,
        role: Role,
        username: &str,
        call: Vec<u8>,
        also: impl AsyncFnOnce(&Account) -> Result<()>,
    ) -> Result<(Account, crate::ledger::TxInfo)> {
        let mut created = None;
        let stored = async {
            let account = self.create_account(role, username, key).await?;
            also(&account).await?;
            created = Some(account);
            Ok(())
        };
        let registry = self.contracts.registry;
        let follow = crate::journal::Follow::Register {
            account: key.address(),
        };
        let (tx, _) = self
            .writer
            .write_after(&key.signer(), registry, call, follow, None, stored)
            .await?
            .mined()?;
        let account = created.ok_or_else(|| Error::internal("registration", "no account"))?;
        Ok((account, tx))
    }

    /// Checks a new account's name (and password, for a custodial one) before anything is
    /// stored or sent.
    pub(crate) async fn check_new_account(
        &self,
        username: &str,
        password: Option<&str>,
    ) -> Result<()> {
        check_username(username)?;
        if let Some(password) = password {
            check_password(password)?;
        }
        if self.people.account_by_name(username).await?.is_some() {
            return Err(Error::conflict("this user name is taken"));
        }
        Ok(())
    }

    /// Checks a password and unlocks the person's keys. An unknown name and a wrong password get
    /// the same answer (and about the same time); after five failures in fifteen minutes a name
    /// is refused until the window passes.
    pub async fn login(&self, username: &str, password: &str) -> Result<Person> {
        self.login_with(username, password, None).await
    }

    /// `login`, with the second factor's current code for an account that has one (without it,
    /// such an account is told `SecondFactorRequired`; a wrong code counts as a failed login).
    pub async fn login_with(
        &self,
        username: &str,
        password: &str,
        code: Option<&str>,
    ) -> Result<Person> {
        let refused = || Error::new(Kind::Unauthenticated, "wrong user name or password");
        // This attempt is counted before anything is checked, in one statement that also says
        // how many there have been in the window: guesses sent in parallel cannot all pass a
        // check before any of them is counted. A login that succeeds clears the count.
        let key = format!("login {username}");
        if !self.limiter.count_against(&key, LOGIN_ATTEMPTS).await? {
            return Err(Error::new(
                Kind::TooManyAttempts,
                "too many failed logins for this name; try again in 15 minutes",
            ));
        }
        // An unknown name and a wallet account's name (which has no password) are refused as a
        // wrong password is, after the time a real check takes: the answer does not tell
        // which names exist, nor which of them are wallets'.
        let row = Users(&self.db).by_name(username).await?;
        let Some((row, hash)) = row.and_then(|r| r.password_hash.clone().map(|h| (r, h))) else {
            let (password, dummy) = (password.to_string(), self.dummy_hash.to_string());
            self.kdf(move || Ok(password_matches(&password, &dummy)))
                .await?;
            return Err(refused());
        };
        let matches = {
            let password = password.to_string();
            self.kdf(move || Ok(password_matches(&password, &hash)))
                .await?
        };
        if !matches {
            return Err(refused());
        }
        if row.status == "pending" {
            return Err(Error::new(
                Kind::Unavailable,
                "your account is not confirmed on the ledger yet; try again in a moment",
            ));
        }
        let account = row.account;
        let keystore: String = row
            .keystore
            .ok_or_else(|| Error::internal("login", "a custodial account without a keystore"))?;
        let signer = {
            let password = password.to_string();
            self.kdf(move || decrypt_keystore(&keystore, &password))
                .await?
        };
        if signer.address() != account.address {
            return Err(Error::internal(
                "login",
                "keystore does not match the account address",
            ));
        }
        let secret = encryption_key(&signer);
        let person = Person {
            id: account.id,
            username: account.username,
            role: account.role,
            address: account.address,
            signer: Signer::Custodial(signer),
            secret,
            must_set_up_second_factor: false,
        };
        let person = self.second_factor_at_login(person, code).await?;
        self.limiter.clear_count(&key).await?;
        Ok(person)
    }

    /// The second factor at login: its code checked when the account has one (without a code,
    /// `SecondFactorRequired`), or the session restricted to setting one up when the role must
    /// have one and the account does not.
    pub(crate) async fn second_factor_at_login(
        &self,
        mut person: Person,
        code: Option<&str>,
    ) -> Result<Person> {
        if self.second_factors.second_factor_on(&person).await? {
            let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
                return Err(Error::new(
                    Kind::SecondFactorRequired,
                    "enter the code from your authenticator app too",
                ));
            };
            self.second_factors
                .check_second_factor(&person, code)
                .await?;
        } else {
            person.must_set_up_second_factor =
                self.second_factors.second_factor_required(person.role);
        }
        Ok(person)
    }

    /// Changes a password: re-seals the keystore and the hash under the new one.
    pub async fn change_password(&self, person: &Person, current: &str, new: &str) -> Result<()> {
        let Signer::Custodial(signer) = &person.signer else {
            return Err(no_password());
        };
        check_password(new)?;
        let hash = Users(&self.db).password_hash(person.id).await?;
        let hash = hash.ok_or_else(no_password)?;
        let (current, new_password, signer) =
            (current.to_string(), new.to_string(), signer.clone());
        let (matches, keystore, new_hash) = self
            .kdf(move || {
                if !password_matches(&current, &hash) {
                    return Ok((false, String::new(), String::new()));
                }
                let keystore = encrypt_keystore(&signer, &new_password)?;
                Ok((true, keystore, hash_password(&new_password)?))
            })
            .await?;
        if !matches {
            return Err(Error::forbidden("the current password is wrong"));
        }
        Users(&self.db)
            .set_password(person.id, &keystore, &new_hash)
            .await
    }

    /// The ether `person` was given at creation, in wei.
    pub async fn funded_wei(&self, person: &Person) -> Result<alloy::primitives::U256> {
        let text = Users(&self.db).funded_wei(person.id).await?;
        Ok(text.parse().unwrap_or_default())
    }

    /// The person's keystore JSON (still encrypted under their password), for download.
    pub async fn keystore(&self, person: &Person) -> Result<String> {
        Users(&self.db)
            .keystore(person.id)
            .await?
            .ok_or_else(no_password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_username("alice.smith-2").is_ok());
        assert!(check_username("Al").is_err());
        assert!(check_username("alice smith").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("twelve chars").is_ok());
        let p = generate_password();
        assert_eq!(p.len(), 24);
        assert_ne!(p, generate_password());
    }

    #[test]
    fn keystores_round_trip_and_refuse_a_wrong_password() {
        let signer = PrivateKeySigner::random();
        let json = encrypt_keystore(&signer, "correct horse battery").unwrap();
        assert!(json.contains("\"crypto\""));
        let back = decrypt_keystore(&json, "correct horse battery").unwrap();
        assert_eq!(back.address(), signer.address());
        assert!(decrypt_keystore(&json, "wrong horse battery").is_err());
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(password_matches("correct horse battery", &phc));
        assert!(!password_matches("correct horse batterY", &phc));
    }
}
