//! The `settings` table: what the deployment is (its chain, its contracts and their version,
//! the public halves of its escrow and research keys), written once at first start.

use crate::{
    contracts::Contracts,
    db::Db,
    error::{Error, Result},
};

#[derive(Clone, Copy)]
pub(crate) struct Settings<'a>(pub(crate) &'a Db);

impl Settings<'_> {
    pub(crate) async fn get(self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(self.0)
                .await?,
        )
    }

    pub(crate) async fn put(self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// Writes every one of `values`, or none.
    pub(crate) async fn insert_all(self, values: &[(&str, String)]) -> Result<()> {
        let mut tx = self.0.begin().await?;
        for (key, value) in values {
            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2)")
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The deployment this database belongs to: its chain id and the contracts' addresses.
pub(crate) async fn load_contracts(db: &Db) -> Result<Option<(u64, Contracts)>> {
    let get = |key: &'static str| async move { Settings(db).get(key).await };
    let (Some(chain), Some(registry), Some(records), Some(consent), Some(research), Some(at)) = (
        get("chain_id").await?,
        get("registry").await?,
        get("records").await?,
        get("consent").await?,
        get("research").await?,
        get("deployed_at").await?,
    ) else {
        return Ok(None);
    };
    let bad = |what: &str| Error::internal("stored settings", format!("bad {what}"));
    Ok(Some((
        chain.parse().map_err(|_| bad("chain id"))?,
        Contracts {
            registry: registry.parse().map_err(|_| bad("registry"))?,
            records: records.parse().map_err(|_| bad("records"))?,
            consent: consent.parse().map_err(|_| bad("consent"))?,
            research: research.parse().map_err(|_| bad("research"))?,
            deployed_at: at.parse().map_err(|_| bad("block"))?,
        },
    )))
}
