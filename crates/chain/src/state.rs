//! World state held in memory: accounts, storage and code, readable by revm through `DatabaseRef`
//! and changed only by committing a transaction's result.
//!
//! The header's `stateRoot` is a chained commitment, not a Merkle-Patricia root: after every
//! transaction the changed accounts are encoded in address order and folded into the previous
//! root with keccak. It is deterministic, so `verify` can recompute it, and it is cheap, so
//! sealing a block never walks the whole state. No client this node serves checks the state
//! root (they cannot without `eth_getProof`, which this node does not offer).

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

#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    accounts: HashMap<Address, Account>,
    code: HashMap<B256, Bytecode>,
    /// Hash of every block so far, by number, for the BLOCKHASH opcode.
    block_hashes: Vec<B256>,
    /// The running state commitment (see the module documentation).
    root: B256,
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

    pub(crate) fn code(&self, address: &Address) -> Option<&Bytecode> {
        let account = self.accounts.get(address)?;
        self.code.get(&account.code_hash)
    }

    pub(crate) fn storage(&self, address: &Address, slot: U256) -> U256 {
        self.accounts
            .get(address)
            .and_then(|a| a.storage.get(&slot).copied())
            .unwrap_or_default()
    }

    /// Applies one transaction's changes and folds them into the state commitment.
    pub(crate) fn commit(&mut self, changes: EvmState) {
        let mut touched: Vec<(Address, Vec<u8>)> = Vec::with_capacity(changes.len());
        for (address, account) in changes {
            if !account.is_touched() {
                continue;
            }
            let mut encoded = Vec::with_capacity(96);
            if account.is_selfdestructed() || (account.is_empty() && !account.is_created()) {
                // EIP-161: touched empty accounts are removed, as are destroyed ones.
                self.accounts.remove(&address);
                encoded.push(0);
                touched.push((address, encoded));
                continue;
            }
            let entry = self.accounts.entry(address).or_default();
            if account.is_created() {
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
