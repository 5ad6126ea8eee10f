//! The `emergencies` table: each emergency declared through the server, with its reason sealed
//! for the patient and the doctor, the salted hash of the reason that went on chain, and the
//! declaring transaction once mined.

use alloy::primitives::{Address, B256};

use crate::{
    db::Db,
    error::{Error, Result},
    model::address_key,
    store::wraps::ObjectId,
};

/// A declaration as it is stored before it is sent.
pub(crate) struct NewEmergency<'a> {
    pub(crate) object: ObjectId,
    pub(crate) patient: Address,
    pub(crate) doctor: Address,
    pub(crate) sealed_reason: &'a [u8],
    pub(crate) reason_hash: B256,
    pub(crate) created_at: i64,
}

/// A stored declaration.
pub(crate) struct StoredEmergency {
    pub(crate) object: ObjectId,
    pub(crate) sealed_reason: Vec<u8>,
    /// `None` for one stored before the hash was kept.
    pub(crate) reason_hash: Option<B256>,
}

fn address(s: &str) -> Result<Address> {
    s.parse()
        .map_err(|e| Error::internal("stored emergency", e))
}

#[derive(Clone, Copy)]
pub(crate) struct Emergencies<'a>(pub(crate) &'a Db);

impl Emergencies<'_> {
    pub(crate) async fn insert(self, e: &NewEmergency<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO emergencies (object, patient, doctor, reason, reason_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(e.object.to_string())
        .bind(address_key(e.patient))
        .bind(address_key(e.doctor))
        .bind(e.sealed_reason)
        .bind(e.reason_hash.to_string())
        .bind(e.created_at)
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// Completes a declaration with the transaction that put it on chain, its end and its id
    /// in the Consent contract.
    pub(crate) async fn mined(
        self,
        object: &str,
        until: u64,
        tx: &B256,
        chain_id: u64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE emergencies SET until = $1, tx_hash = $2, chain_id = $3 WHERE object = $4",
        )
        .bind(until as i64)
        .bind(tx.to_string())
        .bind(i64::try_from(chain_id).unwrap_or(i64::MAX))
        .bind(object)
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// The patient and the doctor of a stored declaration.
    pub(crate) async fn parties(self, object: &ObjectId) -> Result<Option<(Address, Address)>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT patient, doctor FROM emergencies WHERE object = $1")
                .bind(object.to_string())
                .fetch_optional(self.0)
                .await?;
        row.map(|(p, d)| Ok((address(&p)?, address(&d)?)))
            .transpose()
    }

    /// The declaration whose transaction is `tx`, if it was sent through the server.
    pub(crate) async fn declared_in(self, tx: &B256) -> Result<Option<ObjectId>> {
        Ok(self.by_tx(tx).await?.map(|e| e.object))
    }

    /// The stored declaration whose transaction is `tx`.
    pub(crate) async fn by_tx(self, tx: &B256) -> Result<Option<StoredEmergency>> {
        let row: Option<(String, Vec<u8>, Option<String>)> = sqlx::query_as(
            "SELECT object, reason, reason_hash FROM emergencies WHERE tx_hash = $1",
        )
        .bind(tx.to_string())
        .fetch_optional(self.0)
        .await?;
        self.stored(row)
    }

    /// The stored declaration `object`.
    pub(crate) async fn get(self, object: &ObjectId) -> Result<Option<StoredEmergency>> {
        let row: Option<(String, Vec<u8>, Option<String>)> =
            sqlx::query_as("SELECT object, reason, reason_hash FROM emergencies WHERE object = $1")
                .bind(object.to_string())
                .fetch_optional(self.0)
                .await?;
        self.stored(row)
    }

    fn stored(
        self,
        row: Option<(String, Vec<u8>, Option<String>)>,
    ) -> Result<Option<StoredEmergency>> {
        let Some((object, sealed_reason, hash)) = row else {
            return Ok(None);
        };
        Ok(Some(StoredEmergency {
            object: ObjectId::parse(&object)?,
            sealed_reason,
            reason_hash: hash
                .map(|h| {
                    h.parse()
                        .map_err(|e| Error::internal("stored reason hash", e))
                })
                .transpose()?,
        }))
    }

    /// The patients `doctor` declared a (mined) emergency for, ever.
    pub(crate) async fn patients_of(self, doctor: Address) -> Result<Vec<Address>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT patient FROM emergencies WHERE doctor = $1 AND tx_hash IS NOT NULL",
        )
        .bind(address_key(doctor))
        .fetch_all(self.0)
        .await?;
        rows.iter().map(|p| address(p)).collect()
    }

    pub(crate) async fn delete(self, object: &str) -> Result<()> {
        sqlx::query("DELETE FROM emergencies WHERE object = $1")
            .bind(object)
            .execute(self.0)
            .await?;
        Ok(())
    }
}
