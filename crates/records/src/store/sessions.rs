//! The `sessions` table: each signed-in session, with the person's key sealed under half of its
//! token (which only the client holds), so any app server can serve it and a copy of the
//! database opens nothing.

use alloy::primitives::Address;
use sqlx::Row;

use crate::{
    db::Db,
    error::{Error, Result},
    model::Account,
};

/// A session's row, with its person's account.
pub(crate) struct SessionRow {
    pub(crate) sealed_key: Vec<u8>,
    pub(crate) restricted: bool,
    /// Milliseconds since the Unix epoch.
    pub(crate) created_at: i64,
    pub(crate) last_seen: i64,
    pub(crate) account: Account,
    /// `custodial` or `wallet`.
    pub(crate) mode: String,
}

#[derive(Clone, Copy)]
pub(crate) struct Sessions<'a>(pub(crate) &'a Db);

impl Sessions<'_> {
    /// A new session `id` of user `user_id`, started at `now` (ms); sessions idle since before
    /// `idle_before` or started before `started_before` are swept at the same time.
    pub(crate) async fn start(
        self,
        id: &str,
        user_id: i64,
        sealed_key: &[u8],
        restricted: bool,
        now: i64,
        (idle_before, started_before): (i64, i64),
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, sealed_key, restricted, created_at, last_seen)
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id)
        .bind(user_id)
        .bind(sealed_key)
        .bind(i64::from(restricted))
        .bind(now)
        .execute(self.0)
        .await?;
        sqlx::query("DELETE FROM sessions WHERE last_seen < $1 OR created_at < $2")
            .bind(idle_before)
            .bind(started_before)
            .execute(self.0)
            .await?;
        Ok(())
    }

    pub(crate) async fn get(self, id: &str) -> Result<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT s.sealed_key, s.restricted, s.created_at, s.last_seen,
                    u.id, u.username, u.role, u.address, u.mode, u.enc_public
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
        )
        .bind(id)
        .fetch_optional(self.0)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let address: String = row.try_get("address")?;
        let role: String = row.try_get("role")?;
        let enc: String = row.try_get("enc_public")?;
        Ok(Some(SessionRow {
            sealed_key: row.try_get("sealed_key")?,
            restricted: row.try_get::<i64, _>("restricted")? != 0,
            created_at: row.try_get("created_at")?,
            last_seen: row.try_get("last_seen")?,
            account: Account {
                id: row.try_get("id")?,
                username: row.try_get("username")?,
                role: role.parse()?,
                address: address
                    .parse::<Address>()
                    .map_err(|e| Error::internal("stored address", e))?,
                enc_public: enc
                    .parse()
                    .map_err(|e| Error::internal("stored public key", e))?,
            },
            mode: row.try_get("mode")?,
        }))
    }

    pub(crate) async fn touch(self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.0)
            .await?;
        Ok(())
    }

    pub(crate) async fn lift_restriction(self, id: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET restricted = 0 WHERE id = $1")
            .bind(id)
            .execute(self.0)
            .await?;
        Ok(())
    }

    pub(crate) async fn end(self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// The live sessions of `user_id` (their ids, when they started and were last used, in ms),
    /// the most recently used first.
    pub(crate) async fn of_user(
        self,
        user_id: i64,
        (idle_before, started_before): (i64, i64),
    ) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT id, created_at, last_seen FROM sessions
             WHERE user_id = $1 AND last_seen >= $2 AND created_at >= $3
             ORDER BY last_seen DESC, id",
        )
        .bind(user_id)
        .bind(idle_before)
        .bind(started_before)
        .fetch_all(self.0)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("created_at")?,
                    r.try_get("last_seen")?,
                ))
            })
            .collect()
    }

    /// Ends session `id` if it is `user_id`'s; whether it was.
    pub(crate) async fn end_of_user(self, user_id: i64, id: &str) -> Result<bool> {
        let ended = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(self.0)
            .await?;
        Ok(ended.rows_affected() == 1)
    }

    /// Ends every session of `user_id` but `keep`.
    pub(crate) async fn end_others(self, user_id: i64, keep: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .bind(user_id)
            .bind(keep)
            .execute(self.0)
            .await?;
        Ok(())
    }
}
