//! The `security_events` table: the security log an admin reads (`security.rs`).

use sqlx::Row as _;

use crate::{db::Db, error::Result};

/// One event as stored.
pub(crate) struct EventRow {
    pub(crate) at: i64,
    pub(crate) kind: String,
    pub(crate) who: String,
    pub(crate) client: String,
    pub(crate) outcome: String,
}

#[derive(Clone, Copy)]
pub(crate) struct SecurityEvents<'a>(pub(crate) &'a Db);

impl SecurityEvents<'_> {
    /// Keeps an event, and drops those older than `keep_before`.
    pub(crate) async fn add(self, event: &EventRow, keep_before: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO security_events (at, kind, who, client, outcome) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(event.at)
        .bind(&event.kind)
        .bind(&event.who)
        .bind(&event.client)
        .bind(&event.outcome)
        .execute(self.0)
        .await?;
        sqlx::query("DELETE FROM security_events WHERE at < $1")
            .bind(keep_before)
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// The `limit` most recent events, newest first.
    pub(crate) async fn recent(self, limit: i64) -> Result<Vec<EventRow>> {
        let rows = sqlx::query(
            "SELECT at, kind, who, client, outcome FROM security_events ORDER BY at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.0)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    who: r.try_get("who")?,
                    client: r.try_get("client")?,
                    outcome: r.try_get("outcome")?,
                })
            })
            .collect()
    }
}
