//! The `rate_limits` table: counters over time windows, shared by every app server of the
//! deployment (login failures per name, sign-ups per client, the faucet per day, top-ups).

use crate::{db::Db, error::Result, model::unix_now};

#[derive(Clone, Copy)]
pub(crate) struct RateLimits<'a>(pub(crate) &'a Db);

impl RateLimits<'_> {
    /// Counts one more against `key` in one statement (so servers never both pass the last
    /// allowed one); a window of `window_secs` starts over once it has passed. The count now.
    pub(crate) async fn count(self, key: &str, window_secs: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO rate_limits (key, count, first_at) VALUES ($1, 1, $2)
             ON CONFLICT (key) DO UPDATE SET
               count = CASE WHEN $2 - rate_limits.first_at >= $3 THEN 1
                            ELSE rate_limits.count + 1 END,
               first_at = CASE WHEN $2 - rate_limits.first_at >= $3 THEN $2
                               ELSE rate_limits.first_at END
             RETURNING count",
        )
        .bind(key)
        .bind(unix_now())
        .bind(window_secs)
        .fetch_one(self.0)
        .await?)
    }

    /// Starts `key`'s count again.
    pub(crate) async fn clear(self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM rate_limits WHERE key = $1")
            .bind(key)
            .execute(self.0)
            .await?;
        Ok(())
    }
}
