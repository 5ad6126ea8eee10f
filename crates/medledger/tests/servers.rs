//! Two `medledger serve` processes of one deployment, as a consortium runs them: one PostgreSQL,
//! one SeaweedFS bucket, one chain (a separate `medledger node`), each server with its own data
//! directory. A patient works on A; A is killed (-9) while uploads are in flight; B serves every
//! report A acknowledged, and `medledger verify` passes on the shared backends. A copy of the
//! database and of the bucket holds none of the patient's words and no usable key.

mod support;

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use medledger_chain::{DEV_MNEMONIC, DevAccounts, alloy::primitives::hex};
use medledger_testkit::{ACCESS_KEY, Postgres, SECRET_KEY, Seaweed};
use serde_json::{Value, json};

use support::{BIN, login, start_serve};

const ADMIN_PASSWORD: &str = "a long admin password";
const PASSWORD: &str = "correct horse battery staple";
const SECRET: &str = "SECRET-FINDING stage IIb";

struct Deployment {
    chain: String,
    funder: String,
    database: String,
    blobs: String,
}

fn serve(dir: &Path, name: &str, d: &Deployment) -> Command {
    let mut cmd = Command::new(BIN);
    // A short receipt timeout: the survivor settles the writes the killed server left open
    // once it has passed.
    cmd.args([
        "serve",
        "--http-addr",
        "127.0.0.1:0",
        "--chain-rpc",
        &d.chain,
        "--receipt-timeout-secs",
        "3",
    ])
    .arg("--data-dir")
    .arg(dir.join(name))
    .arg("--escrow-key")
    .arg(dir.join("escrow.key"))
    .env("MEDLEDGER_FUNDER_KEY", &d.funder)
    .env("MEDLEDGER_DATABASE_URL", &d.database)
    .env("MEDLEDGER_BLOB_STORE", &d.blobs)
    .env("MEDLEDGER_ADMIN_PASSWORD", ADMIN_PASSWORD)
    .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    cmd
}

async fn upload(client: &reqwest::Client, url: &str, token: &str, i: usize) -> Option<String> {
    support::share_text(
        client,
        url,
        token,
        &format!("Panel {i}"),
        &format!("private-scan-{i}.txt"),
        &format!("{SECRET} #{i}"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_share_one_deployment_and_survive_one_being_killed() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let (_node, chain) = support::start(&dir.path().join("chain"));
    let postgres = Postgres::start();
    let s3 = Seaweed::start();
    let funder = DevAccounts::from_mnemonic(DEV_MNEMONIC, 1)
        .unwrap()
        .signers()[0]
        .clone();
    let d = Deployment {
        chain: chain.clone(),
        funder: hex::encode(funder.to_bytes()),
        database: postgres.new_database(),
        blobs: s3.new_store(),
    };
    // Both start at the same moment: one deploys, the other waits for it and finds it.
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| start_serve(serve(dir.path(), "a", &d)));
        let b = scope.spawn(|| start_serve(serve(dir.path(), "b", &d)));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (mut a, b) = (a, b);
    for server in [&a, &b] {
        let health = support::get_json(&client, &format!("{}/healthz", server.url)).await;
        assert_eq!(health["status"], "ok", "{health}");
        assert_eq!(health["backends"]["database"]["kind"], "postgres");
        assert_eq!(health["backends"]["blob_store"]["kind"], "s3");
    }
    let (url_a, url_b) = (a.url.clone(), b.url.clone());

    // A patient signs up on A; the session is good on B.
    let response = client
        .post(format!("{url_a}/api/v1/patients"))
        .json(
            &json!({ "username": "paula", "password": PASSWORD, "name": "Paula SECRET-NAME",
                       "date_of_birth": "1970-01-02" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let token = login(&client, &url_a, "paula", PASSWORD).await.unwrap();
    let me: Value = support::get(&client, &format!("{url_b}/api/v1/me"), &token).await;
    assert_eq!(me["role"], "patient", "{me}");

    // Uploads on A, some in flight when A is killed.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let uploads = {
        let (client, token, url, acknowledged) = (
            client.clone(),
            token.clone(),
            url_a.clone(),
            acknowledged.clone(),
        );
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..12 {
                let (client, token, url, acknowledged) = (
                    client.clone(),
                    token.clone(),
                    url.clone(),
                    acknowledged.clone(),
                );
                tasks.spawn(async move {
                    if let Some(id) = upload(&client, &url, &token, i).await {
                        acknowledged.lock().unwrap().insert(id, i);
                    }
                });
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            tasks.join_all().await;
        })
    };
    let waited = std::time::Instant::now();
    while acknowledged.lock().unwrap().len() < 3 {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "A acknowledged fewer than 3 uploads within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    tokio::time::timeout(Duration::from_secs(120), uploads)
        .await
        .expect("the uploads to the killed server end within 120 s")
        .unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 3, "{acknowledged:?}");

    // B serves every report A acknowledged, and more.
    let listed = support::get(&client, &format!("{url_b}/api/v1/records"), &token).await;
    let listed: Vec<String> = listed["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    for (id, i) in &acknowledged {
        assert!(
            listed.contains(id),
            "report {i} ({id}) acknowledged by A is not listed by B"
        );
        let body = client
            .get(format!("{url_b}/api/v1/records/{id}/content"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(body.status(), 200, "report {i}");
        assert_eq!(body.text().await.unwrap(), format!("{SECRET} #{i}"));
    }
    assert!(upload(&client, &url_b, &token, 100).await.is_some());
    // Writes A left half-done are settled by B's resolver (past the receipt timeout, within its
    // 5 s period): then no write of the deployment is open.
    let waited = std::time::Instant::now();
    loop {
        let open: i64 = {
            let pool = sqlx::PgPool::connect(&d.database).await.unwrap();
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM chain_writes WHERE state NOT IN ('done', 'failed')",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        };
        if open == 0 {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "{open} writes of the killed server still open after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A report A was writing when it died may have been settled as stored by B meanwhile: count
    // what B lists now that no write is open.
    let settled = support::get(&client, &format!("{url_b}/api/v1/records"), &token).await;
    let settled = settled["records"].as_array().unwrap().len();
    assert!(settled > listed.len(), "the report shared with B is listed");
    drop(b);

    // verify on the shared backends: every stored report against its anchor, and back.
    let out = Command::new(BIN)
        .args(["verify", "--chain-rpc", &chain, "--data-dir"])
        .arg(dir.path().join("b"))
        .env("MEDLEDGER_DATABASE_URL", &d.database)
        .env("MEDLEDGER_BLOB_STORE", &d.blobs)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("reports: OK"), "{printed}");
    assert!(
        printed.contains(&format!("{settled} stored records checked")),
        "{printed}"
    );

    // A thief's copy: the database dumped, the bucket's files as SeaweedFS keeps them.
    let dump = postgres.dump(&d.database);
    let mut stolen = vec![("the database dump".to_string(), dump)];
    let mut files = Vec::new();
    collect(&s3.data_dir(), &mut files);
    stolen.extend(files);
    assert!(stolen.len() > 1, "SeaweedFS keeps its data in files");
    for (what, bytes) in &stolen {
        let text = String::from_utf8_lossy(bytes);
        for needle in ["SECRET-FINDING", "SECRET-NAME", "private-scan", PASSWORD] {
            assert!(!text.contains(needle), "{what} holds {needle:?}");
        }
    }
}

fn collect(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
}
