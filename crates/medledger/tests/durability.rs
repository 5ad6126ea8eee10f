//! Crash safety of the `medledger node` process: kill -9 under load, again and again; every
//! transaction whose submission was acknowledged must be there, with its receipt, after each
//! restart, and `medledger verify` must find the stored chain intact. And a disk that refuses a
//! write: the node says so, stops taking transactions, and a restart keeps what was acknowledged.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use medledger_chain::{
    DEV_MNEMONIC, DevAccounts,
    alloy::primitives::{Address, B256},
};
use serde_json::json;
use support::{rpc, signed, start, start_with_file_limit, transfer, verify};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_transaction_survives_repeated_kill_9_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let senders = DevAccounts::from_mnemonic(DEV_MNEMONIC, 8)
        .unwrap()
        .signers()
        .to_vec();
    let sink = Address::repeat_byte(0x42);
    let client = reqwest::Client::new();
    let mut acknowledged: Vec<B256> = Vec::new();
    for round in 0..5u64 {
        let (mut child, url) = start(dir.path());
        // Everything acknowledged before is still there, with a successful receipt.
        for hash in &acknowledged {
            let receipt = rpc(&client, &url, "eth_getTransactionReceipt", json!([hash]))
                .await
                .unwrap();
            assert_eq!(
                receipt["status"], "0x1",
                "round {round}: acknowledged {hash} lost"
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for sender in senders.clone() {
            let (client, url, stop) = (client.clone(), url.clone(), Arc::clone(&stop));
            workers.push(tokio::spawn(async move {
                let count = rpc(
                    &client,
                    &url,
                    "eth_getTransactionCount",
                    json!([sender.address(), "latest"]),
                )
                .await
                .unwrap();
                let mut nonce =
                    u64::from_str_radix(count.as_str().unwrap().trim_start_matches("0x"), 16)
                        .unwrap();
                let mut acked = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match rpc(
                        &client,
                        &url,
                        "eth_sendRawTransaction",
                        json!([transfer(&sender, sink, nonce)]),
                    )
                    .await
                    {
                        Ok(hash) => {
                            acked.push(hash.as_str().unwrap().parse::<B256>().unwrap());
                            nonce += 1;
                        }
                        // The node died mid-request: this one was never acknowledged.
                        Err(_) => break,
                    }
                }
                acked
            }));
        }
        tokio::time::sleep(Duration::from_millis(300 + 150 * round)).await;
        child.kill();
        stop.store(true, Ordering::Relaxed);
        let before = acknowledged.len();
        for worker in workers {
            acknowledged.extend(worker.await.unwrap());
        }
        assert!(
            acknowledged.len() > before,
            "round {round}: the load produced acknowledgements"
        );
    }
    let (mut child, url) = start(dir.path());
    for hash in &acknowledged {
        let receipt = rpc(&client, &url, "eth_getTransactionReceipt", json!([hash]))
            .await
            .unwrap();
        assert_eq!(
            receipt["status"], "0x1",
            "acknowledged {hash} lost after the last kill"
        );
    }
    child.kill();
    let (ok, report) = verify(dir.path());
    assert!(ok, "verify after the crashes: {report}");
    assert!(report.contains("chain: OK"), "{report}");
    eprintln!(
        "{} acknowledged transactions survived 5 kill -9 restarts",
        acknowledged.len()
    );
}

/// A block the disk will not take: the submitter is told why, the node then refuses every
/// transaction and state query (its state holds what is not on disk) but still serves the blocks
/// it stored; after a restart everything acknowledged is there, the refused transaction is not,
/// and it can be sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_the_disk_refuses_stops_the_node_and_a_restart_keeps_every_acknowledgement() {
    disk_refuses_a_block(false).await;
}

/// The same, with the node's log going to a file that is already past the limit, so that no
/// log line can be written either (this once killed the block writer and hung the node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_write_its_log_either_still_stops_cleanly() {
    disk_refuses_a_block(true).await;
}

async fn disk_refuses_a_block(log_past_the_limit: bool) {
    let dir = tempfile::tempdir().unwrap();
    let sender = DevAccounts::from_mnemonic(DEV_MNEMONIC, 1)
        .unwrap()
        .signers()[0]
        .clone();
    let sink = Address::repeat_byte(0x42);
    // Every wait has a bound: a node that hangs fails the test instead of stalling the suite.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let log = dir.path().join("node.log");
    if log_past_the_limit {
        std::fs::write(&log, vec![b'.'; 1 << 20]).unwrap();
    }
    let chain = dir.path().join("data");
    let (mut child, url) = start_with_file_limit(&chain, 64, log_past_the_limit.then_some(&*log));
    let dir = &chain;
    // Transactions of 4 KiB of calldata each, one block each, until the log reaches the limit.
    let payload = |nonce: u64| signed(&sender, sink, nonce, vec![nonce as u8 | 1; 4096]);
    let mut acknowledged = Vec::new();
    let refusal = loop {
        let nonce = acknowledged.len() as u64;
        assert!(nonce < 100, "the file size limit never took effect");
        match rpc(
            &client,
            &url,
            "eth_sendRawTransaction",
            json!([payload(nonce)]),
        )
        .await
        {
            Ok(hash) => acknowledged.push(hash.as_str().unwrap().parse::<B256>().unwrap()),
            Err(e) => break e,
        }
    };
    assert!(
        !acknowledged.is_empty(),
        "no block fitted under the limit: {refusal}"
    );
    assert!(refusal.contains("could not be stored"), "{refusal}");
    assert!(refusal.contains("until restarted"), "{refusal}");
    let stored = acknowledged.len() as u64;
    // From now on: no transaction, no state; the stored blocks are still served.
    let again = rpc(
        &client,
        &url,
        "eth_sendRawTransaction",
        json!([transfer(&sender, sink, stored + 1)]),
    )
    .await
    .unwrap_err();
    assert!(again.contains("until restarted"), "{again}");
    let balance = rpc(&client, &url, "eth_getBalance", json!([sink, "latest"]))
        .await
        .unwrap_err();
    assert!(balance.contains("until restarted"), "{balance}");
    let head = rpc(&client, &url, "eth_blockNumber", json!([]))
        .await
        .unwrap();
    assert_eq!(head, json!(format!("{stored:#x}")));
    child.kill();

    let (mut child, url) = start(dir);
    let head = rpc(&client, &url, "eth_blockNumber", json!([]))
        .await
        .unwrap();
    assert_eq!(head, json!(format!("{stored:#x}")));
    for hash in &acknowledged {
        let receipt = rpc(&client, &url, "eth_getTransactionReceipt", json!([hash]))
            .await
            .unwrap();
        assert_eq!(receipt["status"], "0x1", "acknowledged {hash} lost");
    }
    // The refused transaction never happened, so the same one goes through now.
    rpc(
        &client,
        &url,
        "eth_sendRawTransaction",
        json!([payload(stored)]),
    )
    .await
    .unwrap();
    child.kill();
    let (ok, report) = verify(dir);
    assert!(ok, "verify after the refusal: {report}");
}
