//! Persistence: blocks, receipts and state survive a restart; a torn last write is dropped; any
//! altered byte of the stored chain is found by `verify`, which names the block.

use alloy::{
    primitives::{B256, U256},
    rlp::{Decodable, Encodable},
};
use medledger_chain::{BlockTag, Node, SealedBlock, TxLookup, verify_data_dir};

use crate::{dev, persistent, transfer};

async fn chain_with_blocks(dir: &std::path::Path, n: u64) -> Vec<B256> {
    let node = Node::spawn(persistent(dir)).unwrap();
    let (alice, bob) = (dev(&node, 0), dev(&node, 1).address());
    let mut hashes = Vec::new();
    for nonce in 0..n {
        hashes.push(
            node.send_raw_transaction(&transfer(&node, &alice, bob, 1000 + nonce, nonce))
                .await
                .unwrap(),
        );
    }
    hashes
}

#[tokio::test]
async fn blocks_receipts_and_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hashes = chain_with_blocks(dir.path(), 5).await;
    let node = Node::spawn(persistent(dir.path())).unwrap();
    assert_eq!(node.block_number(), 5);
    for hash in &hashes {
        assert!(matches!(
            node.transaction(hash),
            Some(TxLookup::Mined { .. })
        ));
    }
    let bob = dev(&node, 1).address();
    let expected = U256::from(1000u64) * U256::from(10u64).pow(U256::from(18)) + U256::from(5010);
    assert_eq!(node.balance(bob, BlockTag::Latest).unwrap(), expected);
    assert_eq!(
        node.nonce(dev(&node, 0).address(), BlockTag::Latest)
            .unwrap(),
        5
    );
    // The chain goes on from where it was, and genesis flags of the first start stick.
    let alice = dev(&node, 0);
    node.send_raw_transaction(&transfer(&node, &alice, bob, 1, 5))
        .await
        .unwrap();
    assert_eq!(node.block_number(), 6);
    assert!(verify_data_dir(dir.path()).unwrap().is_ok());
}

/// Init code deploying `PUSH1 1 NUMBER SUB BLOCKHASH PUSH1 0 SSTORE STOP`: each call stores the
/// hash of the previous block in slot 0.
const BLOCKHASH_RECORDER: &str = "6009600c60003960096000f3600143034060005500";

#[tokio::test]
async fn blockhash_sees_the_real_parent_hash_live_on_replay_and_in_history() {
    use alloy::primitives::{Bytes, TxKind};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::spawn(persistent(dir.path())).unwrap();
    let alice = dev(&node, 0);
    let code: Bytes = alloy::primitives::hex::decode(BLOCKHASH_RECORDER)
        .unwrap()
        .into();
    let gwei = crate::GWEI;
    let deploy = crate::eip1559(
        1337,
        &alice,
        TxKind::Create,
        0,
        0,
        100_000,
        100 * gwei,
        gwei,
        code,
    );
    node.send_raw_transaction(&deploy).await.unwrap();
    let contract = alice.address().create(0);
    for nonce in 1..4 {
        let call = crate::eip1559(
            1337,
            &alice,
            TxKind::Call(contract),
            0,
            nonce,
            60_000,
            100 * gwei,
            gwei,
            Bytes::new(),
        );
        node.send_raw_transaction(&call).await.unwrap();
        let head = node.block(BlockTag::Latest).unwrap();
        let stored = node
            .storage(contract, U256::ZERO, BlockTag::Latest)
            .unwrap();
        assert_eq!(
            stored,
            head.block.header.parent_hash,
            "BLOCKHASH(n-1) in block {}",
            head.block.number()
        );
    }
    // A historical state (read from the history) agrees.
    let at_3 = node
        .storage(contract, U256::ZERO, BlockTag::Number(3))
        .unwrap();
    assert_eq!(at_3, node.block(BlockTag::Number(2)).unwrap().hash);
    drop(node);
    // The replay at restart executes BLOCKHASH the same way, or it would refuse the stored chain.
    let node = Node::spawn(persistent(dir.path())).unwrap();
    assert_eq!(node.block_number(), 4);
    assert!(verify_data_dir(dir.path()).unwrap().is_ok());
}

#[tokio::test]
async fn a_data_directory_serves_one_node_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = Node::spawn(persistent(dir.path())).unwrap();
    let err = Node::spawn(persistent(dir.path())).unwrap_err().to_string();
    assert!(err.contains("in use by another medledger process"), "{err}");
    drop(first);
    Node::spawn(persistent(dir.path())).expect("the lock is released with the node");
}

#[tokio::test]
async fn a_torn_last_write_is_dropped_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    chain_with_blocks(dir.path(), 3).await;
    let log = dir.path().join("blocks.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(&[200, 1, 0, 0, 1, 2, 3]); // a frame header promising more than follows
    std::fs::write(&log, &bytes).unwrap();
    let report = verify_data_dir(dir.path()).unwrap();
    assert!(
        report.problem.unwrap().starts_with("block 4:"),
        "verify reports the torn frame"
    );
    let node = Node::spawn(persistent(dir.path())).unwrap();
    assert_eq!(node.block_number(), 3);
    drop(node);
    assert!(
        verify_data_dir(dir.path()).unwrap().is_ok(),
        "opening cut the torn tail"
    );
}

#[tokio::test]
async fn a_damaged_block_in_the_middle_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    chain_with_blocks(dir.path(), 3).await;
    let log = dir.path().join("blocks.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[20] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    let err = Node::spawn(persistent(dir.path())).unwrap_err().to_string();
    assert!(
        err.contains("block 1") && err.contains("medledger verify"),
        "{err}"
    );
}

/// Splits the log into (offset, payload) frames.
fn frames(bytes: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        out.push((pos, bytes[pos + 8..pos + 8 + len].to_vec()));
        pos += 8 + len;
    }
    out
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn verify_detects_every_flipped_byte_and_names_the_block() {
    let dir = tempfile::tempdir().unwrap();
    chain_with_blocks(dir.path(), 4).await;
    assert!(verify_data_dir(dir.path()).unwrap().is_ok());
    let log = dir.path().join("blocks.log");
    let original = std::fs::read(&log).unwrap();
    let starts: Vec<usize> = frames(&original)
        .iter()
        .map(|(offset, _)| *offset)
        .collect();
    // Every byte of the file, one at a time.
    for position in 0..original.len() {
        let mut damaged = original.clone();
        damaged[position] ^= 0x40;
        std::fs::write(&log, &damaged).unwrap();
        let report = verify_data_dir(dir.path()).unwrap();
        let block = starts.iter().rposition(|s| *s <= position).unwrap() + 1;
        let problem = report
            .problem
            .unwrap_or_else(|| panic!("byte {position} flipped unnoticed"));
        assert!(
            problem.starts_with(&format!("block {block}:")),
            "byte {position}: {problem}"
        );
    }
    std::fs::write(&log, &original).unwrap();
}

#[tokio::test]
async fn verify_re_executes_and_catches_consistent_looking_forgeries() {
    // A forger who re-frames a block with a valid checksum is caught by re-execution.
    let dir = tempfile::tempdir().unwrap();
    chain_with_blocks(dir.path(), 3).await;
    let log = dir.path().join("blocks.log");
    let original = std::fs::read(&log).unwrap();
    let decoded: Vec<SealedBlock> = frames(&original)
        .iter()
        .map(|(_, payload)| SealedBlock::decode(&mut payload.as_slice()).unwrap())
        .collect();
    let forge = |change: &dyn Fn(&mut SealedBlock), expect: &str| {
        let mut blocks = decoded.clone();
        change(&mut blocks[1]);
        let mut bytes = Vec::new();
        for block in &blocks {
            let mut payload = Vec::new();
            block.encode(&mut payload);
            bytes.extend(frame(&payload));
        }
        std::fs::write(&log, &bytes).unwrap();
        let problem = verify_data_dir(dir.path())
            .unwrap()
            .problem
            .expect("forgery detected");
        assert!(
            problem.starts_with("block 2:") && problem.contains(expect),
            "{problem}"
        );
    };
    forge(
        &|b| b.senders[0] = alloy::primitives::Address::repeat_byte(7),
        "signed by",
    );
    forge(
        &|b| b.header.state_root = B256::repeat_byte(1),
        "state root",
    );
    forge(&|b| b.header.gas_used += 1, "gas used");
    forge(
        &|b| b.header.parent_hash = B256::repeat_byte(2),
        "parent hash",
    );
    forge(
        &|b| {
            let alloy::consensus::ReceiptEnvelope::Eip1559(r) = &mut b.receipts[0] else {
                panic!()
            };
            r.receipt.cumulative_gas_used += 1;
        },
        "receipt 0",
    );
    std::fs::write(&log, &original).unwrap();
    assert!(verify_data_dir(dir.path()).unwrap().is_ok());
}

/// Ten senders at once: every transaction is answered with its block on disk and in order, the
/// blocks gather what arrived while the one before was being stored, and a transaction is always
/// found by hash (pending or mined) from submission on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_senders_share_blocks_and_every_answer_is_on_disk() {
    const SENDERS: usize = 10;
    const EACH: u64 = 8;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::spawn(persistent(dir.path())).unwrap();
    let bob = dev(&node, SENDERS - 1).address();
    let mut tasks = Vec::new();
    for s in 0..SENDERS - 1 {
        let node = node.clone();
        let from = dev(&node, s);
        tasks.push(tokio::spawn(async move {
            let mut hashes = Vec::new();
            for nonce in 0..EACH {
                let raw = transfer(&node, &from, bob, 1, nonce);
                let lookup = node.clone();
                let hash = alloy::primitives::keccak256(&raw);
                // Looked up while it is pooled, sealed or being stored: once seen, never missing.
                let watcher = tokio::spawn(async move {
                    let mut seen = false;
                    loop {
                        match lookup.transaction(&hash) {
                            Some(TxLookup::Mined { .. }) => break,
                            Some(TxLookup::Pending { .. }) => seen = true,
                            None => assert!(!seen, "{hash} went missing"),
                        }
                        tokio::task::yield_now().await;
                    }
                });
                hashes.push(node.send_raw_transaction(&raw).await.unwrap());
                // Answered means stored and published.
                assert!(matches!(
                    node.transaction(&hash),
                    Some(TxLookup::Mined { .. })
                ));
                watcher.await.unwrap();
            }
            hashes
        }));
    }
    let mut hashes = Vec::new();
    for task in tasks {
        hashes.extend(task.await.unwrap());
    }
    let txs = hashes.len() as u64;
    let blocks = node.block_number();
    assert!(blocks >= EACH && blocks < txs, "{blocks} blocks for {txs}");
    drop(node);
    let node = Node::spawn(persistent(dir.path())).unwrap();
    assert_eq!(node.block_number(), blocks);
    for hash in &hashes {
        assert!(matches!(
            node.transaction(hash),
            Some(TxLookup::Mined { .. })
        ));
    }
    assert!(verify_data_dir(dir.path()).unwrap().is_ok());
}

/// Forced blocks asked for at once are stored together and each caller gets its own number.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_evm_mine_calls_get_consecutive_blocks_that_persist() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::spawn(persistent(dir.path())).unwrap();
    let mines: Vec<_> = (0..20)
        .map(|_| {
            let node = node.clone();
            tokio::spawn(async move { node.mine(None).await.unwrap() })
        })
        .collect();
    let mut numbers = Vec::new();
    for mine in mines {
        numbers.push(mine.await.unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=20).collect::<Vec<u64>>());
    assert_eq!(node.block_number(), 20);
    drop(node);
    let node = Node::spawn(persistent(dir.path())).unwrap();
    assert_eq!(node.block_number(), 20);
    assert!(verify_data_dir(dir.path()).unwrap().is_ok());
}

/// A snapshot taken while blocks are being stored describes one block: reverting to it gives a
/// head and a state that agree (the sender's nonce counts exactly its mined transactions).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_under_load_reverts_to_a_consistent_head_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::spawn(persistent(dir.path())).unwrap();
    let (alice, bob) = (dev(&node, 0), dev(&node, 1).address());
    let sender = {
        let node = node.clone();
        tokio::spawn(async move {
            for nonce in 0..40 {
                node.send_raw_transaction(&transfer(&node, &alice, bob, 1, nonce))
                    .await
                    .unwrap();
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let id = node.snapshot().await.unwrap();
    sender.await.unwrap();
    assert!(node.revert(id).await.unwrap());
    let head = node.block_number();
    let mined: u64 = (1..=head)
        .map(|n| {
            node.block(BlockTag::Number(n))
                .unwrap()
                .block
                .transactions
                .len() as u64
        })
        .sum();
    let alice = dev(&node, 0).address();
    assert_eq!(node.nonce(alice, BlockTag::Latest).unwrap(), mined);
    assert_eq!(
        node.balance(bob, BlockTag::Latest).unwrap(),
        U256::from(1000u64) * U256::from(10u64).pow(U256::from(18)) + U256::from(mined)
    );
    drop(node);
    let node = Node::spawn(persistent(dir.path())).unwrap();
    assert_eq!(node.block_number(), head);
    assert!(verify_data_dir(dir.path()).unwrap().is_ok());
}

/// Init code deploying a counter: each call adds one to slot 0 and returns the new value.
const COUNTER: &str = "6012600c60003960126000f36000546001018060005560005260206000f3";

/// What the state said about the accounts a test follows, as of one block.
#[derive(Debug, PartialEq)]
struct Seen {
    balances: Vec<U256>,
    nonces: Vec<u64>,
    counter: B256,
    code_len: usize,
    /// The counter's answer to a call against that block's state.
    call: Option<alloy::primitives::Bytes>,
}

fn seen(
    node: &Node,
    accounts: &[alloy::primitives::Address],
    contract: alloy::primitives::Address,
    tag: BlockTag,
) -> Seen {
    let call = medledger_chain::CallRequest {
        to: Some(contract),
        ..Default::default()
    };
    let code = node.code(contract, tag).unwrap();
    Seen {
        balances: accounts
            .iter()
            .map(|a| node.balance(*a, tag).unwrap())
            .collect(),
        nonces: accounts
            .iter()
            .map(|a| node.nonce(*a, tag).unwrap())
            .collect(),
        counter: node.storage(contract, U256::ZERO, tag).unwrap(),
        code_len: code.len(),
        call: (!code.is_empty()).then(|| node.call(&call, tag).unwrap().output),
    }
}

#[tokio::test]
async fn every_past_state_reads_as_it_was_then_before_and_after_a_restart_and_a_revert() {
    use alloy::primitives::{Bytes, TxKind};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::spawn(persistent(dir.path())).unwrap();
    let (alice, bob, carol) = (dev(&node, 0), dev(&node, 1), dev(&node, 2).address());
    let accounts = [alice.address(), bob.address(), carol];
    let gwei = crate::GWEI;
    let code: Bytes = alloy::primitives::hex::decode(COUNTER).unwrap().into();
    let contract = alice.address().create(0);
    let mut history = vec![seen(&node, &accounts, contract, BlockTag::Latest)];
    let deploy = crate::eip1559(
        1337,
        &alice,
        TxKind::Create,
        0,
        0,
        100_000,
        100 * gwei,
        gwei,
        code,
    );
    node.send_raw_transaction(&deploy).await.unwrap();
    history.push(seen(&node, &accounts, contract, BlockTag::Latest));
    let (mut alice_nonce, mut bob_nonce) = (1, 0);
    for round in 0..12u64 {
        if round % 3 != 2 {
            let count = crate::eip1559(
                1337,
                &alice,
                TxKind::Call(contract),
                0,
                alice_nonce,
                60_000,
                100 * gwei,
                gwei,
                Bytes::new(),
            );
            alice_nonce += 1;
            node.send_raw_transaction(&count).await.unwrap();
        } else {
            node.send_raw_transaction(&transfer(&node, &bob, carol, 1 + round, bob_nonce))
                .await
                .unwrap();
            bob_nonce += 1;
        }
        history.push(seen(&node, &accounts, contract, BlockTag::Latest));
    }
    let check = |node: &Node, history: &[Seen], when: &str| {
        for (n, expected) in history.iter().enumerate() {
            let got = seen(node, &accounts, contract, BlockTag::Number(n as u64));
            assert_eq!(&got, expected, "the state after block {n}, {when}");
        }
    };
    assert_eq!(node.block_number() as usize + 1, history.len());
    check(&node, &history, "while running");
    assert_eq!(history[0].code_len, 0, "no code before it was deployed");
    assert_ne!(history[5].counter, history[13].counter);
    drop(node);
    // The history is rebuilt from the stored blocks.
    let node = Node::spawn(persistent(dir.path())).unwrap();
    check(&node, &history, "after a restart");
    // A revert forgets the history of the blocks it drops; new blocks take their numbers.
    let id = node.snapshot().await.unwrap();
    node.send_raw_transaction(&transfer(&node, &bob, carol, 999, bob_nonce))
        .await
        .unwrap();
    let dropped = seen(&node, &accounts, contract, BlockTag::Latest);
    assert!(node.revert(id).await.unwrap());
    node.send_raw_transaction(&transfer(&node, &bob, carol, 7, bob_nonce))
        .await
        .unwrap();
    history.push(seen(&node, &accounts, contract, BlockTag::Latest));
    assert_ne!(history.last(), Some(&dropped));
    check(&node, &history, "after a revert");
}
