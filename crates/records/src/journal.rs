//! The write journal: every chain write the app starts is recorded before it is sent, with what
//! follows from its success or its failure, and resolved by its receipt — at once when it is
//! mined in time, or later (and at every start) for writes a slow node or a crash left open.
//! Nothing is undone while its transaction might still be mined: a write fails only when the
//! node refused it, its receipt shows a revert, or its sender's nonce was used by another.

use std::{future::Future, time::Duration};

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256},
    rpc::types::{TransactionReceipt, TransactionRequest},
    signers::local::PrivateKeySigner,
};
use medledger_vault::SecretKey;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{
    accounts::address_key,
    app::{App, unix_now},
    error::{Error, Kind, Result},
    ledger::{TxInfo, mined},
};

/// What follows from a write once it is mined, or once it surely never will be. Each step can
/// run again (after a crash) without harm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "then", rename_all = "snake_case")]
pub(crate) enum Follow {
    /// Nothing off chain depends on it (an access event, a directory change, funding).
    Nothing,
    /// A record's anchor: its row, wrapped keys and blob were stored first. Mined: the row
    /// gets its transaction. Failed: all three go.
    AnchorRecord { record: B256 },
    /// An account's registration on chain. Mined: it may log in. Failed: it goes, with its
    /// wrapped keys.
    Register { account: Address },
    /// A grant (or a revocation) by `patient`: the wrapped keys follow the live grants.
    Consent { patient: Address },
    /// An emergency declaration whose sealed reason was stored first under `object`. Mined: it
    /// gets its transaction and end. Failed: the reason goes.
    Emergency { object: String },
    /// An invitation stored before it was sent. Mined: it gets its transaction. Failed: it goes.
    Invite { key: Address },
    /// A study's registration, its details stored first under their hash. Mined: it gets the
    /// chain's id and its transaction. Failed: the details go.
    Study { details: B256 },
    /// A patient joined or left a study: the research key's wraps of their bundles follow
    /// whether any of their opt-ins is live.
    Research { patient: Address },
}

/// How the resolution of open writes went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub done: usize,
    pub failed: usize,
    /// Sent, and neither mined nor surely lost yet: sent again, left open.
    pub open: usize,
}

fn pending_error(hash: B256) -> Error {
    Error::new(
        Kind::Unavailable,
        format!(
            "transaction {hash} was sent but the Ethereum node could not confirm it; it completes when it is mined: look again shortly"
        ),
    )
}

impl App {
    /// A contract call signed by `signer`, journalled, with nothing stored before it.
    pub(crate) async fn write(
        &self,
        signer: &PrivateKeySigner,
        to: Address,
        input: Vec<u8>,
        follow: Follow,
    ) -> Result<(TxInfo, TransactionReceipt)> {
        self.write_after(signer, to, input, follow, None, async { Ok(()) })
            .await
    }

    /// A contract call signed by `signer`, journalled: first the intent, then `stored` (what
    /// must exist off chain before the chain may point at it), then the signed transaction,
    /// sent and waited for. `secret` is the patient's key when they are the one acting (the
    /// keys that follow a grant are re-wrapped with it).
    pub(crate) async fn write_after(
        &self,
        signer: &PrivateKeySigner,
        to: Address,
        input: Vec<u8>,
        follow: Follow,
        secret: Option<&SecretKey>,
        stored: impl Future<Output = Result<()>>,
    ) -> Result<(TxInfo, TransactionReceipt)> {
        let follow_json =
            serde_json::to_string(&follow).map_err(|e| Error::internal("journal", e))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO chain_writes (follow, state, created_at) VALUES ($1, 'intent', $2) RETURNING id",
        )
        .bind(&follow_json)
        .bind(unix_now())
        .fetch_one(self.db())
        .await?;
        if let Err(e) = stored.await {
            self.settle_failed(id, &follow).await?;
            return Err(e);
        }
        // A person whose ether runs low is topped up first (once `stored` has made a new
        // account, which is funded already). A top-up that cannot be had is no failure of its
        // own: the transaction is refused below if the ether really does not do.
        if let Err(e) = self.top_up_if_low(signer.address()).await {
            tracing::warn!("topping up {}: {}", signer.address(), e.for_operator());
        }
        // One transaction of a sender is prepared and sent at a time, in this server and across
        // the deployment's servers, so two never get the same nonce.
        let turn = self.ledger().lock_sender(signer.address()).await;
        let across = self.hold(&format!("sender {}", signer.address())).await?;
        let request = TransactionRequest::default().with_to(to).with_input(input);
        let signed = match self.ledger().prepare(signer, request).await {
            Ok(signed) => signed,
            Err(e) => {
                self.settle_failed(id, &follow).await?;
                return Err(e);
            }
        };
        sqlx::query(
            "UPDATE chain_writes SET state = 'pending', sender = $1, nonce = $2, tx_hash = $3, raw = $4
             WHERE id = $5",
        )
        .bind(address_key(signer.address()))
        .bind(signed.nonce as i64)
        .bind(signed.hash.to_string())
        .bind(&signed.raw)
        .bind(id)
        .execute(self.db())
        .await?;
        match self.ledger().broadcast(&signed.raw).await {
            Ok(()) => {}
            Err(b) if b.refused => {
                self.settle_failed(id, &follow).await?;
                return Err(b.error);
            }
            // The node may have it: the write stays open and is resolved later.
            Err(_) => return Err(pending_error(signed.hash)),
        }
        drop((turn, across));
        let receipt = self.ledger().wait_for_receipt(signed.hash).await?;
        self.settle(id, &follow, &receipt, secret).await?;
        mined(signed.hash, &receipt)
    }

    /// Does what follows from a mined write, then closes it.
    async fn settle(
        &self,
        id: i64,
        follow: &Follow,
        receipt: &TransactionReceipt,
        secret: Option<&SecretKey>,
    ) -> Result<()> {
        if !receipt.status() {
            return self.settle_failed(id, follow).await;
        }
        self.succeed(follow, receipt, secret).await?;
        sqlx::query(
            "UPDATE chain_writes SET state = 'done', raw = NULL, resolved_at = $1 WHERE id = $2",
        )
        .bind(unix_now())
        .bind(id)
        .execute(self.db())
        .await?;
        Ok(())
    }

    /// Undoes what was stored for a write that will never be mined, then closes it.
    async fn settle_failed(&self, id: i64, follow: &Follow) -> Result<()> {
        self.fail(follow).await?;
        sqlx::query(
            "UPDATE chain_writes SET state = 'failed', raw = NULL, resolved_at = $1 WHERE id = $2",
        )
        .bind(unix_now())
        .bind(id)
        .execute(self.db())
        .await?;
        Ok(())
    }

    async fn succeed(
        &self,
        follow: &Follow,
        receipt: &TransactionReceipt,
        secret: Option<&SecretKey>,
    ) -> Result<()> {
        match follow {
            Follow::Nothing => {}
            Follow::AnchorRecord { record } => {
                sqlx::query("UPDATE records SET tx_hash = $1, block_number = $2 WHERE id = $3")
                    .bind(receipt.transaction_hash.to_string())
                    .bind(receipt.block_number.unwrap_or_default() as i64)
                    .bind(record.to_string())
                    .execute(self.db())
                    .await?;
            }
            Follow::Register { account } => {
                sqlx::query("UPDATE users SET status = 'active' WHERE address = $1")
                    .bind(address_key(*account))
                    .execute(self.db())
                    .await?;
                // An enrolment: its link is used up.
                if let Some(accepted) =
                    receipt.decoded_log::<crate::contracts::Registry::InviteAccepted>()
                {
                    sqlx::query("UPDATE invites SET used_by = $1 WHERE invite_key = $2")
                        .bind(address_key(*account))
                        .bind(address_key(accepted.data.inviteKey))
                        .execute(self.db())
                        .await?;
                }
            }
            Follow::Consent { patient } => {
                self.index_grants(receipt).await?;
                self.sync_wraps(*patient, secret).await?;
            }
            Follow::Emergency { object } => self.emergency_mined(object, receipt).await?,
            Follow::Study { details } => self.study_mined(details, receipt).await?,
            Follow::Research { patient } => self.sync_research_wraps(*patient, secret).await?,
            Follow::Invite { key } => {
                sqlx::query("UPDATE invites SET tx_hash = $1 WHERE invite_key = $2")
                    .bind(receipt.transaction_hash.to_string())
                    .bind(address_key(*key))
                    .execute(self.db())
                    .await?;
            }
        }
        Ok(())
    }

    async fn fail(&self, follow: &Follow) -> Result<()> {
        match follow {
            Follow::Nothing | Follow::Consent { .. } | Follow::Research { .. } => {}
            Follow::AnchorRecord { record } => self.forget_record(record).await?,
            Follow::Register { account } => self.forget_account(*account).await?,
            Follow::Study { details } => self.forget_study(details).await?,
            Follow::Invite { key } => {
                sqlx::query("DELETE FROM invites WHERE invite_key = $1 AND used_by IS NULL")
                    .bind(address_key(*key))
                    .execute(self.db())
                    .await?;
            }
            Follow::Emergency { object } => {
                self.drop_wraps(&crate::wraps::ObjectId::parse(object)?)
                    .await?;
                sqlx::query("DELETE FROM emergencies WHERE object = $1")
                    .bind(object)
                    .execute(self.db())
                    .await?;
            }
        }
        Ok(())
    }

    /// Resolves the writes left open at least `min_age_secs` ago (every one, with 0: at start,
    /// before anything else runs): an intent never sent fails; a sent write is settled by its
    /// receipt, fails if its nonce went to another transaction, and is otherwise sent again.
    pub async fn resolve_journal(&self, min_age_secs: i64) -> Result<Resolved> {
        // One server of the deployment resolves at a time, so no write is settled twice.
        let _turn = self.hold("journal").await?;
        let before = unix_now() - min_age_secs;
        let rows = sqlx::query(
            "SELECT id, follow, state, sender, nonce, tx_hash, raw FROM chain_writes
             WHERE state IN ('intent', 'pending') AND created_at <= $1 ORDER BY id",
        )
        .bind(before)
        .fetch_all(self.db())
        .await?;
        let mut resolved = Resolved::default();
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let follow: Follow = serde_json::from_str(&row.try_get::<String, _>("follow")?)
                .map_err(|e| Error::internal("journal", e))?;
            if row.try_get::<String, _>("state")? == "intent" {
                self.settle_failed(id, &follow).await?;
                resolved.failed += 1;
                continue;
            }
            let bad = |what| Error::internal("journal", format!("bad {what} in write {id}"));
            let hash: B256 = row
                .try_get::<String, _>("tx_hash")?
                .parse()
                .map_err(|_| bad("hash"))?;
            let sender: Address = row
                .try_get::<String, _>("sender")?
                .parse()
                .map_err(|_| bad("sender"))?;
            let nonce = row.try_get::<i64, _>("nonce")? as u64;
            let raw: Vec<u8> = row.try_get("raw")?;
            let mut receipt = self.ledger().receipt(hash).await?;
            if receipt.is_none() && self.ledger().mined_nonce(sender).await? > nonce {
                // Its nonce is used. A node may show the state of a block a moment before its
                // receipts: give ours that moment before calling it lost.
                receipt = self.receipt_within(hash, Duration::from_secs(2)).await?;
                if receipt.is_none() {
                    // The nonce went to another transaction: this one can never be mined.
                    self.settle_failed(id, &follow).await?;
                    resolved.failed += 1;
                    continue;
                }
            }
            if receipt.is_none() {
                // Lost with a node's memory, or still waiting: send it again.
                if let Err(e) = self.ledger().broadcast(&raw).await {
                    tracing::warn!("sending write {id} ({hash}) again: {}", e.error);
                }
                receipt = self.ledger().receipt(hash).await?;
            }
            match receipt {
                Some(receipt) => {
                    self.settle(id, &follow, &receipt, None).await?;
                    if receipt.status() {
                        resolved.done += 1;
                    } else {
                        resolved.failed += 1;
                    }
                }
                None => resolved.open += 1,
            }
        }
        Ok(resolved)
    }

    async fn receipt_within(
        &self,
        hash: B256,
        bound: Duration,
    ) -> Result<Option<TransactionReceipt>> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            if let Some(receipt) = self.ledger().receipt(hash).await? {
                return Ok(Some(receipt));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many writes are still open (for the health check).
    pub async fn open_writes(&self) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM chain_writes WHERE state IN ('intent', 'pending')",
        )
        .fetch_one(self.db())
        .await?)
    }
}
