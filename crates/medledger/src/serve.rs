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

use crate::cli::domain;
use medledger_chain::{
    Node, NodeConfig,
    alloy::{primitives::U256, signers::local::PrivateKeySigner},
};
use medledger_records::{App, Bootstrap, Ledger, Options, app::ADMIN_USERNAME, model::Role};
use medledger_rpc::{Cors, Rpc, RpcConfig};
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
    /// embedded chain the faucet key file (--faucet-key) is used instead unless this is given.
    #[arg(long, env = "MEDLEDGER_FUNDER_KEY", hide_env_values = true)]
    funder_key: Option<String>,
    /// The embedded chain's faucet key file: a new chain's ether is given to this key, made at
    /// first start, kept outside the data directory and never printed. Default:
    /// DIR.faucet-key beside DIR.
    #[arg(long, env = "MEDLEDGER_FAUCET_KEY_FILE", conflicts_with = "chain_rpc")]
    faucet_key: Option<PathBuf>,
    /// Web origins whose pages may call the embedded node's JSON-RPC (comma-separated, or * for
    /// any). Default: the app's own origin.
    #[arg(long, conflicts_with = "chain_rpc")]
    rpc_cors: Option<String>,
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
    /// How many emergencies one doctor may declare per day (only for a new deployment).
    #[arg(long, default_value_t = 3)]
    emergency_daily_cap: u8,
    /// Largest report upload, in MiB.
    #[arg(long, default_value_t = 25)]
    max_upload_mib: usize,
    /// Seed demo hospitals, doctors, patients, reports and grants (once), and print the logins.
    #[arg(long)]
    demo: bool,
    /// Roles that must have a second factor (TOTP) to do anything: `admin`, `doctor`, `patient`,
    /// comma-separated (e.g. `--require-mfa admin,doctor`).
    #[arg(long, value_delimiter = ',')]
    require_mfa: Vec<String>,
    /// Mark session cookies Secure (set this when users reach the server over HTTPS).
    #[arg(long)]
    secure_cookies: bool,
}

/// A secret key kept in a file of its own (64 hex digits, readable by the owner only) outside
/// the data directory: read it, or create it if the file is missing and the deployment is new.
/// `what` names it in messages; `missing` says why an existing deployment needs it.
fn key_file(
    path: &Path,
    new_deployment: bool,
    what: &str,
    missing: &str,
) -> anyhow::Result<[u8; 32]> {
    use medledger_chain::alloy::primitives::hex;
    match std::fs::read_to_string(path) {
        Ok(text) => hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .with_context(|| format!("{} is not {what} file (64 hex digits)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !new_deployment => {
            bail!("{what} file {} is missing, but {missing}", path.display())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(path)
                .with_context(|| format!("creating {what} file {}", path.display()))?;
            file.write_all(hex::encode(key).as_bytes())?;
            file.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `DIR.suffix`, beside the data directory (so a copy of the directory alone does not hold it).
fn beside(data_dir: &Path, suffix: &str) -> PathBuf {
    let mut name = data_dir.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Says so when a server listens beyond this machine.
fn warn_if_exposed(what: &str, addr: SocketAddr, advice: &str) {
    if !addr.ip().is_loopback() {
        eprintln!("warning: {what} listens on {addr}, reachable from other machines: {advice}");
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
    if args.emergency_daily_cap == 0 || args.emergency_daily_cap > 50 {
        bail!("--emergency-daily-cap must be between 1 and 50");
    }
    let require_mfa = args
        .require_mfa
        .iter()
        .map(|r| match r.trim() {
            "admin" => Ok(Role::Admin),
            "doctor" => Ok(Role::Doctor),
            "patient" => Ok(Role::Patient),
            other => bail!("--require-mfa: {other:?} is not a role (admin, doctor or patient)"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let admin_password = std::env::var("MEDLEDGER_ADMIN_PASSWORD").ok();
    // The web server's address first: the node's CORS admits the app's own origin.
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| {
            format!(
                "binding the web server to {} (use --http-addr)",
                args.http_addr
            )
        })?;
    let http_addr = listener.local_addr()?;

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
            let chain_dir = args.data_dir.join("chain");
            let new_chain = !medledger_chain::holds_chain(&chain_dir);
            let funder = match &args.funder_key {
                Some(key) => parse_key(key)?,
                None => {
                    let path = args
                        .faucet_key
                        .clone()
                        .unwrap_or_else(|| beside(&args.data_dir, ".faucet-key"));
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
            let mut config = NodeConfig::new(Some(chain_dir));
            config.accounts = 0;
            config.alloc = vec![(
                funder.address(),
                U256::from(1_000_000u64) * U256::from(10u64).pow(U256::from(18u64)),
            )];
            let embedded = Node::spawn(config).context("opening the embedded chain")?;
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
                    args.data_dir.display()
                );
            }
            let listener = tokio::net::TcpListener::bind(args.rpc_addr)
                .await
                .with_context(|| {
                    format!(
                        "binding the node's JSON-RPC to {} (use --rpc-addr)",
                        args.rpc_addr
                    )
                })?;
            let addr = listener.local_addr()?;
            warn_if_exposed(
                "the embedded node's JSON-RPC",
                addr,
                "anyone who reaches it can read the public ledger and send signed transactions; bind it to 127.0.0.1 (--rpc-addr) unless a firewall admits only your wallets and tools",
            );
            let cors = match &args.rpc_cors {
                Some(list) => Cors::parse(list).map_err(|e| anyhow::anyhow!("--rpc-cors: {e}"))?,
                None => Cors::parse(&app_origins(http_addr).join(","))
                    .map_err(|e| anyhow::anyhow!("the app's origin: {e}"))?,
            };
            tokio::spawn(medledger_rpc::serve(
                listener,
                Rpc::with_config(embedded.clone(), RpcConfig::ledger(cors)),
                std::future::pending(),
            ));
            println!(
                "Ethereum JSON-RPC (embedded node, chain id {}): http://{addr}",
                embedded.chain_id()
            );
            node = Some(embedded);
            (format!("http://{addr}"), funder)
        }
    };
    let ledger = Ledger::connect(&url).await.map_err(domain)?;

    let escrow_path = args
        .escrow_key
        .clone()
        .unwrap_or_else(|| beside(&args.data_dir, ".escrow-key"));
    let escrow = key_file(
        &escrow_path,
        !args.data_dir.join("medledger.db").exists(),
        "the escrow key",
        "this data directory's records are wrapped for an escrow key: restore the file (or point --escrow-key at it)",
    )?;
    let escrow = SecretKey::from_bytes(&escrow).context("the escrow key file")?;
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
        emergency_daily_cap: args.emergency_daily_cap,
        require_mfa,
        max_upload_bytes: args.max_upload_mib * 1024 * 1024,
    };
    let (app, bootstrap) = App::open(options).await.map_err(domain)?;
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
    let seeded = !app.hospitals(None, None).await.map_err(domain)?.is_empty();
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
            .map_err(|e| domain(e).context("demo: logging in as admin"))?;
        let logins = app
            .seed_demo(&admin)
            .await
            .map_err(|e| domain(e).context("seeding the demo"))?;
        if logins.is_empty() {
            println!("Demo: the directory already has hospitals; nothing seeded");
        } else {
            println!("Demo logins (shown only this once):");
            for l in logins {
                println!("  {:8} {:12} {}", l.role, l.username, l.password);
            }
        }
    }

    // Writes a slow node left open are settled as their receipts come in.
    let resolver = tokio::spawn(app.clone().resolve_forever(Duration::from_secs(5)));
    let mut state = ApiState::new(app);
    state.secure_cookies = args.secure_cookies;
    println!("Listening on http://{http_addr}");
    medledger_web::serve(listener, state, crate::cli::stop_signal())
        .await
        .context("serving HTTP")?;
    resolver.abort();
    if let Some(node) = node {
        node.shutdown();
    }
    Ok(())
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
