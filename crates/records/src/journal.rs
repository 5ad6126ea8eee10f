//! The write journal: every chain write the app starts is recorded before it is sent, with what
//! follows from its success or its failure, and resolved by its receipt — at once when it is
//! mined in time, or later (and at every start) for writes a slow node or a crash left open.
//! Nothing is undone while its transaction might still be mined: a write fails only when the
//! node refused it, its receipt shows a revert, or its sender's nonce was used by another.

use std::{future::Future, time::Duration};

use alloy::{
    consensus::Transaction as _,
    network::TransactionBuilder,
    primitives::{Address, B256, Bytes},
    rpc::types::{TransactionReceipt, TransactionRequest},
};
use medledger_vault::SecretKey;
use serde::{Deserialize, Serialize};

use crate::{
    db::{Db, Locks},
    error::{Error, Kind, Result},
    faucet::Faucet,
    ledger::Ledger,
    ledger::{TxInfo, mined},
    model::unix_now,
    person::{Person, Signer},
    store::journal::{ChainWrites, Claim, WriteRow},
};

/// What follows from a write once it is mined, or once it surely never will be. Each step can
/// run again (after a crash) without harm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "then", rename_all = "snake_case")]
pub(crate) enum Follow {
    /// Nothing off chain depends on it (a directory change, the end of an emergency, funding).
    Nothing,
    /// A logged read (`Consent.logAccess`, `Consent.logViews`): nothing follows, and it is the
    /// only kind of write whose completed wallet transaction may stand in for the same read
    /// asked for again (`Journal::log_read`).
    LoggedRead,
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

pub use crate::error::PreparedWrite;

/// How long a prepared wallet write waits to be completed before it is looked for on chain
/// (a wallet that sent it and a page that never said so) and, not found, given up.
pub const WALLET_WINDOW_SECS: i64 = 15 * 60;

/// How long a completed wallet write of a read (a logged view or opening) stands in for the
/// same call asked for again: the page asks once more once the wallet has sent it, and a
/// reload in that time costs no second transaction. Never for a state change.
const WALLET_REUSE_SECS: i64 = 10 * 60;

/// What became of a write: mined (and what follows from it done), or prepared for the acting
/// person's own wallet, which completes it (`App::complete_write`). Waiting for a wallet is an
/// outcome of the write path, not a failure: nothing of it is undone.
#[derive(Debug)]
pub(crate) enum Sent {
    Mined(TxInfo, Box<TransactionReceipt>),
    AwaitingWallet(PreparedWrite),
}

impl Sent {
    /// The mined transaction and its receipt. A use case that needs them to go on passes a
    /// wallet's wait up as the answer its caller gives (202 with the call for the wallet).
    pub(crate) fn mined(self) -> Result<(TxInfo, TransactionReceipt)> {
        match self {
            Sent::Mined(tx, receipt) => Ok((tx, *receipt)),
            Sent::AwaitingWallet(prepared) => Err(Error::wallet(prepared)),
        }
    }
}

/// How the resolution of open writes went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub done: usize,
    pub failed: usize,
    /// Sent, and neither mined nor surely lost yet: sent again, left open.
    pub open: usize,
}

/// The write journal: the app database's `chain_writes`, the ledger it sends to, the locks the
/// deployment's servers take turns on, and the faucet that tops a signer up. What follows from a
/// write is not the journal's to know: the caller hands it a `Follows` (the composition root,
/// `App`), which the journal calls once a write is mined or surely never will be.
#[derive(Clone)]
pub(crate) struct Journal {
    db: Db,
    ledger: Ledger,
    locks: Locks,
    faucet: Faucet,
}

/// What follows from a write, by its `Follow`: each step can run again (after a crash) without
/// harm.
pub(crate) trait Follows: Sync {
    /// The write was mined; `secret` is the acting patient's key when they are the one acting.
    fn succeeded(
        &self,
        follow: &Follow,
        receipt: &TransactionReceipt,
        secret: Option<&SecretKey>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The write will never be mined: what was stored for it goes.
    fn failed(&self, follow: &Follow) -> impl Future<Output = Result<()>> + Send;
}

/// What follows a logged read: nothing (`Follow::LoggedRead`). The read log needs no use case.
pub(crate) struct ReadsOnly;

impl Follows for ReadsOnly {
    async fn succeeded(
        &self,
        follow: &Follow,
        _: &TransactionReceipt,
        _: Option<&SecretKey>,
    ) -> Result<()> {
        only_reads(follow)
    }

    async fn failed(&self, follow: &Follow) -> Result<()> {
        only_reads(follow)
    }
}

fn only_reads(follow: &Follow) -> Result<()> {
    match follow {
        Follow::LoggedRead => Ok(()),
        other => Err(Error::internal(
            "journal",
            format!("a read's follow-up asked for {other:?}"),
        )),
    }
}

impl Journal {
    pub(crate) fn new(db: Db, ledger: Ledger, locks: Locks, faucet: Faucet) -> Journal {
        Journal {
            db,
            ledger,
            locks,
            faucet,
        }
    }
}

/// A wallet write as the journal holds it.
struct WalletWrite {
    follow: Follow,
    state: String,
    to: Address,
    input: Vec<u8>,
    tx_hash: Option<B256>,
    needs_secret: bool,
    /// The head when it was prepared: its transaction can only be in a later block.
    prepared_block: u64,
}

fn pending_error(hash: B256) -> Error {
    Error::new(
        Kind::Unavailable,
        format!(
            "transaction {hash} was sent but the Ethereum node could not confirm it; it completes when it is mined: look again shortly"
        ),
    )
}

impl Journal {
    /// A state change signed by `signer`, journalled, with nothing stored before it. A wallet's
    /// call is always prepared anew: a completed transaction of the same call never stands in
    /// for it (ending a second emergency of one doctor is the same call as the first).
    pub(crate) async fn write(
        &self,
        follows: &impl Follows,
        signer: &Signer,
        to: Address,
        input: Vec<u8>,
        follow: Follow,
    ) -> Result<Sent> {
        debug_assert!(follow != Follow::LoggedRead, "reads go through log_read");
        self.write_after(follows, signer, to, input, follow, None, async { Ok(()) })
            .await
    }

    /// A logged read (`Consent.logAccess`, `logViews`) signed by the reader, with what was
    /// searched (`note`, for the patient's log) when it is a search. For a wallet, the same read
    /// completed by it within `WALLET_REUSE_SECS` stands in for it: the request is the call's
    /// input (which records, which parts of which profiles, for what purpose) and the note, and
    /// the page asks for it once more after the wallet sent it.
    pub(crate) async fn log_read(
        &self,
        follows: &impl Follows,
        signer: &Signer,
        to: Address,
        input: Vec<u8>,
        note: Option<&str>,
    ) -> Result<Sent> {
        if let Signer::Wallet(from) = signer
            && let Some((tx, receipt)) = self.reuse_logged_read(*from, to, &input, note).await?
        {
            return Ok(Sent::Mined(tx, Box::new(receipt)));
        }
        self.journalled(
            follows,
            signer,
            to,
            input,
            Follow::LoggedRead,
            None,
            note,
            async { Ok(()) },
        )
        .await
    }

    /// A contract call signed by `signer`, journalled: first the intent, then `stored` (what
    /// must exist off chain before the chain may point at it), then the signed transaction,
    /// sent and waited for. `secret` is the patient's key when they are the one acting (the
    /// keys that follow a grant are re-wrapped with it). A wallet's call is prepared for it
    /// instead (`Sent::AwaitingWallet`), and the write completes with `complete_write`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_after(
        &self,
        follows: &impl Follows,
        signer: &Signer,
        to: Address,
        input: Vec<u8>,
        follow: Follow,
        secret: Option<&SecretKey>,
        stored: impl Future<Output = Result<()>>,
    ) -> Result<Sent> {
        self.journalled(follows, signer, to, input, follow, secret, None, stored)
            .await
    }

    /// `write_after`, with the note a logged read keeps.
    #[allow(clippy::too_many_arguments)]
    async fn journalled(
        &self,
        follows: &impl Follows,
        signer: &Signer,
        to: Address,
        input: Vec<u8>,
        follow: Follow,
        secret: Option<&SecretKey>,
        note: Option<&str>,
        stored: impl Future<Output = Result<()>>,
    ) -> Result<Sent> {
        let follow_json =
            serde_json::to_string(&follow).map_err(|e| Error::internal("journal", e))?;
        let id = self.journal().intent(&follow_json, note).await?;
        if let Err(e) = stored.await {
            self.settle_failed(follows, id, &follow).await?;
            return Err(e);
        }
        // A person whose ether runs low is topped up first (once `stored` has made a new
        // account, which is funded already). A top-up that cannot be had is no failure of its
        // own: the transaction is refused below if the ether really does not do.
        if let Err(e) = self.faucet.top_up_if_low(signer.address()).await {
            tracing::warn!("topping up {}: {}", signer.address(), e.for_operator());
        }
        let signer = match signer {
            Signer::Custodial(key) => key,
            Signer::Wallet(from) => {
                let prepared = self
                    .prepare_for_wallet(follows, id, &follow, *from, to, input, secret.is_some())
                    .await?;
                return Ok(Sent::AwaitingWallet(prepared));
            }
        };
        // One transaction of a sender is prepared and sent at a time, in this server and across
        // the deployment's servers, so two never get the same nonce.
        let turn = self.ledger.lock_sender(signer.address()).await;
        let across = self
            .locks
            .hold(&format!("sender {}", signer.address()))
            .await?;
        let request = TransactionRequest::default().with_to(to).with_input(input);
        let signed = match self.ledger.prepare(signer, request).await {
            Ok(signed) => signed,
            Err(e) => {
                self.settle_failed(follows, id, &follow).await?;
                return Err(e);
            }
        };
        let journalled = self
            .journal()
            .signed(
                id,
                signer.address(),
                signed.nonce,
                &signed.hash,
                &signed.raw,
            )
            .await?;
        if !journalled {
            // The very same transaction is journalled already (the same call of the same
            // sender, asked again while its first sending is still open): it is that write's
            // to settle, and this one stores nothing more.
            self.settle_failed(follows, id, &follow).await?;
            return Err(pending_error(signed.hash));
        }
        match self.ledger.broadcast(&signed.raw).await {
            Ok(()) => {}
            Err(b) if b.refused => {
                // The node never had it: its hash is not this write's, and the same call may be
                // signed (to the same hash) again.
                self.journal().unsent(id).await?;
                self.settle_failed(follows, id, &follow).await?;
                return Err(b.error);
            }
            // The node may have it: the write stays open and is resolved later.
            Err(_) => return Err(pending_error(signed.hash)),
        }
        drop((turn, across));
        let receipt = self.ledger.wait_for_receipt(signed.hash).await?;
        self.settle(follows, id, &follow, &receipt, secret).await?;
        let (tx, receipt) = mined(signed.hash, &receipt)?;
        Ok(Sent::Mined(tx, Box::new(receipt)))
    }

    /// Prepares write `id` for the wallet of `from`: the call is run as the node would run it
    /// (one the contract refuses fails now, with its reason, and what was stored for it goes),
    /// and kept with its gas estimate until the wallet's transaction completes it.
    #[allow(clippy::too_many_arguments)]
    async fn prepare_for_wallet(
        &self,
        follows: &impl Follows,
        id: i64,
        follow: &Follow,
        from: Address,
        to: Address,
        input: Vec<u8>,
        needs_secret: bool,
    ) -> Result<PreparedWrite> {
        let data = Bytes::from(input);
        let (gas, price) = match self.ledger.estimate(from, to, data.clone()).await {
            Ok(estimate) => estimate,
            Err(e) => {
                self.settle_failed(follows, id, follow).await?;
                return Err(e);
            }
        };
        let block = self.ledger.block_number().await?;
        self.journal()
            .prepared(id, from, to, &data, block, needs_secret)
            .await?;
        Ok(PreparedWrite {
            id,
            from,
            to,
            data,
            chain_id: self.ledger.chain_id(),
            gas,
            gas_price: price.to_string(),
            max_fee_wei: (alloy::primitives::U256::from(gas)
                * alloy::primitives::U256::from(price))
            .to_string(),
            record: match follow {
                Follow::AnchorRecord { record } => Some(*record),
                _ => None,
            },
        })
    }

    /// The same logged read of `from` completed by its wallet within `WALLET_REUSE_SECS`: it
    /// covers the same read asked for again in that time. Only writes marked as logged reads
    /// are looked at, never a state change.
    async fn reuse_logged_read(
        &self,
        from: Address,
        to: Address,
        input: &[u8],
        note: Option<&str>,
    ) -> Result<Option<(TxInfo, TransactionReceipt)>> {
        let read = serde_json::to_string(&Follow::LoggedRead)
            .map_err(|e| Error::internal("journal", e))?;
        let since = unix_now() - WALLET_REUSE_SECS;
        let Some((_, hash)) = self
            .journal()
            .done_same(from, &read, to, input, since, note)
            .await?
        else {
            return Ok(None);
        };
        match self.ledger.receipt(hash).await? {
            Some(receipt) => mined(hash, &receipt).map(Some),
            None => Ok(None),
        }
    }

    /// Completes `person`'s prepared write `id` with the transaction `hash` their wallet sent:
    /// only once the node shows it is exactly the prepared call (from their account, to the
    /// contract, with the input, no ether), and then as any write once mined. A transaction
    /// that is not the call changes nothing, and the write waits on for the right one.
    pub(crate) async fn complete_write(
        &self,
        follows: &impl Follows,
        person: &Person,
        id: i64,
        hash: B256,
    ) -> Result<TxInfo> {
        let row = self.wallet_write(person, id).await?;
        match row.state.as_str() {
            "prepared" => {}
            "done" if row.tx_hash == Some(hash) => {
                return match self.ledger.receipt(hash).await? {
                    Some(receipt) => Ok(TxInfo::of(&receipt)),
                    None => Err(pending_error(hash)),
                };
            }
            "pending" if row.tx_hash == Some(hash) => {
                return Err(pending_error(hash));
            }
            "failed" => {
                return Err(Error::conflict(
                    "this transaction was cancelled, or failed, and nothing of it was kept: start again",
                ));
            }
            _ => {
                return Err(Error::conflict(
                    "this write was completed already, by another transaction",
                ));
            }
        }
        let tx = self.sent_transaction(hash).await?;
        let from = tx.inner.signer();
        let not_it = |why: String| {
            Error::unprocessable(format!(
                "transaction {hash} is not the call prepared for you: {why}; nothing was changed, and the prepared call still waits for your wallet"
            ))
        };
        if from != person.address {
            return Err(not_it(format!(
                "it was sent by {from}, not by your account {}",
                person.address
            )));
        }
        if tx.to() != Some(row.to) {
            return Err(not_it(match tx.to() {
                Some(to) => format!("it calls {to}, not the contract at {}", row.to),
                None => "it creates a contract".to_string(),
            }));
        }
        if tx.input().as_ref() != row.input.as_slice() {
            return Err(not_it("its data is not the prepared call's".to_string()));
        }
        if !tx.value().is_zero() {
            return Err(not_it("it sends ether".to_string()));
        }
        if tx.chain_id().is_some_and(|c| c != self.ledger.chain_id()) {
            return Err(not_it("it is signed for another chain".to_string()));
        }
        match self.journal().claim(id, &hash, Some(tx.nonce())).await? {
            Claim::Claimed => {}
            Claim::NotPrepared => {
                return Err(Error::conflict(
                    "this write is being completed already; look again shortly",
                ));
            }
            Claim::TxTaken => {
                return Err(not_it("it completed another write already".to_string()));
            }
        }
        let receipt = self.ledger.wait_for_receipt(hash).await?;
        let secret = row.needs_secret.then_some(&person.secret);
        self.settle(follows, id, &row.follow, &receipt, secret)
            .await?;
        mined(hash, &receipt).map(|(tx, _)| tx)
    }

    /// Gives up `person`'s prepared write `id` (their wallet refused to sign it): what was
    /// stored for it goes, as for any write that will never be mined. A wallet may have sent
    /// the call all the same: the blocks since it was prepared are searched first, and a write
    /// whose transaction is on chain is completed by it, never cancelled (what a mined
    /// declaration or anchor points at must stay).
    pub(crate) async fn cancel_write(
        &self,
        follows: &impl Follows,
        person: &Person,
        id: i64,
    ) -> Result<()> {
        let row = self.wallet_write(person, id).await?;
        let already = || {
            Error::conflict(
                "this write was completed by a transaction already; it cannot be cancelled",
            )
        };
        match row.state.as_str() {
            "prepared" => {}
            "failed" => return Ok(()),
            _ => return Err(already()),
        }
        let head = self.ledger.block_number().await?;
        if let Some(hash) = self
            .find_sent(person.address, row.to, &row.input, row.prepared_block, head)
            .await?
            && let Some(receipt) = self.ledger.receipt(hash).await?
        {
            match self.journal().claim(id, &hash, None).await? {
                Claim::Claimed => {
                    let secret = row.needs_secret.then_some(&person.secret);
                    self.settle(follows, id, &row.follow, &receipt, secret)
                        .await?;
                    if receipt.status() {
                        return Err(already());
                    }
                    return Ok(());
                }
                // Another write of the same call has that transaction: this one was not sent.
                Claim::TxTaken => {}
                Claim::NotPrepared => return Err(already()),
            }
        }
        self.settle_failed(follows, id, &row.follow).await
    }

    /// `person`'s wallet write `id`, or not found (another's is not found either).
    async fn wallet_write(&self, person: &Person, id: i64) -> Result<WalletWrite> {
        let not_found = || Error::not_found("there is no such write waiting for your wallet");
        let row = self.journal().get(id).await?.ok_or_else(not_found)?;
        let (Some(to), Some(sender)) = (row.to, row.sender) else {
            return Err(not_found());
        };
        if sender != person.address {
            return Err(not_found());
        }
        Ok(WalletWrite {
            follow: serde_json::from_str(&row.follow)
                .map_err(|_| Error::internal("journal", format!("bad follow in write {id}")))?,
            state: row.state,
            to,
            input: row.input.unwrap_or_default(),
            tx_hash: row.tx_hash,
            needs_secret: row.needs_secret,
            prepared_block: row.prepared_block.unwrap_or_default(),
        })
    }

    /// The transaction `hash` as the node knows it: a wallet may hand its hash over a moment
    /// before the node it sent it through passes it on, so this waits (up to 30 s, or the
    /// receipt timeout if shorter) for it to appear.
    async fn sent_transaction(&self, hash: B256) -> Result<alloy::rpc::types::Transaction> {
        let bound = self.ledger.receipt_timeout().min(Duration::from_secs(30));
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            if let Some(tx) = self.ledger.transaction(hash).await? {
                return Ok(tx);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::not_found(format!(
                    "the Ethereum node does not know transaction {hash}: send it from your wallet first"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Does what follows from a mined write, then closes it.
    async fn settle(
        &self,
        follows: &impl Follows,
        id: i64,
        follow: &Follow,
        receipt: &TransactionReceipt,
        secret: Option<&SecretKey>,
    ) -> Result<()> {
        if !receipt.status() {
            return self.settle_failed(follows, id, follow).await;
        }
        follows.succeeded(follow, receipt, secret).await?;
        self.journal().close(id, true).await
    }

    /// Undoes what was stored for a write that will never be mined, then closes it.
    async fn settle_failed(&self, follows: &impl Follows, id: i64, follow: &Follow) -> Result<()> {
        follows.failed(follow).await?;
        self.journal().close(id, false).await
    }

    /// Resolves the writes left open at least `min_age_secs` ago (every one, with 0: at start,
    /// before anything else runs): an intent never sent fails; a sent write is settled by its
    /// receipt, fails if its nonce went to another transaction, and is otherwise sent again.
    pub(crate) async fn resolve(
        &self,
        follows: &impl Follows,
        min_age_secs: i64,
    ) -> Result<Resolved> {
        // One server of the deployment resolves at a time, so no write is settled twice.
        let _turn = self.locks.hold("journal").await?;
        let before = unix_now() - min_age_secs;
        let rows = self.journal().open_since(before).await?;
        let mut resolved = Resolved::default();
        for row in rows {
            let id = row.id;
            let follow: Follow =
                serde_json::from_str(&row.follow).map_err(|e| Error::internal("journal", e))?;
            if row.state == "intent" {
                self.settle_failed(follows, id, &follow).await?;
                resolved.failed += 1;
                continue;
            }
            let bad = |what| Error::internal("journal", format!("no {what} in write {id}"));
            let hash = row.tx_hash.ok_or_else(|| bad("hash"))?;
            let sender = row.sender.ok_or_else(|| bad("sender"))?;
            let nonce = row.nonce.ok_or_else(|| bad("nonce"))?;
            // A wallet's transaction: its signed bytes are the wallet's, never here.
            let raw = row.raw.clone();
            let mut receipt = self.ledger.receipt(hash).await?;
            if receipt.is_none() && self.ledger.mined_nonce(sender).await? > nonce {
                // Its nonce is used. A node may show the state of a block a moment before its
                // receipts: give ours that moment before calling it lost.
                receipt = self.receipt_within(hash, Duration::from_secs(2)).await?;
                if receipt.is_none()
                    && self
                        .ledger
                        .transaction(hash)
                        .await?
                        .is_some_and(|tx| tx.block_number.is_some())
                {
                    // The node shows it mined and withholds its receipt (a lagging node behind
                    // a balancer): not lost, only not to be settled yet.
                    resolved.open += 1;
                    continue;
                }
                if receipt.is_none() && raw.is_none() {
                    // A wallet may send the same call again with the same nonce (MetaMask's
                    // "speed up"): that transaction is this write's.
                    receipt = self.replaced_wallet_write(&row, sender).await?;
                }
                if receipt.is_none() {
                    // The nonce went to another transaction: this one can never be mined.
                    self.settle_failed(follows, id, &follow).await?;
                    resolved.failed += 1;
                    continue;
                }
            }
            if receipt.is_none()
                && let Some(raw) = &raw
            {
                // Lost with a node's memory, or still waiting: send it again.
                if let Err(e) = self.ledger.broadcast(raw).await {
                    tracing::warn!("sending write {id} ({hash}) again: {}", e.error);
                }
                receipt = self.ledger.receipt(hash).await?;
            }
            match receipt {
                Some(receipt) => {
                    self.settle(follows, id, &follow, &receipt, None).await?;
                    if receipt.status() {
                        resolved.done += 1;
                    } else {
                        resolved.failed += 1;
                    }
                }
                None => resolved.open += 1,
            }
        }
        self.resolve_prepared(follows, &mut resolved).await?;
        Ok(resolved)
    }

    /// Settles the wallet writes prepared more than `WALLET_WINDOW_SECS` ago and never
    /// completed: a wallet may have sent the call and its page never said so, so the blocks
    /// since it was prepared are searched for it; not there, it is given up.
    async fn resolve_prepared(
        &self,
        follows: &impl Follows,
        resolved: &mut Resolved,
    ) -> Result<()> {
        let rows = self
            .journal()
            .prepared_since(unix_now() - WALLET_WINDOW_SECS)
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let head = self.ledger.block_number().await?;
        for row in rows {
            let id = row.id;
            let follow: Follow =
                serde_json::from_str(&row.follow).map_err(|e| Error::internal("journal", e))?;
            let bad = |what| Error::internal("journal", format!("no {what} in write {id}"));
            let sender = row.sender.ok_or_else(|| bad("sender"))?;
            let to = row.to.ok_or_else(|| bad("contract"))?;
            let input = row.input.clone().unwrap_or_default();
            let from_block = row.prepared_block.unwrap_or_default();
            let found = self.find_sent(sender, to, &input, from_block, head).await?;
            // The same call prepared twice (a page asked twice) is completed by one
            // transaction: the second finds it taken.
            let taken = match found {
                Some(hash) => self.journal().has_tx(&hash).await?,
                None => false,
            };
            let receipt = match found {
                Some(hash) if !taken => self.ledger.receipt(hash).await?,
                _ => None,
            };
            match receipt {
                Some(receipt) => {
                    match self
                        .journal()
                        .claim(id, &receipt.transaction_hash, None)
                        .await?
                    {
                        Claim::Claimed => {}
                        // Completed meanwhile by its page.
                        Claim::NotPrepared => continue,
                        // Another write of the same call has it: this one was not sent.
                        Claim::TxTaken => {
                            self.settle_failed(follows, id, &follow).await?;
                            resolved.failed += 1;
                            continue;
                        }
                    }
                    self.settle(follows, id, &follow, &receipt, None).await?;
                    if receipt.status() {
                        resolved.done += 1;
                    } else {
                        resolved.failed += 1;
                    }
                }
                None => {
                    self.settle_failed(follows, id, &follow).await?;
                    resolved.failed += 1;
                }
            }
        }
        Ok(())
    }

    /// The receipt of the transaction that replaced wallet write `id`'s (the same call from
    /// the same sender, mined since it was prepared), now taken as the write's own.
    async fn replaced_wallet_write(
        &self,
        row: &WriteRow,
        sender: Address,
    ) -> Result<Option<TransactionReceipt>> {
        let (Some(to), Some(input), Some(from_block)) = (row.to, &row.input, row.prepared_block)
        else {
            return Ok(None);
        };
        let head = self.ledger.block_number().await?;
        let Some(hash) = self.find_sent(sender, to, input, from_block, head).await? else {
            return Ok(None);
        };
        let Some(receipt) = self.ledger.receipt(hash).await? else {
            return Ok(None);
        };
        // Another write of the same call may have it.
        Ok(self
            .journal()
            .take_tx(row.id, &hash)
            .await?
            .then_some(receipt))
    }

    /// A mined transaction of `sender` to `to` with `input` in blocks `from..=to_block`.
    async fn find_sent(
        &self,
        sender: Address,
        to: Address,
        input: &[u8],
        from: u64,
        to_block: u64,
    ) -> Result<Option<B256>> {
        let numbers: Vec<u64> = (from..=to_block).collect();
        for chunk in numbers.chunks(256) {
            for block in self.ledger.blocks(chunk, true).await? {
                for tx in block.transactions.txns() {
                    if tx.inner.signer() == sender
                        && tx.to() == Some(to)
                        && tx.input().as_ref() == input
                    {
                        return Ok(Some(*tx.inner.tx_hash()));
                    }
                }
            }
        }
        Ok(None)
    }

    async fn receipt_within(
        &self,
        hash: B256,
        bound: Duration,
    ) -> Result<Option<TransactionReceipt>> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            if let Some(receipt) = self.ledger.receipt(hash).await? {
                return Ok(Some(receipt));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the logged read `tx` searched ("conditions"), when it was a search.
    pub(crate) async fn read_note(&self, tx: &B256) -> Result<Option<String>> {
        self.journal().note_of(tx).await
    }

    /// How many writes are still open (for the health check).
    pub(crate) async fn open_writes(&self) -> Result<i64> {
        self.journal().open_count().await
    }

    fn journal(&self) -> ChainWrites<'_> {
        ChainWrites(&self.db)
    }
}

#[cfg(test)]
mod tests;
