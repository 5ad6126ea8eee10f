//! World state held in memory: accounts, storage and code, readable by revm through `DatabaseRef`
//! and changed only by committing a transaction's result.
//!
//! The header's `stateRoot` is a chained commitment, not a Merkle-Patricia root: after every
//! transaction the changed accounts are encoded in address order and folded into the previous
//! root with keccak. It is deterministic, so `verify` can recompute it, and it is cheap, so
//! sealing a block never walks the whole state. No client this node serves checks the state
//! root (they cannot without `eth_getProof`, which this node does not offer).
//!
//! Past state is read from a history kept beside the current state: every value an account or a
//! storage slot has held, with the block that set it. Reading the state after block N finds, for
//! each key read, the last value set at or before N (a binary search), so a query at an old block
//! costs the same however long the chain has grown; nothing is replayed.

use std::{collections::HashMap, convert::Infallible};

use alloy::primitives::{Address, B256, KECCAK256_EMPTY, U256, keccak256};
use revm::{
    DatabaseRef,
    bytecode::Bytecode,
    state::{AccountInfo, EvmState},
};

#[derive(Debug, Clone, Default)]
pub(crate) struct Account {
    pub(crate) balance: U256,
    pub(crate) nonce: u64,
    pub(crate) code_hash: B256,
    pub(crate) storage: HashMap<U256, U256>,
}

/// An account's fields apart from its storage, as one block left them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    balance: U256,
    nonce: u64,
    code_hash: B256,
}

/// The values each key has held, oldest first, each with the block that set it (one entry per
/// block: a later transaction of the same block replaces it). Genesis values are set at block 0.
#[derive(Debug, Clone, Default)]
struct History {
    /// `None`: the account did not exist after that block.
    accounts: HashMap<Address, Vec<(u64, Option<Version>)>>,
    storage: HashMap<(Address, U256), Vec<(u64, U256)>>,
}

/// Sets `value` as of `block` in a key's history.
fn record<T>(versions: &mut Vec<(u64, T)>, block: u64, value: T) {
    match versions.last_mut() {
        Some((at, last)) if *at == block => *last = value,
        _ => versions.push((block, value)),
    }
}

/// The value a key held after `block`, if it was set by then.
fn as_of<T>(versions: &[(u64, T)], block: u64) -> Option<&T> {
    let after = versions.partition_point(|(at, _)| *at <= block);
    after.checked_sub(1).map(|i| &versions[i].1)
}

#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    accounts: HashMap<Address, Account>,
    code: HashMap<B256, Bytecode>,
    /// Hash of every block so far, by number, for the BLOCKHASH opcode. Its length is the number
    /// of the block being executed.
    block_hashes: Vec<B256>,
    /// The running state commitment (see the module documentation).
    root: B256,
    history: History,
}

impl State {
    pub(crate) fn from_alloc(alloc: &[(Address, U256)]) -> Self {
        let mut state = State::default();
        let mut encoded = Vec::new();
        for (address, balance) in alloc {
            state.accounts.insert(
                *address,
                Account {
                    balance: *balance,
                    code_hash: KECCAK256_EMPTY,
                    ..Default::default()
                },
            );
            let version = Version {
                balance: *balance,
                nonce: 0,
                code_hash: KECCAK256_EMPTY,
            };
            state
                .history
                .accounts
                .insert(*address, vec![(0, Some(version))]);
            encoded.extend_from_slice(address.as_slice());
            encoded.extend_from_slice(&balance.to_be_bytes::<32>());
        }
        state.root = keccak256(&encoded);
        state
    }

    pub(crate) fn root(&self) -> B256 {
        self.root
    }

    pub(crate) fn push_block_hash(&mut self, hash: B256) {
        self.block_hashes.push(hash);
    }

    pub(crate) fn balance(&self, address: &Address) -> U256 {
        self.accounts
            .get(address)
            .map(|a| a.balance)
            .unwrap_or_default()
    }

    pub(crate) fn nonce(&self, address: &Address) -> u64 {
        self.accounts
            .get(address)
            .map(|a| a.nonce)
            .unwrap_or_default()
    }

    pub(crate) fn storage(&self, address: &Address, slot: U256) -> U256 {
        self.accounts
            .get(address)
            .and_then(|a| a.storage.get(&slot).copied())
            .unwrap_or_default()
    }

    /// The state as it is now.
    pub(crate) fn latest(&self) -> StateAt<'_> {
        StateAt {
            state: self,
            block: None,
        }
    }

    /// The state after block `number`, read from the history.
    pub(crate) fn at(&self, number: u64) -> StateAt<'_> {
        StateAt {
            state: self,
            block: Some(number),
        }
    }

    /// The block whose transactions are being committed.
    fn executing(&self) -> u64 {
        self.block_hashes.len() as u64
    }

    /// Applies one transaction's changes and folds them into the state commitment.
    pub(crate) fn commit(&mut self, changes: EvmState) {
        let block = self.executing();
        let mut touched: Vec<(Address, Vec<u8>)> = Vec::with_capacity(changes.len());
        for (address, account) in changes {
            if !account.is_touched() {
                continue;
            }
            let mut encoded = Vec::with_capacity(96);
            if account.is_selfdestructed() || (account.is_empty() && !account.is_created()) {
                // EIP-161: touched empty accounts are removed, as are destroyed ones.
                if let Some(gone) = self.accounts.remove(&address) {
                    self.history
                        .forget_storage(address, gone.storage.keys(), block);
                }
                record(
                    self.history.accounts.entry(address).or_default(),
                    block,
                    None,
                );
                encoded.push(0);
                touched.push((address, encoded));
                continue;
            }
            let entry = self.accounts.entry(address).or_default();
            if account.is_created() {
                self.history
                    .forget_storage(address, entry.storage.keys(), block);
                entry.storage.clear();
            }
            entry.balance = account.info.balance;
            entry.nonce = account.info.nonce;
            entry.code_hash = account.info.code_hash;
            if let Some(code) = account.info.code
                && account.info.code_hash != KECCAK256_EMPTY
            {
                self.code.entry(account.info.code_hash).or_insert(code);
            }
            let version = Version {
                balance: entry.balance,
                nonce: entry.nonce,
                code_hash: entry.code_hash,
            };
            record(
                self.history.accounts.entry(address).or_default(),
                block,
                Some(version),
            );
            encoded.push(1);
            encoded.extend_from_slice(&entry.balance.to_be_bytes::<32>());
            encoded.extend_from_slice(&entry.nonce.to_be_bytes());
            encoded.extend_from_slice(entry.code_hash.as_slice());
            let mut slots: Vec<(U256, U256)> = account
                .storage
                .iter()
                .filter(|(_, slot)| slot.is_changed())
                .map(|(key, slot)| (*key, slot.present_value()))
                .collect();
            slots.sort_unstable_by_key(|(key, _)| *key);
            for (key, value) in slots {
                if value.is_zero() {
                    entry.storage.remove(&key);
                } else {
                    entry.storage.insert(key, value);
                }
                record(
                    self.history.storage.entry((address, key)).or_default(),
                    block,
                    value,
                );
                encoded.extend_from_slice(&key.to_be_bytes::<32>());
                encoded.extend_from_slice(&value.to_be_bytes::<32>());
            }
            touched.push((address, encoded));
        }
        touched.sort_unstable_by_key(|(address, _)| *address);
        let mut preimage = Vec::with_capacity(32 + touched.len() * 128);
        preimage.extend_from_slice(self.root.as_slice());
        for (address, encoded) in touched {
            preimage.extend_from_slice(address.as_slice());
            preimage.extend_from_slice(&encoded);
        }
        self.root = keccak256(&preimage);
    }
}

impl History {
    /// Records that an account's slots were emptied (the account was created again or removed).
    fn forget_storage<'a>(
        &mut self,
        address: Address,
        slots: impl Iterator<Item = &'a U256>,
        block: u64,
    ) {
        for slot in slots {
            record(
                self.storage.entry((address, *slot)).or_default(),
                block,
                U256::ZERO,
            );
        }
    }
}

/// The state as of one block (or as it is now), readable by revm.
#[derive(Clone, Copy)]
pub(crate) struct StateAt<'a> {
    state: &'a State,
    /// `None`: now.
    block: Option<u64>,
}

impl StateAt<'_> {
    fn version(&self, address: &Address) -> Option<Version> {
        match self.block {
            None => self.state.accounts.get(address).map(|a| Version {
                balance: a.balance,
                nonce: a.nonce,
                code_hash: a.code_hash,
            }),
            Some(block) => self
                .state
                .history
                .accounts
                .get(address)
                .and_then(|versions| as_of(versions, block).copied().flatten()),
        }
    }

    pub(crate) fn balance(&self, address: &Address) -> U256 {
        self.version(address).map(|v| v.balance).unwrap_or_default()
    }

    pub(crate) fn nonce(&self, address: &Address) -> u64 {
        self.version(address).map(|v| v.nonce).unwrap_or_default()
    }

    pub(crate) fn code(&self, address: &Address) -> Option<&Bytecode> {
        let version = self.version(address)?;
        self.state.code.get(&version.code_hash)
    }

    pub(crate) fn storage(&self, address: &Address, slot: U256) -> U256 {
        match self.block {
            None => self.state.storage(address, slot),
            Some(block) => self
                .state
                .history
                .storage
                .get(&(*address, slot))
                .and_then(|versions| as_of(versions, block).copied())
                .unwrap_or_default(),
        }
    }
}

impl DatabaseRef for StateAt<'_> {
    type Error = Infallible;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self.version(&address).map(|v| AccountInfo {
            balance: v.balance,
            nonce: v.nonce,
            code_hash: v.code_hash,
            code: self.state.code.get(&v.code_hash).cloned(),
            ..Default::default()
        }))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        self.state.code_by_hash_ref(code_hash)
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        Ok(self.storage(&address, index))
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        self.state.block_hash_ref(number)
    }
}

impl DatabaseRef for State {
    type Error = Infallible;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self.accounts.get(&address).map(|a| AccountInfo {
            balance: a.balance,
            nonce: a.nonce,
            code_hash: a.code_hash,
            code: self.code.get(&a.code_hash).cloned(),
            ..Default::default()
        }))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Ok(self.code.get(&code_hash).cloned().unwrap_or_default())
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        Ok(self.storage(&address, index))
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        Ok(self
            .block_hashes
            .get(number as usize)
            .copied()
            .unwrap_or_default())
    }
}
