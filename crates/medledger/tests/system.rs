//! The library's one way to start the system: `spawn(Config)` brings up the chain, the app and
//! the web server on free loopback ports; `run_until` stops every task it owns when told to,
//! and nothing keeps listening after.

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_starts_everything_and_run_until_stops_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let config = medledger::Config::test(dir.path(), "a long admin password for tests");
    let system = medledger::spawn(config).await.unwrap();
    assert!(
        system.bootstrap.is_some(),
        "a first start deploys the contracts"
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let health: serde_json::Value = http
        .get(format!("{}/healthz", system.http_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    let chain = http
        .post(&system.chain_url)
        .json(
            &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}),
        )
        .send()
        .await
        .unwrap();
    assert!(chain.status().is_success());
    let (http_url, chain_url) = (system.http_url.clone(), system.chain_url.clone());
    tokio::time::timeout(Duration::from_secs(30), system.run_until(async {}))
        .await
        .expect("the system stops within 30 s")
        .unwrap();
    for url in [format!("{http_url}/healthz"), chain_url] {
        assert!(http.get(&url).send().await.is_err(), "{url} still answers");
    }
}
