//! The `invites` table: each one-time enrolment link an admin made — the hash of its token (the
//! token itself is only in the link), the key that takes it up on chain, whom it invites, and
//! who used it.

use alloy::primitives::{Address, B256};

use crate::{
    db::Db,
    error::{Error, Result},
    model::Role,
    model::address_key,
    model::unix_now,
};

/// An invitation as stored before it is sent.
pub(crate) struct NewInviteRow<'a> {
    pub(crate) key: Address,
    pub(crate) token_hash: String,
    pub(crate) role: Role,
    pub(crate) name: &'a str,
    pub(crate) hospital_id: Option<u64>,
    pub(crate) created_by: Address,
    pub(crate) expires_at: u64,
}

fn key(s: &str) -> Result<Address> {
    s.parse().map_err(|e| Error::internal("invite key", e))
}

#[derive(Clone, Copy)]
pub(crate) struct Invites<'a>(pub(crate) &'a Db);

impl Invites<'_> {
    pub(crate) async fn insert(self, invite: &NewInviteRow<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO invites (invite_key, token_hash, role, name, hospital_id, created_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(address_key(invite.key))
        .bind(&invite.token_hash)
        .bind(invite.role.as_str())
        .bind(invite.name)
        .bind(invite.hospital_id.map(|h| h as i64))
        .bind(address_key(invite.created_by))
        .bind(unix_now())
        .bind(invite.expires_at as i64)
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// The invitation was put on chain by transaction `tx`.
    pub(crate) async fn mined(self, invite: Address, tx: &B256) -> Result<()> {
        sqlx::query("UPDATE invites SET tx_hash = $1 WHERE invite_key = $2")
            .bind(tx.to_string())
            .bind(address_key(invite))
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// The invitation was taken up by `account`.
    pub(crate) async fn used(self, invite: Address, account: Address) -> Result<()> {
        sqlx::query("UPDATE invites SET used_by = $1 WHERE invite_key = $2")
            .bind(address_key(account))
            .bind(address_key(invite))
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// Removes an invitation whose transaction will never be mined (unless used).
    pub(crate) async fn forget_unused(self, invite: Address) -> Result<()> {
        sqlx::query("DELETE FROM invites WHERE invite_key = $1 AND used_by IS NULL")
            .bind(address_key(invite))
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// The key of the invitation whose token hashes to `token_hash`.
    pub(crate) async fn by_token_hash(self, token_hash: &str) -> Result<Option<Address>> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT invite_key FROM invites WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(self.0)
                .await?;
        found.as_deref().map(key).transpose()
    }

    /// The keys of the invitations on chain and not used, oldest first.
    pub(crate) async fn unused(self) -> Result<Vec<Address>> {
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT invite_key FROM invites WHERE used_by IS NULL AND tx_hash IS NOT NULL ORDER BY created_at",
        )
        .fetch_all(self.0)
        .await?;
        keys.iter().map(|k| key(k)).collect()
    }

    /// The name the invitation `account` took up gave a researcher.
    pub(crate) async fn researcher_name(self, account: Address) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM invites WHERE used_by = $1 AND role = 'researcher'",
        )
        .bind(address_key(account))
        .fetch_optional(self.0)
        .await?)
    }
}
