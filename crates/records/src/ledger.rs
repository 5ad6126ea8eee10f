//! The ledger client: the contracts on *any* Ethereum node (the embedded one, Ganache, a Besu or
//! Geth network) through an alloy JSON-RPC provider. Writes are signed by the acting person's own
//! key and answered with what MetaMask would show; refusals come back as the contracts' named
//! errors, turned into sentences.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::{
    eips::Encodable2718,
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, B256, Bytes, U256},
    providers::{DynProvider, Provider, ProviderBuilder, SendableTx},
    rpc::{
        client::RpcClient,
        types::{Block, Filter, Log, TransactionReceipt, TransactionRequest},
    },
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolInterface},
    transports::{RpcError, TransportErrorKind},
};
use serde::Serialize;

use crate::{
    contracts::{self, Consent, Records, Registry},
    error::{Error, Kind, Result},
};

/// Blocks per `eth_getLogs` query: within what Besu and common providers allow.
const LOG_PAGE_BLOCKS: u64 = 2000;
/// Block requests in flight at once: enough to hide the round trips, few enough not to crowd
/// out the app's own requests to the node.
const BLOCKS_IN_FLIGHT: usize = 16;

pub use crate::contracts::Contracts;

/// A mined transaction as its sender sees it (what MetaMask confirms).
#[derive(Debug, Clone, Serialize)]
pub struct TxInfo {
    pub hash: B256,
    pub block_number: u64,
    pub gas_used: u64,
    /// Wei per gas, as a decimal string (it may not fit a JSON number).
    #[serde(with = "decimal")]
    pub effective_gas_price: U256,
    /// gas used x effective gas price, in wei, as a decimal string.
    #[serde(with = "decimal")]
    pub fee_wei: U256,
}

mod decimal {
    use alloy::primitives::U256;
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(value: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }
}

/// A connection to one chain.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

/// How long one call to the node may take before it fails (the node is then unavailable).
const NODE_CALL_TIMEOUT: Duration = Duration::from_secs(60);

struct Inner {
    url: String,
    client: RpcClient,
    provider: DynProvider,
    chain_id: u64,
    /// One in-flight transaction per sender, so nonces never collide.
    senders: Mutex<HashMap<Address, Arc<tokio::sync::Mutex<()>>>>,
    receipt_timeout: Mutex<Duration>,
}

impl Ledger {
    /// Connects to the JSON-RPC endpoint at `url` and learns its chain id.
    pub async fn connect(url: &str) -> Result<Ledger> {
        let parsed = url
            .parse()
            .map_err(|_| Error::invalid(format!("{url} is not a valid JSON-RPC URL")))?;
        // Every call to the node has a bound: a node that never answers one (seen with Ganache
        // under load) must not hold a request, or a lock a request waits on, forever. Receipts
        // are polled with short calls, so the bound is per call, not per wait.
        let http = alloy::transports::http::reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(NODE_CALL_TIMEOUT)
            .build()
            .map_err(|e| Error::internal("the node's HTTP client", e))?;
        let client = RpcClient::new_http_with_client(http, parsed);
        let provider = ProviderBuilder::new()
            .connect_client(client.clone())
            .erased();
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(|e| unavailable(url, e))?;
        Ok(Ledger {
            inner: Arc::new(Inner {
                url: url.to_string(),
                client,
                provider,
                chain_id,
                senders: Mutex::new(HashMap::new()),
                receipt_timeout: Mutex::new(Duration::from_secs(120)),
            }),
        })
    }

    pub fn url(&self) -> &str {
        &self.inner.url
    }

    pub fn chain_id(&self) -> u64 {
        self.inner.chain_id
    }

    /// The read-only provider, for calls and queries.
    pub fn provider(&self) -> &DynProvider {
        &self.inner.provider
    }

    pub async fn block_number(&self) -> Result<u64> {
        self.inner
            .provider
            .get_block_number()
            .await
            .map_err(|e| unavailable(&self.inner.url, e))
    }

    pub async fn balance(&self, account: Address) -> Result<U256> {
        self.inner
            .provider
            .get_balance(account)
            .await
            .map_err(|e| unavailable(&self.inner.url, e))
    }

    pub async fn has_code(&self, account: Address) -> Result<bool> {
        let code = self
            .inner
            .provider
            .get_code_at(account)
            .await
            .map_err(|e| unavailable(&self.inner.url, e))?;
        Ok(!code.is_empty())
    }

    /// The timestamp of block `number`, in seconds.
    pub async fn block_time(&self, number: u64) -> Result<u64> {
        let block = self
            .inner
            .provider
            .get_block_by_number(number.into())
            .await
            .map_err(|e| unavailable(&self.inner.url, e))?
            .ok_or_else(|| Error::internal("ledger", format!("block {number} is missing")))?;
        Ok(block.header.timestamp)
    }

    /// The time now, as the chain's rules will see it: the wall clock, or the latest block's time
    /// if that is ahead (a chain whose clock was moved on). A quiet chain's last block may be
    /// hours old, so its time alone would make new expiries too early.
    pub async fn now(&self) -> Result<u64> {
        let latest = self.block_number().await?;
        let wall = crate::model::unix_now().max(0) as u64;
        Ok(self.block_time(latest).await?.max(wall))
    }

    /// The logs a filter over a block range matches, asked for in pages of `LOG_PAGE_BLOCKS`
    /// blocks: nodes bound the range of one query (Besu at 5000 blocks, providers lower).
    pub async fn logs(&self, filter: &Filter) -> Result<Vec<Log>> {
        let from = filter.get_from_block().unwrap_or(0);
        let to = match filter.get_to_block() {
            Some(to) => to,
            None => self.block_number().await?,
        };
        let mut logs = Vec::new();
        let mut start = from;
        while start <= to {
            let end = to.min(start.saturating_add(LOG_PAGE_BLOCKS - 1));
            let page = filter.clone().from_block(start).to_block(end);
            logs.extend(
                self.inner
                    .provider
                    .get_logs(&page)
                    .await
                    .map_err(|e| unavailable(&self.inner.url, e))?,
            );
            start = end + 1;
        }
        Ok(logs)
    }

    /// Blocks `numbers` (which all exist), fetched `BLOCKS_IN_FLIGHT` at a time, in the order
    /// asked; with their transactions in full if `full`.
    pub async fn blocks(&self, numbers: &[u64], full: bool) -> Result<Vec<Block>> {
        let mut out = Vec::with_capacity(numbers.len());
        for chunk in numbers.chunks(BLOCKS_IN_FLIGHT) {
            let mut set = tokio::task::JoinSet::new();
            for (i, &n) in chunk.iter().enumerate() {
                let p = self.inner.provider.clone();
                set.spawn(async move {
                    let request = p.get_block_by_number(n.into());
                    let block = if full {
                        request.full().await
                    } else {
                        request.await
                    };
                    (i, n, block)
                });
            }
            let mut got: Vec<Option<Block>> = (0..chunk.len()).map(|_| None).collect();
            while let Some(joined) = set.join_next().await {
                let (i, n, block) = joined.map_err(|e| Error::internal("block fetch", e))?;
                // A block below the latest that the node cannot find is the node's fault.
                got[i] = Some(block.map_err(|e| self.unavailable(e))?.ok_or_else(|| {
                    Error::internal("ledger", format!("block {n} is missing from the node"))
                })?);
            }
            out.extend(got.into_iter().flatten());
        }
        Ok(out)
    }

    /// The node did not answer: the detail goes to the log, the reader gets a sentence.
    pub(crate) fn unavailable(&self, e: impl std::fmt::Display) -> Error {
        unavailable(&self.inner.url, e)
    }

    /// Deploys the Registry, Records, Consent and Research contracts, signed by `admin` (who becomes the
    /// Registry's first admin), and wires Records to Consent.
    pub async fn deploy(
        &self,
        admin: &PrivateKeySigner,
        emergency_window: Duration,
        emergency_daily_cap: u8,
    ) -> Result<Contracts> {
        let (registry, first) = self.deploy_one(admin, Registry::BYTECODE.to_vec()).await?;
        let (records, _) = self
            .deploy_one(admin, contracts::records_init_code(registry))
            .await?;
        let code = contracts::consent_init_code(
            registry,
            records,
            emergency_window.as_secs(),
            emergency_daily_cap,
        );
        let (consent, _) = self.deploy_one(admin, code).await?;
        let (research, _) = self
            .deploy_one(admin, contracts::research_init_code(registry))
            .await?;
        self.send(
            admin,
            records,
            Records::setConsentCall { consent }.abi_encode().into(),
        )
        .await?;
        Ok(Contracts {
            registry,
            records,
            consent,
            research,
            deployed_at: first.block_number,
        })
    }

    async fn deploy_one(
        &self,
        signer: &PrivateKeySigner,
        code: Vec<u8>,
    ) -> Result<(Address, TxInfo)> {
        let tx = TransactionRequest::default().with_deploy_code(code);
        let (info, receipt) = self.submit(signer, tx).await?;
        let address = receipt
            .contract_address
            .ok_or_else(|| Error::internal("deploy", "no contract address in the receipt"))?;
        Ok((address, info))
    }

    /// Sends a contract call signed by `signer` and waits for it to be mined.
    pub async fn send(
        &self,
        signer: &PrivateKeySigner,
        to: Address,
        input: Bytes,
    ) -> Result<(TxInfo, TransactionReceipt)> {
        let tx = TransactionRequest::default().with_to(to).with_input(input);
        self.submit(signer, tx).await
    }

    /// Gives `to` at least `wei` from `signer`, and returns once `to`'s balance shows it (what
    /// a new account needs before it can pay for anything; its receipt matters to nobody).
    pub async fn fund(&self, signer: &PrivateKeySigner, to: Address, wei: U256) -> Result<()> {
        let before = self.balance(to).await?;
        {
            let _one_at_a_time = self.lock_sender(signer.address()).await;
            let tx = TransactionRequest::default().with_to(to).with_value(wei);
            let signed = self.prepare(signer, tx).await?;
            self.broadcast(&signed.raw).await.map_err(|e| e.error)?;
        }
        let mut delay = Duration::from_millis(5);
        let deadline = tokio::time::Instant::now() + self.receipt_timeout();
        while self.balance(to).await? < before + wei {
            if tokio::time::Instant::now() > deadline {
                return Err(Error::new(
                    Kind::Unavailable,
                    "the new account's funding is not mined yet; try again shortly",
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
        Ok(())
    }

    async fn submit(
        &self,
        signer: &PrivateKeySigner,
        tx: TransactionRequest,
    ) -> Result<(TxInfo, TransactionReceipt)> {
        let _one_at_a_time = self.lock_sender(signer.address()).await;
        let signed = self.prepare(signer, tx).await?;
        self.broadcast(&signed.raw).await.map_err(|e| e.error)?;
        let receipt = self.wait_for_receipt(signed.hash).await?;
        mined(signed.hash, &receipt)
    }

    /// Holds `sender`'s turn: one transaction of a sender is prepared and sent at a time, so
    /// two never get the same nonce.
    pub(crate) async fn lock_sender(&self, sender: Address) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut senders = self.inner.senders.lock().unwrap_or_else(|e| e.into_inner());
            senders.entry(sender).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Fills in a transaction (nonce, gas, fees, chain id) and signs it with `signer`, sending
    /// nothing. A call the contract would refuse fails here, with the contract's own reason.
    pub(crate) async fn prepare(
        &self,
        signer: &PrivateKeySigner,
        tx: TransactionRequest,
    ) -> Result<Signed> {
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer.clone()))
            .connect_client(self.inner.client.clone());
        let filled = provider
            .fill(tx.with_from(signer.address()))
            .await
            .map_err(|e| self.rpc_error(e))?;
        let SendableTx::Envelope(envelope) = filled else {
            return Err(Error::internal("signing", "the wallet did not sign"));
        };
        // The most it may cost, against what the sender has: refused here, clearly, rather
        // than by the node in words that differ from one node to the next.
        use alloy::consensus::Transaction as _;
        let cost = U256::from(envelope.gas_limit()) * U256::from(envelope.max_fee_per_gas())
            + envelope.value();
        if self.balance(signer.address()).await? < cost {
            return Err(Error::new(
                Kind::Forbidden,
                "your account has too little ether to pay for this transaction",
            ));
        }
        Ok(Signed {
            hash: *envelope.tx_hash(),
            nonce: envelope.nonce(),
            raw: envelope.encoded_2718(),
        })
    }

    /// What a call from `from` would cost, for a wallet to sign: its gas (the call run as the
    /// node would run it, so one the contract would refuse fails here with the contract's
    /// reason) and the gas price now.
    pub(crate) async fn estimate(
        &self,
        from: Address,
        to: Address,
        input: Bytes,
    ) -> Result<(u64, u128)> {
        let request = TransactionRequest::default()
            .with_from(from)
            .with_to(to)
            .with_input(input);
        let gas = self
            .inner
            .provider
            .estimate_gas(request)
            .await
            .map_err(|e| self.rpc_error(e))?;
        let price = self
            .inner
            .provider
            .get_gas_price()
            .await
            .map_err(|e| unavailable(&self.inner.url, e))?;
        Ok((gas, price))
    }

    /// A transaction the node knows (mined or waiting), by hash.
    pub(crate) async fn transaction(
        &self,
        hash: B256,
    ) -> Result<Option<alloy::rpc::types::Transaction>> {
        self.inner
            .provider
            .get_transaction_by_hash(hash)
            .await
            .map_err(|e| unavailable(&self.inner.url, e))
    }

    /// Hands a signed transaction to the node. `Err` says whether the node surely did not take
    /// it (it answered with a refusal) or might have (it could not be reached).
    pub(crate) async fn broadcast(&self, raw: &[u8]) -> Result<(), BroadcastError> {
        match self.inner.provider.send_raw_transaction(raw).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let refused = e.as_error_resp().is_some();
                // A node that has it already (sent before, or again from the journal) says so
                // in words of its own: ask it by hash instead.
                if refused {
                    let hash = alloy::primitives::keccak256(raw);
                    let known = self.inner.provider.get_transaction_by_hash(hash).await;
                    if matches!(known, Ok(Some(_))) {
                        return Ok(());
                    }
                }
                Err(BroadcastError {
                    refused,
                    error: self.rpc_error(e),
                })
            }
        }
    }

    /// The receipt of `hash`, if it is mined.
    pub(crate) async fn receipt(&self, hash: B256) -> Result<Option<TransactionReceipt>> {
        self.inner
            .provider
            .get_transaction_receipt(hash)
            .await
            .map_err(|e| unavailable(&self.inner.url, e))
    }

    /// The number of transactions `account` has mined (its next nonce at the latest block).
    pub(crate) async fn mined_nonce(&self, account: Address) -> Result<u64> {
        self.inner
            .provider
            .get_transaction_count(account)
            .latest()
            .await
            .map_err(|e| unavailable(&self.inner.url, e))
    }

    /// Waits (up to the receipt timeout) for `hash` to be mined.
    pub(crate) async fn wait_for_receipt(&self, hash: B256) -> Result<TransactionReceipt> {
        let mut delay = Duration::from_millis(5);
        let timeout = self.receipt_timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(receipt) = self.receipt(hash).await? {
                return Ok(receipt);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::new(
                    Kind::Unavailable,
                    format!(
                        "transaction {hash} was sent but is not mined after {} s; it completes when it is: look again shortly",
                        timeout.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    pub fn receipt_timeout(&self) -> Duration {
        *self
            .inner
            .receipt_timeout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// How long a write waits for its receipt before answering that it is still pending (two
    /// minutes unless set).
    pub fn set_receipt_timeout(&self, timeout: Duration) {
        *self
            .inner
            .receipt_timeout
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = timeout;
    }

    fn rpc_error(&self, e: RpcError<TransportErrorKind>) -> Error {
        match e.as_error_resp() {
            Some(payload) => match payload.as_revert_data() {
                Some(data) => refusal(&data),
                None => node_refusal(&self.inner.url, payload.code, &payload.message),
            },
            None => unavailable(&self.inner.url, e),
        }
    }

    /// Turns a failed contract read into an error a person understands.
    pub fn call_error(&self, e: alloy::contract::Error) -> Error {
        if let Some(data) = e.as_revert_data() {
            return refusal(&data);
        }
        match e {
            alloy::contract::Error::TransportError(e) => self.rpc_error(e),
            other => Error::internal("contract call", other),
        }
    }
}

/// A transaction signed and ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub(crate) hash: B256,
    pub(crate) nonce: u64,
    pub(crate) raw: Vec<u8>,
}

/// Why a node did not take a transaction.
#[derive(Debug)]
pub(crate) struct BroadcastError {
    /// The node answered with a refusal, so it surely did not take it; otherwise it could not
    /// be reached and may have.
    pub(crate) refused: bool,
    pub(crate) error: Error,
}

/// What a mined transaction cost, or the refusal if it reverted.
pub(crate) fn mined(
    hash: B256,
    receipt: &TransactionReceipt,
) -> Result<(TxInfo, TransactionReceipt)> {
    if !receipt.status() {
        return Err(Error::conflict(format!(
            "transaction {hash} was mined but reverted; nothing changed on chain"
        )));
    }
    Ok((TxInfo::of(receipt), receipt.clone()))
}

impl TxInfo {
    /// What a receipt says a transaction cost.
    pub fn of(receipt: &TransactionReceipt) -> TxInfo {
        let price = U256::from(receipt.effective_gas_price);
        TxInfo {
            hash: receipt.transaction_hash,
            block_number: receipt.block_number.unwrap_or_default(),
            gas_used: receipt.gas_used,
            effective_gas_price: price,
            fee_wei: price * U256::from(receipt.gas_used),
        }
    }
}

fn unavailable(url: &str, e: impl std::fmt::Display) -> Error {
    tracing::warn!("chain at {url}: {e}");
    Error::new(
        Kind::Unavailable,
        format!("the Ethereum node at {url} does not answer; try again shortly"),
    )
}

/// EIP-1474's "resource unavailable": what the embedded node answers once it has stopped (it
/// could not store a block).
const NODE_STOPPED: i64 = -32002;

/// A node's own refusal (not a contract's), by its code: a node that has stopped, or something
/// this client should never have sent (funds and nonces are settled before sending).
fn node_refusal(url: &str, code: i64, message: &str) -> Error {
    if code == NODE_STOPPED {
        tracing::error!("chain at {url}: {message}");
        return Error::new(
            Kind::Unavailable,
            format!(
                "the Ethereum node at {url} has stopped: it could not store a block; nothing was \
                 changed, and an operator must fix its disk and restart it"
            ),
        );
    }
    // Nothing of ours: the node turned the transaction away for a reason of its own (a full
    // pool, a rule of its operator's). The person is told it did not go through; the operator
    // sees why.
    tracing::warn!("chain at {url} refused a transaction: {code}: {message}");
    Error::new(
        Kind::Unavailable,
        "the Ethereum node refused this transaction, so nothing was changed; try again in a moment",
    )
}

/// Decodes a contract's custom error into a sentence and the kind of failure it is: every error
/// of every contract, matched by its generated type (a new one does not compile until it has
/// its sentence).
pub fn refusal(data: &[u8]) -> Error {
    let refused = Registry::RegistryErrors::abi_decode(data)
        .map(registry_refusal)
        .or_else(|_| Records::RecordsErrors::abi_decode(data).map(records_refusal))
        .or_else(|_| Consent::ConsentErrors::abi_decode(data).map(consent_refusal));
    match refused {
        Ok(Some((kind, message))) => Error::new(kind, message),
        Ok(None) => Error::internal(
            "contract refusal",
            format!(
                "a refusal that means a bug or a bad deployment: 0x{}",
                hex::encode(data)
            ),
        ),
        Err(_) => Error::internal(
            "contract refusal",
            format!("undecoded revert data 0x{}", hex::encode(data)),
        ),
    }
}

type Refusal = Option<(Kind, String)>;

fn say(kind: Kind, message: &str) -> Refusal {
    Some((kind, message.to_string()))
}

const NOT_ADMIN: &str = "only an admin may do this";
const NOT_PATIENT: &str = "only a registered patient may do this";
const NOT_ACTIVE_DOCTOR: &str = "only an active doctor at an active hospital may do this";
const NO_HOSPITAL: &str = "there is no such hospital";
const NO_RECORD: &str = "there is no such record";
const EXPIRY_IN_PAST: &str = "the expiry must be in the future";
const ZERO_ADDRESS: &str = "the zero address is not an account";

fn registry_refusal(e: Registry::RegistryErrors) -> Refusal {
    use Registry::RegistryErrors as E;
    match e {
        E::NotAdmin(_) => say(Kind::Forbidden, NOT_ADMIN),
        E::UnknownHospital(_) => say(Kind::NotFound, NO_HOSPITAL),
        E::UnknownDoctor(_) => say(Kind::NotFound, "there is no such doctor"),
        E::AlreadyRegistered(_) => say(Kind::Conflict, "this account is already registered"),
        E::EmptyName(_) => say(Kind::Unprocessable, "a name is required"),
        E::ZeroAddress(_) => say(Kind::Unprocessable, ZERO_ADDRESS),
        E::AlreadyInState(_) => say(Kind::Conflict, "it is already in that state"),
        E::IndexOutOfRange(_) => say(Kind::NotFound, "there is no such entry"),
        E::UnknownInvite(_) => say(Kind::NotFound, "this enrolment link is not valid"),
        E::InviteExists(_) => say(Kind::Conflict, "this enrolment link exists already"),
        E::InviteUsed(_) => say(
            Kind::Conflict,
            "this enrolment link was already used or withdrawn; ask an admin for a new one",
        ),
        E::InviteExpired(_) => say(
            Kind::Unprocessable,
            "this enrolment link has expired; ask an admin for a new one",
        ),
        E::BadInviteSignature(_) => say(Kind::Forbidden, "this enrolment link does not match"),
        E::ExpiryInPast(_) => say(Kind::Unprocessable, EXPIRY_IN_PAST),
    }
}

fn records_refusal(e: Records::RecordsErrors) -> Refusal {
    use Records::RecordsErrors as E;
    match e {
        E::NotPatient(_) => say(Kind::Forbidden, NOT_PATIENT),
        E::RecordExists(_) => say(Kind::Conflict, "a record with this id already exists"),
        E::UnknownRecord(_) => say(Kind::NotFound, NO_RECORD),
        E::ZeroHash(_) => say(
            Kind::Unprocessable,
            "a record needs an id and a content hash",
        ),
        E::InvalidKind(_) => say(Kind::Unprocessable, "unknown record kind"),
        E::NoTreatmentAccess(_) => say(
            Kind::Forbidden,
            "you may not treat this patient: no live treatment grant or emergency",
        ),
        E::NotActiveDoctor(_) => say(Kind::Forbidden, NOT_ACTIVE_DOCTOR),
        E::NotAdmin(_) => say(Kind::Forbidden, NOT_ADMIN),
        E::ZeroAddress(_) => say(Kind::Unprocessable, ZERO_ADDRESS),
        // The deployment wires these once; meeting them later is our fault.
        E::ConsentAlreadySet(_) | E::ConsentNotSet(_) => None,
    }
}

fn consent_refusal(e: Consent::ConsentErrors) -> Refusal {
    use Consent::ConsentErrors as E;
    match e {
        E::NotPatient(_) => say(Kind::Forbidden, NOT_PATIENT),
        E::UnknownDoctor(_) => say(Kind::NotFound, "there is no such doctor"),
        E::UnknownHospital(_) => say(Kind::NotFound, NO_HOSPITAL),
        E::ExpiryInPast(_) => say(Kind::Unprocessable, EXPIRY_IN_PAST),
        E::EmptyScope(_) => say(
            Kind::Unprocessable,
            "the grant covers nothing: choose record kinds or records",
        ),
        E::UnknownGrant(_) => say(Kind::NotFound, "there is no such grant"),
        E::NotGrantOwner(_) => say(Kind::Forbidden, "this grant is not yours"),
        E::AlreadyRevoked(_) => say(Kind::Conflict, "this grant is already revoked"),
        E::NotActiveDoctor(_) => say(Kind::Forbidden, NOT_ACTIVE_DOCTOR),
        E::AccessDenied(_) => say(
            Kind::Forbidden,
            "you have no access to this record: no live grant or emergency covers it",
        ),
        E::UnknownRecord(_) => say(Kind::NotFound, NO_RECORD),
        E::InvalidKindsMask(_) => say(Kind::Unprocessable, "unknown record kind"),
        E::ZeroHash(_) => say(Kind::Unprocessable, "an emergency needs a reason"),
        E::ZeroAddress(_) => say(Kind::Unprocessable, ZERO_ADDRESS),
        E::EmergencyOpen(e) => Some((
            Kind::Conflict,
            format!(
                "you already have an emergency open for this patient, until {}; it cannot be extended",
                crate::model::utc_datetime(e.until as i64)
            ),
        )),
        E::EmergencyCapReached(e) => Some((
            Kind::TooManyAttempts,
            format!(
                "you have declared {} emergencies today, the most a doctor may; an admin can help",
                e.cap
            ),
        )),
        E::NoOpenEmergency(_) => say(
            Kind::NotFound,
            "there is no open emergency for this patient and doctor",
        ),
        E::NotPatientOrAdmin(_) => say(
            Kind::Forbidden,
            "only the patient or an admin may end an emergency",
        ),
        E::ProfileDenied(_) => say(
            Kind::Forbidden,
            "you may not see this patient's details: no live treatment grant or emergency covers them",
        ),
        E::ZeroWindow(_) | E::ZeroCap(_) | E::LengthMismatch(_) => None,
    }
}

/// The contracts, called through a ledger.
impl Contracts {
    /// The Registry, called through `ledger`.
    pub(crate) fn registry_on(
        &self,
        ledger: &Ledger,
    ) -> crate::contracts::Registry::RegistryInstance<alloy::providers::DynProvider> {
        crate::contracts::Registry::new(self.registry, ledger.provider().clone())
    }

    /// Consent, called through `ledger`.
    pub(crate) fn consent_on(
        &self,
        ledger: &Ledger,
    ) -> crate::contracts::Consent::ConsentInstance<alloy::providers::DynProvider> {
        crate::contracts::Consent::new(self.consent, ledger.provider().clone())
    }

    /// Research, called through `ledger`.
    pub(crate) fn research_on(
        &self,
        ledger: &Ledger,
    ) -> crate::contracts::Research::ResearchInstance<alloy::providers::DynProvider> {
        // (Destructured: `self.research` names the research key to the tidy test.)
        let Contracts { research, .. } = self;
        crate::contracts::Research::new(*research, ledger.provider().clone())
    }

    /// Records, called through `ledger`.
    pub(crate) fn records_on(
        &self,
        ledger: &Ledger,
    ) -> crate::contracts::Records::RecordsInstance<alloy::providers::DynProvider> {
        crate::contracts::Records::new(self.records, ledger.provider().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::sol_types::SolError;

    #[test]
    fn custom_errors_become_sentences_of_the_right_kind() {
        let data = Registry::NotAdmin {
            caller: Address::ZERO,
        }
        .abi_encode();
        let e = refusal(&data);
        assert_eq!(e.kind, Kind::Forbidden);
        assert_eq!(e.message, "only an admin may do this");
        let data = Consent::AlreadyRevoked { id: U256::from(3) }.abi_encode();
        assert_eq!(refusal(&data).kind, Kind::Conflict);
        assert_eq!(refusal(&[1, 2, 3, 4]).kind, Kind::Internal);
    }
}
