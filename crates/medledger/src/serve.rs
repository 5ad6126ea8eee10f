//! `medledger serve`: the whole system in one process. The one place it is wired together: the
//! chain (the embedded node, or `--chain-rpc`), the app database, the blob store, the escrow key,
//! the application, and the HTTP server.

use std::{
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use medledger_chain::{
    Node, NodeConfig,
    alloy::{primitives::U256, signers::local::PrivateKeySigner},
};
use medledger_records::{App, Bootstrap, Ledger, Options, app::ADMIN_USERNAME};
use medledger_rpc::Rpc;
use medledger_vault::{BlobStore, SecretKey};
use medledger_web::ApiState;

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Where everything is kept: DIR/chain, DIR/medledger.db, DIR/blobs (created if missing).
    #[arg(long, default_value = "medledger-data")]
    data_dir: PathBuf,
    /// Address of the web application and REST API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    /// Use this Ethereum node (JSON-RPC URL) instead of the embedded one.
    #[arg(long)]
    chain_rpc: Option<String>,
    /// The embedded node's JSON-RPC address, for wallets and tools (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8545", conflicts_with = "chain_rpc")]
    rpc_addr: SocketAddr,
    /// Private key (hex) of the account that funds new accounts; needed with --chain-rpc. On the
    /// embedded chain the first dev account is the faucet.
    #[arg(long, env = "MEDLEDGER_FUNDER_KEY", hide_env_values = true)]
    funder_key: Option<String>,
    /// Ether given to each new account (on the embedded chain, from the faucet).
    #[arg(long, default_value_t = 1)]
    funding_eth: u64,
    /// The emergency escrow key file, kept outside the data directory so a copy of the data
    /// directory alone opens nothing. Created on first start. Default: DIR.escrow-key beside DIR.
    #[arg(long, env = "MEDLEDGER_ESCROW_KEY_FILE")]
    escrow_key: Option<PathBuf>,
    /// How long a declared emergency opens a patient's records (only for a new deployment).
    #[arg(long, default_value_t = 24)]
    emergency_hours: u64,
    /// Largest report upload, in MiB.
    #[arg(long, default_value_t = 25)]
    max_upload_mib: usize,
    /// Seed demo hospitals, doctors, patients, reports and grants (once), and print the logins.
    #[arg(long)]
    demo: bool,
    /// Mark session cookies Secure (set this when users reach the server over HTTPS).
    #[arg(long)]
    secure_cookies: bool,
}

/// Reads the escrow key, or creates one (readable by the owner only) if the file is missing and
/// the deployment is new.
fn escrow_key(path: &Path, new_deployment: bool) -> anyhow::Result<SecretKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = medledger_chain::alloy::primitives::hex::decode(text.trim())
                .ok()
                .and_then(|b| SecretKey::from_bytes(&b).ok());
            bytes.with_context(|| format!("{} is not an escrow key file", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !new_deployment => bail!(
            "the escrow key file {} is missing, but this data directory's records are wrapped for an escrow key: restore the file (or point --escrow-key at it)",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(path)
                .with_context(|| format!("creating the escrow key file {}", path.display()))?;
            file.write_all(
                medledger_chain::alloy::primitives::hex::encode(key.to_bytes()).as_bytes(),
            )?;
            file.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn parse_key(hex: &str) -> anyhow::Result<PrivateKeySigner> {
    hex.trim()
        .parse()
        .ok()
        .context("--funder-key / MEDLEDGER_FUNDER_KEY is not a private key (64 hex digits)")
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    if args.max_upload_mib == 0 || args.max_upload_mib > 1024 {
        bail!("--max-upload-mib must be between 1 and 1024");
    }
    if args.emergency_hours == 0 || args.emergency_hours > 24 * 30 {
        bail!("--emergency-hours must be between 1 and 720");
    }
    let admin_password = std::env::var("MEDLEDGER_ADMIN_PASSWORD").ok();

    // The chain: embedded, with its JSON-RPC served for wallets, or an external node.
    let mut node = None;
    let (url, funder) = match &args.chain_rpc {
        Some(url) => {
            let key = args
                .funder_key
                .as_deref()
                .context("--chain-rpc needs --funder-key (or MEDLEDGER_FUNDER_KEY): the account that pays for new accounts' gas")?;
            (url.clone(), parse_key(key)?)
        }
        None => {
            let mut config = NodeConfig::new(Some(args.data_dir.join("chain")));
            // The faucet funds every new account: give it room for many.
            config.balance = U256::from(1_000_000u64) * U256::from(10u64).pow(U256::from(18u64));
            let embedded = Node::spawn(config).context("opening the embedded chain")?;
            let listener = tokio::net::TcpListener::bind(args.rpc_addr)
                .await
                .with_context(|| {
                    format!(
                        "binding the node's JSON-RPC to {} (use --rpc-addr)",
                        args.rpc_addr
                    )
                })?;
            let addr = listener.local_addr()?;
            tokio::spawn(medledger_rpc::serve(
                listener,
                Rpc::new(embedded.clone()),
                std::future::pending(),
            ));
            let funder = match &args.funder_key {
                Some(key) => parse_key(key)?,
                None => embedded.dev_accounts().signers()[0].clone(),
            };
            println!(
                "Ethereum JSON-RPC (embedded node, chain id {}): http://{addr}",
                embedded.chain_id()
            );
            node = Some(embedded);
            (format!("http://{addr}"), funder)
        }
    };
    let ledger = Ledger::connect(&url)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let escrow_path = args.escrow_key.clone().unwrap_or_else(|| {
        let mut name = args.data_dir.as_os_str().to_owned();
        name.push(".escrow-key");
        PathBuf::from(name)
    });
    let escrow = escrow_key(&escrow_path, !args.data_dir.join("medledger.db").exists())?;
    let blobs = BlobStore::local(&args.data_dir.join("blobs"))
        .map_err(|e| anyhow::anyhow!("opening the blob store: {e}"))?;
    let options = Options {
        database: args.data_dir.join("medledger.db"),
        ledger,
        blobs,
        escrow,
        funder,
        funding: U256::from(args.funding_eth) * U256::from(10u64).pow(U256::from(18u64)),
        admin_password: admin_password.clone(),
        emergency_window: Duration::from_secs(args.emergency_hours * 3600),
        max_upload_bytes: args.max_upload_mib * 1024 * 1024,
    };
    let (app, bootstrap) = App::open(options)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(b) = &bootstrap {
        println!(
            "First start: contracts deployed (Registry {}, Records {}, Consent {})",
            b.contracts.registry, b.contracts.records, b.contracts.consent
        );
        match &b.generated_password {
            Some(p) => println!(
                "Admin login: {} / {p}   (generated; shown only this once: keep it)",
                b.admin_username
            ),
            None => println!(
                "Admin login: {} with the password from MEDLEDGER_ADMIN_PASSWORD",
                b.admin_username
            ),
        }
    }
    let seeded = !app
        .hospitals(None, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .is_empty();
    if args.demo && seeded {
        println!("Demo: the directory already has hospitals; nothing seeded");
    } else if args.demo {
        let password = match (&bootstrap, &admin_password) {
            (
                Some(Bootstrap {
                    generated_password: Some(p),
                    ..
                }),
                _,
            ) => Some(p.clone()),
            (_, Some(p)) => Some(p.clone()),
            _ => None,
        };
        let Some(password) = password else {
            bail!(
                "--demo on an existing deployment needs the admin password in MEDLEDGER_ADMIN_PASSWORD"
            );
        };
        let admin = app
            .login(ADMIN_USERNAME, &password)
            .await
            .map_err(|e| anyhow::anyhow!("demo: logging in as admin: {e}"))?;
        let logins = app
            .seed_demo(&admin)
            .await
            .map_err(|e| anyhow::anyhow!("seeding the demo: {e}"))?;
        if logins.is_empty() {
            println!("Demo: the directory already has hospitals; nothing seeded");
        } else {
            println!("Demo logins (shown only this once):");
            for l in logins {
                println!("  {:8} {:12} {}", l.role, l.username, l.password);
            }
        }
    }

    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| {
            format!(
                "binding the web server to {} (use --http-addr)",
                args.http_addr
            )
        })?;
    let addr = listener.local_addr()?;
    let mut state = ApiState::new(app);
    state.secure_cookies = args.secure_cookies;
    println!("Listening on http://{addr}");
    medledger_web::serve(listener, state, crate::cli::stop_signal())
        .await
        .context("serving HTTP")?;
    if let Some(node) = node {
        node.shutdown();
    }
    Ok(())
}
