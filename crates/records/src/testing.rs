//! For the crate's own unit tests: an `App` on a fresh in-memory chain (`Node::test()`, served
//! over JSON-RPC on a loopback port as any node is), a SQLite file and a blob directory in a
//! temporary folder, and the dev accounts to act with.

use std::time::Duration;

use alloy::{primitives::U256, signers::local::PrivateKeySigner};
use medledger_chain::{Node, NodeConfig};
use medledger_vault::{BlobStore, SecretKey};

use crate::{
    app::{App, Options},
    db::Database,
    keyring::Keyring,
    ledger::Ledger,
    person::{Person, Signer},
    research::deidentify::SafeHarbor,
};

/// A signed-in person of `role` at `address`, with a fresh key (a wallet's, so nothing signs
/// for them).
pub(crate) fn person(role: crate::model::Role, address: alloy::primitives::Address) -> Person {
    Person {
        id: 0,
        username: "someone".into(),
        role,
        address,
        signer: Signer::Wallet(address),
        secret: SecretKey::generate(),
        must_set_up_second_factor: false,
    }
}

/// A running app on its own chain; dropped, it all goes.
pub(crate) struct TestApp {
    pub(crate) app: App,
    _node: Node,
    /// Dev accounts with ether, other than the faucet (the first).
    pub(crate) accounts: Vec<PrivateKeySigner>,
    _dir: tempfile::TempDir,
    _rpc: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts one.
pub(crate) async fn app() -> TestApp {
    let node = Node::spawn(NodeConfig::test()).expect("the test node starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let rpc = tokio::spawn(medledger_rpc::serve(
        listener,
        medledger_rpc::Rpc::new(node.clone()),
        std::future::pending(),
    ));
    let ledger = Ledger::connect(&url)
        .await
        .expect("the ledger client connects");
    ledger.set_receipt_timeout(Duration::from_secs(5));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let signers = node.dev_accounts().signers().to_vec();
    let options = Options {
        database: Database::Sqlite(dir.path().join("app.sqlite")),
        ledger,
        blobs: BlobStore::local(&dir.path().join("blobs")).expect("a blob directory"),
        keyring: Keyring::new(SecretKey::generate(), SecretKey::generate()),
        funder: signers[0].clone(),
        funding: U256::from(10u128.pow(18)),
        safe_harbor: SafeHarbor::default(),
        admin_password: Some("a long enough password for tests".into()),
        emergency_window: Duration::from_secs(3600),
        emergency_daily_cap: 3,
        max_upload_bytes: 1024 * 1024,
        require_mfa: Vec::new(),
        session_idle: Duration::from_secs(1800),
        limits: Default::default(),
        public_origin: "http://127.0.0.1".to_string(),
    };
    let (app, _) = App::open(options).await.expect("the app opens");
    TestApp {
        app,
        _node: node,
        accounts: signers[1..].to_vec(),
        _dir: dir,
        _rpc: rpc,
    }
}
