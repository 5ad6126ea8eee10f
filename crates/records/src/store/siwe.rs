//! The `siwe_nonces` table: the single-use nonces Sign-In with Ethereum messages must carry.

use crate::{db::Db, error::Result, model::unix_now};

#[derive(Clone, Copy)]
pub(crate) struct Nonces<'a>(pub(crate) &'a Db);

impl Nonces<'_> {
    /// Keeps a new nonce, and drops those older than `lifetime_secs`.
    pub(crate) async fn add(self, nonce: &str, lifetime_secs: i64) -> Result<()> {
        let now = unix_now();
        sqlx::query("DELETE FROM siwe_nonces WHERE created_at < $1")
            .bind(now - lifetime_secs)
            .execute(self.0)
            .await?;
        sqlx::query("INSERT INTO siwe_nonces (nonce, created_at) VALUES ($1, $2)")
            .bind(nonce)
            .bind(now)
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// Uses `nonce` up: true when it was given within `lifetime_secs` and not used before.
    pub(crate) async fn take(self, nonce: &str, lifetime_secs: i64) -> Result<bool> {
        let used = sqlx::query("DELETE FROM siwe_nonces WHERE nonce = $1 AND created_at >= $2")
            .bind(nonce)
            .bind(unix_now() - lifetime_secs)
            .execute(self.0)
            .await?;
        Ok(used.rows_affected() == 1)
    }
}
