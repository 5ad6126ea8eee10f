//! The application: the ledger, the app database, the blob store and the keyring, opened
//! together and checked against each other. First start deploys the contracts signed by a
//! new admin account; later starts refuse a database that belongs to another chain.

use std::{sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, U256},
    signers::local::PrivateKeySigner,
};
use medledger_vault::BlobStore;

use crate::{
    access::Access,
    accounts::{self, Accounts},
    audit::Audit,
    db::{self, Database, Db, Engine},
    demo::Demo,
    directory::Directory,
    disclosure::ReadLog,
    emergency::BreakGlass,
    enrolment::Enrolment,
    error::{Error, Result},
    explorer::Explorer,
    faucet::Faucet,
    follows::{Followups, Writer},
    index::Indexer,
    journal::{Journal, Resolved},
    keyring::Keyring,
    ledger::{Contracts, Ledger},
    limits::Limiter,
    mfa::SecondFactors,
    model::Role,
    people::People,
    reports::Anchors,
    reports::Reports,
    research::Research,
    security::SecurityLog,
    sessions::Sessions,
    sharing::Sharing,
    store::{
        settings::Settings,
        users::{NewUser, Users},
    },
    wallet::Wallet,
    wrapping::Wrapping,
};

pub use crate::model::{unix_now, unix_now_ms};

/// Everything the application needs, validated by the binary.
pub struct Options {
    /// The app database: a SQLite file, or PostgreSQL.
    pub database: Database,
    pub ledger: Ledger,
    pub blobs: BlobStore,
    /// The deployment's secrets (the emergency escrow key, the research key), kept outside the
    /// data directory and held only by the keyring.
    pub keyring: Keyring,
    /// Pays for new accounts' gas (the dev faucet on the embedded chain).
    pub funder: PrivateKeySigner,
    /// Given to a new account so it can pay for its transactions.
    pub funding: U256,
    /// The de-identification rules of research exports.
    pub safe_harbor: crate::research::deidentify::SafeHarbor,
    /// The first admin's password; generated when absent.
    pub admin_password: Option<String>,
    pub emergency_window: Duration,
    /// Emergencies one doctor may declare per day (UTC), for a new deployment.
    pub emergency_daily_cap: u8,
    pub max_upload_bytes: usize,
    /// Roles whose accounts must have a second factor (TOTP) to do anything.
    pub require_mfa: Vec<Role>,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
    /// The one origin this deployment answers as (`https://records.example`): what a Sign-In
    /// with Ethereum message and the wallet key message must name.
    pub public_origin: String,
    /// Sign-ups per client, the faucet's fundings per day, top-ups per account.
    pub limits: crate::limits::Limits,
}

/// What a first start created, for the binary to print once.
#[derive(Debug)]
pub struct Bootstrap {
    pub admin_username: String,
    /// Present when it was generated (never when it came from the environment).
    pub generated_password: Option<String>,
    pub contracts: Contracts,
}

#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    engine: Engine,
    ledger: Ledger,
    contracts: Contracts,
    blobs: BlobStore,
    /// The write path, the faucet it tops signers up from, and the limits they count against:
    /// each built once here, holding only what it uses.
    journal: Journal,
    faucet: Faucet,
    emergency_window: Duration,
    max_upload_bytes: usize,
    /// Second factors (`mfa.rs`).
    second_factors: SecondFactors,
    /// Sessions (`sessions.rs`).
    sessions: Sessions,
    /// The ledger explorer (`explorer.rs`).
    explorer: Explorer,
    /// Records against their anchors (`reports/anchor.rs`).
    anchors: Anchors,
    /// Accounts: created, registered, logged in (`accounts.rs`).
    accounts: Accounts,
    /// The chain index listings read (`index.rs`).
    indexer: Indexer,
    /// Who may see what, as the chain says (`access.rs`).
    access: Access,
    /// Who is who (`people.rs`).
    people: People,
    /// The security log (`security.rs`).
    security: SecurityLog,
    /// `wallet.rs`.
    wallet: Wallet,
    /// `enrolment.rs`.
    enrolment: Enrolment,
    /// `directory.rs`.
    directory: Directory,
    /// `research/mod.rs`.
    research: Research,
    /// `reports.rs`.
    reports: Reports,
    /// `audit.rs`.
    audit: Audit,
    /// `sharing.rs`.
    sharing: Sharing,
    /// `emergency.rs`.
    emergency: BreakGlass,
    /// `demo.rs`.
    demo: Demo,
    /// The write path with what follows each write (`follows.rs`).
    writer: Writer,
}

pub const ADMIN_USERNAME: &str = "admin";

impl App {
    /// Opens (and on first start, sets up) the application.
    pub async fn open(options: Options) -> Result<(App, Option<Bootstrap>)> {
        let engine = options.database.engine();
        let locks = db::Locks::open(&options.database).await?;
        // Servers started at once on one database: one deploys, the others find its contracts.
        let deploying = locks.hold("deployment").await?;
        let db = open_database(&options.database).await?;
        let escrow_public = options.keyring.escrow_public();
        match setting(&db, "escrow_public").await? {
            Some(stored) if stored != escrow_public.to_hex() => {
                return Err(Error::misconfigured(
                    "the escrow key file does not match this data directory (its records are wrapped for another escrow key)",
                ));
            }
            _ => {}
        }
        let research_public = options.keyring.research_public();
        match setting(&db, "research_public").await? {
            Some(stored) if stored != research_public.to_hex() => {
                return Err(Error::misconfigured(
                    "the research key file does not match this deployment (its participants' bundles are wrapped for another research key)",
                ));
            }
            _ => {}
        }
        let chain_id = options.ledger.chain_id();
        let (contracts, bootstrap) = match crate::store::settings::load_contracts(&db).await? {
            Some((stored_chain, contracts)) => {
                if stored_chain != chain_id {
                    return Err(Error::misconfigured(format!(
                        "this data directory belongs to chain id {stored_chain}, but the node answers with chain id {chain_id}"
                    )));
                }
                if !options.ledger.has_code(contracts.registry).await? {
                    return Err(Error::misconfigured(format!(
                        "the Registry contract at {} is not on this chain; was the chain reset? Use a new --data-dir",
                        contracts.registry
                    )));
                }
                (contracts, None)
            }
            None => {
                let (contracts, bootstrap) = first_start(&db, &options).await?;
                (contracts, Some(bootstrap))
            }
        };
        // The site the wallet key message names, fixed once: a wallet account's key comes from
        // its signature of that message, so a later --public-url must not change it. Wallet
        // accounts made before the message named a site keep the message they signed.
        let key_site = match setting(&db, "wallet_key_site").await? {
            Some(site) => site,
            None => {
                let site = if Users(&db).any_wallet().await? {
                    String::new()
                } else {
                    options.public_origin.clone()
                };
                put_setting(&db, "wallet_key_site", &site).await?;
                site
            }
        };
        put_setting(&db, "escrow_public", &escrow_public.to_hex()).await?;
        put_setting(&db, "research_public", &research_public.to_hex()).await?;
        drop(deploying);
        // The parts, each built from what it needs, in one place.
        let keyring = Arc::new(options.keyring);
        let limiter = Limiter::new(db.clone(), options.limits);
        let faucet = Faucet::new(
            options.ledger.clone(),
            locks.clone(),
            limiter.clone(),
            options.funder,
            options.funding,
        );
        let journal = Journal::new(
            db.clone(),
            options.ledger.clone(),
            locks.clone(),
            faucet.clone(),
        );
        let indexer = Indexer::new(db.clone(), options.ledger.clone(), contracts, locks.clone());
        let readlog = ReadLog::new(journal.clone(), contracts.consent);
        let access = Access::new(
            db.clone(),
            options.ledger.clone(),
            contracts,
            indexer.clone(),
            keyring.clone(),
        );
        let people = People::new(db.clone(), options.ledger.clone(), contracts);
        let wrapping = Wrapping::new(
            db.clone(),
            options.ledger.clone(),
            contracts,
            keyring.clone(),
            access.clone(),
            people.clone(),
        );
        let writer = Writer::new(
            journal.clone(),
            Followups::new(
                db.clone(),
                options.blobs.clone(),
                contracts,
                access.clone(),
                wrapping,
            ),
        );
        let sessions = Sessions::new(db.clone(), options.session_idle);
        let security = SecurityLog::new(db.clone());
        let second_factors = SecondFactors::new(
            db.clone(),
            access.clone(),
            keyring.clone(),
            limiter.clone(),
            sessions.clone(),
            options.require_mfa,
        );
        let accounts = Accounts::new(
            db.clone(),
            contracts,
            faucet.clone(),
            limiter.clone(),
            second_factors.clone(),
            people.clone(),
            writer.clone(),
            // Password hashing and keystore sealing run on the blocking pool, this many at a
            // time, so a burst of logins never stalls the async workers that answer the rest.
            Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
            accounts::dummy_hash().into(),
        );
        let anchors = Anchors::new(
            db.clone(),
            options.ledger.clone(),
            contracts,
            options.blobs.clone(),
        );
        let explorer = Explorer::new(
            db.clone(),
            options.ledger.clone(),
            contracts,
            indexer.clone(),
        );
        let wallet = Wallet::new(
            db.clone(),
            options.ledger.clone(),
            contracts,
            keyring.clone(),
            accounts.clone(),
            people.clone(),
            key_site,
        );
        let enrolment = Enrolment::new(
            db.clone(),
            options.ledger.clone(),
            contracts,
            accounts.clone(),
            people.clone(),
            writer.clone(),
        );
        let directory = Directory::new(
            db.clone(),
            contracts,
            access.clone(),
            keyring.clone(),
            limiter.clone(),
            accounts.clone(),
            people.clone(),
            readlog.clone(),
            writer.clone(),
        );
        let research = Research::new(
            db.clone(),
            options.ledger.clone(),
            contracts,
            access.clone(),
            keyring.clone(),
            anchors.clone(),
            people.clone(),
            writer.clone(),
            options.safe_harbor,
        );
        let reports = Reports::new(
            db.clone(),
            options.ledger.clone(),
            contracts,
            options.blobs.clone(),
            access.clone(),
            anchors.clone(),
            keyring.clone(),
            people.clone(),
            readlog.clone(),
            writer.clone(),
            options.max_upload_bytes,
        );
        let audit = Audit::new(
            contracts,
            indexer.clone(),
            journal.clone(),
            access.clone(),
            people.clone(),
            reports.clone(),
            research.clone(),
        );
        let sharing = Sharing::new(
            db.clone(),
            options.ledger.clone(),
            contracts,
            directory.clone(),
            people.clone(),
            reports.clone(),
            readlog.clone(),
            writer.clone(),
        );
        let emergency = BreakGlass::new(
            db.clone(),
            options.ledger.clone(),
            contracts,
            access.clone(),
            indexer.clone(),
            people.clone(),
            audit.clone(),
            writer.clone(),
        );
        let demo = Demo::new(
            accounts.clone(),
            directory.clone(),
            enrolment.clone(),
            people.clone(),
            reports.clone(),
            sharing.clone(),
        );
        let app = App {
            inner: Arc::new(Inner {
                db,
                engine,
                ledger: options.ledger,
                contracts,
                blobs: options.blobs,
                journal,
                faucet,
                emergency_window: options.emergency_window,
                max_upload_bytes: options.max_upload_bytes,
                second_factors,
                sessions,
                explorer,
                anchors,
                accounts,
                indexer,
                access,
                people,
                security,
                writer,
                wallet,
                enrolment,
                directory,
                reports,
                research,
                audit,
                sharing,
                emergency,
                demo,
            }),
        };
        // Writes a crash left open are settled before anything else runs. A SQLite file has one
        // server, so every open write is a crash's; on a shared database the others' writes in
        // flight are theirs until the receipt timeout has passed.
        let age = match engine {
            Engine::Sqlite => 0,
            Engine::Postgres => app.ledger().receipt_timeout().as_secs() as i64 + 1,
        };
        let resolved = app.resolve_journal(age).await?;
        if resolved != Default::default() {
            tracing::info!("open chain writes at start: {resolved:?}");
        }
        Ok((app, bootstrap))
    }

    /// Settles, every `every`, the writes a slow node left open (those older than the receipt
    /// timeout: a request still waiting for its own is left to it). Runs until dropped.
    pub async fn resolve_forever(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let age = self.ledger().receipt_timeout().as_secs() as i64 + 1;
            match self.resolve_journal(age).await {
                Ok(resolved) => tracing::debug!("open chain writes settled: {resolved:?}"),
                Err(e) => tracing::warn!("settling open chain writes: {}", e.for_operator()),
            }
        }
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Accounts: created, registered, logged in, their passwords and keystores.
    pub fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    /// The use case of `wallet.rs`.
    pub fn wallet(&self) -> &Wallet {
        &self.inner.wallet
    }

    /// The use case of `enrolment.rs`.
    pub fn enrolment(&self) -> &Enrolment {
        &self.inner.enrolment
    }

    /// The use case of `directory.rs`.
    pub fn directory(&self) -> &Directory {
        &self.inner.directory
    }

    /// The use case of `research/mod.rs`.
    pub fn research(&self) -> &Research {
        &self.inner.research
    }

    /// The use case of `reports.rs`.
    pub fn reports(&self) -> &Reports {
        &self.inner.reports
    }

    /// The use case of `audit.rs`.
    pub fn audit(&self) -> &Audit {
        &self.inner.audit
    }

    /// The use case of `sharing.rs`.
    pub fn sharing(&self) -> &Sharing {
        &self.inner.sharing
    }

    /// The use case of `emergency.rs`.
    pub fn emergency(&self) -> &BreakGlass {
        &self.inner.emergency
    }

    /// The use case of `demo.rs`.
    pub fn demo(&self) -> &Demo {
        &self.inner.demo
    }

    /// The security log: events recorded, the latest read by an admin.
    pub fn security(&self) -> &SecurityLog {
        &self.inner.security
    }

    /// Who is who: accounts, roles, the directory.
    pub fn people(&self) -> &People {
        &self.inner.people
    }

    /// Whether `doctor`'s emergency access to `patient` is open now.
    pub async fn emergency_open(&self, patient: Address, doctor: Address) -> Result<bool> {
        self.inner.access.emergency_open(patient, doctor).await
    }

    /// Brings the chain index up to the chain's head; returns the head indexed.
    pub async fn index_chain(&self) -> Result<u64> {
        self.inner.indexer.index_chain().await
    }

    /// Brings the index up to the chain every `every`, so a request seldom waits for it. Runs
    /// until dropped.
    pub async fn index_forever(self, every: std::time::Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.index_chain().await {
                tracing::warn!("indexing the chain: {}", e.for_operator());
            }
        }
    }

    /// Which engine the app database runs on.
    pub fn engine(&self) -> Engine {
        self.inner.engine
    }

    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    pub fn contracts(&self) -> Contracts {
        self.inner.contracts
    }

    /// The blob store (it holds sealed bodies only).
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// Completes `person`'s prepared write `id` with the transaction `hash` their wallet sent
    /// (`Journal::complete_write`).
    pub async fn complete_write(
        &self,
        person: &crate::accounts::Person,
        id: i64,
        hash: alloy::primitives::B256,
    ) -> Result<crate::TxInfo> {
        self.inner.writer.complete_write(person, id, hash).await
    }

    /// Gives up `person`'s prepared write `id` (`Journal::cancel_write`).
    pub async fn cancel_write(&self, person: &crate::accounts::Person, id: i64) -> Result<()> {
        self.inner.writer.cancel_write(person, id).await
    }

    /// Resolves the writes left open at least `min_age_secs` ago (`Journal::resolve`).
    pub async fn resolve_journal(&self, min_age_secs: i64) -> Result<Resolved> {
        self.inner.writer.resolve(min_age_secs).await
    }

    /// The write path, for the journal's unit tests.
    #[cfg(test)]
    pub(crate) fn writer(&self) -> &Writer {
        &self.inner.writer
    }

    /// The journal, for its unit tests.
    #[cfg(test)]
    pub(crate) fn journal(&self) -> &Journal {
        &self.inner.journal
    }

    /// How many writes are still open (for the health check).
    pub async fn open_writes(&self) -> Result<i64> {
        self.inner.journal.open_writes().await
    }

    pub fn emergency_window(&self) -> Duration {
        self.inner.emergency_window
    }

    pub fn max_upload_bytes(&self) -> usize {
        self.inner.max_upload_bytes
    }

    /// How long a session may go without a request.
    pub fn session_idle(&self) -> Duration {
        self.inner.sessions.idle()
    }

    /// Checks every stored record against its anchor on chain.
    pub async fn verify_blobs(&self) -> Result<crate::reports::BlobReport> {
        self.inner.anchors.verify_blobs().await
    }

    /// The ledger explorer: blocks, transactions, accounts, the contracts.
    pub fn explorer(&self) -> &Explorer {
        &self.inner.explorer
    }

    /// Sessions: started at login, found by token, ended.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// Second factors: set up, confirmed, checked, turned off.
    pub fn second_factors(&self) -> &SecondFactors {
        &self.inner.second_factors
    }

    /// What the health check reports: the chain, and whether the database and blob store answer.
    pub async fn health(&self) -> Health {
        let block = self.inner.ledger.block_number().await.ok();
        // A node can serve its stored blocks and still refuse state (the embedded one does once
        // it could not store a block): every write needs state, so ask for some.
        let faucet = self
            .inner
            .ledger
            .balance(self.inner.faucet.address())
            .await
            .ok();
        let database = db::ping(&self.inner.db).await;
        let blobs = self.inner.blobs.check().await.is_ok();
        Health {
            chain_id: self.inner.ledger.chain_id(),
            latest_block: block,
            chain_state: faucet.is_some(),
            database,
            blob_store: blobs,
            backends: Backends {
                database: Backend {
                    kind: self.inner.engine.as_str(),
                    ok: database,
                },
                blob_store: Backend {
                    kind: self.inner.blobs.kind(),
                    ok: blobs,
                },
                chain: ChainHealth {
                    ok: block.is_some() && faucet.is_some(),
                    chain_id: self.inner.ledger.chain_id(),
                    latest_block: block,
                },
                faucet: FaucetHealth {
                    address: self.inner.faucet.address(),
                    balance_wei: faucet.map(|b| b.to_string()),
                    accounts_left: faucet.map(|b| {
                        let left = b / self.inner.faucet.funding().max(U256::from(1));
                        u64::try_from(left).unwrap_or(u64::MAX)
                    }),
                },
            },
        }
    }
}

/// What `/healthz` says: each backend on its own, so a monitor sees which one failed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    pub chain_id: u64,
    pub latest_block: Option<u64>,
    /// Whether the chain answers a state query (a balance).
    pub chain_state: bool,
    pub database: bool,
    pub blob_store: bool,
    pub backends: Backends,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Backends {
    pub database: Backend,
    pub blob_store: Backend,
    pub chain: ChainHealth,
    /// The account that pays new accounts' gas; not a backend (a dry faucet stops sign-ups,
    /// nothing else), so it never makes the whole unhealthy.
    pub faucet: FaucetHealth,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Backend {
    /// `sqlite` or `postgres`; `directory` or `s3`.
    pub kind: &'static str,
    pub ok: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainHealth {
    pub ok: bool,
    pub chain_id: u64,
    pub latest_block: Option<u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FaucetHealth {
    pub address: Address,
    /// `None` when the chain does not answer.
    pub balance_wei: Option<String>,
    /// How many more new accounts it can fund.
    pub accounts_left: Option<u64>,
}

impl Health {
    pub fn ok(&self) -> bool {
        self.backends.chain.ok && self.database && self.blob_store
    }

    /// The backends that fail.
    pub fn degraded(&self) -> Vec<&'static str> {
        let b = &self.backends;
        [
            ("database", b.database.ok),
            ("blob_store", b.blob_store.ok),
            ("chain", b.chain.ok),
        ]
        .into_iter()
        .filter_map(|(name, ok)| (!ok).then_some(name))
        .collect()
    }
}

/// The version of the contracts this code deploys and speaks to. A deployment made with other
/// contracts is refused, before anything of it is changed.
pub const CONTRACTS_VERSION: &str = "3";

/// Refuses a database whose deployment runs other contracts (looked at before migrating, so
/// an old deployment is left exactly as it was).
async fn check_contracts_version(db: &Db, engine: Engine) -> Result<()> {
    if !db::has_table(db, engine, "settings").await? || setting(db, "registry").await?.is_none() {
        return Ok(());
    }
    match setting(db, "contracts_version").await?.as_deref() {
        Some(CONTRACTS_VERSION) => Ok(()),
        found => Err(Error::misconfigured(format!(
            "this data directory was made by an earlier medledger, with contracts version {} (this one runs version {CONTRACTS_VERSION}: researchers, studies that patients opt into on chain, and exports recorded on chain). It cannot be upgraded in place: start this version with a new --data-dir, or keep running the earlier version on this one",
            found.unwrap_or("1")
        ))),
    }
}

async fn open_database(database: &Database) -> Result<Db> {
    let db = db::connect(database, false).await?;
    check_contracts_version(&db, database.engine()).await?;
    db::migrate(&db, database.engine()).await?;
    Ok(db)
}

async fn setting(db: &Db, key: &str) -> Result<Option<String>> {
    Settings(db).get(key).await
}

async fn put_setting(db: &Db, key: &str, value: &str) -> Result<()> {
    Settings(db).put(key, value).await
}

/// Creates the admin account and deploys the contracts signed by it.
async fn first_start(db: &Db, options: &Options) -> Result<(Contracts, Bootstrap)> {
    let (password, generated) = match &options.admin_password {
        Some(p) => {
            accounts::check_password(p).map_err(|e| {
                Error::misconfigured(format!("MEDLEDGER_ADMIN_PASSWORD: {}", e.message))
            })?;
            (p.clone(), None)
        }
        None => {
            let p = accounts::generate_password();
            (p.clone(), Some(p))
        }
    };
    let signer = PrivateKeySigner::random_with(&mut rand::rngs::OsRng);
    crate::faucet::send(
        &options.ledger,
        &options.funder,
        signer.address(),
        options.funding * U256::from(10),
    )
    .await?;
    let contracts = options
        .ledger
        .deploy(
            &signer,
            options.emergency_window,
            options.emergency_daily_cap,
        )
        .await?;
    // A half-finished earlier first start may have left an admin row: it is replaced.
    Users(db)
        .insert_first_admin(&NewUser {
            username: ADMIN_USERNAME,
            role: Role::Admin,
            address: signer.address(),
            mode: "custodial",
            keystore: Some(accounts::encrypt_keystore(&signer, &password)?),
            password_hash: Some(accounts::hash_password(&password)?),
            enc_public: accounts::encryption_key(&signer).public_key().to_hex(),
            funded_wei: (options.funding * U256::from(10)).to_string(),
        })
        .await?;
    Settings(db)
        .insert_all(&[
            ("chain_id", options.ledger.chain_id().to_string()),
            ("registry", contracts.registry.to_string()),
            ("records", contracts.records.to_string()),
            ("consent", contracts.consent.to_string()),
            ("research", contracts.research.to_string()),
            ("deployed_at", contracts.deployed_at.to_string()),
            ("contracts_version", CONTRACTS_VERSION.to_string()),
        ])
        .await?;
    Ok((
        contracts,
        Bootstrap {
            admin_username: ADMIN_USERNAME.to_string(),
            generated_password: generated,
            contracts,
        },
    ))
}
