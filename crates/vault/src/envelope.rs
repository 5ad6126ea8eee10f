//! Chunked authenticated encryption of record contents under a per-record data-encryption key.
//!
//! Format (`MLV1`), all of it fixed by the golden test in `tests/golden.rs`:
//!
//! ```text
//! b"MLV1" || nonce prefix (7 random bytes) || chunk_0 || ... || chunk_n
//! ```
//!
//! Each chunk is ChaCha20-Poly1305 over up to 64 KiB of plaintext plus its 16-byte tag, under the
//! STREAM construction (BE32): the nonce is `prefix || 32-bit big-endian chunk counter || last
//! flag`, so a chunk only opens at its own position and only the final chunk opens as "last".
//! That is what makes reordering, dropping and truncation at a chunk boundary detectable. Every
//! chunk but the last holds exactly 64 KiB; the last holds 0..=64 KiB (an empty plaintext is one
//! empty last chunk), so a reader can split the body without any length fields.

use aead_stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::ChaCha20Poly1305;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"MLV1";
/// ChaCha20-Poly1305's 12-byte nonce minus STREAM-BE32's 4-byte counter and 1-byte last flag.
const PREFIX_LEN: usize = 7;
const HEADER_LEN: usize = MAGIC.len() + PREFIX_LEN;
/// Big enough to amortise per-chunk overhead, small enough to stream a file through little memory.
const CHUNK_LEN: usize = 64 * 1024;
const TAG_LEN: usize = 16;
const SEALED_CHUNK_LEN: usize = CHUNK_LEN + TAG_LEN;

/// A 32-byte data-encryption key: one fresh key per record, wrapped for each reader.
///
/// Wiped from memory on drop; `Debug` never shows it.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Dek([u8; 32]);

impl Dek {
    /// A new key from the OS CSPRNG.
    ///
    /// # Panics
    /// Only if the operating system cannot supply randomness.
    pub fn generate() -> Dek {
        Dek(crate::random())
    }

    /// A key from its raw bytes (e.g. just unwrapped, or a test fixture).
    pub fn from_bytes(bytes: [u8; 32]) -> Dek {
        Dek(bytes)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Dek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dek(..)")
    }
}

/// Encrypts `plaintext` under `dek`, binding `aad` (the record id) to every chunk, so a sealed
/// body moved under another record id no longer opens.
///
/// The nonce prefix is random, so sealing the same input twice gives different outputs; with a
/// fresh DEK per record and 56 random bits, a repeated prefix under one key is negligible.
///
/// # Panics
/// Only if the operating system cannot supply randomness.
pub fn seal(dek: &Dek, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let prefix: [u8; PREFIX_LEN] = crate::random();
    let chunks = plaintext.len().div_ceil(CHUNK_LEN).max(1);
    // Sized exactly so the output never reallocates.
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + chunks * TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&prefix);

    let mut stream = EncryptorBE32::<ChaCha20Poly1305>::new(dek.as_bytes().into(), &prefix.into());
    // The scratch buffer briefly holds a plaintext chunk, hence Zeroizing.
    let mut buf = Zeroizing::new(Vec::with_capacity(SEALED_CHUNK_LEN));
    let (full, last) = plaintext.split_at((chunks - 1) * CHUNK_LEN);
    // Encryption can only fail past 2^32 chunks (256 TiB), which cannot be held in memory.
    const TOO_LONG: &str = "a STREAM of more than 2^32 chunks";
    for chunk in full.chunks(CHUNK_LEN) {
        buf.clear();
        buf.extend_from_slice(chunk);
        stream
            .encrypt_next_in_place(aad, &mut *buf)
            .expect(TOO_LONG);
        out.extend_from_slice(&buf);
    }
    buf.clear();
    buf.extend_from_slice(last);
    stream
        .encrypt_last_in_place(aad, &mut *buf)
        .expect(TOO_LONG);
    out.extend_from_slice(&buf);
    out
}

/// Decrypts what [`seal`] produced with the same `dek` and `aad`.
///
/// Returns [`Error::Format`] if `sealed` is not `MLV1` data or has an impossible length, and
/// [`Error::Integrity`] for anything a tag catches: wrong key or record id, any altered byte,
/// chunks dropped, reordered or truncated, or bytes appended.
pub fn open(dek: &Dek, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    let (header, body) = sealed
        .split_at_checked(HEADER_LEN)
        .ok_or_else(|| Error::Format("sealed data is shorter than its header".into()))?;
    let (magic, prefix) = header.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(Error::Format("not sealed data: unknown header".into()));
    }
    // Whatever follows the full chunks is the last chunk; it can itself be full-size, so it starts
    // at the last multiple of the chunk size strictly below the body length.
    let last_start = body.len().saturating_sub(1) / SEALED_CHUNK_LEN * SEALED_CHUNK_LEN;
    let (full, last) = body.split_at(last_start);
    if last.len() < TAG_LEN {
        return Err(Error::Format(
            "sealed data ends inside a chunk's tag".into(),
        ));
    }
    let chunks = last_start / SEALED_CHUNK_LEN + 1;

    let prefix: [u8; PREFIX_LEN] = prefix.try_into().expect("split at a fixed offset");
    let mut stream = DecryptorBE32::<ChaCha20Poly1305>::new(dek.as_bytes().into(), &prefix.into());
    // Both buffers hold plaintext and are wiped if a later chunk fails; exact capacity means the
    // output never reallocates and leaves no unwiped copy behind.
    let mut out = Zeroizing::new(Vec::with_capacity(body.len() - chunks * TAG_LEN));
    let mut buf = Zeroizing::new(Vec::with_capacity(SEALED_CHUNK_LEN));
    for chunk in full.chunks(SEALED_CHUNK_LEN) {
        buf.clear();
        buf.extend_from_slice(chunk);
        stream
            .decrypt_next_in_place(aad, &mut *buf)
            .map_err(|_| Error::Integrity)?;
        out.extend_from_slice(&buf);
    }
    buf.clear();
    buf.extend_from_slice(last);
    stream
        .decrypt_last_in_place(aad, &mut *buf)
        .map_err(|_| Error::Integrity)?;
    out.extend_from_slice(&buf);
    Ok(std::mem::take(&mut *out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AAD: &[u8] = b"record-42";
    const SIZES: [usize; 6] = [0, 1, 65535, 65536, 65537, 200_000];

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn sealed_len(len: usize) -> usize {
        HEADER_LEN + len + len.div_ceil(CHUNK_LEN).max(1) * TAG_LEN
    }

    #[test]
    fn round_trips_at_chunk_edges() {
        let dek = Dek::generate();
        for len in SIZES {
            let plaintext = sample(len);
            let sealed = seal(&dek, AAD, &plaintext);
            assert_eq!(sealed.len(), sealed_len(len), "len {len}");
            assert_eq!(open(&dek, AAD, &sealed).unwrap(), plaintext, "len {len}");
        }
    }

    #[test]
    fn sealing_twice_differs() {
        let dek = Dek::generate();
        assert_ne!(seal(&dek, AAD, b"same"), seal(&dek, AAD, b"same"));
    }

    #[test]
    fn wrong_key_or_aad_is_an_integrity_error() {
        let dek = Dek::generate();
        for len in [0, 65537] {
            let sealed = seal(&dek, AAD, &sample(len));
            let other = Dek::generate();
            assert!(matches!(open(&other, AAD, &sealed), Err(Error::Integrity)));
            assert!(matches!(
                open(&dek, b"record-43", &sealed),
                Err(Error::Integrity)
            ));
        }
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let dek = Dek::generate();
        let sealed = seal(&dek, AAD, &sample(200_000));
        let last_chunk = HEADER_LEN + 3 * SEALED_CHUNK_LEN;
        let positions = [
            0,                                    // magic
            3,                                    // magic
            MAGIC.len(),                          // nonce prefix
            HEADER_LEN - 1,                       // nonce prefix
            HEADER_LEN,                           // first chunk, first byte
            HEADER_LEN + CHUNK_LEN - 1,           // first chunk, last ciphertext byte
            HEADER_LEN + CHUNK_LEN,               // first chunk's tag
            HEADER_LEN + SEALED_CHUNK_LEN - 1,    // first chunk's tag, last byte
            HEADER_LEN + SEALED_CHUNK_LEN + 1000, // a middle chunk
            last_chunk,                           // last chunk, first byte
            sealed.len() - TAG_LEN - 1,           // last chunk, last ciphertext byte
            sealed.len() - 1,                     // last chunk's tag
        ];
        for pos in positions {
            let mut bad = sealed.clone();
            bad[pos] ^= 0x01;
            let result = open(&dek, AAD, &bad);
            if pos < MAGIC.len() {
                assert!(matches!(result, Err(Error::Format(_))), "byte {pos}");
            } else {
                assert!(matches!(result, Err(Error::Integrity)), "byte {pos}");
            }
        }
    }

    #[test]
    fn truncation_dropping_and_reordering_are_caught() {
        let dek = Dek::generate();
        let sealed = seal(&dek, AAD, &sample(200_000));
        let boundary = |n: usize| HEADER_LEN + n * SEALED_CHUNK_LEN;

        // Cut at a chunk boundary: the new final chunk was not sealed as "last".
        for n in 1..=3 {
            let result = open(&dek, AAD, &sealed[..boundary(n)]);
            assert!(
                matches!(result, Err(Error::Integrity)),
                "cut after {n} chunks"
            );
        }
        // Dropping the last chunk alone is the n = 3 cut above; dropping a middle one shifts
        // every later chunk to a position it was not sealed at.
        let mut dropped = sealed[..boundary(1)].to_vec();
        dropped.extend_from_slice(&sealed[boundary(2)..]);
        assert!(matches!(open(&dek, AAD, &dropped), Err(Error::Integrity)));

        let mut swapped = sealed[..boundary(0)].to_vec();
        swapped.extend_from_slice(&sealed[boundary(1)..boundary(2)]);
        swapped.extend_from_slice(&sealed[boundary(0)..boundary(1)]);
        swapped.extend_from_slice(&sealed[boundary(2)..]);
        assert!(matches!(open(&dek, AAD, &swapped), Err(Error::Integrity)));

        // Cuts that leave no whole tag are a format error, not a crash.
        for len in [0, 3, HEADER_LEN, HEADER_LEN + TAG_LEN - 1, boundary(1) + 5] {
            assert!(
                matches!(open(&dek, AAD, &sealed[..len]), Err(Error::Format(_))),
                "{len}"
            );
        }
    }

    #[test]
    fn appended_bytes_are_caught() {
        let dek = Dek::generate();
        for len in SIZES {
            let sealed = seal(&dek, AAD, &sample(len));
            for extra in [1, 16, 100, SEALED_CHUNK_LEN] {
                let mut long = sealed.clone();
                long.extend(std::iter::repeat_n(0xAA, extra));
                assert!(open(&dek, AAD, &long).is_err(), "len {len} + {extra}");
            }
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let dek = Dek::from_bytes([7; 32]);
        assert_eq!(format!("{dek:?}"), "Dek(..)");
    }
}
