//! From the node's blocks to the JSON shapes clients expect (alloy's RPC types).

use medledger_chain::{
    BlockRef,
    alloy::{
        consensus::{Transaction as _, transaction::Recovered},
        primitives::U256,
        rpc::types::{Block, BlockTransactions, Header, Log, Transaction, TransactionReceipt},
    },
};

pub(crate) fn transaction(block: &BlockRef, index: usize) -> Transaction {
    let b = &block.block;
    Transaction {
        inner: Recovered::new_unchecked(b.transactions[index].clone(), b.senders[index]),
        block_hash: Some(block.hash),
        block_number: Some(b.number()),
        transaction_index: Some(index as u64),
        effective_gas_price: Some(b.effective_gas_price(index)),
        block_timestamp: Some(b.header.timestamp),
    }
}

pub(crate) fn block(block: &BlockRef, full: bool) -> Block {
    let b = &block.block;
    let transactions = if full {
        BlockTransactions::Full(
            (0..b.transactions.len())
                .map(|i| transaction(block, i))
                .collect(),
        )
    } else {
        BlockTransactions::Hashes(b.transactions.iter().map(|t| *t.tx_hash()).collect())
    };
    Block {
        header: Header {
            hash: block.hash,
            inner: b.header.clone(),
            total_difficulty: Some(U256::ZERO),
            size: Some(U256::from(b.size())),
        },
        uncles: Vec::new(),
        transactions,
        withdrawals: Some(Default::default()),
    }
}

/// Every log of a block with its position filled in, in block order.
pub(crate) fn block_logs(block: &BlockRef) -> Vec<Log> {
    let b = &block.block;
    let mut logs = Vec::new();
    let mut log_index = 0u64;
    for (tx_index, receipt) in b.receipts.iter().enumerate() {
        for log in receipt.logs() {
            logs.push(rpc_log(block, tx_index, log_index, log.clone()));
            log_index += 1;
        }
    }
    logs
}

fn rpc_log(
    block: &BlockRef,
    tx_index: usize,
    log_index: u64,
    inner: medledger_chain::alloy::primitives::Log,
) -> Log {
    let b = &block.block;
    Log {
        inner,
        block_hash: Some(block.hash),
        block_number: Some(b.number()),
        block_timestamp: Some(b.header.timestamp),
        transaction_hash: Some(*b.transactions[tx_index].tx_hash()),
        transaction_index: Some(tx_index as u64),
        log_index: Some(log_index),
        removed: false,
    }
}

pub(crate) fn receipt(block: &BlockRef, index: usize) -> TransactionReceipt {
    let b = &block.block;
    let first_log: u64 = b.receipts[..index]
        .iter()
        .map(|r| r.logs().len() as u64)
        .sum();
    let mut next = first_log;
    let inner = b.receipts[index].clone().map_logs(|log| {
        let log = rpc_log(block, index, next, log);
        next += 1;
        log
    });
    let tx = &b.transactions[index];
    TransactionReceipt {
        inner,
        transaction_hash: *tx.tx_hash(),
        transaction_index: Some(index as u64),
        block_hash: Some(block.hash),
        block_number: Some(b.number()),
        gas_used: b.gas_used(index),
        effective_gas_price: b.effective_gas_price(index),
        blob_gas_used: None,
        blob_gas_price: None,
        from: b.senders[index],
        to: tx.to(),
        contract_address: b.contract_address(index),
    }
}

/// The tips paid in a block, for `eth_feeHistory`'s reward percentiles: each percentile is the
/// smallest tip such that transactions paying at most it used that share of the block's gas.
pub(crate) fn reward_percentiles(block: &BlockRef, percentiles: &[f64]) -> Vec<u128> {
    let b = &block.block;
    let base_fee = b.header.base_fee_per_gas.unwrap_or_default();
    let mut tips: Vec<(u128, u64)> = (0..b.transactions.len())
        .map(|i| {
            (
                b.transactions[i]
                    .effective_tip_per_gas(base_fee)
                    .unwrap_or(0),
                b.gas_used(i),
            )
        })
        .collect();
    if tips.is_empty() {
        return vec![0; percentiles.len()];
    }
    tips.sort_unstable_by_key(|(tip, _)| *tip);
    let total: u64 = tips.iter().map(|(_, gas)| gas).sum();
    percentiles
        .iter()
        .map(|p| {
            let threshold = (total as f64 * p / 100.0) as u64;
            let mut cumulative = 0u64;
            for (tip, gas) in &tips {
                cumulative += gas;
                if cumulative >= threshold {
                    return *tip;
                }
            }
            tips.last().map_or(0, |(tip, _)| *tip)
        })
        .collect()
}
