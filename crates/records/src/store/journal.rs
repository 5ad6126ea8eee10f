//! The `chain_writes` table: the write journal's rows. Each chain write the app starts is one
//! row, from its intent (before anything is stored or signed) through 'prepared' (waiting for a
//! person's wallet) and 'pending' (signed and sent) to 'done' or 'failed'.

use alloy::primitives::{Address, B256};
use sqlx::Row;

use crate::{
    db::{Db, DbRow},
    error::{Error, Result},
    model::address_key,
    model::unix_now,
};

/// A write as the journal holds it.
pub(crate) struct WriteRow {
    pub(crate) id: i64,
    /// What follows from it, as JSON (`journal::Follow`).
    pub(crate) follow: String,
    pub(crate) state: String,
    pub(crate) sender: Option<Address>,
    pub(crate) nonce: Option<u64>,
    pub(crate) tx_hash: Option<B256>,
    /// The signed transaction, to send again if lost (never a wallet's).
    pub(crate) raw: Option<Vec<u8>>,
    /// A wallet write's contract, call and the head when it was prepared.
    pub(crate) to: Option<Address>,
    pub(crate) input: Option<Vec<u8>>,
    pub(crate) prepared_block: Option<u64>,
    pub(crate) needs_secret: bool,
}

/// How taking a wallet's transaction for a prepared write went.
pub(crate) enum Claim {
    Claimed,
    /// The write is no longer waiting for a transaction.
    NotPrepared,
    /// The transaction completed another write already.
    TxTaken,
}

fn row_from(row: &DbRow) -> Result<WriteRow> {
    let id: i64 = row.try_get("id")?;
    let bad = |what| Error::internal("journal", format!("bad {what} in write {id}"));
    let parse_address = |s: Option<String>, what| {
        s.map(|s| s.parse::<Address>().map_err(|_| bad(what)))
            .transpose()
    };
    Ok(WriteRow {
        id,
        follow: row.try_get("follow")?,
        state: row.try_get("state")?,
        sender: parse_address(row.try_get("sender")?, "sender")?,
        nonce: row.try_get::<Option<i64>, _>("nonce")?.map(|n| n as u64),
        tx_hash: row
            .try_get::<Option<String>, _>("tx_hash")?
            .map(|h| h.parse().map_err(|_| bad("hash")))
            .transpose()?,
        raw: row.try_get("raw")?,
        to: parse_address(row.try_get("to_address")?, "contract")?,
        input: row.try_get("input")?,
        prepared_block: row
            .try_get::<Option<i64>, _>("prepared_block")?
            .map(|b| b.max(0) as u64),
        needs_secret: row.try_get::<i64, _>("needs_secret")? != 0,
    })
}

#[derive(Clone, Copy)]
pub(crate) struct ChainWrites<'a>(pub(crate) &'a Db);

impl ChainWrites<'_> {
    /// Records a write's intent, before anything of it is stored or signed; its id.
    pub(crate) async fn intent(self, follow: &str, note: Option<&str>) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO chain_writes (follow, state, created_at, note) VALUES ($1, 'intent', $2, $3) RETURNING id",
        )
        .bind(follow)
        .bind(unix_now())
        .bind(note)
        .fetch_one(self.0)
        .await?)
    }

    /// The write's transaction is signed: kept before it is sent, to send again if lost. False
    /// when another write has that very transaction.
    pub(crate) async fn signed(
        self,
        id: i64,
        sender: Address,
        nonce: u64,
        hash: &B256,
        raw: &[u8],
    ) -> Result<bool> {
        let kept = sqlx::query(
            "UPDATE chain_writes SET state = 'pending', sender = $1, nonce = $2, tx_hash = $3, raw = $4
             WHERE id = $5",
        )
        .bind(address_key(sender))
        .bind(nonce as i64)
        .bind(hash.to_string())
        .bind(raw)
        .bind(id)
        .execute(self.0)
        .await;
        match kept {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The node refused the write's transaction: it was never sent, and its hash is no longer
    /// this write's.
    pub(crate) async fn unsent(self, id: i64) -> Result<()> {
        sqlx::query("UPDATE chain_writes SET tx_hash = NULL, raw = NULL WHERE id = $1")
            .bind(id)
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// The write waits for `from`'s wallet to send `input` to `to`.
    pub(crate) async fn prepared(
        self,
        id: i64,
        from: Address,
        to: Address,
        input: &[u8],
        block: u64,
        needs_secret: bool,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE chain_writes SET state = 'prepared', sender = $1, to_address = $2, input = $3,
                    prepared_block = $4, needs_secret = $5
             WHERE id = $6",
        )
        .bind(address_key(from))
        .bind(address_key(to))
        .bind(input)
        .bind(block as i64)
        .bind(i64::from(needs_secret))
        .bind(id)
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// The latest write of `sender` done since `since` with this `follow`, contract, input and
    /// note: its id and transaction.
    pub(crate) async fn done_same(
        self,
        sender: Address,
        follow: &str,
        to: Address,
        input: &[u8],
        since: i64,
        note: Option<&str>,
    ) -> Result<Option<(i64, B256)>> {
        let found: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, tx_hash FROM chain_writes
             WHERE sender = $1 AND state = 'done' AND follow = $2 AND to_address = $3
               AND input = $4 AND resolved_at >= $5 AND COALESCE(note, '') = $6
             ORDER BY id DESC LIMIT 1",
        )
        .bind(address_key(sender))
        .bind(follow)
        .bind(address_key(to))
        .bind(input)
        .bind(since)
        .bind(note.unwrap_or_default())
        .fetch_optional(self.0)
        .await?;
        found
            .map(|(id, hash)| {
                hash.parse()
                    .map(|h| (id, h))
                    .map_err(|_| Error::internal("journal", format!("bad hash in write {id}")))
            })
            .transpose()
    }

    /// Takes the wallet's transaction `hash` (and its nonce, when known) for prepared write
    /// `id`: only a write still waiting for one, and only a transaction no other write has.
    pub(crate) async fn claim(self, id: i64, hash: &B256, nonce: Option<u64>) -> Result<Claim> {
        let claimed = sqlx::query(
            "UPDATE chain_writes SET state = 'pending', tx_hash = $1, nonce = COALESCE($2, nonce)
             WHERE id = $3 AND state = 'prepared'",
        )
        .bind(hash.to_string())
        .bind(nonce.map(|n| n as i64))
        .bind(id)
        .execute(self.0)
        .await;
        match claimed {
            Ok(done) if done.rows_affected() == 1 => Ok(Claim::Claimed),
            Ok(_) => Ok(Claim::NotPrepared),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(Claim::TxTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives write `id` the transaction `hash` (the same call sent again by a wallet); false
    /// when another write has it.
    pub(crate) async fn take_tx(self, id: i64, hash: &B256) -> Result<bool> {
        let taken = sqlx::query("UPDATE chain_writes SET tx_hash = $1 WHERE id = $2")
            .bind(hash.to_string())
            .bind(id)
            .execute(self.0)
            .await;
        match taken {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn get(self, id: i64) -> Result<Option<WriteRow>> {
        let row = sqlx::query(
            "SELECT id, follow, state, sender, nonce, tx_hash, raw, to_address, input, prepared_block, needs_secret
             FROM chain_writes WHERE id = $1",
        )
            .bind(id)
            .fetch_optional(self.0)
            .await?;
        row.as_ref().map(row_from).transpose()
    }

    /// Closes write `id`: done, or failed; its signed bytes are no longer needed.
    pub(crate) async fn close(self, id: i64, done: bool) -> Result<()> {
        let state = if done { "done" } else { "failed" };
        sqlx::query(
            "UPDATE chain_writes SET state = $1, raw = NULL, resolved_at = $2 WHERE id = $3",
        )
        .bind(state)
        .bind(unix_now())
        .bind(id)
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// The writes not sent or not settled yet, started at `before` or earlier, oldest first.
    pub(crate) async fn open_since(self, before: i64) -> Result<Vec<WriteRow>> {
        let rows = sqlx::query(
            "SELECT id, follow, state, sender, nonce, tx_hash, raw, to_address, input, prepared_block, needs_secret
             FROM chain_writes WHERE state IN ('intent', 'pending') AND created_at <= $1 ORDER BY id",
        )
        .bind(before)
        .fetch_all(self.0)
        .await?;
        rows.iter().map(row_from).collect()
    }

    /// The writes still waiting for a wallet, prepared at `before` or earlier, oldest first.
    pub(crate) async fn prepared_since(self, before: i64) -> Result<Vec<WriteRow>> {
        let rows = sqlx::query(
            "SELECT id, follow, state, sender, nonce, tx_hash, raw, to_address, input, prepared_block, needs_secret
             FROM chain_writes WHERE state = 'prepared' AND created_at <= $1 ORDER BY id",
        )
        .bind(before)
        .fetch_all(self.0)
        .await?;
        rows.iter().map(row_from).collect()
    }

    /// Whether some write has the transaction `hash`.
    pub(crate) async fn has_tx(self, hash: &B256) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 FROM chain_writes WHERE tx_hash = $1")
            .bind(hash.to_string())
            .fetch_optional(self.0)
            .await?
            .is_some())
    }

    /// What the logged read `tx` searched, when it was a search.
    pub(crate) async fn note_of(self, tx: &B256) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT note FROM chain_writes WHERE tx_hash = $1")
                .bind(tx.to_string())
                .fetch_optional(self.0)
                .await?
                .flatten(),
        )
    }

    /// How many writes are not settled yet.
    pub(crate) async fn open_count(self) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM chain_writes WHERE state IN ('intent', 'pending', 'prepared')",
        )
        .fetch_one(self.0)
        .await?)
    }
}
