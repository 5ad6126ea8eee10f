//! Crash safety of the `medledger node` process: kill -9 under load, again and again; every
//! transaction whose submission was acknowledged must be there, with its receipt, after each
//! restart, and `medledger verify` must find the stored chain intact.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use medledger_chain::{
    DEV_MNEMONIC, DevAccounts,
    alloy::{
        consensus::{SignableTransaction, TxEip1559, TxEnvelope},
        eips::Encodable2718,
        primitives::{Address, B256, TxKind, U256},
        signers::{SignerSync, local::PrivateKeySigner},
    },
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_medledger");

/// Starts the node on a free loopback port and returns it with its JSON-RPC URL.
fn start(dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["node", "--rpc-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the medledger binary runs");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("the node prints its address").unwrap();
        if let Some(addr) = line.strip_prefix("Listening on ") {
            break format!("http://{addr}");
        }
    };
    // Keep draining stdout so the node never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

async fn rpc(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    params: Value,
) -> Result<Value, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let response = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let value: Value = response.json().await.map_err(|e| e.to_string())?;
    match value.get("error") {
        Some(error) => Err(error.to_string()),
        None => Ok(value["result"].clone()),
    }
}

fn transfer(from: &PrivateKeySigner, to: Address, nonce: u64) -> String {
    let tx = TxEip1559 {
        chain_id: 1337,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 50_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value: U256::from(1),
        access_list: Default::default(),
        input: Default::default(),
    };
    let signature = from.sign_hash_sync(&tx.signature_hash()).unwrap();
    format!(
        "0x{}",
        alloy_hex(&TxEnvelope::Eip1559(tx.into_signed(signature)).encoded_2718())
    )
}

fn alloy_hex(bytes: &[u8]) -> String {
    medledger_chain::alloy::primitives::hex::encode(bytes)
}

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
        child.kill().expect("SIGKILL"); // kill -9: no chance to flush anything
        child.wait().unwrap();
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
    child.kill().unwrap();
    child.wait().unwrap();
    let verify = Command::new(BIN)
        .arg("verify")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "verify after the crashes: {report}"
    );
    assert!(report.contains("chain: OK"), "{report}");
    eprintln!(
        "{} acknowledged transactions survived 5 kill -9 restarts",
        acknowledged.len()
    );
}
