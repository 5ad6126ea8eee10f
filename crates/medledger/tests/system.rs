//! The library's one way to start the system: `spawn(Config)` brings up the chain, the app and
//! the web server on free loopback ports; `run_until` stops every task it owns when told to,
//! and nothing keeps listening after. Sessions live in the app database: they outlive a restart,
//! and the database alone opens none.

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

const ADMIN_PASSWORD: &str = "a long admin password for tests";

/// Sends `GET /api/v1/me` with `token`: the status, and the user name when it answers.
async fn me(http: &reqwest::Client, url: &str, token: &str) -> (u16, Option<String>) {
    let response = http
        .get(format!("{url}/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["username"].as_str().map(str::to_string))
}

async fn login(http: &reqwest::Client, url: &str) -> String {
    let body: serde_json::Value = http
        .post(format!("{url}/api/v1/auth/login"))
        .json(&serde_json::json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["token"].as_str().expect("a session token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_outlive_a_restart_end_when_idle_and_the_database_alone_opens_none() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = medledger::Config::test(dir.path(), ADMIN_PASSWORD);
        if let medledger::Chain::Embedded { in_memory, .. } = &mut config.chain {
            *in_memory = false;
        }
        config.session_idle = Duration::from_secs(3);
        config
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let system = medledger::spawn(config()).await.unwrap();
    let token = login(&http, &system.http_url).await;
    assert_eq!(token.len(), 128, "two 32-byte halves, in hex");
    assert_eq!(
        me(&http, &system.http_url, &token).await,
        (200, Some("admin".into()))
    );
    let idle_one = login(&http, &system.http_url).await;

    // What the database holds of a session: the hash of the token's first half, and the key
    // sealed under its second half. Neither half, nor anything made from the row, opens it.
    let (id, sealed): (String, Vec<u8>) =
        sqlx::query_as("SELECT id, sealed_key FROM sessions ORDER BY created_at LIMIT 1")
            .fetch_one(system.app.db())
            .await
            .unwrap();
    assert!(
        !token.contains(id.trim_start_matches("0x")),
        "the id is a hash"
    );
    assert!(sealed.len() > 32);
    let first_half = &token[..64];
    for forged in [
        format!("{first_half}{}", "00".repeat(32)),
        format!("{first_half}{}", &id.trim_start_matches("0x")[..64]),
        format!("{}{}", id.trim_start_matches("0x"), &token[64..]),
    ] {
        assert_eq!(
            me(&http, &system.http_url, &forged).await.0,
            401,
            "{forged}"
        );
    }

    // A restart logs nobody out: the session is in the database, not in the process.
    tokio::time::timeout(Duration::from_secs(30), system.run_until(async {}))
        .await
        .expect("the system stops within 30 s")
        .unwrap();
    let system = medledger::spawn(config()).await.unwrap();
    assert!(system.bootstrap.is_none(), "the same deployment");
    // Used every 0.6 s, it stays alive past its idle limit (3 s); the other one, left alone,
    // ends.
    for _ in 0..6 {
        assert_eq!(me(&http, &system.http_url, &token).await.0, 200);
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    assert_eq!(me(&http, &system.http_url, &idle_one).await.0, 401);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(
        me(&http, &system.http_url, &token).await.0,
        401,
        "idle too long"
    );
}
