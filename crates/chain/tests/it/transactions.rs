//! Transactions: fees charged exactly, nonce rules, refusals with client-recognised messages,
//! the pool's nonce gaps and replacements, reverts with their data, and mining modes.

use std::time::Duration;

use alloy::{
    consensus::Transaction,
    primitives::{Address, Bytes, TxKind, U256},
};
use medledger_chain::{
    BlockTag, CallRequest, Error, MiningMode, Node, NodeConfig, TxError, TxLookup,
};

use crate::{GWEI, dev, eip1559, legacy, transfer};

fn receipt(node: &Node, hash: &alloy::primitives::B256) -> (medledger_chain::BlockRef, usize) {
    match node.transaction(hash) {
        Some(TxLookup::Mined { block, index }) => (block, index),
        _ => panic!("transaction {hash} is not mined"),
    }
}

#[tokio::test]
async fn a_transfer_charges_exactly_gas_used_times_effective_price() {
    let node = Node::spawn(NodeConfig::test()).unwrap();
    let (alice, bob) = (dev(&node, 0), dev(&node, 1).address());
    let before = node.balance(alice.address(), BlockTag::Latest).unwrap();
    let bob_before = node.balance(bob, BlockTag::Latest).unwrap();
    let base_fee = node.next_base_fee();
    let hash = node
        .send_raw_transaction(&transfer(&node, &alice, bob, 12345, 0))
        .await
        .unwrap();
    let (block, index) = receipt(&node, &hash);
    assert_eq!(block.block.number(), 1);
    assert_eq!(block.block.header.base_fee_per_gas, Some(base_fee));
    assert_eq!(block.block.gas_used(index), 21_000);
    let price = block.block.effective_gas_price(index);
    assert_eq!(
        price,
        base_fee as u128 + GWEI,
        "base fee plus the full tip, under the cap"
    );
    let after = node.balance(alice.address(), BlockTag::Latest).unwrap();
    assert_eq!(
        before - after,
        U256::from(12345) + U256::from(21_000u128 * price)
    );
    assert_eq!(
        node.balance(bob, BlockTag::Latest).unwrap() - bob_before,
        U256::from(12345)
    );
    // The base fee is burned: only the tip reaches the block's beneficiary.
    assert_eq!(
        node.balance(Address::ZERO, BlockTag::Latest).unwrap(),
        U256::from(21_000u128 * GWEI)
    );
    // Historical reads still see the old balance.
    assert_eq!(
        node.balance(alice.address(), BlockTag::Number(0)).unwrap(),
        before
    );
    assert_eq!(node.nonce(alice.address(), BlockTag::Latest).unwrap(), 1);
}

#[tokio::test]
async fn legacy_transactions_with_and_without_eip155_are_accepted() {
    let node = Node::spawn(NodeConfig::test()).unwrap();
    let (alice, bob) = (dev(&node, 0), dev(&node, 1).address());
    let gas_price = 2 * node.next_base_fee() as u128;
    node.send_raw_transaction(&legacy(Some(1337), &alice, bob, 1, 0, gas_price))
        .await
        .unwrap();
    let hash = node
        .send_raw_transaction(&legacy(None, &alice, bob, 1, 1, gas_price))
        .await
        .unwrap();
    let (block, index) = receipt(&node, &hash);
    assert_eq!(block.block.transactions[index].chain_id(), None);
    assert_eq!(
        block.block.effective_gas_price(index),
        gas_price,
        "legacy pays its gas price"
    );
    let wrong_chain = legacy(Some(1), &alice, bob, 1, 2, gas_price);
    let err = node.send_raw_transaction(&wrong_chain).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tx(TxError::WrongChainId {
                expected: 1337,
                got: 1
            })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn refusals_use_the_messages_clients_recognise_and_change_nothing() {
    let node = Node::spawn(NodeConfig::test()).unwrap();
    let (alice, bob) = (dev(&node, 0), dev(&node, 1).address());
    node.send_raw_transaction(&transfer(&node, &alice, bob, 1, 0))
        .await
        .unwrap();
    let head = node.block_number();

    let err = node
        .send_raw_transaction(&transfer(&node, &alice, bob, 1, 0))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("nonce too low"), "{err}");

    let pauper = alloy::signers::local::PrivateKeySigner::random();
    let err = node
        .send_raw_transaction(&transfer(&node, &pauper, bob, 1, 0))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("insufficient funds for gas * price + value"),
        "{err}"
    );

    let cheap = eip1559(
        1337,
        &alice,
        TxKind::Call(bob),
        1,
        1,
        21_000,
        1,
        1,
        Bytes::new(),
    );
    let err = node.send_raw_transaction(&cheap).await.unwrap_err();
    assert!(
        err.to_string().contains("less than block base fee"),
        "{err}"
    );

    let huge = eip1559(
        1337,
        &alice,
        TxKind::Call(bob),
        1,
        1,
        1 << 25,
        100 * GWEI,
        GWEI,
        Bytes::new(),
    );
    let err = node.send_raw_transaction(&huge).await.unwrap_err();
    assert_eq!(err.to_string(), "exceeds block gas limit");

    let too_little_gas = eip1559(
        1337,
        &alice,
        TxKind::Call(bob),
        1,
        1,
        20_000,
        100 * GWEI,
        GWEI,
        Bytes::new(),
    );
    let err = node
        .send_raw_transaction(&too_little_gas)
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("intrinsic gas too low"),
        "{err}"
    );

    let err = node
        .send_raw_transaction(b"\x02not a transaction")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");

    assert_eq!(node.block_number(), head, "no refusal mined anything");
    assert_eq!(node.nonce(alice.address(), BlockTag::Pending).unwrap(), 1);
}

#[tokio::test]
async fn a_nonce_gap_waits_in_the_pool_until_it_is_filled() {
    let node = Node::spawn(NodeConfig::test()).unwrap();
    let (alice, bob) = (dev(&node, 0), dev(&node, 1).address());
    let later = node
        .send_raw_transaction(&transfer(&node, &alice, bob, 1, 1))
        .await
        .unwrap();
    assert!(matches!(
        node.transaction(&later),
        Some(TxLookup::Pending { .. })
    ));
    assert_eq!(node.block_number(), 0);
    assert_eq!(
        node.nonce(alice.address(), BlockTag::Pending).unwrap(),
        0,
        "the gap is still open"
    );
    node.send_raw_transaction(&transfer(&node, &alice, bob, 1, 0))
        .await
        .unwrap();
    // The gap is filled: both are mined (the second possibly in a following block).
    for _ in 0..100 {
        if matches!(node.transaction(&later), Some(TxLookup::Mined { .. })) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(matches!(
        node.transaction(&later),
        Some(TxLookup::Mined { .. })
    ));
    assert_eq!(node.nonce(alice.address(), BlockTag::Latest).unwrap(), 2);
}

#[tokio::test]
async fn interval_mining_batches_transactions_and_replacements_need_a_higher_fee() {
    let mut config = NodeConfig::test();
    config.mining = MiningMode::Interval(Duration::from_secs(1));
    let node = Node::spawn(config).unwrap();
    let (alice, bob) = (dev(&node, 0), dev(&node, 1).address());
    let first = eip1559(
        1337,
        &alice,
        TxKind::Call(bob),
        1,
        0,
        21_000,
        10 * GWEI,
        GWEI,
        Bytes::new(),
    );
    node.send_raw_transaction(&first).await.unwrap();
    let err = node.send_raw_transaction(&first).await.unwrap_err();
    assert_eq!(err.to_string(), "already known");
    let same_fee = eip1559(
        1337,
        &alice,
        TxKind::Call(bob),
        2,
        0,
        21_000,
        10 * GWEI,
        GWEI,
        Bytes::new(),
    );
    let err = node.send_raw_transaction(&same_fee).await.unwrap_err();
    assert_eq!(err.to_string(), "replacement transaction underpriced");
    let bumped = eip1559(
        1337,
        &alice,
        TxKind::Call(bob),
        3,
        0,
        21_000,
        20 * GWEI,
        2 * GWEI,
        Bytes::new(),
    );
    let replacement = node.send_raw_transaction(&bumped).await.unwrap();
    for n in 1..5u64 {
        node.send_raw_transaction(&transfer(&node, &alice, bob, 1, n))
            .await
            .unwrap();
    }
    assert_eq!(node.pending_count(), 5);
    let mut heads = node.subscribe_heads();
    heads.changed().await.unwrap();
    let block = node.block(BlockTag::Latest).unwrap();
    assert_eq!(
        block.block.transactions.len(),
        5,
        "one block holds everything that waited"
    );
    assert_eq!(*block.block.transactions[0].tx_hash(), replacement);
    assert_eq!(block.block.transactions[0].value(), U256::from(3));
    // With nothing waiting, blocks keep coming, empty.
    heads.changed().await.unwrap();
    assert!(
        node.block(BlockTag::Latest)
            .unwrap()
            .block
            .transactions
            .is_empty()
    );
}

/// Init code that deploys a contract whose code is `PUSH1 0x2a PUSH1 0 MSTORE PUSH1 32 PUSH1 0
/// REVERT`: every call reverts with the 32-byte word 42.
const REVERTER: &str = "600a600c600039600a6000f3602a60005260206000fd";

#[tokio::test]
async fn a_reverting_call_returns_its_data_and_a_reverting_transaction_is_mined_with_status_0() {
    let node = Node::spawn(NodeConfig::test()).unwrap();
    let alice = dev(&node, 0);
    let code: Bytes = alloy::primitives::hex::decode(REVERTER).unwrap().into();
    let deploy = eip1559(
        1337,
        &alice,
        TxKind::Create,
        0,
        0,
        100_000,
        100 * GWEI,
        GWEI,
        code,
    );
    let hash = node.send_raw_transaction(&deploy).await.unwrap();
    let (block, index) = receipt(&node, &hash);
    let contract = block.block.contract_address(index).unwrap();
    assert_eq!(contract, alice.address().create(0));
    assert_eq!(node.code(contract, BlockTag::Latest).unwrap().len(), 10);

    let request = CallRequest {
        from: Some(alice.address()),
        to: Some(contract),
        ..Default::default()
    };
    match node.call(&request, BlockTag::Latest) {
        Err(Error::Reverted { data, reason }) => {
            assert_eq!(
                data,
                Bytes::from(U256::from(42).to_be_bytes::<32>().to_vec())
            );
            assert_eq!(reason, None, "not an Error(string) payload");
        }
        other => panic!("expected a revert, got {other:?}"),
    }
    assert!(matches!(
        node.estimate_gas(&request, BlockTag::Latest),
        Err(Error::Reverted { .. })
    ));
    let call = eip1559(
        1337,
        &alice,
        TxKind::Call(contract),
        0,
        1,
        50_000,
        100 * GWEI,
        GWEI,
        Bytes::new(),
    );
    let hash = node.send_raw_transaction(&call).await.unwrap();
    let (block, index) = receipt(&node, &hash);
    assert!(!block.block.receipts[index].status());
    assert!(
        block.block.gas_used(index) < 50_000,
        "REVERT refunds the unused gas"
    );
}

#[tokio::test]
async fn snapshot_and_revert_restore_state_and_blocks() {
    let node = Node::spawn(NodeConfig::test()).unwrap();
    let (alice, bob) = (dev(&node, 0), dev(&node, 1).address());
    let id = node.snapshot().await.unwrap();
    let before = node.balance(bob, BlockTag::Latest).unwrap();
    let hash = node
        .send_raw_transaction(&transfer(&node, &alice, bob, 99, 0))
        .await
        .unwrap();
    assert_eq!(node.block_number(), 1);
    assert!(node.revert(id).await.unwrap());
    assert_eq!(node.block_number(), 0);
    assert_eq!(node.balance(bob, BlockTag::Latest).unwrap(), before);
    assert!(node.transaction(&hash).is_none());
    assert!(!node.revert(id).await.unwrap(), "a snapshot is used once");
    // The reverted transaction can be sent again.
    node.send_raw_transaction(&transfer(&node, &alice, bob, 99, 0))
        .await
        .unwrap();
    assert_eq!(node.block_number(), 1);
}

#[tokio::test]
async fn time_moves_forward_with_increase_time_and_set_next_block_timestamp() {
    let node = Node::spawn(NodeConfig::test()).unwrap();
    let start = node.block(BlockTag::Latest).unwrap().block.header.timestamp;
    node.increase_time(3600);
    node.mine(None).await.unwrap();
    let t1 = node.block(BlockTag::Latest).unwrap().block.header.timestamp;
    assert!(t1 >= start + 3600);
    node.set_next_block_timestamp(t1 + 10_000).unwrap();
    node.mine(None).await.unwrap();
    assert_eq!(
        node.block(BlockTag::Latest).unwrap().block.header.timestamp,
        t1 + 10_000
    );
    assert!(
        node.set_next_block_timestamp(1).is_err(),
        "time never runs backwards"
    );
}
