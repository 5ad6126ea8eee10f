//! `medledger serve`: the flags (and the environment) validated into a `medledger::Config`,
//! the system started by `medledger::spawn`, what a newcomer must see printed once, and the wait
//! for a stop signal (or a task that dies).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use medledger::{Chain, Config, DemoOutcome, Faucet};
use medledger_chain::alloy::{primitives::U256, signers::local::PrivateKeySigner};
use medledger_records::{
    db::Database,
    limits::{Limit, Limits},
    model::Role,
};
use medledger_rpc::{Cors, Methods};
use medledger_vault::{BlobLocation, S3Keys};

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
    /// Keep the app database in PostgreSQL (`postgres://USER:PASSWORD@HOST:PORT/NAME`) instead
    /// of the SQLite file in --data-dir. Prefer the environment variable: a password on the
    /// command line is visible to every user of the machine.
    #[arg(long, env = "MEDLEDGER_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Keep the sealed report bodies in an S3-compatible bucket
    /// (`s3://BUCKET[/PREFIX]?endpoint=URL&region=NAME`; no endpoint: AWS) or in this directory,
    /// instead of DIR/blobs. The access keys come from the environment (AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY), never from the command line.
    #[arg(long, env = "MEDLEDGER_BLOB_STORE")]
    blob_store: Option<String>,
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
    /// The research key file (the honest broker's: it opens the bundles of patients who take
    /// part in a study, for de-identified exports only), kept like the escrow key. Created on
    /// first start. Default: beside the escrow key, with the extension `.research-key`.
    #[arg(long, env = "MEDLEDGER_RESEARCH_KEY_FILE")]
    research_key: Option<PathBuf>,
    /// The three-digit ZIP prefixes research exports write as 000 (HIPAA Safe Harbor), one per
    /// line, `#` comments. Default: the table shipped as config/safe-harbor-zip3.txt.
    #[arg(long)]
    safe_harbor_zip3: Option<PathBuf>,
    /// The smallest group of patients sharing a birth year, sex and three-digit ZIP code that a
    /// research export keeps (smaller groups are suppressed).
    #[arg(long, default_value_t = 5)]
    k_anonymity: usize,
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
    /// How long a write waits for its transaction's receipt before answering 503 "not mined
    /// yet" (it is settled later). Raise it for a chain with slow blocks.
    #[arg(long, default_value_t = 120)]
    receipt_timeout_secs: u64,
    /// How long any request may take before it is stopped with 503 (uploads and research
    /// exports' files get 15 minutes). Default: the receipt timeout and 30 s more.
    #[arg(long)]
    request_timeout_secs: Option<u64>,
    /// Proxies (their addresses, comma-separated) in front of the server whose
    /// `X-Forwarded-For` names the client; without it the header is ignored and the client is
    /// the connection's peer.
    #[arg(long, value_delimiter = ',')]
    trusted_proxy: Vec<std::net::IpAddr>,
    /// Patients that may sign up per hour from one client (an IPv4 address or IPv6 /64).
    #[arg(long, default_value_t = 10)]
    sign_ups_per_hour: u32,
    /// Fundings (new accounts and top-ups) the faucet makes per 24 hours, across all servers.
    #[arg(long, default_value_t = 1000)]
    faucet_daily_cap: u32,
    /// Top-ups one account gets per 24 hours when its ether runs below a quarter of the funding.
    #[arg(long, default_value_t = 3)]
    top_ups_per_day: u32,
    /// The one origin users reach this deployment at (`https://records.example`): Sign-In with
    /// Ethereum accepts only messages for it, and FHIR and enrolment links are built on it.
    /// Default: the web server's own address (fine on one machine; set it for anything else).
    #[arg(long, env = "MEDLEDGER_PUBLIC_URL")]
    public_url: Option<String>,
    /// Set this when users reach the server over HTTPS: cookies are then Secure and named with
    /// the `__Host-` prefix (only the host itself can set them).
    #[arg(long)]
    secure_cookies: bool,
    /// The JSON-RPC URL the account page tells wallets to add (MetaMask's "add network"), when
    /// they reach the chain by another address than this server does. Default: the embedded
    /// node's, or --chain-rpc.
    #[arg(long)]
    wallet_rpc_url: Option<String>,
}

/// The blob store named by `--blob-store`, in `AWS_REGION` unless it names its region.
pub(crate) fn blob_store(text: &str) -> anyhow::Result<BlobLocation> {
    let mut location =
        BlobLocation::parse(text).map_err(|e| anyhow::anyhow!("--blob-store: {e}"))?;
    if let BlobLocation::S3 { region, .. } = &mut location
        && region.is_none()
    {
        *region = std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty());
    }
    Ok(location)
}

/// An S3 store's access keys, from the environment as every S3 tool reads them: both or
/// neither (then the instance's role signs).
pub(crate) fn s3_keys() -> anyhow::Result<Option<S3Keys>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Some(S3Keys {
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
        })),
        (None, None) => Ok(None),
        _ => bail!(
            "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the S3 blob store, or neither"
        ),
    }
}

/// The database named by `--database-url`.
pub(crate) fn database(url: &str) -> anyhow::Result<Database> {
    Database::from_url(url).map_err(|e| anyhow::anyhow!("--database-url: {}", e.message))
}

fn parse_key(hex: &str) -> anyhow::Result<PrivateKeySigner> {
    hex.trim()
        .parse()
        .ok()
        .context("--funder-key / MEDLEDGER_FUNDER_KEY is not a private key (64 hex digits)")
}

impl ServeArgs {
    /// Validates the flags (and the environment the binary reads) into a configuration.
    fn config(self) -> anyhow::Result<Config> {
        if self.max_upload_mib == 0 || self.max_upload_mib > 1024 {
            bail!("--max-upload-mib must be between 1 and 1024");
        }
        if self.emergency_hours == 0 || self.emergency_hours > 24 * 30 {
            bail!("--emergency-hours must be between 1 and 720");
        }
        if self.receipt_timeout_secs == 0 || self.receipt_timeout_secs > 3600 {
            bail!("--receipt-timeout-secs must be between 1 and 3600");
        }
        if self.emergency_daily_cap == 0 || self.emergency_daily_cap > 50 {
            bail!("--emergency-daily-cap must be between 1 and 50");
        }
        let require_mfa = self
            .require_mfa
            .iter()
            .map(|r| {
                r.trim()
                    .parse::<Role>()
                    .ok()
                    .filter(|r| *r != Role::None)
                    .with_context(|| {
                        format!("--require-mfa: {r:?} is not a role (admin, doctor or patient)")
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut config = Config::new(self.data_dir.clone());
        config.http_addr = self.http_addr;
        config.receipt_timeout = Duration::from_secs(self.receipt_timeout_secs);
        if let Some(secs) = self.request_timeout_secs {
            if secs == 0 || secs > 24 * 3600 {
                bail!("--request-timeout-secs must be between 1 and 86400");
            }
            config.request_timeout = Some(Duration::from_secs(secs));
        }
        config.trusted_proxies = self.trusted_proxy.clone();
        config.limits = Limits {
            sign_ups_per_client: Limit::per_hour(self.sign_ups_per_hour),
            faucet: Limit::per_day(self.faucet_daily_cap),
            top_ups_per_account: Limit::per_day(self.top_ups_per_day),
        };
        if let Some(url) = &self.database_url {
            config.database = Some(database(url)?);
        }
        if let Some(location) = &self.blob_store {
            let location = blob_store(location)?;
            if let BlobLocation::S3 { .. } = location {
                config.s3_keys = s3_keys()?;
            }
            config.blob_store = Some(location);
        }
        config.chain = match self.chain_rpc {
            Some(url) => {
                let key = self
                    .funder_key
                    .as_deref()
                    .context("--chain-rpc needs --funder-key (or MEDLEDGER_FUNDER_KEY): the account that pays for new accounts' gas")?;
                Chain::External {
                    url,
                    funder: parse_key(key)?,
                }
            }
            None => Chain::Embedded {
                rpc_addr: self.rpc_addr,
                faucet: match (&self.funder_key, self.faucet_key) {
                    (Some(key), _) => Faucet::Key(parse_key(key)?),
                    (None, Some(path)) => Faucet::KeyFile(path),
                    (None, None) => Faucet::KeyFile(Config::faucet_key_beside(&self.data_dir)),
                },
                cors: self
                    .rpc_cors
                    .as_deref()
                    .map(Cors::parse)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--rpc-cors: {e}"))?,
                methods: Methods::Ledger,
                in_memory: false,
            },
        };
        if let Some(path) = self.escrow_key {
            config.escrow_key = path;
        }
        config.research_key = self.research_key;
        config.funding_wei =
            U256::from(self.funding_eth) * U256::from(10u64).pow(U256::from(18u64));
        config.admin_password = std::env::var("MEDLEDGER_ADMIN_PASSWORD").ok();
        config.emergency_window = Duration::from_secs(self.emergency_hours * 3600);
        config.emergency_daily_cap = self.emergency_daily_cap;
        config.max_upload_bytes = self.max_upload_mib * 1024 * 1024;
        config.require_mfa = require_mfa;
        config.secure_cookies = self.secure_cookies;
        config.public_url = self
            .public_url
            .as_deref()
            .map(medledger_web::origin::PublicUrl::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--public-url: {e}"))?;
        config.wallet_rpc_url = self.wallet_rpc_url;
        config.demo = self.demo;
        let table = match &self.safe_harbor_zip3 {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("--safe-harbor-zip3: reading {}", path.display()))?,
            None => medledger_records::research::deidentify::DEFAULT_ZIP3_TABLE.to_string(),
        };
        config.safe_harbor = medledger_records::research::deidentify::SafeHarbor::from_table(
            &table,
            self.k_anonymity,
        )
        .map_err(|e| anyhow::anyhow!("--safe-harbor-zip3 / --k-anonymity: {e}"))?;
        Ok(config)
    }
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let embedded = matches!(config.chain, Chain::Embedded { .. });
    let system = medledger::spawn(config).await?;
    if let (true, Some(node)) = (embedded, &system.node) {
        println!(
            "Ethereum JSON-RPC (embedded node, chain id {}): {}",
            node.chain_id(),
            system.chain_url
        );
    }
    if let Some(b) = &system.bootstrap {
        println!(
            "First start: contracts deployed (Registry {}, Records {}, Consent {}, Research {})",
            b.contracts.registry, b.contracts.records, b.contracts.consent, b.contracts.research
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
    match &system.demo {
        Some(DemoOutcome::AlreadySeeded) => {
            println!("Demo: the directory already has hospitals; nothing seeded")
        }
        Some(DemoOutcome::Seeded(logins)) => {
            println!("Demo logins (shown only this once):");
            for l in logins {
                println!("  {:8} {:12} {}", l.role, l.username, l.password);
            }
        }
        None => {}
    }
    println!("Listening on {}", system.http_url);
    system.run_until(crate::cli::stop_signal()).await
}
