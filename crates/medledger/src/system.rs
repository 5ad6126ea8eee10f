//! The running system, wired in one place: the chain (the embedded node with its JSON-RPC, or an
//! existing Ethereum node), the app database, the blob store, the escrow key, the application,
//! the resolver of open chain writes, and the HTTP server. `spawn` builds it from a `Config`;
//! the returned `System` owns every task, notices when one dies, and stops them all.

use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use medledger_chain::{
    Node, NodeConfig,
    alloy::{primitives::U256, signers::local::PrivateKeySigner},
};
use medledger_records::{
    App, Bootstrap, Ledger, Options,
    app::ADMIN_USERNAME,
    db::{Database, holds_deployment},
    demo::Login,
    model::Role,
    reports::{BlobReport, verify_store},
};
use medledger_rpc::{Cors, Methods, Rpc, RpcConfig};
use medledger_vault::{BlobLocation, BlobStore, S3Keys, SecretKey};
use medledger_web::ApiState;
use tokio::{sync::watch, task::JoinSet};

use crate::keys::{beside, key_file};

/// Where a data directory keeps each part of a deployment.
#[derive(Debug, Clone, Copy)]
pub struct DataDir<'a>(pub &'a Path);

impl DataDir<'_> {
    /// The embedded chain's block log and state.
    pub fn chain(&self) -> PathBuf {
        self.0.join("chain")
    }

    /// The app database, when it is SQLite (the default).
    pub fn database(&self) -> PathBuf {
        self.0.join("medledger.db")
    }

    /// The sealed blobs.
    pub fn blobs(&self) -> PathBuf {
        self.0.join("blobs")
    }
}

/// Which chain the system runs on.
pub enum Chain {
    /// The embedded node, its blocks in `DIR/chain` (or in memory), its JSON-RPC on `rpc_addr`.
    Embedded {
        rpc_addr: SocketAddr,
        faucet: Faucet,
        /// Web origins admitted by CORS; `None`: the app's own.
        cors: Option<Cors>,
        /// A ledger's methods (the default), or a dev chain's (tests move its clock).
        methods: Methods,
        in_memory: bool,
    },
    /// An existing Ethereum node; `funder` pays new accounts' gas.
    External {
        url: String,
        funder: PrivateKeySigner,
    },
}

/// Who funds new accounts on the embedded chain.
pub enum Faucet {
    /// A key kept in this file (made at first start, 0600, never printed).
    KeyFile(PathBuf),
    /// A key the operator gives.
    Key(PrivateKeySigner),
}

/// Everything the system is built from, validated by whoever made it.
pub struct Config {
    pub data_dir: PathBuf,
    /// The app database: `None` for the SQLite file in the data directory (the default).
    pub database: Option<Database>,
    /// The blob store: `None` for the directory in the data directory (the default).
    pub blob_store: Option<BlobLocation>,
    /// An S3 blob store's access keys (the binary reads `AWS_ACCESS_KEY_ID`, ...); `None`: the
    /// instance's role.
    pub s3_keys: Option<S3Keys>,
    pub http_addr: SocketAddr,
    pub chain: Chain,
    /// The emergency escrow key's file (outside the data directory).
    pub escrow_key: PathBuf,
    /// The research key's file; `None`: beside the escrow key (`Config::research_key_of`).
    pub research_key: Option<PathBuf>,
    pub funding_wei: U256,
    /// The first admin's password; generated (and shown once) when absent.
    pub admin_password: Option<String>,
    pub emergency_window: Duration,
    pub emergency_daily_cap: u8,
    pub max_upload_bytes: usize,
    pub require_mfa: Vec<Role>,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
    pub secure_cookies: bool,
    /// The one origin the deployment answers as; `None`: the web server's own address.
    pub public_url: Option<medledger_web::origin::PublicUrl>,
    /// The JSON-RPC URL wallets are told to use (`--wallet-rpc-url`); `None`: the chain's own.
    pub wallet_rpc_url: Option<String>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Sign-ups per client, the faucet's fundings per day, top-ups per account.
    pub limits: medledger_records::limits::Limits,
    /// The de-identification rules of research exports.
    pub safe_harbor: medledger_records::research::deidentify::SafeHarbor,
    /// Seed the demo data (once).
    pub demo: bool,
    /// How long a write waits for its receipt before answering that it is pending.
    pub receipt_timeout: Duration,
    /// How long a request may take; `None`: the receipt timeout and 30 s more.
    pub request_timeout: Option<Duration>,
    /// How often writes left open are settled.
    pub resolve_every: Duration,
}

const ETHER: u64 = 1_000_000_000_000_000_000;

impl Config {
    /// Where the research key of a deployment whose escrow key is at `escrow_key` is kept by
    /// default: beside it (`x.escrow-key` → `x.research-key`), so servers sharing one escrow key
    /// share this one too.
    pub fn research_key_of(escrow_key: &Path) -> PathBuf {
        escrow_key.with_extension("research-key")
    }

    /// The defaults of `medledger serve` for `data_dir`: the embedded chain as a ledger on
    /// 127.0.0.1:8545, the web server on 127.0.0.1:8080.
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            escrow_key: beside(&data_dir, ".escrow-key"),
            research_key: None,
            chain: Chain::Embedded {
                rpc_addr: SocketAddr::from(([127, 0, 0, 1], 8545)),
                faucet: Faucet::KeyFile(Config::faucet_key_beside(&data_dir)),
                cors: None,
                methods: Methods::Ledger,
                in_memory: false,
            },
            database: None,
            blob_store: None,
            s3_keys: None,
            data_dir,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            funding_wei: U256::from(ETHER),
            admin_password: None,
            emergency_window: Duration::from_secs(24 * 3600),
            emergency_daily_cap: 3,
            max_upload_bytes: 25 * 1024 * 1024,
            require_mfa: Vec::new(),
            session_idle: medledger_records::sessions::IDLE,
            secure_cookies: false,
            public_url: None,
            wallet_rpc_url: None,
            trusted_proxies: Vec::new(),
            limits: Default::default(),
            safe_harbor: Default::default(),
            demo: false,
            receipt_timeout: Duration::from_secs(120),
            request_timeout: None,
            resolve_every: Duration::from_secs(5),
        }
    }

    /// Where the faucet key of `data_dir`'s embedded chain is kept by default: beside it.
    pub fn faucet_key_beside(data_dir: &std::path::Path) -> PathBuf {
        beside(data_dir, ".faucet-key")
    }

    /// For tests: everything under `dir`, any free loopback ports, an in-memory embedded chain
    /// whose clock tests may move, the admin password given, small uploads.
    pub fn test(dir: &std::path::Path, admin_password: &str) -> Config {
        let mut config = Config::new(dir.join("data"));
        config.http_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.escrow_key = dir.join("escrow.key");
        config.chain = Chain::Embedded {
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            faucet: Faucet::KeyFile(dir.join("faucet.key")),
            cors: None,
            methods: Methods::Dev,
            in_memory: true,
        };
        config.admin_password = Some(admin_password.to_string());
        config.max_upload_bytes = 1024 * 1024;
        config
    }
}

/// What `--demo` did.
pub enum DemoOutcome {
    /// The logins it made (shown once).
    Seeded(Vec<Login>),
    /// The directory had hospitals already.
    AlreadySeeded,
}

/// The running system. Dropping it stops every task and the embedded node.
pub struct System {
    pub app: App,
    /// `http://ADDR` of the web application and REST API.
    pub http_url: String,
    /// The chain's JSON-RPC URL.
    pub chain_url: String,
    /// The embedded node, when it runs one.
    pub node: Option<Node>,
    /// What a first start created.
    pub bootstrap: Option<Bootstrap>,
    pub demo: Option<DemoOutcome>,
    tasks: JoinSet<(&'static str, std::io::Result<()>)>,
    stop: watch::Sender<bool>,
}

/// A future that resolves once `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// How often the chain index is brought up to the chain between requests.
const INDEX_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Builds and starts the system.
pub async fn spawn(config: Config) -> anyhow::Result<System> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let dir = DataDir(&config.data_dir);
    let (stop, _) = watch::channel(false);
    let mut tasks = JoinSet::new();
    // The web server's address first: the node's CORS admits the app's own origin.
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding the web server to {}", config.http_addr))?;
    let http_addr = listener.local_addr()?;
    let public = match &config.public_url {
        Some(public) => public.clone(),
        None => {
            if !http_addr.ip().is_loopback() {
                tracing::warn!(
                    "no --public-url: this server answers as http://{http_addr}, so wallets can sign in only at that address, and links are built on it; set --public-url to the address users reach"
                );
            }
            medledger_web::origin::PublicUrl::parse(&format!("http://{http_addr}"))
                .map_err(|e| anyhow::anyhow!("the web server's own address: {e}"))?
        }
    };

    let mut node = None;
    let (chain_url, funder) = match config.chain {
        Chain::External { url, funder } => (url, funder),
        Chain::Embedded {
            rpc_addr,
            faucet,
            cors,
            methods,
            in_memory,
        } => {
            let chain_dir = (!in_memory).then(|| dir.chain());
            let new_chain = chain_dir
                .as_deref()
                .is_none_or(|d| !medledger_chain::holds_chain(d));
            let funder = match faucet {
                Faucet::Key(key) => key,
                Faucet::KeyFile(path) => {
                    let key = key_file(
                        &path,
                        new_chain,
                        "the faucet key",
                        "this data directory's chain keeps its ether on that key: restore the file (or point --faucet-key at it)",
                    )?;
                    PrivateKeySigner::from_slice(&key).context("the faucet key file")?
                }
            };
            // A ledger, not a test chain: no dev accounts (their keys are public), and the
            // ether of a new chain on the faucet key alone.
            let mut chain = NodeConfig::new(chain_dir);
            chain.accounts = 0;
            chain.alloc = vec![(
                funder.address(),
                U256::from(1_000_000u64) * U256::from(ETHER),
            )];
            let embedded = Node::spawn(chain).context("opening the embedded chain")?;
            let public_dev_account =
                medledger_chain::DevAccounts::from_mnemonic(medledger_chain::DEV_MNEMONIC, 1)?
                    .addresses()[0];
            if embedded
                .genesis()
                .alloc
                .iter()
                .any(|(a, _)| *a == public_dev_account)
            {
                bail!(
                    "{} was made by an earlier medledger: its chain keeps ether on the public test mnemonic and runs the first contracts (unbounded emergencies, unlogged views). It cannot be upgraded in place: start this version with a new --data-dir, or keep running the earlier version on this one",
                    config.data_dir.display()
                );
            }
            let cors = match cors {
                Some(cors) => cors,
                None => Cors::parse(&app_origins(http_addr).join(","))
                    .map_err(|e| anyhow::anyhow!("the app's origin: {e}"))?,
            };
            let rpc = RpcConfig {
                methods,
                ..RpcConfig::ledger(cors)
            };
            let (url, serving) = serve_rpc(
                Rpc::with_config(embedded.clone(), rpc),
                rpc_addr,
                stopped(stop.subscribe()),
            )
            .await?;
            tasks.spawn(named("the embedded node's JSON-RPC server", serving));
            node = Some(embedded);
            (url, funder)
        }
    };
    let ledger = Ledger::connect(&chain_url).await.map_err(domain)?;
    ledger.set_receipt_timeout(config.receipt_timeout);

    let database = config
        .database
        .clone()
        .unwrap_or_else(|| Database::Sqlite(dir.database()));
    let new_deployment = !holds_deployment(&database).await.map_err(domain)?;
    let escrow = key_file(
        &config.escrow_key,
        new_deployment,
        "the escrow key",
        "this data directory's records are wrapped for an escrow key: restore the file (or point --escrow-key at it)",
    )?;
    let escrow = SecretKey::from_bytes(&escrow).context("the escrow key file")?;
    let research_path = config
        .research_key
        .clone()
        .unwrap_or_else(|| Config::research_key_of(&config.escrow_key));
    let research = key_file(
        &research_path,
        new_deployment,
        "the research key",
        "this deployment's participants' bundles are wrapped for a research key: restore the file (or point --research-key at it)",
    )?;
    let research = SecretKey::from_bytes(&research).context("the research key file")?;
    let blobs = open_blobs(&dir, config.blob_store.as_ref(), config.s3_keys.as_ref()).await?;
    let options = Options {
        database,
        ledger,
        blobs,
        keyring: medledger_records::Keyring::new(escrow, research),
        funder,
        funding: config.funding_wei,
        admin_password: config.admin_password.clone(),
        emergency_window: config.emergency_window,
        emergency_daily_cap: config.emergency_daily_cap,
        require_mfa: config.require_mfa,
        max_upload_bytes: config.max_upload_bytes,
        session_idle: config.session_idle,
        limits: config.limits,
        safe_harbor: config.safe_harbor.clone(),
        public_origin: public.origin().to_string(),
    };
    let (app, bootstrap) = App::open(options).await.map_err(domain)?;
    let demo = if config.demo {
        Some(seed_demo(&app, bootstrap.as_ref(), config.admin_password.as_deref()).await?)
    } else {
        None
    };

    // Writes a slow node left open are settled as their receipts come in.
    let resolver = app.clone().resolve_forever(config.resolve_every);
    tasks.spawn(named(
        "the resolver of open chain writes",
        until_stopped(resolver, stop.subscribe()),
    ));
    // The chain index follows the chain, so a listing seldom waits for it to catch up.
    let indexer = app.clone().index_forever(INDEX_EVERY);
    tasks.spawn(named(
        "the chain indexer",
        until_stopped(indexer, stop.subscribe()),
    ));
    let mut state = ApiState::new(app.clone(), public);
    state.request_limit = config
        .request_timeout
        .unwrap_or(config.receipt_timeout + Duration::from_secs(30));
    state.long_request_limit = state.long_request_limit.max(state.request_limit);
    state.secure_cookies = config.secure_cookies;
    state.wallet_rpc_url = config
        .wallet_rpc_url
        .clone()
        .unwrap_or_else(|| chain_url.clone());
    state.trusted_proxies = config.trusted_proxies.clone();
    tasks.spawn(named(
        "the web server",
        medledger_web::serve(listener, state, stopped(stop.subscribe())),
    ));
    Ok(System {
        app,
        http_url: format!("http://{http_addr}"),
        chain_url,
        node,
        bootstrap,
        demo,
        tasks,
        stop,
    })
}

/// Binds a node's JSON-RPC to `addr`: its URL, and the server to run (until `stop`).
async fn serve_rpc(
    rpc: Rpc,
    addr: SocketAddr,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(String, impl Future<Output = std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the node's JSON-RPC to {addr}"))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "the embedded node's JSON-RPC listens on {addr}, reachable from other machines: anyone who reaches it can read the public ledger and send signed transactions; bind it to 127.0.0.1 unless a firewall admits only your wallets and tools"
        );
    }
    Ok((
        format!("http://{addr}"),
        medledger_rpc::serve(listener, rpc, stop),
    ))
}

/// `medledger verify`'s second half: every stored report of the deployment in `data_dir` (its
/// app database in `database`) against its anchor, on the stored chain (opened read-only behind
/// a loopback JSON-RPC, as the ledger client needs one) or on `chain_url`. Changes nothing.
pub async fn verify_reports(
    data_dir: &Path,
    database: &Database,
    blob_store: Option<&BlobLocation>,
    s3_keys: Option<&S3Keys>,
    chain_url: Option<String>,
) -> anyhow::Result<BlobReport> {
    let dir = DataDir(data_dir);
    let (stop, _) = watch::channel(false);
    let mut embedded = None;
    let url = match chain_url {
        Some(url) => url,
        None => {
            let node = Node::spawn(NodeConfig::new(Some(dir.chain())))
                .context("opening the chain (is `medledger serve` still running on it?)")?;
            let (url, serving) = serve_rpc(
                Rpc::new(node.clone()),
                SocketAddr::from(([127, 0, 0, 1], 0)),
                stopped(stop.subscribe()),
            )
            .await?;
            embedded = Some((node, tokio::spawn(serving)));
            url
        }
    };
    let checked = async {
        let ledger = Ledger::connect(&url).await.map_err(domain)?;
        let blobs = open_blobs(&dir, blob_store, s3_keys).await?;
        verify_store(database, &ledger, &blobs)
            .await
            .map_err(|e| domain(e).context("verifying the reports"))
    }
    .await;
    if let Some((node, serving)) = embedded {
        let _ = stop.send(true);
        let _ = serving.await;
        node.shutdown();
    }
    checked
}

/// The blob store at `location` (default: the data directory's), checked to answer, so a
/// misconfigured bucket stops the start with its reason rather than failing the first upload.
async fn open_blobs(
    dir: &DataDir<'_>,
    location: Option<&BlobLocation>,
    keys: Option<&S3Keys>,
) -> anyhow::Result<BlobStore> {
    let location = location
        .cloned()
        .unwrap_or_else(|| BlobLocation::Dir(dir.blobs()));
    let blobs = BlobStore::open(&location, keys)
        .map_err(|e| anyhow::anyhow!("opening the blob store {location}: {e}"))?;
    blobs
        .check()
        .await
        .map_err(|e| anyhow::anyhow!("the blob store {location} does not answer: {e}"))?;
    Ok(blobs)
}

/// Runs a task that never ends by itself until `stop` turns true.
async fn until_stopped(
    task: impl Future<Output = ()>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    tokio::select! {
        () = task => {}
        () = stopped(stop) => {}
    }
    Ok(())
}

async fn named<F>(what: &'static str, task: F) -> (&'static str, std::io::Result<()>)
where
    F: Future<Output = std::io::Result<()>>,
{
    (what, task.await)
}

async fn seed_demo(
    app: &App,
    bootstrap: Option<&Bootstrap>,
    admin_password: Option<&str>,
) -> anyhow::Result<DemoOutcome> {
    if !app
        .people()
        .hospitals(None, None)
        .await
        .map_err(domain)?
        .is_empty()
    {
        return Ok(DemoOutcome::AlreadySeeded);
    }
    let generated = bootstrap.and_then(|b| b.generated_password.as_deref());
    let Some(password) = generated.or(admin_password) else {
        bail!(
            "--demo on an existing deployment needs the admin password in MEDLEDGER_ADMIN_PASSWORD"
        );
    };
    let admin = app
        .accounts()
        .login(ADMIN_USERNAME, password)
        .await
        .map_err(|e| domain(e).context("demo: logging in as admin"))?;
    let logins = app
        .demo()
        .seed_demo(&admin)
        .await
        .map_err(|e| domain(e).context("seeding the demo"))?;
    Ok(if logins.is_empty() {
        DemoOutcome::AlreadySeeded
    } else {
        DemoOutcome::Seeded(logins)
    })
}

impl System {
    /// Runs until `signal` resolves (then stops everything cleanly), or until one of its tasks
    /// ends on its own, which is a failure: the system stops and says which task ended.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let ended = tokio::select! {
            () = signal => None,
            joined = self.tasks.join_next() => joined,
        };
        let failure = ended.map(|joined| match joined {
            Ok((what, Ok(()))) => anyhow::anyhow!("{what} stopped unexpectedly"),
            Ok((what, Err(e))) => anyhow::anyhow!("{what} failed: {e}"),
            Err(e) => anyhow::anyhow!("a task failed: {e}"),
        });
        self.shutdown().await;
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stops every task (the servers finish the requests they have) and the node.
    pub async fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        let drained = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drained)
            .await
            .is_err()
        {
            tracing::warn!("a task did not stop within 10 s; it is aborted");
            self.tasks.abort_all();
        }
        if let Some(node) = &self.node {
            node.shutdown();
        }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.tasks.abort_all();
        if let Some(node) = &self.node {
            node.shutdown();
        }
    }
}

/// A domain error as an operator reads it.
fn domain(e: medledger_records::Error) -> anyhow::Error {
    anyhow::anyhow!("{}", e.for_operator())
}

/// The origins a browser gives the app's own pages: its address, and `localhost` for a
/// loopback one.
fn app_origins(addr: SocketAddr) -> Vec<String> {
    let mut origins = vec![format!("http://{addr}")];
    if addr.ip().is_loopback() {
        origins.push(format!("http://localhost:{}", addr.port()));
    }
    origins
}
