//! `medledger serve` as a newcomer runs it: first start (generated admin password, shown once),
//! `--demo`, kill -9 and restart with everything acknowledged still there, `verify` catching a
//! tampered report, and clear refusals of a weak admin password or a foreign escrow key. And on
//! an external chain whose node stops storing blocks: a degraded health check and clear 503s.

mod support;

use std::{path::Path, process::Command};

use serde_json::{Value, json};

use support::{BIN, get, login, printed_password, serve_command as command, start_serve as start};

/// `medledger verify` on the server's data directory.
fn verify(dir: &Path) -> (bool, String) {
    support::verify(&dir.join("data"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_demo_crash_restart_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let first = start({
        let mut cmd = command(dir.path(), &["--demo"]);
        cmd.env_remove("MEDLEDGER_ADMIN_PASSWORD");
        cmd
    });
    let url = first.url.clone();
    let admin_password =
        printed_password(&first.lines, "Admin login: admin /").expect("a generated admin password");
    assert!(admin_password.len() >= 20, "{admin_password}");
    let alice = printed_password(&first.lines, "patient  alice").expect("alice's demo login");
    let health: Value = client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    let hospitals: Value = client
        .get(format!("{url}/api/v1/hospitals"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hospitals["hospitals"].as_array().unwrap().len(), 3);
    let token = login(&client, &url, "alice", &alice)
        .await
        .expect("alice logs in");
    let records = get(&client, &format!("{url}/api/v1/records"), &token).await;
    assert_eq!(records["records"].as_array().unwrap().len(), 1, "{records}");
    assert!(
        login(&client, &url, "admin", &admin_password)
            .await
            .is_some()
    );
    let doctors: Value = client
        .get(format!("{url}/api/v1/doctors"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doctors["doctors"].as_array().unwrap().len(), 3);

    // kill -9: everything acknowledged survives; the password is not printed again.
    drop(first);
    // Restarting with --demo (as the README's first command does) seeds nothing twice.
    let second = start(command(dir.path(), &["--demo"]));
    assert!(
        !second.lines.iter().any(|l| l.contains(&admin_password)),
        "{:?}",
        second.lines
    );
    assert!(
        second.lines.iter().any(|l| l.contains("nothing seeded")),
        "{:?}",
        second.lines
    );
    let url = second.url.clone();
    let token = login(&client, &url, "alice", &alice)
        .await
        .expect("alice still logs in");
    let records = get(&client, &format!("{url}/api/v1/records"), &token).await;
    let id = records["records"][0]["id"].as_str().unwrap().to_string();
    let bytes = client
        .get(format!("{url}/api/v1/records/{id}/content"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&bytes).starts_with("Demo report for Alice"));
    // SIGTERM (what a service manager sends) stops it cleanly.
    let mut second = second;
    let pid = second.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = second.child.wait().unwrap();
    assert!(status.success(), "{status}");
    drop(second);

    let (ok, out) = verify(dir.path());
    assert!(ok, "{out}");
    assert!(
        out.contains("chain: OK") && out.contains("reports: OK"),
        "{out}"
    );
    assert!(out.contains("2 stored records checked"), "{out}");
    let blob = std::fs::read_dir(dir.path().join("data/blobs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[10] ^= 0x80;
    std::fs::write(&blob, bytes).unwrap();
    let (ok, out) = verify(dir.path());
    assert!(!ok, "{out}");
    assert!(out.contains("reports: MISMATCH"), "{out}");
}

#[test]
fn a_weak_admin_password_or_a_foreign_escrow_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), &[])
        .env("MEDLEDGER_ADMIN_PASSWORD", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MEDLEDGER_ADMIN_PASSWORD") && stderr.contains("12"),
        "{stderr}"
    );

    // A good start, then the escrow key swapped for another.
    let started = start({
        let mut cmd = command(dir.path(), &[]);
        cmd.env("MEDLEDGER_ADMIN_PASSWORD", "a good long admin password");
        cmd
    });
    assert!(
        started
            .lines
            .iter()
            .any(|l| l.contains("MEDLEDGER_ADMIN_PASSWORD")),
        "{:?}",
        started.lines
    );
    drop(started);
    // The research key swapped for another: its participants' bundles would not open.
    let research = dir.path().join("escrow.research-key");
    let kept = std::fs::read(&research).expect("the research key is made beside the escrow key");
    std::fs::write(&research, "11".repeat(32)).unwrap();
    let out = command(dir.path(), &[]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("research key"), "{stderr}");
    std::fs::write(&research, kept).unwrap();
    std::fs::remove_file(dir.path().join("escrow.key")).unwrap();
    let out = command(dir.path(), &[]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("escrow key"), "{stderr}");
}

#[test]
fn a_bad_safe_harbor_table_or_k_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("zip3.txt");
    std::fs::write(&table, "# restricted\n036\n12345\n").unwrap();
    let out = command(dir.path(), &["--safe-harbor-zip3"])
        .arg(&table)
        .env("MEDLEDGER_ADMIN_PASSWORD", "a good long admin password")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--safe-harbor-zip3")
            && stderr.contains("line 3")
            && stderr.contains("12345"),
        "{stderr}"
    );
    let out = command(dir.path(), &["--k-anonymity", "1"])
        .env("MEDLEDGER_ADMIN_PASSWORD", "a good long admin password")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("k must be at least 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("data").exists(), "nothing was started");
}

/// The chain's node (a separate `medledger node`, as a consortium's would be) runs out of disk:
/// `/healthz` turns degraded and says the chain answers no state; a write and a read of the
/// chain are refused with 503 and a sentence saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_that_stops_storing_blocks_degrades_health_and_writes_get_503() {
    use medledger_chain::{
        DEV_MNEMONIC, DevAccounts,
        alloy::primitives::{Address, hex},
    };
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    // Room for the deployment and the admin, not for much more.
    let (_node, chain) = support::start_with_file_limit(&dir.path().join("chain"), 2048, None);
    let dev = DevAccounts::from_mnemonic(DEV_MNEMONIC, 6)
        .unwrap()
        .signers()
        .to_vec();
    let password = "a long admin password";
    let server = start({
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--http-addr", "127.0.0.1:0", "--chain-rpc", &chain])
            .arg("--funder-key")
            .arg(hex::encode(dev[0].to_bytes()))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--escrow-key")
            .arg(dir.path().join("escrow.key"))
            .env("MEDLEDGER_ADMIN_PASSWORD", password);
        cmd
    });
    let url = server.url.clone();
    let health = |client: reqwest::Client, url: String| async move {
        let response = client.get(format!("{url}/healthz")).send().await.unwrap();
        let status = response.status();
        (status, response.json::<Value>().await.unwrap())
    };
    let (status, body) = health(client.clone(), url.clone()).await;
    assert_eq!(
        (status.as_u16(), &body["chain_state"]),
        (200, &json!(true)),
        "{body}"
    );
    let token = login(&client, &url, "admin", password)
        .await
        .expect("admin logs in");

    // Someone else's transactions fill the node's disk.
    let sink = Address::repeat_byte(0x42);
    let mut nonce = 0;
    let refusal = loop {
        assert!(nonce < 1000, "the file size limit never took effect");
        let raw = support::signed(&dev[5], sink, nonce, vec![7; 8192]);
        match support::rpc(&client, &chain, "eth_sendRawTransaction", json!([raw])).await {
            Ok(_) => nonce += 1,
            Err(e) => break e,
        }
    };
    assert!(refusal.contains("could not be stored"), "{refusal}");

    let (status, body) = health(client.clone(), url.clone()).await;
    assert_eq!(status.as_u16(), 503, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["chain_state"], false, "{body}");
    assert_eq!(body["degraded"], json!(["chain"]), "{body}");
    assert_eq!(body["backends"]["chain"]["ok"], false, "{body}");
    assert_eq!(body["backends"]["database"]["ok"], true, "{body}");
    assert!(
        body["latest_block"].is_u64(),
        "the stored blocks are still served: {body}"
    );
    let response = client
        .post(format!("{url}/api/v1/hospitals"))
        .bearer_auth(&token)
        .json(&json!({"name": "Clinique du Disque Plein", "city": "Lyon"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("has stopped"), "{message}");
    assert!(message.contains("nothing was changed"), "{message}");
    // Reads of the chain's state are refused as clearly.
    let response = client
        .get(format!("{url}/api/v1/hospitals"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has stopped"),
        "{body}"
    );
}

/// The node inside `serve` is a ledger, not a test chain: no test method rewrites its history or
/// moves its clock, no unlocked account signs, the public test mnemonic holds no ether, the
/// faucet's key is made at first start and never printed, and CORS admits the app's own origin
/// (or those the operator lists) only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_inside_serve_is_a_ledger_not_a_test_chain() {
    use medledger_chain::{
        DEV_MNEMONIC, DevAccounts,
        alloy::primitives::{Address, hex},
    };
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let started = start({
        let mut cmd = command(dir.path(), &["--rpc-cors", "http://wallet.example"]);
        cmd.env("MEDLEDGER_ADMIN_PASSWORD", "a good long admin password");
        cmd
    });
    let rpc_url = started
        .lines
        .iter()
        .find_map(|l| l.split("): ").nth(1).filter(|_| l.contains("JSON-RPC")))
        .expect("serve prints the node's JSON-RPC address")
        .to_string();
    for (method, params) in [
        ("evm_snapshot", json!([])),
        ("evm_revert", json!(["0x1"])),
        ("evm_increaseTime", json!([365 * 86400])),
        ("evm_mine", json!([])),
        ("evm_setNextBlockTimestamp", json!(["0x7fffffff"])),
        (
            "eth_sendTransaction",
            json!([{"from": Address::ZERO, "to": Address::ZERO}]),
        ),
    ] {
        let error = support::rpc(&client, &rpc_url, method, params)
            .await
            .unwrap_err();
        assert!(error.contains("-32601"), "{method}: {error}");
    }
    let accounts = support::rpc(&client, &rpc_url, "eth_accounts", json!([]))
        .await
        .unwrap();
    assert_eq!(accounts, json!([]), "no unlocked accounts");
    // Account 0 of the public mnemonic (whose key every tutorial prints) holds nothing.
    let public = DevAccounts::from_mnemonic(DEV_MNEMONIC, 1)
        .unwrap()
        .signers()[0]
        .clone();
    let balance = support::rpc(
        &client,
        &rpc_url,
        "eth_getBalance",
        json!([public.address(), "latest"]),
    )
    .await
    .unwrap();
    assert_eq!(balance, json!("0x0"));
    let refused = support::rpc(
        &client,
        &rpc_url,
        "eth_sendRawTransaction",
        json!([support::transfer(&public, Address::repeat_byte(9), 0)]),
    )
    .await
    .unwrap_err();
    assert!(refused.contains("insufficient funds"), "{refused}");
    // The faucet key: made at first start, owner-only, never printed.
    let key = std::fs::read_to_string(dir.path().join("faucet.key")).unwrap();
    let key = key.trim();
    assert_eq!(hex::decode(key).unwrap().len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("faucet.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(!started.lines.iter().any(|l| l.contains(key)));
    // CORS: the listed origin, no other.
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, &rpc_url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let wallet = preflight("http://wallet.example").await.unwrap();
    assert_eq!(
        wallet.headers()["access-control-allow-origin"],
        "http://wallet.example"
    );
    let evil = preflight("http://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    drop(started);

    // Without --rpc-cors, the app's own origin is the one admitted.
    let again = start(command(dir.path(), &[]));
    let rpc_url = again
        .lines
        .iter()
        .find_map(|l| l.split("): ").nth(1).filter(|_| l.contains("JSON-RPC")))
        .unwrap()
        .to_string();
    let origin = again.url.clone();
    let answer = client
        .post(&rpc_url)
        .header("origin", &origin)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        origin.as_str()
    );
    // And the faucet key file is needed to start again.
    drop(again);
    std::fs::remove_file(dir.path().join("faucet.key")).unwrap();
    let out = command(dir.path(), &[]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("faucet key"), "{stderr}");
}
