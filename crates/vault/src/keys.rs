//! People's X25519 key pairs and HPKE (RFC 9180) wrapping of record keys to them.
//!
//! Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, base mode. A wrapped DEK is
//! `encapsulated key (32 bytes) || HPKE ciphertext of the DEK (32 + 16 bytes)`.

use std::{fmt, str::FromStr};

use hpke::{
    Deserializable, Kem as _, OpModeR, OpModeS, Serializable, aead::ChaCha20Poly1305,
    kdf::HkdfSha256, kem::X25519HkdfSha256,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::{Dek, Error, Result};

type Kem = X25519HkdfSha256;

/// Keeps keys derived for medledger apart from anything else derived from the same secret.
const DERIVE_DOMAIN: &[u8] = b"medledger/x25519/v1";
const KEY_LEN: usize = 32;
const WRAPPED_LEN: usize = KEY_LEN + 32 + 16;

/// A person's X25519 private key. Wiped on drop (hpke's key type does it); `Debug` never shows it.
pub struct SecretKey(<Kem as hpke::Kem>::PrivateKey);

impl SecretKey {
    /// A new random key.
    ///
    /// # Panics
    /// Only if the operating system cannot supply randomness.
    pub fn generate() -> SecretKey {
        SecretKey(Kem::gen_keypair().0)
    }

    /// Derives a key deterministically from `ikm` (e.g. the 32 bytes of the person's Ethereum
    /// private key) with RFC 9180 DeriveKeyPair, so the same account always yields the same
    /// X25519 key and nothing extra has to be stored. `ikm` must be secret and high-entropy.
    pub fn derive(ikm: &[u8]) -> SecretKey {
        let mut input = Zeroizing::new(Vec::with_capacity(DERIVE_DOMAIN.len() + ikm.len()));
        input.extend_from_slice(DERIVE_DOMAIN);
        input.extend_from_slice(ikm);
        SecretKey(Kem::derive_keypair(&input).0)
    }

    /// The raw (clamped) scalar, for storing inside the person's keystore.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes().into()
    }

    /// A key from 32 raw bytes. X25519 clamps them, so `to_bytes` may differ from the input in
    /// three low bits and the top two; both denote the same key.
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey> {
        <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes)
            .map(SecretKey)
            .map_err(|_| Error::Format(format!("a secret key is {KEY_LEN} bytes")))
    }

    /// The matching public key, to publish so others can wrap keys for this person.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(Kem::sk_to_pk(&self.0).to_bytes().into())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// A person's X25519 public key. Shown and serialised as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// A key from its 32 raw bytes; refuses the few low-order points that no one can wrap to.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<PublicKey> {
        // Clamping makes every scalar a multiple of the cofactor, so the product is all zeros
        // exactly for the low-order points (on the curve or its twist), the same test HPKE's DH
        // applies. Refusing them here, when a key is built, is what lets `wrap` be infallible.
        if x25519_dalek::x25519([1; 32], bytes) == [0; 32] {
            return Err(Error::Format(
                "the public key is a low-order X25519 point".into(),
            ));
        }
        Ok(PublicKey(bytes))
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits, no `0x`.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits, with or without a `0x` prefix.
    pub fn parse(s: &str) -> Result<PublicKey> {
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        let mut bytes = [0u8; KEY_LEN];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| {
            Error::Format(format!(
                "a public key is {} hex digits, optionally prefixed with 0x",
                KEY_LEN * 2
            ))
        })?;
        PublicKey::from_bytes(bytes)
    }
}

impl FromStr for PublicKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<PublicKey> {
        PublicKey::parse(s)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
        let s = String::deserialize(deserializer)?;
        PublicKey::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Wraps `dek` for `recipient`. `info` (the record id) is bound into the key schedule, so a
/// wrapped key copied onto another record does not unwrap.
///
/// # Panics
/// Only if the operating system cannot supply randomness.
pub fn wrap(recipient: &PublicKey, dek: &Dek, info: &[u8]) -> Vec<u8> {
    // Neither step can fail: the key is 32 bytes, and HPKE's only other refusal, a low-order
    // recipient, is ruled out whenever a `PublicKey` is built.
    const VALID: &str = "PublicKey is checked against low-order points when built";
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&recipient.0).expect(VALID);
    let (encapped, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeS::Base,
        &pk,
        info,
        dek.as_bytes(),
        b"",
    )
    .expect(VALID);
    let mut out = Vec::with_capacity(WRAPPED_LEN);
    out.extend_from_slice(&encapped.to_bytes());
    out.extend_from_slice(&ciphertext);
    out
}

/// Recovers a DEK wrapped for `secret` with the same `info`.
///
/// Returns [`Error::Format`] for a wrong length and [`Error::Integrity`] if the wrap was for
/// someone else, for another record, or altered.
pub fn unwrap(secret: &SecretKey, wrapped: &[u8], info: &[u8]) -> Result<Dek> {
    if wrapped.len() != WRAPPED_LEN {
        return Err(Error::Format(format!(
            "a wrapped key is {WRAPPED_LEN} bytes, not {}",
            wrapped.len()
        )));
    }
    let (encapped, ciphertext) = wrapped.split_at(KEY_LEN);
    let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(encapped)
        .map_err(|_| Error::Format("bad encapsulated key".into()))?;
    let plain = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeR::Base,
        &secret.0,
        &encapped,
        info,
        ciphertext,
        b"",
    )
    .map(Zeroizing::new)
    .map_err(|_| Error::Integrity)?;
    let bytes: [u8; 32] = plain
        .as_slice()
        .try_into()
        .map_err(|_| Error::Format("the wrapped key is not 32 bytes".into()))?;
    Ok(Dek::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_round_trip() {
        let alice = SecretKey::generate();
        let dek = Dek::generate();
        let wrapped = wrap(&alice.public_key(), &dek, b"record-1");
        assert_eq!(wrapped.len(), WRAPPED_LEN);
        let back = unwrap(&alice, &wrapped, b"record-1").unwrap();
        assert_eq!(back.as_bytes(), dek.as_bytes());
    }

    #[test]
    fn wrong_recipient_info_or_bytes_fail() {
        let alice = SecretKey::generate();
        let bob = SecretKey::generate();
        let dek = Dek::generate();
        let wrapped = wrap(&alice.public_key(), &dek, b"record-1");
        assert!(matches!(
            unwrap(&bob, &wrapped, b"record-1"),
            Err(Error::Integrity)
        ));
        assert!(matches!(
            unwrap(&alice, &wrapped, b"record-2"),
            Err(Error::Integrity)
        ));
        for pos in [0, 31, 32, WRAPPED_LEN - 1] {
            let mut bad = wrapped.clone();
            bad[pos] ^= 1;
            assert!(unwrap(&alice, &bad, b"record-1").is_err(), "byte {pos}");
        }
        for len in [0, WRAPPED_LEN - 1, WRAPPED_LEN + 1] {
            let mut bad = wrapped.clone();
            bad.resize(len, 0);
            assert!(matches!(
                unwrap(&alice, &bad, b"record-1"),
                Err(Error::Format(_))
            ));
        }
    }

    #[test]
    fn low_order_public_keys_are_refused() {
        // u = 0, u = 1 and u = p - 1 all have small order.
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut minus_one = [0xff; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        for pk in [[0u8; 32], one, minus_one] {
            assert!(matches!(PublicKey::from_bytes(pk), Err(Error::Format(_))));
            let json = format!("\"{}\"", hex::encode(pk));
            assert!(serde_json::from_str::<PublicKey>(&json).is_err());
        }
        let pk = SecretKey::generate().public_key();
        assert_eq!(PublicKey::from_bytes(*pk.as_bytes()).unwrap(), pk);
    }

    #[test]
    fn derive_is_deterministic_and_separated() {
        let a = SecretKey::derive(&[1; 32]);
        assert_eq!(a.to_bytes(), SecretKey::derive(&[1; 32]).to_bytes());
        assert_eq!(a.public_key(), SecretKey::derive(&[1; 32]).public_key());
        assert_ne!(a.public_key(), SecretKey::derive(&[2; 32]).public_key());
        // The domain prefix means we never reproduce plain DeriveKeyPair(ikm).
        assert_ne!(
            a.public_key().0,
            Kem::sk_to_pk(&Kem::derive_keypair(&[1; 32]).0).to_bytes()[..]
        );
    }

    #[test]
    fn secret_key_bytes_round_trip() {
        let a = SecretKey::generate();
        let b = SecretKey::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert!(matches!(
            SecretKey::from_bytes(&[0; 31]),
            Err(Error::Format(_))
        ));
        assert_eq!(format!("{a:?}"), "SecretKey(..)");
    }

    #[test]
    fn public_key_text_forms() {
        let pk = SecretKey::generate().public_key();
        let hex = pk.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(PublicKey::parse(&hex).unwrap(), pk);
        assert_eq!(format!("0x{hex}").parse::<PublicKey>().unwrap(), pk);
        assert_eq!(PublicKey::parse(&hex.to_uppercase()).unwrap(), pk);
        for bad in ["", "0x", "zz", &hex[..62], &format!("{hex}00")] {
            assert!(
                matches!(PublicKey::parse(bad), Err(Error::Format(_))),
                "{bad:?}"
            );
        }
        let json = serde_json::to_string(&pk).unwrap();
        assert_eq!(json, format!("\"{hex}\""));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), pk);
        assert!(serde_json::from_str::<PublicKey>("\"nope\"").is_err());
    }
}
