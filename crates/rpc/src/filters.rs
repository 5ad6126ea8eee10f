//! Polling filters (`eth_newFilter`, `eth_newBlockFilter`, `eth_getFilterChanges`): each remembers
//! the last block it reported; unpolled filters expire after five minutes, as in geth.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use medledger_chain::alloy::{primitives::U256, rpc::types::Filter};
use parking_lot::Mutex;

const EXPIRY: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub(crate) enum FilterKind {
    Blocks,
    PendingTransactions,
    Logs(Box<Filter>),
}

#[derive(Debug)]
struct Entry {
    kind: FilterKind,
    /// The last block whose changes were reported.
    last_block: u64,
    last_poll: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Filters {
    next_id: Mutex<u64>,
    entries: Mutex<HashMap<U256, Entry>>,
}

impl Filters {
    pub(crate) fn install(&self, kind: FilterKind, head: u64) -> U256 {
        let mut next = self.next_id.lock();
        *next += 1;
        let id = U256::from(*next);
        let mut entries = self.entries.lock();
        entries.retain(|_, e| e.last_poll.elapsed() < EXPIRY);
        entries.insert(
            id,
            Entry {
                kind,
                last_block: head,
                last_poll: Instant::now(),
            },
        );
        id
    }

    /// The filter's kind and the block range not yet reported; marks it reported up to `head`.
    pub(crate) fn poll(&self, id: U256, head: u64) -> Option<(FilterKind, u64, u64)> {
        let mut entries = self.entries.lock();
        let entry = entries.get_mut(&id)?;
        if entry.last_poll.elapsed() >= EXPIRY {
            entries.remove(&id);
            return None;
        }
        let from = entry.last_block + 1;
        entry.last_block = head.max(entry.last_block);
        entry.last_poll = Instant::now();
        Some((entry.kind.clone(), from, head))
    }

    pub(crate) fn get(&self, id: U256) -> Option<FilterKind> {
        self.entries.lock().get(&id).map(|e| e.kind.clone())
    }

    pub(crate) fn uninstall(&self, id: U256) -> bool {
        self.entries.lock().remove(&id).is_some()
    }
}
