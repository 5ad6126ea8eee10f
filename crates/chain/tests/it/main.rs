//! Integration tests of the embedded node through its public API: transactions and fees, the
//! pool, mining modes, persistence across restarts and the verifier.

mod persistence;
mod transactions;

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy},
    eips::Encodable2718,
    primitives::{Address, Bytes, TxKind, U256},
    signers::{SignerSync, local::PrivateKeySigner},
};
use medledger_chain::{Node, NodeConfig};

pub(crate) const GWEI: u128 = 1_000_000_000;

pub(crate) fn dev(node: &Node, i: usize) -> PrivateKeySigner {
    node.dev_accounts().signers()[i].clone()
}

/// An EIP-1559 transfer, signed.
pub(crate) fn transfer(
    node: &Node,
    from: &PrivateKeySigner,
    to: Address,
    value: u64,
    nonce: u64,
) -> Vec<u8> {
    eip1559(
        node.chain_id(),
        from,
        TxKind::Call(to),
        value,
        nonce,
        21_000,
        100 * GWEI,
        GWEI,
        Bytes::new(),
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn eip1559(
    chain_id: u64,
    from: &PrivateKeySigner,
    to: TxKind,
    value: u64,
    nonce: u64,
    gas_limit: u64,
    max_fee: u128,
    tip: u128,
    input: Bytes,
) -> Vec<u8> {
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: tip,
        to,
        value: U256::from(value),
        access_list: Default::default(),
        input,
    };
    let signature = from.sign_hash_sync(&tx.signature_hash()).unwrap();
    TxEnvelope::Eip1559(tx.into_signed(signature)).encoded_2718()
}

pub(crate) fn legacy(
    chain_id: Option<u64>,
    from: &PrivateKeySigner,
    to: Address,
    value: u64,
    nonce: u64,
    gas_price: u128,
) -> Vec<u8> {
    let tx = TxLegacy {
        chain_id,
        nonce,
        gas_price,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value: U256::from(value),
        input: Bytes::new(),
    };
    let signature = from.sign_hash_sync(&tx.signature_hash()).unwrap();
    TxEnvelope::Legacy(tx.into_signed(signature)).encoded_2718()
}

pub(crate) fn persistent(dir: &std::path::Path) -> NodeConfig {
    NodeConfig::new(Some(dir.to_path_buf()))
}
