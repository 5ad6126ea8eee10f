//! A signed-in person: who they are, and the keys that act for them — the one that signs their
//! transactions (held by the server for a custodial account, in their wallet otherwise) and the
//! one that opens what was wrapped for them. Held in memory only, for one session.

use std::fmt;

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use medledger_vault::SecretKey;

use crate::model::Role;

/// Who signs a person's transactions.
#[derive(Clone)]
pub enum Signer {
    /// The server, with the key unlocked from the keystore by their password.
    Custodial(PrivateKeySigner),
    /// Their own wallet: the server prepares each call, the wallet signs and sends it, and the
    /// write completes with its hash (`App::complete_write`).
    Wallet(Address),
}

impl Signer {
    pub fn address(&self) -> Address {
        match self {
            Signer::Custodial(key) => key.address(),
            Signer::Wallet(address) => *address,
        }
    }

    /// `custodial` or `wallet`, as stored and shown.
    pub fn mode(&self) -> &'static str {
        match self {
            Signer::Custodial(_) => "custodial",
            Signer::Wallet(_) => "wallet",
        }
    }
}

/// A logged-in person: their account and the keys that open what was wrapped for them (and, for
/// a custodial account, sign their transactions), unlocked from the keystore by their password
/// or derived from their wallet's signature. Held in memory only.
pub struct Person {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub address: Address,
    pub signer: Signer,
    pub secret: SecretKey,
    /// The role needs a second factor and this account has none yet: until it is set up, the
    /// person may do nothing else.
    pub must_set_up_second_factor: bool,
}

impl fmt::Debug for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Person({}, {:?}, {})",
            self.username, self.role, self.address
        )
    }
}

/// The X25519 key a person's data keys are wrapped to, derived from their Ethereum key so one
/// keystore holds everything.
pub fn encryption_key(signer: &PrivateKeySigner) -> SecretKey {
    SecretKey::derive(signer.to_bytes().as_slice())
}

/// A wallet that proved its account, and the encryption key its signature gives. Made only by
/// `Wallet::verify_wallet` (`wallet.rs`).
pub struct WalletLogin {
    pub(crate) address: Address,
    pub(crate) secret: SecretKey,
}
