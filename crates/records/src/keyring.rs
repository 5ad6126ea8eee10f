//! The keyring: the one holder of the deployment's secrets — the emergency escrow key and the
//! research (honest broker) key — and the only code in `records` that unwraps a data key or
//! opens sealed bytes. A key is used only in exchange for a proof from `access.rs`: `Allowed`
//! (the chain lets this reader see this object now), `Participating` (the patient's opt-in to a
//! study is live), or `Own` (the object is the person's own, such as their second factor). What it
//! opens of a patient's data comes out `Unlogged` (`disclosure.rs`): nobody but the patient reads
//! it before it is logged. The tidy test fails if any other file names the secrets or unwraps.

use alloy::primitives::Address;
use hmac::{Hmac, KeyInit, Mac};
use medledger_vault::{Dek, PublicKey, SecretKey};
use sha2::Sha256;

use crate::{
    access::{Allowed, Own, Participating},
    disclosure::Unlogged,
    error::Result,
    person::Person,
    store::{
        records::RecordRow,
        wraps::{ObjectId, Reader, Wraps},
    },
};

/// The deployment's secrets. Built by the binary from the key files it is given (kept outside
/// the data directory), and held only here.
pub struct Keyring {
    escrow: SecretKey,
    research: SecretKey,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(..)")
    }
}

/// An object's data key, unlocked for one use: opening its sealed parts as `Unlogged` data of
/// its patient, or wrapping it for a reader the chain allows. The key itself never leaves.
pub(crate) struct Unlocked {
    object: ObjectId,
    /// Whose data it opens: a record of this patient, or parts of their profile.
    opens: Opens,
    dek: Dek,
}

#[derive(Clone, Copy)]
enum Opens {
    Record(Address),
    Profile(Address, u8),
    /// The person's own object (not a patient's data as far as disclosure goes).
    Own,
}

impl Keyring {
    pub fn new(escrow: SecretKey, research: SecretKey) -> Keyring {
        Keyring { escrow, research }
    }

    /// The escrow's public key: what a new object's key is wrapped for, so a bounded emergency
    /// can open it.
    pub fn escrow_public(&self) -> PublicKey {
        self.escrow.public_key()
    }

    /// The research key's public key (a participant's bundles are wrapped for it).
    pub fn research_public(&self) -> PublicKey {
        self.research.public_key()
    }

    /// The key of a study's pseudonyms: HMAC-SHA256 under the research key of the study id, so
    /// it is stable within the study and unlinkable across studies.
    pub(crate) fn pseudonym_key(&self, study: u64) -> [u8; 32] {
        hmac_sha256(
            &self.research.to_bytes(),
            format!("medledger study pseudonyms:{study}").as_bytes(),
        )
    }

    /// The key of `allowed`'s object for its reader: their own wrapped key or, where the proof
    /// lets the escrow stand in (a doctor the chain allows without a wrap of their own: a grant
    /// to their hospital from before they joined, or an emergency whose reason the server holds),
    /// the escrow's.
    pub(crate) async fn unlock(
        &self,
        wraps: Wraps<'_>,
        reader: &Person,
        allowed: &Allowed,
    ) -> Result<Option<Unlocked>> {
        // A proof is for one reader: another's secret opens nothing with it.
        if reader.address != allowed.reader() {
            return Ok(None);
        }
        let object = allowed.object();
        let opens = match object {
            ObjectId::Record(_) => Opens::Record(allowed.patient()),
            ObjectId::Profile(_) => Opens::Profile(allowed.patient(), allowed.fields()),
            ObjectId::Contact(_) => Opens::Profile(allowed.patient(), allowed.fields()),
            _ => Opens::Own,
        };
        let own = unwrap(
            wraps,
            &object,
            Reader::Account(reader.address),
            &reader.secret,
        )
        .await?;
        let dek = match own {
            Some(dek) => Some(dek),
            None if allowed.escrow_may_stand_in() => {
                unwrap(wraps, &object, Reader::Escrow, &self.escrow).await?
            }
            None => None,
        };
        Ok(dek.map(|dek| Unlocked { object, opens, dek }))
    }

    /// The key of one of `own`'s person's own objects (their second factor's secret, an
    /// emergency's reason they wrote or are the patient of), with their own wrapped key only.
    pub(crate) async fn unlock_own(
        &self,
        wraps: Wraps<'_>,
        person: &Person,
        own: &Own,
    ) -> Result<Option<Unlocked>> {
        if person.address != own.person() {
            return Ok(None);
        }
        let object = own.object();
        let dek = unwrap(
            wraps,
            &object,
            Reader::Account(person.address),
            &person.secret,
        )
        .await?;
        Ok(dek.map(|dek| Unlocked {
            object,
            opens: Opens::Own,
            dek,
        }))
    }

    /// The key of a bundle of a patient who takes part in a study, with the research key's wrap
    /// (which exists only while they do), for a de-identified export: only a record of the
    /// patient `participating` names.
    pub(crate) async fn unlock_for_research(
        &self,
        wraps: Wraps<'_>,
        participating: &Participating,
        record: &RecordRow,
    ) -> Result<Option<Unlocked>> {
        if record.patient != participating.patient() {
            return Ok(None);
        }
        let object = ObjectId::Record(record.id);
        let dek = unwrap(wraps, &object, Reader::Research, &self.research).await?;
        Ok(dek.map(|dek| Unlocked {
            object,
            opens: Opens::Record(record.patient),
            dek,
        }))
    }

    /// Wraps `object`'s key for `to` (a reader a grant names, checked by the caller against the
    /// chain: `allowed` is the new reader's proof), unwrapped with the patient's own key when
    /// they are the one acting, or the escrow's when the server settles their write without
    /// them. Nothing is opened.
    pub(crate) async fn share(
        &self,
        wraps: Wraps<'_>,
        allowed: &Allowed,
        patient_secret: Option<&SecretKey>,
        to_public: &PublicKey,
    ) -> Result<bool> {
        let object = allowed.object();
        let Some(dek) = self
            .patients_key(wraps, &object, allowed.patient(), patient_secret)
            .await?
        else {
            return Ok(false);
        };
        wraps
            .put(&object, Reader::Account(allowed.reader()), to_public, &dek)
            .await?;
        Ok(true)
    }

    /// Wraps a participant's bundle `record` for the research key while their opt-in is live,
    /// unwrapped with their own key or (settling without them) the escrow's.
    pub(crate) async fn share_with_research(
        &self,
        wraps: Wraps<'_>,
        participating: &Participating,
        record: &RecordRow,
        patient_secret: Option<&SecretKey>,
    ) -> Result<bool> {
        if record.patient != participating.patient() {
            return Ok(false);
        }
        let object = ObjectId::Record(record.id);
        let Some(dek) = self
            .patients_key(wraps, &object, record.patient, patient_secret)
            .await?
        else {
            return Ok(false);
        };
        wraps
            .put(&object, Reader::Research, &self.research_public(), &dek)
            .await?;
        Ok(true)
    }
}

impl Unlocked {
    /// Opens one sealed part of the object (bound to `aad`): a patient's data comes out
    /// `Unlogged`, a person's own object as is (`open_own`).
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Unlogged<Vec<u8>>> {
        let plain = medledger_vault::open(&self.dek, aad, sealed)?;
        Ok(match (self.opens, self.object) {
            (Opens::Record(patient), ObjectId::Record(id)) => {
                Unlogged::of_record(patient, id, plain)
            }
            (Opens::Profile(patient, fields), _) => Unlogged::of_profile(patient, fields, plain),
            // Not a patient's data: it reveals nothing to log.
            _ => Unlogged::nothing(plain),
        })
    }

    /// Opens one sealed part of the person's own object.
    pub(crate) fn open_own(&self, aad: &[u8], sealed: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.opens {
            Opens::Own => Ok(Some(medledger_vault::open(&self.dek, aad, sealed)?)),
            _ => Ok(None),
        }
    }
}

impl Keyring {
    /// `object`'s key as its patient holds it: unwrapped with their own key when they are the
    /// one acting, or the escrow's when the server settles their write without them.
    async fn patients_key(
        &self,
        wraps: Wraps<'_>,
        object: &ObjectId,
        patient: Address,
        patient_secret: Option<&SecretKey>,
    ) -> Result<Option<Dek>> {
        match patient_secret {
            Some(secret) => unwrap(wraps, object, Reader::Account(patient), secret).await,
            None => unwrap(wraps, object, Reader::Escrow, &self.escrow).await,
        }
    }

    /// A person's own wrapped key to `object`, wrapped again for their new key `to` (an
    /// account moving to its wallet): unwrapped with their own `secret`, never a deployment's.
    pub(crate) fn rewrap_own(
        &self,
        secret: &SecretKey,
        object: &ObjectId,
        wrapped: &[u8],
        to: &PublicKey,
    ) -> Result<Vec<u8>> {
        let dek = medledger_vault::unwrap(secret, wrapped, &object.aad())?;
        Ok(medledger_vault::wrap(to, &dek, &object.aad()))
    }
}

/// HMAC-SHA256 of `what` under `key`.
pub(crate) fn hmac_sha256(key: &[u8; 32], what: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(what);
    mac.finalize().into_bytes().into()
}

/// `object`'s key as `secret` unwraps the wrap made for `reader`, if there is one.
async fn unwrap(
    wraps: Wraps<'_>,
    object: &ObjectId,
    reader: Reader,
    secret: &SecretKey,
) -> Result<Option<Dek>> {
    match wraps.get(object, reader).await? {
        Some(w) => Ok(Some(medledger_vault::unwrap(secret, &w, &object.aad())?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::B256;
    use medledger_vault::{Dek, seal};

    use super::*;
    use crate::{
        db::{self, Database, Engine},
        model::Role,
    };

    use crate::testing::person;

    /// A record's key wrapped for its patient and the escrow, in a fresh database; the record's
    /// sealed bytes.
    async fn sealed_record(
        keyring: &Keyring,
        db: &crate::db::Db,
        patient: &Person,
        id: B256,
    ) -> Vec<u8> {
        let object = ObjectId::Record(id);
        let dek = Dek::generate();
        let wraps = Wraps(db);
        wraps
            .put(
                &object,
                Reader::Account(patient.address),
                &patient.secret.public_key(),
                &dek,
            )
            .await
            .unwrap();
        wraps
            .put(&object, Reader::Escrow, &keyring.escrow_public(), &dek)
            .await
            .unwrap();
        seal(&dek, &object.aad(), b"potassium 4.2")
    }

    #[tokio::test]
    async fn no_key_comes_out_without_its_proof_and_the_escrow_only_where_the_proof_says() {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::Sqlite(dir.path().join("k.sqlite"));
        let db = db::connect(&database, false).await.unwrap();
        db::migrate(&db, Engine::Sqlite).await.unwrap();
        let keyring = Keyring::new(SecretKey::generate(), SecretKey::generate());
        let patient = person(Role::Patient, Address::repeat_byte(1));
        let doctor = person(Role::Doctor, Address::repeat_byte(2));
        let id = B256::repeat_byte(9);
        let object = ObjectId::Record(id);
        let sealed = sealed_record(&keyring, &db, &patient, id).await;

        // The patient, with their own proof: their own wrap opens it, and it is theirs alone.
        let own = Allowed::for_tests(patient.address, patient.address, object, false);
        let key = keyring
            .unlock(Wraps(&db), &patient, &own)
            .await
            .unwrap()
            .expect("the patient's own wrap");
        let opened = key.open(&object.aad(), &sealed).unwrap();
        assert_eq!(
            opened.own(&patient).ok().as_deref(),
            Some(&b"potassium 4.2"[..])
        );

        // A doctor allowed without a wrap of their own: nothing, unless the proof lets the
        // escrow stand in (and then what opens is still unlogged for the doctor).
        let no_escrow = Allowed::for_tests(patient.address, doctor.address, object, false);
        assert!(
            keyring
                .unlock(Wraps(&db), &doctor, &no_escrow)
                .await
                .unwrap()
                .is_none()
        );
        let escrow = Allowed::for_tests(patient.address, doctor.address, object, true);
        let key = keyring
            .unlock(Wraps(&db), &doctor, &escrow)
            .await
            .unwrap()
            .expect("the escrow stands in");
        let opened = key.open(&object.aad(), &sealed).unwrap();
        assert!(
            opened.own(&doctor).is_err(),
            "a doctor's read must be logged"
        );

        // A proof is its reader's alone: the patient's own secret does nothing with the doctor's.
        assert!(
            keyring
                .unlock(Wraps(&db), &patient, &escrow)
                .await
                .unwrap()
                .is_none()
        );

        // Sharing the key with the doctor needs the doctor's proof; then their own wrap opens it
        // without the escrow.
        assert!(
            keyring
                .share(
                    Wraps(&db),
                    &no_escrow,
                    Some(&patient.secret),
                    &doctor.secret.public_key()
                )
                .await
                .unwrap()
        );
        assert!(
            keyring
                .unlock(Wraps(&db), &doctor, &no_escrow)
                .await
                .unwrap()
                .is_some()
        );

        // The research key opens a bundle only once it was shared with it for a participant.
        let participating = Participating::for_tests(patient.address);
        let row = RecordRow {
            id,
            patient: patient.address,
            author: patient.address,
            kind: crate::model::RecordKind::Report,
            meta: Vec::new(),
            resources: None,
            content_hash: B256::ZERO,
            blob_hash: None,
            tx_hash: None,
            block_number: None,
            created_at: 0,
        };
        assert!(
            keyring
                .unlock_for_research(Wraps(&db), &participating, &row)
                .await
                .unwrap()
                .is_none()
        );
        keyring
            .share_with_research(Wraps(&db), &participating, &row, None)
            .await
            .unwrap();
        let key = keyring
            .unlock_for_research(Wraps(&db), &participating, &row)
            .await
            .unwrap()
            .expect("wrapped for the research key");
        let opened = key.open(&object.aad(), &sealed).unwrap();
        assert_eq!(opened.for_export(&participating).unwrap(), b"potassium 4.2");
        // Another participant's proof opens nothing of this patient's.
        let someone_else = Participating::for_tests(Address::repeat_byte(7));
        assert!(
            keyring
                .unlock_for_research(Wraps(&db), &someone_else, &row)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn pseudonym_keys_differ_per_study_and_per_deployment() {
        let keyring = Keyring::new(SecretKey::generate(), SecretKey::generate());
        let other = Keyring::new(SecretKey::generate(), SecretKey::generate());
        assert_ne!(keyring.pseudonym_key(1), keyring.pseudonym_key(2));
        assert_eq!(keyring.pseudonym_key(1), keyring.pseudonym_key(1));
        assert_ne!(keyring.pseudonym_key(1), other.pseudonym_key(1));
    }
}
