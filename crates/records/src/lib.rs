//! The healthcare domain: accounts and keys, the public directory, reports and prescriptions,
//! consent, emergencies and the audit trail. It talks to any Ethereum node through `ledger`, keeps
//! the private half in the app database (SQLite) and the blob store, and sees plaintext only
//! through `medledger_vault`.

pub(crate) mod access;
pub mod accounts;
pub mod app;
pub mod audit;
pub mod contracts;
pub mod db;
pub mod demo;
pub mod directory;
pub mod disclosure;
pub mod emergency;
pub mod enrolment;
pub mod error;
pub mod explorer;
mod faucet;
mod follows;
pub mod index;
pub mod journal;
pub mod keyring;
pub mod ledger;
pub mod limits;
pub mod mfa;
pub mod model;
pub mod people;
pub mod person;
pub mod reports;
pub mod research;
pub mod security;
pub mod sessions;
pub mod sharing;
pub(crate) mod store;
#[cfg(test)]
mod testing;
pub mod wallet;
mod wrapping;

pub use accounts::{Account, NewKey, Person, Signer};
pub use app::{App, Bootstrap, Health, Options};
pub use error::{Error, Kind, Result};
pub use keyring::Keyring;
pub use ledger::{Contracts, Ledger, TxInfo};
/// The app database's tables as data, for `medledger backup` and `restore`.
pub use store::backup;

/// The Ethereum value types the layers above name (addresses, hashes, amounts), so they need not
/// depend on the Ethereum client themselves.
pub mod primitives {
    pub use alloy::primitives::{Address, B256, U256, keccak256};
}
