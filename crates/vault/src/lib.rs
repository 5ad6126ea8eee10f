//! Envelope encryption of report bodies and the blob store: the only crate that sees plaintext at rest.
//!
//! A record's body is sealed under a fresh random [`Dek`] ([`envelope`]); the DEK is wrapped with
//! HPKE to the X25519 key of every person allowed to read it ([`keys`]); the sealed bytes live in a
//! [`BlobStore`] ([`blobs`]) under the record id. Nothing here logs, and no error or `Debug` output
//! carries plaintext or key material.

pub mod blobs;
pub mod envelope;
pub mod keys;

pub use blobs::{BlobLocation, BlobStore, S3Keys};
pub use envelope::{Dek, open, seal};
pub use keys::{PublicKey, SecretKey, unwrap, wrap};

/// Everything that can go wrong in the vault. Messages never include plaintext or keys.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// An AEAD tag did not verify. Deliberately one variant for every cause (wrong key, wrong
    /// record id, tampering, truncation) because telling them apart would help an attacker.
    #[error("the data does not match its authentication tag: it was altered or the key is wrong")]
    Integrity,
    /// Input that is structurally wrong before any cryptography runs: bad header, bad length,
    /// bad hex, an invalid key or blob name.
    #[error("malformed input: {0}")]
    Format(String),
    /// The blob store's backend failed (I/O, permissions, ...).
    #[error("blob store: {0}")]
    Store(String),
}

/// The vault's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `N` bytes from the operating system's CSPRNG.
///
/// Panics only if the OS cannot provide randomness at all; there is no safe way to continue
/// encrypting without it, and it is not something bad input can cause.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}
