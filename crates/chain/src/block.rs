//! A sealed block: header, transactions with their recovered senders, and receipts; its RLP form
//! is what the block log stores.

use alloy::{
    consensus::{Header, ReceiptEnvelope, Transaction, TxEnvelope},
    eips::Encodable2718,
    primitives::{Address, B256},
};
use alloy_rlp::{RlpDecodable, RlpEncodable};

/// A block as the node keeps it in memory and on disk.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct SealedBlock {
    pub header: Header,
    pub transactions: Vec<TxEnvelope>,
    /// Recovered once at submission and stored, so a restart need not recover signatures again
    /// (`verify` still does).
    pub senders: Vec<Address>,
    pub receipts: Vec<ReceiptEnvelope>,
}

/// The fields every header of this chain shares: post-merge (no ommers, no difficulty), with
/// the Shanghai, Cancun and Prague commitments empty (no withdrawals, blobs or requests).
pub(crate) fn header_template() -> Header {
    Header {
        ommers_hash: alloy::consensus::EMPTY_OMMER_ROOT_HASH,
        beneficiary: Address::ZERO,
        difficulty: alloy::primitives::U256::ZERO,
        nonce: Default::default(),
        withdrawals_root: Some(alloy::consensus::constants::EMPTY_WITHDRAWALS),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        requests_hash: Some(alloy::eips::eip7685::EMPTY_REQUESTS_HASH),
        ..Default::default()
    }
}

/// Where a transaction landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    pub block: u64,
    pub index: usize,
}

impl SealedBlock {
    pub fn hash(&self) -> B256 {
        self.header.hash_slow()
    }

    pub fn number(&self) -> u64 {
        self.header.number
    }

    /// Gas used by the transaction at `index` alone (receipts hold cumulative figures).
    pub fn gas_used(&self, index: usize) -> u64 {
        let cumulative = |i: usize| self.receipts[i].cumulative_gas_used();
        cumulative(index) - if index == 0 { 0 } else { cumulative(index - 1) }
    }

    /// The price per gas the sender actually paid.
    pub fn effective_gas_price(&self, index: usize) -> u128 {
        self.transactions[index].effective_gas_price(self.header.base_fee_per_gas)
    }

    /// The address of the contract created by the transaction at `index`, if it created one.
    pub fn contract_address(&self, index: usize) -> Option<Address> {
        let tx = &self.transactions[index];
        tx.is_create()
            .then(|| self.senders[index].create(tx.nonce()))
    }

    /// Size in bytes of the block's RLP encoding, as `eth_getBlockBy*` reports it.
    pub fn size(&self) -> usize {
        let body: usize = self.transactions.iter().map(|t| t.encode_2718_len()).sum();
        alloy::rlp::Encodable::length(&self.header) + body + 8
    }
}
