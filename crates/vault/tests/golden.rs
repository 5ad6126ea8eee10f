//! Backward compatibility: a committed sealed body and wrapped key must still open after any change.
//!
//! If this fails, the on-disk format or the key derivation changed and every stored record would
//! become unreadable. Do not regenerate the fixture to make it pass; add a new format version.
//! (`VAULT_BLESS=1 cargo test -p medledger-vault --test golden` rewrites it, for a new fixture only.)

use std::path::PathBuf;

use medledger_vault::{Dek, PublicKey, SecretKey, open, seal, unwrap, wrap};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Golden {
    /// What the caller passes to `SecretKey::derive` (an Ethereum private key's bytes).
    ikm: String,
    /// The derived public key, which pins the derivation (domain prefix, RFC 9180 DeriveKeyPair).
    public_key: PublicKey,
    record_id: String,
    dek: String,
    /// `plaintext()` sealed under `dek` with `record_id` as associated data.
    sealed: String,
    /// `dek` wrapped to `public_key` with `record_id` as HPKE info.
    wrapped: String,
}

const IKM: [u8; 32] = [0x42; 32];
const DEK: [u8; 32] = [0x17; 32];
const RECORD_ID: &str = "rec-0001";

/// Two chunks (one full, one partial), so the chunk size is pinned too.
fn plaintext() -> Vec<u8> {
    b"Blood pressure 120/80. Follow up in 6 months.\n"
        .iter()
        .copied()
        .cycle()
        .take(64 * 1024 + 100)
        .collect()
}

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden.json")
}

#[test]
fn committed_fixture_still_opens() {
    if std::env::var_os("VAULT_BLESS").is_some() {
        bless();
    }
    let text = std::fs::read_to_string(fixture_path()).expect("fixture is committed");
    let golden: Golden = serde_json::from_str(&text).unwrap();
    let ikm = hex::decode(&golden.ikm).unwrap();

    let secret = SecretKey::derive(&ikm);
    assert_eq!(
        secret.public_key(),
        golden.public_key,
        "key derivation changed"
    );

    let wrapped = hex::decode(&golden.wrapped).unwrap();
    let dek = unwrap(&secret, &wrapped, golden.record_id.as_bytes()).expect("wrapped key opens");
    assert_eq!(hex::encode(dek.as_bytes()), golden.dek);

    let sealed = hex::decode(&golden.sealed).unwrap();
    let opened = open(&dek, golden.record_id.as_bytes(), &sealed).expect("sealed body opens");
    assert!(
        opened == plaintext(),
        "sealed body decrypted to different bytes"
    );
}

fn bless() {
    let secret = SecretKey::derive(&IKM);
    let dek = Dek::from_bytes(DEK);
    let golden = Golden {
        ikm: hex::encode(IKM),
        public_key: secret.public_key(),
        record_id: RECORD_ID.into(),
        dek: hex::encode(DEK),
        sealed: hex::encode(seal(&dek, RECORD_ID.as_bytes(), &plaintext())),
        wrapped: hex::encode(wrap(&secret.public_key(), &dek, RECORD_ID.as_bytes())),
    };
    let json = serde_json::to_string_pretty(&golden).unwrap();
    std::fs::write(fixture_path(), json + "\n").unwrap();
}
