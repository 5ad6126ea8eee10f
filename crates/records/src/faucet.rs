//! The faucet: the one account that gives new accounts the ether their transactions cost, and
//! tops up an account running low — counted against its daily allowance and each account's
//! top-ups, in the app database, by every app server together. Its key sends ether and nothing
//! else.

use alloy::{
    primitives::{Address, U256},
    signers::local::PrivateKeySigner,
};

use crate::{
    db::Locks,
    error::{Error, Kind, Result},
    ledger::Ledger,
    limits::Limiter,
};

#[derive(Clone)]
pub(crate) struct Faucet {
    ledger: Ledger,
    locks: Locks,
    limiter: Limiter,
    funder: PrivateKeySigner,
    /// What a new account gets.
    funding: U256,
}

impl Faucet {
    pub(crate) fn new(
        ledger: Ledger,
        locks: Locks,
        limiter: Limiter,
        funder: PrivateKeySigner,
        funding: U256,
    ) -> Faucet {
        Faucet {
            ledger,
            locks,
            limiter,
            funder,
            funding,
        }
    }

    pub(crate) fn address(&self) -> Address {
        self.funder.address()
    }

    /// What a new account gets, in wei.
    pub(crate) fn funding(&self) -> U256 {
        self.funding
    }

    /// Gives a new account enough ether for its transactions.
    pub(crate) async fn fund(&self, account: Address) -> Result<()> {
        self.send(account, self.funding).await
    }

    /// Sends `wei` to `account`, counted against the faucet's daily allowance.
    pub(crate) async fn send(&self, account: Address, wei: U256) -> Result<()> {
        self.limiter.count_funding().await?;
        // The faucet is one sender for every app server: they take turns, so its nonces never
        // collide.
        let _turn = self
            .locks
            .hold(&format!("sender {}", self.funder.address()))
            .await?;
        send(&self.ledger, &self.funder, account, wei).await
    }

    /// Before `account` signs a transaction: when its ether has run below a quarter of what a
    /// new account gets, the faucet brings it back up — a few times a day at most. A person out
    /// of top-ups is told so by the transaction's own refusal if the ether really does not do.
    pub(crate) async fn top_up_if_low(&self, account: Address) -> Result<()> {
        let funding = self.funding;
        if account == self.funder.address() || funding.is_zero() {
            return Ok(());
        }
        let balance = self.ledger.balance(account).await?;
        if balance >= funding / U256::from(4) {
            return Ok(());
        }
        if !self.limiter.count_top_up(account).await? {
            tracing::info!("{account} is low on ether and has had its top-ups for today");
            return Ok(());
        }
        self.send(account, funding - balance).await
    }
}

/// Sends `wei` from `funder` to `to` (nothing for zero); a dry faucet is the operator's to fix.
pub(crate) async fn send(
    ledger: &Ledger,
    funder: &PrivateKeySigner,
    to: Address,
    wei: U256,
) -> Result<()> {
    if wei.is_zero() {
        return Ok(());
    }
    ledger.fund(funder, to, wei).await.map_err(|e| {
        if e.kind == Kind::Forbidden {
            Error::new(
                Kind::Unavailable,
                "the faucet account has run out of ether; the operator must fund it",
            )
        } else {
            e
        }
    })?;
    Ok(())
}
