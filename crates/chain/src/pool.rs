//! The transaction pool: transactions accepted but not yet mined, per sender in nonce order.
//! A transaction whose nonce leaves a gap waits until the gap is filled, as on Ethereum.

use std::collections::{BTreeMap, HashMap};

use alloy::{
    consensus::Transaction,
    primitives::{Address, B256},
};

use crate::{TxError, executor::PendingTx};

#[derive(Debug, Default)]
pub(crate) struct Pool {
    by_sender: HashMap<Address, BTreeMap<u64, (u64, PendingTx)>>,
    by_hash: HashMap<B256, (Address, u64)>,
    arrivals: u64,
}

impl Pool {
    pub(crate) fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub(crate) fn get(&self, hash: &B256) -> Option<&PendingTx> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        self.by_sender.get(sender)?.get(nonce).map(|(_, tx)| tx)
    }

    /// Accepts a transaction whose sender's next nonce on chain is `state_nonce`; returns the
    /// hash of the pooled transaction it replaced, if any.
    pub(crate) fn insert(
        &mut self,
        tx: PendingTx,
        state_nonce: u64,
    ) -> Result<Option<B256>, TxError> {
        let nonce = tx.tx.nonce();
        if nonce < state_nonce {
            return Err(TxError::NonceTooLow {
                expected: state_nonce,
                got: nonce,
            });
        }
        if self.by_hash.contains_key(&tx.hash) {
            return Err(TxError::AlreadyKnown);
        }
        let queue = self.by_sender.entry(tx.sender).or_default();
        let mut replaced = None;
        if let Some((_, old)) = queue.get(&nonce) {
            // A replacement must raise both fee caps by at least 10%, as geth requires.
            let bumped = |new: u128, old: u128| new >= old + old / 10;
            let tip = |t: &PendingTx| {
                t.tx.max_priority_fee_per_gas()
                    .unwrap_or(t.tx.max_fee_per_gas())
            };
            if !(bumped(tx.tx.max_fee_per_gas(), old.tx.max_fee_per_gas())
                && bumped(tip(&tx), tip(old)))
            {
                return Err(TxError::ReplacementUnderpriced);
            }
            replaced = Some(old.hash);
        }
        if let Some(old) = replaced {
            self.by_hash.remove(&old);
        }
        self.arrivals += 1;
        self.by_hash.insert(tx.hash, (tx.sender, nonce));
        queue.insert(nonce, (self.arrivals, tx));
        Ok(replaced)
    }

    /// The nonce a new transaction from `sender` should use: past the on-chain nonce and every
    /// consecutive pooled one.
    pub(crate) fn pending_nonce(&self, sender: &Address, state_nonce: u64) -> u64 {
        let mut next = state_nonce;
        if let Some(queue) = self.by_sender.get(sender) {
            while queue.contains_key(&next) {
                next += 1;
            }
        }
        next
    }

    /// Whether any transaction can be mined now.
    pub(crate) fn has_executable(&self, nonce_of: impl Fn(&Address) -> u64) -> bool {
        self.by_sender.iter().any(|(sender, queue)| {
            queue
                .first_key_value()
                .is_some_and(|(nonce, _)| *nonce <= nonce_of(sender))
        })
    }

    /// Removes and returns every transaction that can run now: per sender, the run of
    /// consecutive nonces starting at its on-chain nonce; senders in order of first arrival.
    /// Stale transactions (nonce already used) are dropped and returned separately.
    pub(crate) fn take_executable(
        &mut self,
        nonce_of: impl Fn(&Address) -> u64,
    ) -> (Vec<PendingTx>, Vec<(B256, TxError)>) {
        let mut runs: Vec<(u64, Vec<PendingTx>)> = Vec::new();
        let mut stale = Vec::new();
        for (sender, queue) in self.by_sender.iter_mut() {
            let mut next = nonce_of(sender);
            while let Some(entry) = queue.first_entry() {
                if *entry.key() < next {
                    let got = *entry.key();
                    let hash = entry.remove().1.hash;
                    stale.push((
                        hash,
                        TxError::NonceTooLow {
                            expected: next,
                            got,
                        },
                    ));
                } else {
                    break;
                }
            }
            let mut run = Vec::new();
            let mut first_arrival = u64::MAX;
            while let Some(entry) = queue.first_entry() {
                if *entry.key() != next {
                    break;
                }
                let (arrival, tx) = entry.remove();
                first_arrival = first_arrival.min(arrival);
                run.push(tx);
                next += 1;
            }
            if !run.is_empty() {
                runs.push((first_arrival, run));
            }
        }
        self.by_sender.retain(|_, queue| !queue.is_empty());
        for (hash, _) in &stale {
            self.by_hash.remove(hash);
        }
        runs.sort_unstable_by_key(|(arrival, _)| *arrival);
        let txs: Vec<PendingTx> = runs.into_iter().flat_map(|(_, run)| run).collect();
        for tx in &txs {
            self.by_hash.remove(&tx.hash);
        }
        (txs, stale)
    }

    /// Puts back transactions that did not fit in a block.
    pub(crate) fn restore(&mut self, txs: Vec<PendingTx>) {
        for tx in txs {
            let nonce = tx.tx.nonce();
            self.arrivals += 1;
            self.by_hash.insert(tx.hash, (tx.sender, nonce));
            self.by_sender
                .entry(tx.sender)
                .or_default()
                .insert(nonce, (self.arrivals, tx));
        }
    }

    pub(crate) fn clear(&mut self) {
        self.by_sender.clear();
        self.by_hash.clear();
    }
}
