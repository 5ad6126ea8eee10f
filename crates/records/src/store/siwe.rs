//! The `siwe_nonces` table: the single-use nonces Sign-In with Ethereum messages must carry.

use alloy::primitives::Address;

use crate::{
    db::Db,
    error::Result,
    model::{address_key, unix_now},
};

#[derive(Clone, Copy)]
pub(crate) struct Nonces<'a>(pub(crate) &'a Db);

impl Nonces<'_> {
    /// Keeps a new nonce for `address`, and drops those older than `lifetime_secs`.
    pub(crate) async fn add(self, nonce: &str, address: Address, lifetime_secs: i64) -> Result<()> {
        let now = unix_now();
        sqlx::query("DELETE FROM siwe_nonces WHERE created_at < $1")
            .bind(now - lifetime_secs)
            .execute(self.0)
            .await?;
        sqlx::query("INSERT INTO siwe_nonces (nonce, address, created_at) VALUES ($1, $2, $3)")
            .bind(nonce)
            .bind(address_key(address))
            .bind(now)
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// Uses `nonce` up: true when it was given to `address` within `lifetime_secs` and not used
    /// before.
    pub(crate) async fn take(
        self,
        nonce: &str,
        address: Address,
        lifetime_secs: i64,
    ) -> Result<bool> {
        let used = sqlx::query(
            "DELETE FROM siwe_nonces WHERE nonce = $1 AND address = $2 AND created_at >= $3",
        )
        .bind(nonce)
        .bind(address_key(address))
        .bind(unix_now() - lifetime_secs)
        .execute(self.0)
        .await?;
        Ok(used.rows_affected() == 1)
    }
}
