//! Command-line arguments (raw flags), their validation into configurations, and the commands.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use medledger::DataDir;
use medledger_chain::{MiningMode, Node, NodeConfig, alloy::primitives::U256, verify_data_dir};
use medledger_records::db::Database;
use medledger_rpc::Rpc;

#[derive(Debug, Parser)]
#[command(
    name = "medledger",
    version,
    about = "Patient-owned health records anchored on an Ethereum ledger"
)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system: the web application and REST API, on the embedded chain (or
    /// --chain-rpc), SQLite and a blob directory under --data-dir.
    Serve(Box<crate::serve::ServeArgs>),
    /// Run the embedded Ethereum node alone: a drop-in for `ganache` (JSON-RPC over HTTP).
    Node(NodeArgs),
    /// Copy a deployment (database, blobs, the embedded chain; the key files only with
    /// --with-keys) into a new directory. Stop `serve` first when the chain is embedded.
    Backup {
        #[command(flatten)]
        deployment: DeploymentArgs,
        /// The new (or empty) directory to write the backup into.
        #[arg(long)]
        to: PathBuf,
        /// Also copy the escrow, research and faucet key files: the backup then opens everything,
        /// so keep it as safely as the keys.
        #[arg(long)]
        with_keys: bool,
    },
    /// Bring a backup back into a new deployment (an empty database, blob store and data
    /// directory), then run `verify` on it.
    Restore {
        #[command(flatten)]
        deployment: DeploymentArgs,
        /// The backup's directory (as written by `backup --to`).
        #[arg(long)]
        from: PathBuf,
    },
    /// Re-check a stored chain from genesis, and every stored report against its on-chain
    /// anchor; exits non-zero naming the first bad block or every bad report.
    Verify {
        /// The data directory to check (as given to `node` or `serve`).
        #[arg(long, default_value = "medledger-data")]
        data_dir: PathBuf,
        /// The deployment runs on this Ethereum node (as `serve --chain-rpc`): check the
        /// reports against it; there is no local chain to re-execute.
        #[arg(long)]
        chain_rpc: Option<String>,
        /// The deployment keeps its app database in PostgreSQL (as `serve --database-url`).
        #[arg(long, env = "MEDLEDGER_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// The deployment keeps its blobs in this bucket or directory (as `serve --blob-store`).
        #[arg(long, env = "MEDLEDGER_BLOB_STORE")]
        blob_store: Option<String>,
    },
    /// Share FHIR bundle files as a patient's reports through a running server's REST API,
    /// with a progress bar; files shared before are skipped.
    Import(crate::import::ImportArgs),
}

/// Where a deployment's parts are, as `serve` is told.
#[derive(Debug, clap::Args)]
struct DeploymentArgs {
    #[arg(long, default_value = "medledger-data")]
    data_dir: PathBuf,
    /// The app database in PostgreSQL (as `serve --database-url`).
    #[arg(long, env = "MEDLEDGER_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The blob store (as `serve --blob-store`; S3 keys from AWS_* in the environment).
    #[arg(long, env = "MEDLEDGER_BLOB_STORE")]
    blob_store: Option<String>,
    /// The escrow key file. Default: DIR.escrow-key beside DIR.
    #[arg(long, env = "MEDLEDGER_ESCROW_KEY_FILE")]
    escrow_key: Option<PathBuf>,
    /// The research key file. Default: beside the escrow key (`.research-key`).
    #[arg(long, env = "MEDLEDGER_RESEARCH_KEY_FILE")]
    research_key: Option<PathBuf>,
    /// The embedded chain's faucet key file. Default: DIR.faucet-key beside DIR.
    #[arg(long, env = "MEDLEDGER_FAUCET_KEY_FILE")]
    faucet_key: Option<PathBuf>,
}

impl DeploymentArgs {
    fn deployment(self) -> anyhow::Result<medledger::Deployment> {
        let blob_store = self
            .blob_store
            .as_deref()
            .map(crate::serve::blob_store)
            .transpose()?;
        let s3_keys = match blob_store {
            Some(medledger_vault::BlobLocation::S3 { .. }) => crate::serve::s3_keys()?,
            _ => None,
        };
        let escrow_key = self
            .escrow_key
            .unwrap_or_else(|| medledger::Config::new(self.data_dir.clone()).escrow_key);
        Ok(medledger::Deployment {
            database: self
                .database_url
                .as_deref()
                .map(crate::serve::database)
                .transpose()?,
            blob_store,
            s3_keys,
            research_key: self
                .research_key
                .unwrap_or_else(|| medledger::Config::research_key_of(&escrow_key)),
            escrow_key,
            faucet_key: self
                .faucet_key
                .unwrap_or_else(|| medledger::Config::faucet_key_beside(&self.data_dir)),
            data_dir: self.data_dir,
        })
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

#[derive(Debug, clap::Args)]
struct NodeArgs {
    /// Where blocks are kept (created if missing). The chain lives in DIR/chain.
    #[arg(long, default_value = "medledger-data")]
    data_dir: PathBuf,
    /// Keep the chain in memory only: nothing survives a restart.
    #[arg(long, conflicts_with = "data_dir")]
    in_memory: bool,
    /// Address for JSON-RPC; use port 0 for any free port.
    #[arg(long, default_value = "127.0.0.1:8545")]
    rpc_addr: SocketAddr,
    /// EIP-155 chain id (only for a new chain).
    #[arg(long)]
    chain_id: Option<u64>,
    /// Seconds between blocks; without it every transaction is mined at once.
    #[arg(long)]
    block_time: Option<u64>,
    /// How many pre-funded dev accounts to create (only for a new chain).
    #[arg(long)]
    accounts: Option<usize>,
    /// Balance of each dev account, in ETH (only for a new chain).
    #[arg(long)]
    balance: Option<u64>,
    /// Mnemonic of the dev accounts.
    #[arg(long, default_value = medledger_chain::DEV_MNEMONIC)]
    mnemonic: String,
    /// Refuse the test methods (`evm_*`, `eth_sendTransaction`), as `medledger serve`'s node
    /// does: nobody can then move the clock or rewrite history.
    #[arg(long)]
    disable_test_methods: bool,
}

impl NodeArgs {
    /// Validates the flags into a node configuration.
    fn config(&self) -> anyhow::Result<NodeConfig> {
        let data_dir = (!self.in_memory).then(|| DataDir(&self.data_dir).chain());
        let mut config = NodeConfig::new(data_dir);
        if let Some(id) = self.chain_id {
            if id == 0 {
                bail!("--chain-id must be greater than 0");
            }
            config.chain_id = id;
        }
        if let Some(n) = self.accounts {
            if n == 0 || n > 1000 {
                bail!("--accounts must be between 1 and 1000");
            }
            config.accounts = n;
        }
        if let Some(eth) = self.balance {
            config.balance = U256::from(eth) * U256::from(10u64).pow(U256::from(18u64));
        }
        if let Some(secs) = self.block_time {
            if secs == 0 {
                bail!("--block-time must be at least 1 second (leave it out for instant mining)");
            }
            config.mining = MiningMode::Interval(Duration::from_secs(secs));
        }
        config.mnemonic = self.mnemonic.clone();
        Ok(config)
    }

    /// Flags that only shape a new chain must agree with an existing one.
    fn check_against(&self, node: &Node) -> anyhow::Result<()> {
        if let Some(id) = self.chain_id
            && id != node.chain_id()
        {
            bail!(
                "{} holds a chain with id {}, not {id}; use another --data-dir for a new chain",
                self.data_dir.display(),
                node.chain_id()
            );
        }
        Ok(())
    }
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Serve(serve) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(crate::serve::run(*serve))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Node(node) => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            // One worker more than there are cores (unless TOKIO_WORKER_THREADS says otherwise):
            // signature recovery keeps a worker busy for tens of microseconds per transaction,
            // and the spare one keeps answering meanwhile. Measured with the records workload on
            // 2 cores: about 10,900 tx/s with 3 workers against 10,000 with 2.
            if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                runtime.worker_threads(cores + 1);
            }
            let runtime = runtime
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(run_node(node))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup {
            deployment,
            to,
            with_keys,
        } => {
            let deployment = deployment.deployment()?;
            let done = runtime()?.block_on(medledger::backup(&deployment, &to, with_keys))?;
            println!(
                "backup: {} rows, {} blobs{} into {}",
                done.rows,
                done.blobs,
                if done.chain { ", the chain" } else { "" },
                to.display()
            );
            if done.keys_copied {
                println!(
                    "backup: the key files are in it too: it opens every record, keep it as safely as the keys"
                );
            } else {
                println!(
                    "backup: the key files are not in it (see manifest.json); keep {} and {} safe apart",
                    deployment.escrow_key.display(),
                    deployment.faucet_key.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { deployment, from } => {
            let deployment = deployment.deployment()?;
            let done = runtime()?.block_on(medledger::restore(&from, &deployment))?;
            println!(
                "restore: {} rows, {} blobs{} into {}",
                done.rows,
                done.blobs,
                if done.chain { ", the chain" } else { "" },
                deployment.data_dir.display()
            );
            if !done.keys_copied {
                println!(
                    "restore: the backup holds no key files: put the escrow key at {} before `serve`",
                    deployment.escrow_key.display()
                );
            }
            println!("restore: now run `medledger verify` with the same options");
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(import) => Ok(if runtime()?.block_on(crate::import::run(import))? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }),
        Command::Verify {
            data_dir,
            chain_rpc,
            database_url,
            blob_store,
        } => {
            let blob_store = blob_store
                .as_deref()
                .map(crate::serve::blob_store)
                .transpose()?;
            let mut ok = true;
            if chain_rpc.is_none() {
                ok &= verify_chain(&data_dir)?;
            }
            let database = match &database_url {
                Some(url) => Some(crate::serve::database(url)?),
                None => {
                    let file = DataDir(&data_dir).database();
                    file.exists().then_some(Database::Sqlite(file))
                }
            };
            if let Some(database) = database {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .context("starting the async runtime")?;
                ok &= runtime.block_on(verify_blobs(
                    &data_dir,
                    &database,
                    blob_store.as_ref(),
                    crate::serve::s3_keys()?,
                    chain_rpc,
                ))?;
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn verify_chain(data_dir: &std::path::Path) -> anyhow::Result<bool> {
    let report = verify_data_dir(&DataDir(data_dir).chain()).context("verifying the chain")?;
    println!(
        "chain: {} blocks and {} transactions verified (signatures, parent links, re-execution, receipts, state)",
        report.blocks_ok, report.transactions_ok
    );
    match report.problem {
        None => {
            println!("chain: OK");
            Ok(true)
        }
        Some(problem) => {
            println!("chain: MISMATCH at {problem}");
            Ok(false)
        }
    }
}

/// Checks every report's blob against its anchor, on the stored chain or on `chain_rpc`.
async fn verify_blobs(
    data_dir: &std::path::Path,
    database: &Database,
    blob_store: Option<&medledger_vault::BlobLocation>,
    s3_keys: Option<medledger_vault::S3Keys>,
    chain_rpc: Option<String>,
) -> anyhow::Result<bool> {
    let report =
        medledger::verify_reports(data_dir, database, blob_store, s3_keys.as_ref(), chain_rpc)
            .await?;
    println!(
        "reports: {} stored records checked against their on-chain anchors (file, metadata and structured content), {} anchors against the stored records",
        report.checked, report.anchors
    );
    if report.file_only > 0 {
        println!(
            "reports: {} of them were anchored before anchors covered their metadata and structured content: their file alone is checked",
            report.file_only
        );
    }
    for (id, status) in &report.bad {
        println!("reports: MISMATCH {id}: {status}");
    }
    if report.bad.is_empty() {
        println!("reports: OK");
    }
    Ok(report.bad.is_empty())
}

async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let node = Node::spawn(config.clone()).context("opening the chain")?;
    args.check_against(&node)?;
    let listener = tokio::net::TcpListener::bind(args.rpc_addr)
        .await
        .with_context(|| format!("binding JSON-RPC to {}", args.rpc_addr))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: JSON-RPC listens on {addr}, reachable from other machines, and the dev accounts' keys are public"
        );
    }
    print_banner(&node, &config);
    println!("Listening on {addr}");
    let mut rpc = medledger_rpc::RpcConfig::dev();
    if args.disable_test_methods {
        rpc.methods = medledger_rpc::Methods::Ledger;
    }
    medledger_rpc::serve(listener, Rpc::with_config(node.clone(), rpc), stop_signal())
        .await
        .context("serving JSON-RPC")?;
    node.shutdown();
    Ok(())
}

fn print_banner(node: &Node, config: &NodeConfig) {
    println!(
        "medledger node v{} (chain id {})",
        env!("CARGO_PKG_VERSION"),
        node.chain_id()
    );
    match &config.data_dir {
        Some(dir) => println!(
            "Data directory: {} (block {})",
            dir.display(),
            node.block_number()
        ),
        None => println!("Data directory: none (in memory)"),
    }
    println!("\nAvailable Accounts\n==================");
    let ether = U256::from(10u64).pow(U256::from(18u64));
    for (i, signer) in node.dev_accounts().signers().iter().enumerate() {
        let balance = node
            .balance(signer.address(), medledger_chain::BlockTag::Latest)
            .unwrap_or_default();
        println!("({i}) {} ({} ETH)", signer.address(), balance / ether);
    }
    println!("\nPrivate Keys\n==================");
    for (i, signer) in node.dev_accounts().signers().iter().enumerate() {
        println!(
            "({i}) 0x{}",
            medledger_chain::alloy::primitives::hex::encode(signer.to_bytes())
        );
    }
    println!("\nMnemonic: {}", config.mnemonic);
    match config.mining {
        MiningMode::Auto => println!("Mining: automatic (every transaction is mined at once)"),
        MiningMode::Interval(d) => println!("Mining: a block every {} s", d.as_secs()),
    }
}

/// Resolves on Ctrl-C or SIGTERM (what service managers and containers send), so the servers
/// finish their requests and the node closes its block log cleanly.
pub(crate) async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
