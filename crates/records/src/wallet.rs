//! Bring your own wallet. Sign-In with Ethereum (EIP-4361, the `siwe` crate) against single-use
//! nonces; the X25519 key a wallet account's data is wrapped to, derived (HKDF-SHA256) from the
//! wallet's signature of a fixed message bound to this deployment and the account, so the server
//! never needs the account's Ethereum key; and moving a custodial account to the person's own
//! wallet. A wallet account's transactions are prepared by the journal and sent by the wallet
//! (`journal::PreparedWrite`).

use std::str::FromStr;

use alloy::primitives::{Address, Signature};
use hkdf::Hkdf;
use medledger_vault::SecretKey;
use rand::{Rng, distributions::Alphanumeric, rngs::OsRng};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use std::sync::Arc;

use crate::{
    accounts::Accounts,
    db::Db,
    keyring::Keyring,
    ledger::{Contracts, Ledger},
    people::People,
};
use crate::{
    error::{Error, Kind, Result},
    model::unix_now,
    person::{Person, Signer},
    store::{siwe::Nonces, users::Users},
};

/// A nonce is good for this long, and a sign-in message issued longer ago is refused.
pub const NONCE_LIFETIME_SECS: i64 = 10 * 60;
/// How far ahead of our clock a message's issued-at may be (the wallet's clock).
const CLOCK_SKEW_SECS: i64 = 60;
/// What a sign-in message says the person agrees to (EIP-4361's statement).
pub const STATEMENT: &str = "Sign in to medledger with this account.";

/// Where a request came to, as a sign-in message must name it: `domain` is the HTTP Host
/// (`host[:port]`) and `origin` the scheme and host (`http://host[:port]`).
#[derive(Debug, Clone)]
pub struct Site {
    pub domain: String,
    pub origin: String,
}

/// What a wallet hands over to sign in: an EIP-4361 message and its `personal_sign` signature,
/// and the signature of the key message (`Wallet::key_message`) its encryption key comes from.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WalletProof {
    pub message: String,
    pub signature: String,
    pub key_signature: String,
}

pub use crate::person::WalletLogin;

/// A fresh nonce and what a message built on it must say, for the page or script to sign.
#[derive(Debug, Clone, Serialize)]
pub struct Challenge {
    pub nonce: String,
    pub domain: String,
    pub uri: String,
    pub chain_id: u64,
    pub statement: &'static str,
    pub issued_at: String,
    pub expiration_time: String,
    /// The whole sign-in message for the address asked about, ready to sign, and the message
    /// whose signature gives its encryption key.
    pub message: String,
    pub key_message: String,
}

/// The key message of `account` on the deployment of `registry` on `chain_id`, naming `site`.
/// Without a site (a deployment whose wallet accounts predate it) it is the first version's
/// message, byte for byte: the keys of those accounts come from signatures of it.
fn key_message(site: &str, account: Address, registry: Address, chain_id: u64) -> String {
    if site.is_empty() {
        return format!(
            "medledger: unlock my encryption key\n\nThis signature makes the key that opens the medical records of this account. It is not a transaction and costs nothing. Sign it only for the medledger deployment below.\n\nAccount: {account}\nDeployment: Registry {registry} on chain {chain_id}\nVersion: 1"
        );
    }
    format!(
        "medledger: unlock my encryption key\n\nThis signature makes the key that opens the medical records of this account. It is not a transaction and costs nothing. Sign it only on {site}.\n\nAccount: {account}\nSite: {site}\nDeployment: Registry {registry} on chain {chain_id}\nVersion: 1"
    )
}

fn rfc3339(unix: i64) -> Result<String> {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).map_err(|e| Error::internal("time", e))?;
    t.format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::internal("time", e))
}

/// A 65-byte signature in hex (`0x…`), as wallets answer `personal_sign`.
fn parse_signature(hex_sig: &str, what: &'static str) -> Result<Signature> {
    let bytes = hex::decode(hex_sig.trim().trim_start_matches("0x"))
        .map_err(|_| Error::invalid(format!("the {what} is not hex")).on(what))?;
    Signature::from_raw(&bytes).map_err(|_| {
        Error::invalid(format!(
            "the {what} is not a 65-byte Ethereum signature (r, s, v)"
        ))
        .on(what)
    })
}

/// The X25519 key of a wallet account: HKDF-SHA256 over its signature of the key message (a
/// deterministic RFC 6979 signature, so the same wallet gives the same key every time), bound
/// to the account by the info string.
fn key_from_signature(signature: &Signature, account: Address) -> Result<SecretKey> {
    let hk = Hkdf::<Sha256>::new(
        Some(b"medledger wallet encryption key v1"),
        &signature.as_bytes(),
    );
    let mut okm = zeroize::Zeroizing::new([0u8; 32]);
    hk.expand(account.as_slice(), okm.as_mut())
        .map_err(|e| Error::internal("hkdf", e))?;
    Ok(SecretKey::derive(okm.as_ref()))
}

#[derive(Clone)]
pub struct Wallet {
    db: Db,
    ledger: Ledger,
    contracts: Contracts,
    keyring: Arc<Keyring>,
    accounts: Accounts,
    people: People,
    /// The site the key message names (`App::open`: the deployment's public origin when its
    /// first wallet account was made; empty for a deployment whose wallet accounts predate it).
    key_site: String,
}

impl Wallet {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        db: Db,
        ledger: Ledger,
        contracts: Contracts,
        keyring: Arc<Keyring>,
        accounts: Accounts,
        people: People,
        key_site: String,
    ) -> Wallet {
        Wallet {
            db,
            ledger,
            contracts,
            keyring,
            accounts,
            people,
            key_site,
        }
    }
}

impl Wallet {
    /// The message whose signature gives `account`'s encryption key: fixed for this
    /// deployment (its site, its Registry and chain) and the account, so it signs the same every
    /// time, and names the one site it may be signed for.
    pub fn key_message(&self, account: Address) -> String {
        key_message(
            &self.key_site,
            account,
            self.contracts.registry,
            self.ledger.chain_id(),
        )
    }

    /// A fresh single-use nonce for `address` on `site`, with what a sign-in message on it must
    /// say: the whole message and the key message. The nonce signs in only that address.
    pub async fn siwe_challenge(&self, site: &Site, address: Address) -> Result<Challenge> {
        let nonce: String = (0..24)
            .map(|_| OsRng.sample(Alphanumeric) as char)
            .collect();
        let now = unix_now();
        Nonces(&self.db)
            .add(&nonce, address, NONCE_LIFETIME_SECS)
            .await?;
        let (uri, chain_id) = (format!("{}/", site.origin), self.ledger.chain_id());
        let (issued_at, expiration_time) = (rfc3339(now)?, rfc3339(now + NONCE_LIFETIME_SECS)?);
        let message = format!(
            "{} wants you to sign in with your Ethereum account:\n{}\n\n{}\n\nURI: {}\nVersion: 1\nChain ID: {}\nNonce: {}\nIssued At: {}\nExpiration Time: {}",
            site.domain,
            address.to_checksum(None),
            STATEMENT,
            uri,
            chain_id,
            nonce,
            issued_at,
            expiration_time
        );
        Ok(Challenge {
            nonce,
            domain: site.domain.clone(),
            uri,
            chain_id,
            statement: STATEMENT,
            issued_at,
            expiration_time,
            message,
            key_message: self.key_message(address),
        })
    }

    /// Checks a wallet's sign-in for `site`: the message (domain, URI, chain id, issued-at,
    /// expiry), its signature, and its nonce (used up now, so the message never works twice);
    /// then the key message's signature, which gives the account's encryption key.
    pub async fn verify_wallet(&self, proof: &WalletProof, site: &Site) -> Result<WalletLogin> {
        let message = siwe::Message::from_str(proof.message.trim()).map_err(|e| {
            Error::invalid(format!(
                "this is not a Sign-In with Ethereum (EIP-4361) message: {e}"
            ))
            .on("message")
        })?;
        let refused = |why: String| Error::unprocessable(why).on("message");
        if !message.domain.as_str().eq_ignore_ascii_case(&site.domain) {
            return Err(refused(format!(
                "this sign-in message is for {}, not for this site ({}): sign in on the site itself",
                message.domain, site.domain
            )));
        }
        let uri = message.uri.as_str();
        let on_site = uri
            .strip_prefix(&site.origin)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if !on_site {
            return Err(refused(format!(
                "this sign-in message's URI ({uri}) is not on this site ({})",
                site.origin
            )));
        }
        if message.chain_id != self.ledger.chain_id() {
            return Err(refused(format!(
                "this sign-in message names chain id {}, but this site's chain is {}: switch your wallet to it",
                message.chain_id,
                self.ledger.chain_id()
            )));
        }
        let now = time::OffsetDateTime::now_utc();
        let issued = message.issued_at.as_ref().unix_timestamp();
        if issued > now.unix_timestamp() + CLOCK_SKEW_SECS {
            return Err(refused(
                "this sign-in message is dated in the future: check your device's clock"
                    .to_string(),
            ));
        }
        if message
            .expiration_time
            .as_ref()
            .is_some_and(|t| t.as_ref() <= &now)
            || issued < now.unix_timestamp() - NONCE_LIFETIME_SECS
        {
            return Err(refused(
                "this sign-in message has expired: sign in again".to_string(),
            ));
        }
        if !message.valid_at(&now) {
            return Err(refused(
                "this sign-in message is not valid yet (its not-before is later)".to_string(),
            ));
        }
        let address = Address::from(message.address);
        let signature = parse_signature(&proof.signature, "signature")?;
        if signature
            .recover_address_from_msg(message.to_string().as_bytes())
            .ok()
            != Some(address)
        {
            return Err(Error::new(
                Kind::Unauthenticated,
                format!(
                    "the signature is not {address}'s: sign the message with the account it names"
                ),
            )
            .on("signature"));
        }
        if !Nonces(&self.db)
            .take(&message.nonce, address, NONCE_LIFETIME_SECS)
            .await?
        {
            return Err(Error::new(
                Kind::Unauthenticated,
                "this sign-in message's nonce was used already, or was never given by this site for this account: ask for a new one and sign again",
            )
            .on("message"));
        }
        let key_signature = parse_signature(&proof.key_signature, "key_signature")?;
        if key_signature
            .recover_address_from_msg(self.key_message(address).as_bytes())
            .ok()
            != Some(address)
        {
            return Err(Error::new(
                Kind::Unauthenticated,
                format!(
                    "the key signature is not {address}'s signature of the key message: sign the key message with the same account"
                ),
            )
            .on("key_signature"));
        }
        Ok(WalletLogin {
            address,
            secret: key_from_signature(&key_signature, address)?,
        })
    }

    /// Signs in the wallet account `login` proved (with its second factor's `code` if it has
    /// one). Refused when its key signature gives another key than the one registered: the
    /// wallet does not sign deterministically, and could not open the account's data.
    pub async fn wallet_login(&self, login: WalletLogin, code: Option<&str>) -> Result<Person> {
        let Some(row) = Users(&self.db).by_address(login.address).await? else {
            return Err(Error::new(
                Kind::Unauthenticated,
                format!(
                    "no account here has the wallet {}: patients sign up with it first; doctors and admins enrol with it through their link",
                    login.address
                ),
            ));
        };
        if row.mode != "wallet" {
            return Err(Error::new(
                Kind::Unauthenticated,
                "this account's key is kept by the server: log in with your password (you can move it to your own wallet from the account page)",
            ));
        }
        if row.status == "pending" {
            return Err(Error::new(
                Kind::Unavailable,
                "your account is not confirmed on the ledger yet; try again in a moment",
            ));
        }
        if row.account.enc_public != login.secret.public_key() {
            return Err(different_key());
        }
        let person = Person {
            id: row.account.id,
            username: row.account.username,
            role: row.account.role,
            address: login.address,
            signer: Signer::Wallet(login.address),
            secret: login.secret,
            must_set_up_second_factor: false,
        };
        self.accounts.second_factor_at_login(person, code).await
    }

    /// The person behind a wallet that just made its account (pending until its registration is
    /// mined): enough of a session to complete that registration.
    pub async fn wallet_newcomer(&self, login: WalletLogin) -> Result<Person> {
        let account = self
            .people
            .account_by_address(login.address)
            .await?
            .ok_or_else(|| Error::internal("wallet sign-up", "no account"))?;
        Ok(Person {
            id: account.id,
            username: account.username,
            role: account.role,
            address: login.address,
            signer: Signer::Wallet(login.address),
            secret: login.secret,
            must_set_up_second_factor: false,
        })
    }

    /// Moves `person`'s custodial account to their own wallet, which must hold the same
    /// account (they imported the keystore they downloaded): every key wrapped for them is
    /// wrapped again for the wallet's encryption key, and the keystore and password hash are
    /// deleted, in one transaction. Their sessions end; the wallet's one starts.
    pub async fn move_to_wallet(&self, person: &Person, login: WalletLogin) -> Result<Person> {
        if matches!(person.signer, Signer::Wallet(_)) {
            return Err(Error::conflict("this account is in your wallet already"));
        }
        if person.role == crate::model::Role::Researcher {
            return Err(Error::unprocessable(
                "a researcher's exports are recorded on chain by the server as they finish: a researcher's account stays with the server",
            ));
        }
        if login.address != person.address {
            return Err(Error::forbidden(format!(
                "the wallet signed with {}, not with your account {}: import the keystore you downloaded into your wallet and sign with that account",
                login.address, person.address
            )));
        }
        let public = login.secret.public_key();
        let mut keys = 0;
        let moved = Users(&self.db)
            .move_to_wallet(
                person.id,
                person.address,
                &public.to_hex(),
                |object, wrapped| {
                    keys += 1;
                    self.keyring
                        .as_ref()
                        .rewrap_own(&person.secret, object, wrapped, &public)
                },
            )
            .await?;
        if !moved {
            return Err(Error::conflict("this account is in your wallet already"));
        }
        tracing::info!(
            account = %person.address,
            keys,
            "moved a custodial account to its own wallet"
        );
        Ok(Person {
            id: person.id,
            username: person.username.clone(),
            role: person.role,
            address: person.address,
            signer: Signer::Wallet(person.address),
            secret: login.secret,
            must_set_up_second_factor: person.must_set_up_second_factor,
        })
    }
}

/// The refusal of a wallet whose key signature differs from the one the account was made with.
fn different_key() -> Error {
    Error::forbidden(
        "your wallet gave a different encryption key than when this account was made: it does not sign deterministically (RFC 6979), so it cannot open this account's records. Use a wallet that does, such as MetaMask or a hardware wallet",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::{SignerSync, local::PrivateKeySigner};

    #[test]
    fn a_wallet_key_is_the_same_for_the_same_signature_and_bound_to_the_account() {
        let wallet = PrivateKeySigner::random();
        let a = wallet.sign_message_sync(b"key message").unwrap();
        let b = wallet.sign_message_sync(b"key message").unwrap();
        assert_eq!(a, b, "RFC 6979 signatures are deterministic");
        let key = key_from_signature(&a, wallet.address()).unwrap();
        assert_eq!(
            key.public_key(),
            key_from_signature(&b, wallet.address())
                .unwrap()
                .public_key()
        );
        assert_ne!(
            key.public_key(),
            key_from_signature(&a, Address::repeat_byte(1))
                .unwrap()
                .public_key()
        );
        let other = wallet.sign_message_sync(b"another message").unwrap();
        assert_ne!(
            key.public_key(),
            key_from_signature(&other, wallet.address())
                .unwrap()
                .public_key()
        );
    }

    #[test]
    fn the_key_message_names_its_site_and_an_older_deployments_stays_as_it_was() {
        let (account, registry) = (Address::repeat_byte(0xa1), Address::repeat_byte(0x0e));
        // The first version's message, as wallet accounts made before the site was named
        // signed it: their keys depend on every byte.
        assert_eq!(
            key_message("", account, registry, 1337),
            format!(
                "medledger: unlock my encryption key\n\nThis signature makes the key that opens the medical records of this account. It is not a transaction and costs nothing. Sign it only for the medledger deployment below.\n\nAccount: {account}\nDeployment: Registry {registry} on chain 1337\nVersion: 1"
            )
        );
        let named = key_message("https://records.example", account, registry, 1337);
        assert!(named.contains("Sign it only on https://records.example."));
        assert!(named.contains("\nSite: https://records.example\n"));
        assert_ne!(
            named,
            key_message("https://records.example.phish", account, registry, 1337)
        );
    }

    #[test]
    fn signatures_parse_with_either_v() {
        let wallet = PrivateKeySigner::random();
        let sig = wallet.sign_message_sync(b"m").unwrap();
        let hex27 = format!("0x{}", hex::encode(sig.as_bytes()));
        assert_eq!(parse_signature(&hex27, "signature").unwrap(), sig);
        let mut raw = sig.as_bytes();
        raw[64] -= 27;
        assert_eq!(
            parse_signature(&hex::encode(raw), "signature").unwrap(),
            sig
        );
        assert!(parse_signature("0x1234", "signature").is_err());
        assert!(parse_signature("zz", "signature").is_err());
    }
}
