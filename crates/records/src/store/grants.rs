//! The `grants` table: the grants this server saw mined (their id, patient, grantee and
//! transaction), so a doctor's grants are found without reading every patient's on chain. The
//! chain's grant is what counts; this only says where to look.

use alloy::primitives::{Address, B256};

use crate::{db::Db, error::Result, model::address_key, model::unix_now};

#[derive(Clone, Copy)]
pub(crate) struct Grants<'a>(pub(crate) &'a Db);

impl Grants<'_> {
    /// Grant `id` of `patient` to a doctor or a hospital, made by transaction `tx` (kept once).
    pub(crate) async fn seen(
        self,
        id: u64,
        patient: Address,
        doctor: Option<Address>,
        hospital: Option<u64>,
        tx: &B256,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO grants (id, patient, doctor, hospital_id, tx_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(i64::try_from(id).unwrap_or(i64::MAX))
        .bind(address_key(patient))
        .bind(doctor.map(address_key))
        .bind(hospital.map(|h| h as i64))
        .bind(tx.to_string())
        .bind(unix_now())
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// The transaction that made grant `id`, if this server saw it.
    pub(crate) async fn tx_of(self, id: u64) -> Result<Option<B256>> {
        let hash: Option<String> = sqlx::query_scalar("SELECT tx_hash FROM grants WHERE id = $1")
            .bind(id as i64)
            .fetch_optional(self.0)
            .await?;
        Ok(hash.and_then(|h| h.parse().ok()))
    }

    /// The ids of the grants to `doctor` or to their hospital `hospital`, oldest first.
    pub(crate) async fn to(self, doctor: Address, hospital: u64) -> Result<Vec<u64>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM grants WHERE doctor = $1 OR hospital_id = $2 ORDER BY id",
        )
        .bind(address_key(doctor))
        .bind(hospital as i64)
        .fetch_all(self.0)
        .await?;
        Ok(ids.into_iter().map(|i| i as u64).collect())
    }
}
