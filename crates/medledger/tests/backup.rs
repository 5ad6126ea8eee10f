//! `medledger backup` and `restore`, then `verify` and `serve` on what was restored: on the
//! embedded defaults (SQLite, blob directory, embedded chain) and on PostgreSQL + S3 with an
//! external chain. A backup refuses to copy a chain `serve` still runs on, and without
//! `--with-keys` it holds no key.

mod support;

use std::{path::Path, process::Command, time::Duration};

use medledger_chain::{DEV_MNEMONIC, DevAccounts, alloy::primitives::hex};
use medledger_testkit::{ACCESS_KEY, Postgres, SECRET_KEY, Seaweed};
use serde_json::{Value, json};
use support::{BIN, login, serve_command, start_serve};

const ADMIN_PASSWORD: &str = "a good long admin password";
const PASSWORD: &str = "a long enough password";
const REPORT: &str = "Creatinine 88 umol/L, eGFR 92";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Runs the binary with `args` (and `env`): whether it succeeded, and what it printed.
fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A patient signs up and shares one report; its id.
async fn share(url: &str) -> String {
    let client = client();
    let response = client
        .post(format!("{url}/api/v1/patients"))
        .json(&json!({ "username": "rosa", "password": PASSWORD, "name": "Rosa Restore" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let token = login(&client, url, "rosa", PASSWORD).await.unwrap();
    support::share_text(&client, url, &token, "Kidney panel", "kidney.txt", REPORT)
        .await
        .expect("the report is acknowledged")
}

/// A researcher is enrolled and a study registered for them by the admin; the patient joins it.
/// The study's id.
async fn join_a_study(url: &str) -> u64 {
    let client = client();
    let post = async |path: &str, token: Option<&str>, body: Value| {
        let mut request = client.post(format!("{url}{path}")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    };
    let admin = login(&client, url, "admin", ADMIN_PASSWORD).await.unwrap();
    let invited = post(
        "/api/v1/researchers",
        Some(&admin),
        json!({ "name": "Prof. Ruth" }),
    )
    .await;
    let link = invited["enrolment_url"].as_str().unwrap();
    let token = &link[link.rfind('/').unwrap() + 1..];
    let enrolled = post(
        &format!("/api/v1/enrol/{token}"),
        None,
        json!({ "username": "ruth", "password": PASSWORD }),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let study = post(
        "/api/v1/studies",
        Some(&admin),
        json!({ "researcher": enrolled["address"], "title": "Kidney function over time",
                "description": "eGFR", "data": ["Observation"], "ends_at": now + 30 * 86_400 }),
    )
    .await;
    let id = study["id"].as_u64().unwrap();
    let rosa = login(&client, url, "rosa", PASSWORD).await.unwrap();
    post(
        &format!("/api/v1/studies/{id}/opt-in"),
        Some(&rosa),
        json!({}),
    )
    .await;
    id
}

/// The patient logs in on `url` and withdraws from study `id` (on chain, signed by them).
async fn withdraws(url: &str, id: u64) {
    let client = client();
    let rosa = login(&client, url, "rosa", PASSWORD).await.unwrap();
    let response = client
        .post(format!("{url}/api/v1/studies/{id}/withdraw"))
        .bearer_auth(&rosa)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(status, 200, "{}", response.text().await.unwrap());
}

/// Only the owner may enter `dir` or read anything in it.
#[cfg(unix)]
fn only_the_owners(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            only_the_owners(&entry.path());
        } else {
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", entry.path().display());
        }
    }
}

/// The patient logs in on `url` and opens the report, byte for byte.
async fn opens(url: &str, id: &str) {
    let client = client();
    let token = login(&client, url, "rosa", PASSWORD)
        .await
        .expect("the restored patient logs in");
    let response = client
        .get(format!("{url}/api/v1/records/{id}/content"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), REPORT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_the_embedded_defaults_restores_verifies_serves_and_moves_to_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = serve_command(dir.path(), &[]);
    cmd.env("MEDLEDGER_ADMIN_PASSWORD", ADMIN_PASSWORD);
    let server = start_serve(cmd);
    let id = share(&server.url).await;
    let study = join_a_study(&server.url).await;
    // The key files where `serve_command` keeps them.
    let (escrow_at, faucet_at) = (dir.path().join("escrow.key"), dir.path().join("faucet.key"));
    let own_keys = [
        "--escrow-key",
        path(&escrow_at),
        "--faucet-key",
        path(&faucet_at),
    ];
    let backup = |to: &Path, extra: &[&str]| {
        let mut args = vec!["backup", "--data-dir", path(&data), "--to", path(to)];
        args.extend(own_keys);
        args.extend(extra);
        run(&args, &[])
    };

    // Not while serve runs on the chain.
    let early = dir.path().join("early");
    let (ok, out) = backup(&early, &[]);
    assert!(!ok && out.contains("stop `medledger serve` first"), "{out}");
    drop(server);

    // Without the keys: the backup holds none, and the manifest names them.
    let plain = dir.path().join("plain");
    let (ok, out) = backup(&plain, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("the key files are not in it"), "{out}");
    assert!(!plain.join("keys").exists());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(plain.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["keys"]["escrow"]["present"], true, "{manifest}");
    assert_eq!(manifest["keys"]["escrow"]["copied"], false, "{manifest}");
    assert_eq!(manifest["keys"]["faucet"]["present"], true, "{manifest}");
    assert_eq!(manifest["keys"]["research"]["present"], true, "{manifest}");
    assert_eq!(manifest["keys"]["research"]["copied"], false, "{manifest}");
    assert_eq!(manifest["chain"], "embedded, copied", "{manifest}");
    assert_eq!(manifest["tables"]["studies"], 1, "{manifest}");
    #[cfg(unix)]
    only_the_owners(&plain);
    // Nothing of the report or the patient's name is in plain text in it.
    let mut files = Vec::new();
    collect(&plain, &mut files);
    for (file, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains("Creatinine") && !text.contains("Rosa Restore"),
            "{file}"
        );
    }

    // With the keys, restored elsewhere.
    let full = dir.path().join("full");
    let (ok, out) = backup(&full, &["--with-keys"]);
    assert!(ok && out.contains("the key files are in it too"), "{out}");
    assert!(full.join("keys/escrow.key").exists() && full.join("keys/faucet.key").exists());
    assert!(full.join("keys/research.key").exists());
    let (ok, out) = backup(&full, &[]);
    assert!(
        !ok && out.contains("not empty"),
        "a backup never overwrites one: {out}"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let restored = elsewhere.path().join("data");
    let (escrow, faucet) = (
        elsewhere.path().join("escrow.key"),
        elsewhere.path().join("faucet.key"),
    );
    let keys = ["--escrow-key", path(&escrow), "--faucet-key", path(&faucet)];
    let mut args = vec![
        "restore",
        "--from",
        path(&full),
        "--data-dir",
        path(&restored),
    ];
    args.extend(keys);
    let (ok, out) = run(&args, &[]);
    assert!(ok, "{out}");
    assert!(
        escrow.exists() && faucet.exists(),
        "the backup's keys are where the restored deployment looks: {out}"
    );
    // Restoring twice into the same place is refused.
    let (ok, out) = run(&args, &[]);
    assert!(!ok && out.contains("already"), "{out}");
    let (ok, out) = support::verify(&restored);
    assert!(
        ok && out.contains("chain: OK") && out.contains("reports: OK"),
        "{out}"
    );
    let server = start_serve(serve_command(elsewhere.path(), &[]));
    opens(&server.url, &id).await;
    // The study came back with it: the patient can still leave it.
    withdraws(&server.url, study).await;
    drop(server);

    // The same backup moves the deployment from SQLite into PostgreSQL.
    let postgres = Postgres::start();
    let database = postgres.new_database();
    let moved = tempfile::tempdir().unwrap();
    let (escrow, faucet) = (
        moved.path().join("escrow.key"),
        moved.path().join("faucet.key"),
    );
    let data = moved.path().join("data");
    let env = [("MEDLEDGER_DATABASE_URL", database.as_str())];
    let (ok, out) = run(
        &[
            "restore",
            "--from",
            path(&full),
            "--data-dir",
            path(&data),
            "--escrow-key",
            path(&escrow),
            "--faucet-key",
            path(&faucet),
        ],
        &env,
    );
    assert!(ok, "{out}");
    let (ok, out) = run(&["verify", "--data-dir", path(&data)], &env);
    assert!(ok && out.contains("reports: OK"), "{out}");
    let mut cmd = serve_command(moved.path(), &[]);
    cmd.env("MEDLEDGER_DATABASE_URL", &database);
    let server = start_serve(cmd);
    opens(&server.url, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_on_postgresql_and_s3_restores_into_a_new_database_and_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, chain) = support::start(&dir.path().join("chain"));
    let postgres = Postgres::start();
    let s3 = Seaweed::start();
    let funder = hex::encode(
        DevAccounts::from_mnemonic(DEV_MNEMONIC, 1)
            .unwrap()
            .signers()[0]
            .to_bytes(),
    );
    let (database, blobs) = (postgres.new_database(), s3.new_store());
    let env = |database: &str, blobs: &str| {
        vec![
            ("MEDLEDGER_DATABASE_URL", database.to_string()),
            ("MEDLEDGER_BLOB_STORE", blobs.to_string()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
        ]
    };
    let serve = |data: &Path, database: &str, blobs: &str| {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--http-addr", "127.0.0.1:0", "--chain-rpc", &chain])
            .arg("--data-dir")
            .arg(data)
            .arg("--escrow-key")
            .arg(dir.path().join("escrow.key"))
            .env("MEDLEDGER_FUNDER_KEY", &funder)
            .env("MEDLEDGER_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .envs(env(database, blobs));
        start_serve(cmd)
    };
    let server = serve(&dir.path().join("a"), &database, &blobs);
    let id = share(&server.url).await;
    drop(server);

    let copy = dir.path().join("backup");
    let escrow = dir.path().join("escrow.key");
    let backup_env = env(&database, &blobs);
    let backup_env: Vec<(&str, &str)> = backup_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (ok, out) = run(
        &[
            "backup",
            "--data-dir",
            path(&dir.path().join("a")),
            "--to",
            path(&copy),
            "--escrow-key",
            path(&escrow),
        ],
        &backup_env,
    );
    assert!(ok, "{out}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(copy.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["database"], "postgres", "{manifest}");
    assert_eq!(manifest["chain"], "external, not copied", "{manifest}");
    assert_eq!(manifest["blobs"], 1, "{manifest}");

    // Into a new database and another prefix of the bucket.
    let (database, blobs) = (postgres.new_database(), s3.new_store());
    let restore_env = env(&database, &blobs);
    let restore_env: Vec<(&str, &str)> =
        restore_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let restored = dir.path().join("b");
    let (ok, out) = run(
        &[
            "restore",
            "--from",
            path(&copy),
            "--data-dir",
            path(&restored),
            "--escrow-key",
            path(&escrow),
        ],
        &restore_env,
    );
    assert!(ok, "{out}");
    assert!(out.contains("holds no key files"), "{out}");
    let (ok, out) = run(
        &[
            "verify",
            "--chain-rpc",
            &chain,
            "--data-dir",
            path(&restored),
        ],
        &restore_env,
    );
    assert!(ok && out.contains("reports: OK"), "{out}");
    assert!(out.contains("1 stored records checked"), "{out}");
    let server = serve(&restored, &database, &blobs);
    opens(&server.url, &id).await;
    // A restored deployment goes on: new accounts get new ids, the patient shares again.
    let client = client();
    let response = client
        .post(format!("{}/api/v1/patients", server.url))
        .json(&json!({ "username": "later", "password": PASSWORD, "name": "Later" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

fn collect(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
}
