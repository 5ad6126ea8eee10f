//! The chain index: blocks, each account's transactions and the three contracts' events, copied
//! from the chain into the app database as it grows, so that the access log, an account's
//! transactions and the contracts' counts are read a page at a time, at a cost that does not grow
//! with the chain.
//!
//! The chain stays the truth. Every read first brings the index up to the chain's head (one
//! request to the node when nothing is new); a block whose parent is not the block indexed below
//! it, or a head the index holds under another hash, makes the index drop what the chain no longer
//! holds and copy it again. Several app servers share one index and take turns writing it.

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256},
    providers::Provider,
    rpc::types::{Filter, Log},
};

pub(crate) use crate::store::chain_index::Events;
use std::sync::Arc;

use crate::{
    contracts::Contracts,
    db::{Db, Locks},
    error::{Error, Result},
    ledger::Ledger,
    store::chain_index::ChainIndex,
};

/// Blocks copied in one database transaction.
const BATCH_BLOCKS: u64 = 200;

pub use crate::model::Cursor;

/// What copying a run of blocks came to.
#[derive(Clone, Copy)]
enum Copied {
    Stored,
    /// The first block does not follow the indexed block below it: the chain was reorganised.
    Diverged,
    /// The blocks or logs fetched do not follow each other: the chain moved while they were
    /// fetched.
    Moved,
}

/// The chain index: the app database's copy of the chain's blocks, transactions and the
/// contracts' events, the ledger it copies them from, and the locks servers take turns on.
#[derive(Clone)]
pub(crate) struct Indexer {
    db: Db,
    ledger: Ledger,
    contracts: Contracts,
    locks: Locks,
    /// The chain's head the index was last found at.
    indexed: Arc<std::sync::Mutex<Option<(u64, B256)>>>,
    /// One writer of the index at a time in this server (`Locks` keep servers apart).
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Indexer {
    pub(crate) fn new(db: Db, ledger: Ledger, contracts: Contracts, locks: Locks) -> Indexer {
        Indexer {
            db,
            ledger,
            contracts,
            locks,
            indexed: Arc::default(),
            turn: Arc::default(),
        }
    }

    fn indexed_head(&self) -> Option<(u64, B256)> {
        *self
            .indexed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_indexed_head(&self, head: Option<(u64, B256)>) {
        *self
            .indexed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = head;
    }

    /// Brings the index up to the chain's head; returns the head indexed.
    pub(crate) async fn index_chain(&self) -> Result<u64> {
        let head = self.head().await?;
        if self.indexed_head() == Some(head) {
            return Ok(head.0);
        }
        let _turn = self.turn.lock().await;
        let _held = self.locks.hold("chain index").await?;
        // Turns without a block stored: the chain moved while it was read, or went back.
        let mut unsettled = 0;
        loop {
            let head = self.head().await?;
            let top = self.indexed_top().await?;
            let copied = match top {
                Some(top) if top == head => {
                    self.set_indexed_head(Some(head));
                    return Ok(head.0);
                }
                // The chain is shorter than the index, or holds another block at its head.
                Some(top) if top.0 >= head.0 => {
                    self.rewind(head.0).await?;
                    Copied::Moved
                }
                Some(top) => {
                    self.copy_blocks(top.0 + 1, head.0.min(top.0 + BATCH_BLOCKS))
                        .await?
                }
                None => self.copy_blocks(0, head.0.min(BATCH_BLOCKS - 1)).await?,
            };
            match copied {
                Copied::Stored => unsettled = 0,
                Copied::Diverged | Copied::Moved => {
                    if let (Copied::Diverged, Some(top)) = (copied, top) {
                        self.rewind(top.0).await?;
                    }
                    unsettled += 1;
                    if unsettled > 10 {
                        return Err(Error::new(
                            crate::error::Kind::Unavailable,
                            "the chain keeps changing while it is read; try again in a moment",
                        ));
                    }
                }
            }
        }
    }

    /// The chain's latest block: its number and hash.
    async fn head(&self) -> Result<(u64, B256)> {
        let block = self
            .ledger
            .provider()
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| self.ledger.unavailable(e))?
            .ok_or_else(|| Error::internal("chain index", "the node has no latest block"))?;
        Ok((block.header.number, block.header.hash))
    }

    async fn indexed_top(&self) -> Result<Option<(u64, B256)>> {
        ChainIndex(&self.db).top().await
    }

    /// Drops what the index holds above the highest block at or below `at` that the chain still
    /// holds under the same hash.
    async fn rewind(&self, at: u64) -> Result<()> {
        let mut keep = Some(at);
        while let Some(n) = keep {
            let stored = ChainIndex(&self.db).hash_at(n).await?;
            let chain = self.ledger.blocks(&[n], false).await?;
            if stored.as_deref() == chain.first().map(|b| b.header.hash.to_string()).as_deref() {
                break;
            }
            // Another chain altogether: start again rather than walk back through all of it.
            keep = if n == 0 || self.genesis_differs().await? {
                None
            } else {
                Some(n - 1)
            };
        }
        let above = keep.map_or(-1, |n| n as i64);
        tracing::warn!(
            "the chain no longer holds the indexed blocks above {above}; indexing them again"
        );
        ChainIndex(&self.db).drop_above(above).await?;
        self.set_indexed_head(None);
        Ok(())
    }

    async fn genesis_differs(&self) -> Result<bool> {
        let stored = ChainIndex(&self.db).hash_at(0).await?;
        let chain = self.ledger.blocks(&[0], false).await?;
        Ok(stored != chain.first().map(|b| b.header.hash.to_string()))
    }

    /// Copies blocks `from..=to` with their transactions and the contracts' logs, in one
    /// database transaction.
    async fn copy_blocks(&self, from: u64, to: u64) -> Result<Copied> {
        let numbers: Vec<u64> = (from..=to).collect();
        let blocks = self.ledger.blocks(&numbers, true).await?;
        let below: Option<String> = match from.checked_sub(1) {
            Some(n) => ChainIndex(&self.db).hash_at(n).await?,
            None => None,
        };
        let mut parent = below;
        for b in &blocks {
            if let Some(p) = &parent
                && *p != b.header.parent_hash.to_string()
            {
                return Ok(if b.header.number == from {
                    Copied::Diverged
                } else {
                    Copied::Moved
                });
            }
            parent = Some(b.header.hash.to_string());
        }
        let c = self.contracts;
        let filter = Filter::new()
            .address(vec![c.registry, c.records, c.consent, c.research])
            .from_block(from)
            .to_block(to);
        let logs = self.ledger.logs(&filter).await?;
        // Logs of blocks other than those fetched: the chain moved meanwhile; try again.
        let hash_of = |n: u64| blocks.get((n - from) as usize).map(|b| b.header.hash);
        if logs.iter().any(|l| {
            let n = l.block_number.unwrap_or(u64::MAX);
            !(from..=to).contains(&n) || l.block_hash.is_some_and(|h| Some(h) != hash_of(n))
        }) {
            return Ok(Copied::Moved);
        }
        let contracts = self.contracts;
        ChainIndex(&self.db)
            .store_blocks(&blocks, &logs, |t| {
                crate::contracts::method_name(&contracts, t)
            })
            .await?;
        Ok(Copied::Stored)
    }

    /// The contracts' logs that `query` asks for, newest first.
    pub(crate) async fn indexed_events(&self, query: Events<'_>) -> Result<Vec<Log>> {
        ChainIndex(&self.db).events(query).await
    }

    /// How many logs of `topic0` the contract at `address` has emitted.
    pub(crate) async fn indexed_count(&self, address: Address, topic0: B256) -> Result<u64> {
        ChainIndex(&self.db).count(address, topic0).await
    }
}
