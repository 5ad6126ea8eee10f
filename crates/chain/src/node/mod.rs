//! The node: wires state, pool, miner thread and block log together behind one cloneable handle.
//!
//! Concurrency: the world state sits behind a read-write lock. Calls and queries read it from any
//! thread; the miner thread alone writes it while sealing a block. A block becomes visible (its
//! receipts queryable, its submitters answered) only after the block writer has synced it to disk
//! (see `miner`). The state itself is the miner's: while a block is being stored, a query of the
//! `latest` state already sees its effects, a moment before its receipts appear (as it did when
//! the miner synced blocks itself).

mod miner;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, OnceLock, atomic::AtomicUsize, mpsc},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use alloy::{
    consensus::{SignableTransaction, Transaction, TxEip1559, TxEnvelope, TxLegacy},
    eips::Decodable2718,
    primitives::{Address, B256, Bytes, TxKind, U256},
    signers::SignerSync,
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch};

use crate::{
    DEV_MNEMONIC, DevAccounts, Error, Genesis, Result, SealedBlock, TxError, TxLocation,
    executor::{self, BlockContext, CallOutcome, CallRequest, PendingTx, TX_GAS_CAP},
    pool::Pool,
    state::{State, StateAt},
    store::{self, BlockLog},
};
use miner::MinerMsg;

/// How blocks are produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MiningMode {
    /// Every waiting transaction is mined at once, as many per block as are waiting.
    Auto,
    /// A block every interval, with whatever is waiting (possibly none).
    Interval(Duration),
}

/// Everything the node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where blocks persist. `None` keeps the chain in memory only (tests).
    pub data_dir: Option<PathBuf>,
    pub chain_id: u64,
    pub accounts: usize,
    /// Balance of each dev account, in wei.
    pub balance: U256,
    pub mnemonic: String,
    pub mining: MiningMode,
    pub gas_limit: u64,
    /// Further accounts funded at genesis (besides the dev accounts), e.g. a faucet whose key
    /// only its operator holds (only for a new chain).
    pub alloc: Vec<(Address, U256)>,
}

impl NodeConfig {
    /// Ganache-like defaults: chain 1337, ten accounts of 1000 ETH, automatic mining.
    pub fn new(data_dir: Option<PathBuf>) -> Self {
        NodeConfig {
            data_dir,
            chain_id: 1337,
            accounts: 10,
            balance: U256::from(1000u64) * U256::from(10u64).pow(U256::from(18u64)),
            mnemonic: DEV_MNEMONIC.to_string(),
            mining: MiningMode::Auto,
            gas_limit: Genesis::DEFAULT_GAS_LIMIT,
            alloc: Vec::new(),
        }
    }

    /// An in-memory node for tests.
    pub fn test() -> Self {
        Self::new(None)
    }
}

/// Which state a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockTag {
    Latest,
    Pending,
    Earliest,
    Number(u64),
}

/// A block and its hash.
#[derive(Debug, Clone)]
pub struct BlockRef {
    pub hash: B256,
    pub block: Arc<SealedBlock>,
}

/// A transaction found by hash: mined (with its block) or still waiting.
#[derive(Debug, Clone)]
pub enum TxLookup {
    Mined {
        block: BlockRef,
        index: usize,
    },
    Pending {
        tx: Box<TxEnvelope>,
        sender: Address,
    },
}

#[derive(Default)]
struct ChainIndex {
    blocks: Vec<BlockRef>,
    by_hash: HashMap<B256, u64>,
    txs: HashMap<B256, TxLocation>,
}

impl ChainIndex {
    fn push(&mut self, hash: B256, block: Arc<SealedBlock>) {
        let number = block.number();
        for (index, tx) in block.transactions.iter().enumerate() {
            self.txs.insert(
                *tx.tx_hash(),
                TxLocation {
                    block: number,
                    index,
                },
            );
        }
        self.by_hash.insert(hash, number);
        self.blocks.push(BlockRef { hash, block });
    }

    fn truncate(&mut self, keep: u64) {
        for dropped in self.blocks.drain(keep as usize + 1..) {
            self.by_hash.remove(&dropped.hash);
            for tx in &dropped.block.transactions {
                self.txs.remove(tx.tx_hash());
            }
        }
    }

    fn head(&self) -> &BlockRef {
        self.blocks
            .last()
            .expect("the chain always holds its genesis block")
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Clock {
    offset: i64,
    next: Option<u64>,
}

impl Clock {
    fn now(&self) -> u64 {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        secs.saturating_add_signed(self.offset)
    }
}

struct Snapshot {
    state: State,
    number: u64,
    clock: Clock,
}

struct Inner {
    chain_id: u64,
    genesis: Genesis,
    accounts: DevAccounts,
    mining: MiningMode,
    state: RwLock<State>,
    chain: RwLock<ChainIndex>,
    pool: Mutex<Pool>,
    /// Submitters waiting for their transaction's block (automatic mining), by hash: told once
    /// the block is on disk, or why the transaction was refused.
    waiters: Mutex<HashMap<B256, oneshot::Sender<Result<()>>>>,
    /// Transactions taken from the pool into a block that is not published yet.
    sealing: Mutex<HashMap<B256, (TxEnvelope, Address)>>,
    /// Set when a block could not be stored: from then on no transaction is taken and no state
    /// is read. Checked on every query, so reading it takes no lock.
    failure: OnceLock<String>,
    /// Blocks sealed and handed to the writer, not yet published.
    unpublished: AtomicUsize,
    log: Mutex<Option<BlockLog>>,
    clock: Mutex<Clock>,
    snapshots: Mutex<Vec<(u64, Snapshot)>>,
    next_snapshot: Mutex<u64>,
    head: watch::Sender<u64>,
    miner: Mutex<Option<mpsc::Sender<MinerMsg>>>,
    /// The data directory's lock, released when the node is gone.
    _lock: Option<std::fs::File>,
    /// Tests make the miner or the writer panic on its next block, to see the node stop.
    #[cfg(test)]
    pub(super) panic_next: parking_lot::Mutex<Option<&'static str>>,
}

/// A handle to a running node. Cheap to clone; the miner stops when the last handle is dropped
/// (or on `shutdown`).
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
    _guard: Arc<ShutdownGuard>,
}

struct ShutdownGuard {
    miner: mpsc::Sender<MinerMsg>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        let _ = self.miner.send(MinerMsg::Shutdown);
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("chain_id", &self.inner.chain_id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Opens (or creates) the chain and starts the miner.
    pub fn spawn(config: NodeConfig) -> Result<Node> {
        let accounts = DevAccounts::from_mnemonic(&config.mnemonic, config.accounts)?;
        let fresh = Genesis {
            chain_id: config.chain_id,
            timestamp: Clock::default().now(),
            gas_limit: config.gas_limit,
            base_fee: Genesis::INITIAL_BASE_FEE,
            alloc: accounts
                .addresses()
                .into_iter()
                .map(|a| (a, config.balance))
                .chain(config.alloc.iter().copied())
                .collect(),
        };
        let lock = config
            .data_dir
            .as_deref()
            .map(store::lock_dir)
            .transpose()?;
        let (genesis, log, stored) = match &config.data_dir {
            None => (fresh, None, Vec::new()),
            Some(dir) => {
                let genesis = match store::read_genesis(dir)? {
                    Some(existing) => existing,
                    None => {
                        store::write_genesis(dir, &fresh)?;
                        fresh
                    }
                };
                let (log, blocks) = BlockLog::open(dir)?;
                (genesis, Some(log), blocks)
            }
        };
        let (state, chain) = replay(&genesis, stored)?;
        let head = chain.head().block.number();
        let (miner_tx, miner_rx) = mpsc::channel();
        let inner = Arc::new(Inner {
            chain_id: genesis.chain_id,
            genesis,
            accounts,
            mining: config.mining,
            state: RwLock::new(state),
            chain: RwLock::new(chain),
            pool: Mutex::new(Pool::default()),
            waiters: Mutex::new(HashMap::new()),
            sealing: Mutex::new(HashMap::new()),
            failure: OnceLock::new(),
            unpublished: AtomicUsize::new(0),
            log: Mutex::new(log),
            clock: Mutex::new(Clock::default()),
            snapshots: Mutex::new(Vec::new()),
            next_snapshot: Mutex::new(1),
            head: watch::Sender::new(head),
            miner: Mutex::new(Some(miner_tx.clone())),
            _lock: lock,
            #[cfg(test)]
            panic_next: parking_lot::Mutex::new(None),
        });
        let (writer_tx, writer_rx) = mpsc::channel();
        let worker = Arc::clone(&inner);
        let writer = std::thread::Builder::new()
            .name("block-writer".into())
            .spawn(move || {
                let writer = std::panic::AssertUnwindSafe(|| worker.run_writer(writer_rx));
                if let Err(panic) = std::panic::catch_unwind(writer) {
                    worker.halt(format!("the block writer failed ({})", panic_text(&*panic)));
                }
            })?;
        let worker = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("miner".into())
            .spawn(move || {
                let miner =
                    std::panic::AssertUnwindSafe(|| worker.run_miner(miner_rx, writer_tx, writer));
                if let Err(panic) = std::panic::catch_unwind(miner) {
                    worker.halt(format!("the miner failed ({})", panic_text(&*panic)));
                }
            })?;
        Ok(Node {
            inner,
            _guard: Arc::new(ShutdownGuard {
                miner: miner_tx,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    pub fn chain_id(&self) -> u64 {
        self.inner.chain_id
    }

    pub fn genesis(&self) -> &Genesis {
        &self.inner.genesis
    }

    pub fn dev_accounts(&self) -> &DevAccounts {
        &self.inner.accounts
    }

    pub fn mining_mode(&self) -> MiningMode {
        self.inner.mining
    }

    /// A receiver that changes whenever a new block is published.
    pub fn subscribe_heads(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    pub fn block_number(&self) -> u64 {
        self.inner.chain.read().head().block.number()
    }

    pub fn block(&self, tag: BlockTag) -> Option<BlockRef> {
        let chain = self.inner.chain.read();
        match tag {
            BlockTag::Latest | BlockTag::Pending => Some(chain.head().clone()),
            BlockTag::Earliest => chain.blocks.first().cloned(),
            BlockTag::Number(n) => chain.blocks.get(n as usize).cloned(),
        }
    }

    pub fn block_by_hash(&self, hash: &B256) -> Option<BlockRef> {
        let chain = self.inner.chain.read();
        let number = *chain.by_hash.get(hash)?;
        chain.blocks.get(number as usize).cloned()
    }

    /// Resolves a tag to a block number, failing for blocks that do not exist yet.
    pub fn resolve(&self, tag: BlockTag) -> Result<u64> {
        let head = self.block_number();
        match tag {
            BlockTag::Latest | BlockTag::Pending => Ok(head),
            BlockTag::Earliest => Ok(0),
            BlockTag::Number(n) if n <= head => Ok(n),
            BlockTag::Number(_) => Err(Error::UnknownBlock),
        }
    }

    pub fn transaction(&self, hash: &B256) -> Option<TxLookup> {
        // In the order a transaction moves (pool, then a block being stored, then the chain);
        // each place lets go of it only after the next holds it, so a lookup never misses it.
        if let Some(p) = self.inner.pool.lock().get(hash) {
            return Some(TxLookup::Pending {
                tx: Box::new(p.tx.clone()),
                sender: p.sender,
            });
        }
        if let Some((tx, sender)) = self.inner.sealing.lock().get(hash) {
            return Some(TxLookup::Pending {
                tx: Box::new(tx.clone()),
                sender: *sender,
            });
        }
        let location = self.inner.chain.read().txs.get(hash).copied()?;
        let block = self.block(BlockTag::Number(location.block))?;
        Some(TxLookup::Mined {
            block,
            index: location.index,
        })
    }

    pub fn pending_count(&self) -> usize {
        self.inner.pool.lock().len()
    }

    /// Why the node stopped taking transactions (a block could not be stored), if it did.
    pub fn failure(&self) -> Option<String> {
        self.inner.failure()
    }

    fn check_running(&self) -> Result<()> {
        match self.inner.failure() {
            Some(why) => Err(Error::Stopped(why)),
            None => Ok(()),
        }
    }

    fn with_state<T>(&self, tag: BlockTag, f: impl FnOnce(&StateAt<'_>) -> T) -> Result<T> {
        self.check_running()?;
        let number = self.resolve(tag)?;
        let state = self.inner.state.read();
        if number == self.block_number() {
            // The head may move on between the two reads; reading a newer state is what a
            // client asking for "latest" a moment later would see anyway.
            return Ok(f(&state.latest()));
        }
        Ok(f(&state.at(number)))
    }

    pub fn balance(&self, address: Address, tag: BlockTag) -> Result<U256> {
        self.with_state(tag, |s| s.balance(&address))
    }

    pub fn nonce(&self, address: Address, tag: BlockTag) -> Result<u64> {
        if tag == BlockTag::Pending {
            self.check_running()?;
            let state_nonce = self.inner.state.read().nonce(&address);
            return Ok(self.inner.pool.lock().pending_nonce(&address, state_nonce));
        }
        self.with_state(tag, |s| s.nonce(&address))
    }

    pub fn code(&self, address: Address, tag: BlockTag) -> Result<Bytes> {
        self.with_state(tag, |s| {
            s.code(&address)
                .map(|c| c.original_bytes())
                .unwrap_or_default()
        })
    }

    pub fn storage(&self, address: Address, slot: U256, tag: BlockTag) -> Result<B256> {
        self.with_state(tag, |s| B256::from(s.storage(&address, slot)))
    }

    /// The base fee the next block will charge.
    pub fn next_base_fee(&self) -> u64 {
        executor::next_base_fee(&self.inner.chain.read().head().block.header)
    }

    /// Suggested tip: 1 gwei, as geth and Ganache suggest on a quiet chain.
    pub fn max_priority_fee(&self) -> u128 {
        1_000_000_000
    }

    /// Suggested legacy gas price: next base fee plus the suggested tip.
    pub fn gas_price(&self) -> u128 {
        self.next_base_fee() as u128 + self.max_priority_fee()
    }

    fn call_context(&self, number: u64) -> Result<BlockContext> {
        let block = self
            .block(BlockTag::Number(number))
            .ok_or(Error::UnknownBlock)?;
        let h = &block.block.header;
        Ok(BlockContext {
            number: h.number,
            timestamp: h.timestamp,
            gas_limit: h.gas_limit,
            base_fee: h.base_fee_per_gas.unwrap_or_default(),
            prevrandao: h.mix_hash,
        })
    }

    /// `eth_call`: executes against the state after block `tag`, changing nothing.
    pub fn call(&self, request: &CallRequest, tag: BlockTag) -> Result<CallOutcome> {
        let number = self.resolve(tag)?;
        let ctx = self.call_context(number)?;
        let gas = request.gas.unwrap_or(TX_GAS_CAP).min(TX_GAS_CAP);
        self.with_state(BlockTag::Number(number), |state| {
            executor::call(state, self.inner.chain_id, ctx, request, gas)
        })?
    }

    /// `eth_estimateGas`.
    pub fn estimate_gas(&self, request: &CallRequest, tag: BlockTag) -> Result<u64> {
        let number = self.resolve(tag)?;
        let ctx = self.call_context(number)?;
        self.with_state(BlockTag::Number(number), |state| {
            executor::estimate_gas(state, self.inner.chain_id, ctx, request)
        })?
    }

    /// Decodes, checks and pools a signed transaction. With automatic mining this returns once
    /// the transaction is in a block that is safely on disk (as Ganache's instamine does), or
    /// with the reason the EVM refused it.
    pub async fn send_raw_transaction(&self, raw: &[u8]) -> Result<B256> {
        let mut slice = raw;
        let tx = TxEnvelope::decode_2718(&mut slice)
            .map_err(|e| Error::InvalidInput(format!("invalid transaction encoding: {e}")))?;
        if !slice.is_empty() {
            return Err(Error::InvalidInput(
                "trailing bytes after the transaction".into(),
            ));
        }
        let sender = alloy::consensus::transaction::SignerRecoverable::recover_signer(&tx)
            .map_err(|e| TxError::InvalidSignature(e.to_string()))?;
        self.submit(tx, sender).await
    }

    /// `eth_sendTransaction` for the node's own dev accounts: fills in what is missing, signs
    /// with the account's key and submits.
    pub async fn send_transaction(&self, request: CallRequest) -> Result<B256> {
        let from = request
            .from
            .ok_or_else(|| Error::InvalidInput("missing \"from\"".into()))?;
        let signer = self
            .inner
            .accounts
            .signer(&from)
            .ok_or(TxError::UnknownAccount)?
            .clone();
        let nonce = match request.nonce {
            Some(n) => n,
            None => self.nonce(from, BlockTag::Pending)?,
        };
        let gas_limit = match request.gas {
            Some(g) => g,
            None => self.estimate_gas(&request, BlockTag::Latest)?,
        };
        let kind = request.to.map_or(TxKind::Create, TxKind::Call);
        let input = request.input.clone().unwrap_or_default();
        let value = request.value.unwrap_or_default();
        let tx = if let Some(gas_price) = request.gas_price {
            let tx = TxLegacy {
                chain_id: Some(self.inner.chain_id),
                nonce,
                gas_price,
                gas_limit,
                to: kind,
                value,
                input,
            };
            let signature = signer
                .sign_hash_sync(&tx.signature_hash())
                .map_err(|e| Error::InvalidInput(format!("signing: {e}")))?;
            TxEnvelope::Legacy(tx.into_signed(signature))
        } else {
            let tip = request
                .max_priority_fee_per_gas
                .unwrap_or(self.max_priority_fee());
            let max_fee = request
                .max_fee_per_gas
                .unwrap_or(2 * self.next_base_fee() as u128 + tip);
            let tx = TxEip1559 {
                chain_id: self.inner.chain_id,
                nonce,
                gas_limit,
                max_fee_per_gas: max_fee,
                max_priority_fee_per_gas: tip.min(max_fee),
                to: kind,
                value,
                access_list: request.access_list.clone().unwrap_or_default(),
                input,
            };
            let signature = signer
                .sign_hash_sync(&tx.signature_hash())
                .map_err(|e| Error::InvalidInput(format!("signing: {e}")))?;
            TxEnvelope::Eip1559(tx.into_signed(signature))
        };
        self.submit(tx, from).await
    }

    async fn submit(&self, tx: TxEnvelope, sender: Address) -> Result<B256> {
        self.check_running()?;
        let hash = *tx.tx_hash();
        self.check(&tx, sender)?;
        let nonce = tx.nonce();
        let waiter = {
            let state_nonce = self.inner.state.read().nonce(&sender);
            let mut pool = self.inner.pool.lock();
            // Under automatic mining a transaction that can run now is answered when its block
            // is on disk; one behind a nonce gap is answered at once, like an interval chain.
            let wait = self.inner.mining == MiningMode::Auto
                && pool.pending_nonce(&sender, state_nonce) == nonce;
            let replaced = pool.insert(PendingTx { tx, sender, hash }, state_nonce)?;
            let mut waiters = self.inner.waiters.lock();
            if let Some(old) = replaced.and_then(|old| waiters.remove(&old)) {
                let _ = old.send(Err(TxError::Invalid(
                    "replaced by a higher-fee transaction".into(),
                )
                .into()));
            }
            wait.then(|| {
                let (tell, told) = oneshot::channel();
                waiters.insert(hash, tell);
                told
            })
        };
        // A thread that failed meanwhile told every waiter it found; this one may have come
        // after, and nobody else would answer it.
        if let Some(why) = self.inner.failure() {
            self.inner.waiters.lock().remove(&hash);
            return Err(Error::Stopped(why));
        }
        self.inner.wake_miner();
        match waiter {
            None => Ok(hash),
            Some(told) => match told.await {
                Ok(outcome) => outcome.map(|()| hash),
                Err(_) => Err(Error::ShuttingDown),
            },
        }
    }

    /// The checks a node makes before pooling a transaction.
    fn check(&self, tx: &TxEnvelope, sender: Address) -> Result<(), TxError> {
        if tx.is_eip4844() {
            return Err(TxError::UnsupportedType);
        }
        if let Some(id) = tx.chain_id()
            && id != self.inner.chain_id
        {
            return Err(TxError::WrongChainId {
                expected: self.inner.chain_id,
                got: id,
            });
        }
        let gas_limit = self
            .block(BlockTag::Latest)
            .map_or(0, |b| b.block.header.gas_limit);
        if tx.gas_limit() > gas_limit.min(TX_GAS_CAP) {
            return Err(TxError::GasLimitExceeded);
        }
        let needed = executor::intrinsic_gas(tx, sender)?;
        if tx.gas_limit() < needed {
            return Err(TxError::IntrinsicGasTooLow {
                gas: tx.gas_limit(),
                needed,
            });
        }
        if let Some(tip) = tx.max_priority_fee_per_gas()
            && tip > tx.max_fee_per_gas()
        {
            return Err(TxError::TipAboveFeeCap);
        }
        let base_fee = self.next_base_fee();
        if tx.max_fee_per_gas() < base_fee as u128 {
            return Err(TxError::FeeBelowBaseFee {
                max_fee: tx.max_fee_per_gas(),
                base_fee,
            });
        }
        let cost = U256::from(tx.gas_limit()) * U256::from(tx.max_fee_per_gas()) + tx.value();
        let balance = self.inner.state.read().balance(&sender);
        if balance < cost {
            return Err(TxError::InsufficientFunds {
                balance: balance.to_string(),
                cost: cost.to_string(),
            });
        }
        Ok(())
    }

    /// `evm_mine`: seals a block now (with whatever is waiting), optionally at `timestamp`.
    pub async fn mine(&self, timestamp: Option<u64>) -> Result<u64> {
        self.check_running()?;
        let (reply, answer) = oneshot::channel();
        self.inner.send_miner(MinerMsg::Mine { timestamp, reply })?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }

    /// `evm_snapshot`: remembers the current state; `revert` returns to it.
    pub async fn snapshot(&self) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        self.inner.send_miner(MinerMsg::Snapshot { reply })?;
        answer.await.map_err(|_| Error::ShuttingDown)
    }

    /// `evm_revert`: drops every block mined since snapshot `id` (in memory and on disk).
    pub async fn revert(&self, id: u64) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.inner.send_miner(MinerMsg::Revert { id, reply })?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }

    /// `evm_increaseTime`: moves the clock of future blocks forward; returns the total offset.
    pub fn increase_time(&self, seconds: u64) -> u64 {
        let mut clock = self.inner.clock.lock();
        clock.offset = clock
            .offset
            .saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX));
        clock.offset.max(0) as u64
    }

    /// `evm_setNextBlockTimestamp`.
    pub fn set_next_block_timestamp(&self, timestamp: u64) -> Result<()> {
        let head = self.inner.chain.read().head().block.header.timestamp;
        if timestamp < head {
            return Err(Error::InvalidInput(format!(
                "timestamp {timestamp} is before the latest block's ({head})"
            )));
        }
        self.inner.clock.lock().next = Some(timestamp);
        Ok(())
    }

    /// Stops the miner; pending work is dropped, mined blocks are already on disk.
    pub fn shutdown(&self) {
        if let Some(miner) = self.inner.miner.lock().take() {
            let _ = miner.send(MinerMsg::Shutdown);
        }
    }
}

/// What a caught panic said, for the reason the node gives when it stops.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Rebuilds state and index from genesis and the stored blocks, checking each block re-seals
/// to the stored hash.
fn replay(genesis: &Genesis, stored: Vec<SealedBlock>) -> Result<(State, ChainIndex)> {
    let mut state = State::from_alloc(&genesis.alloc);
    let mut chain = ChainIndex::default();
    let genesis_block = SealedBlock {
        header: genesis.header(state.root()),
        transactions: Vec::new(),
        senders: Vec::new(),
        receipts: Vec::new(),
    };
    let hash = genesis_block.hash();
    state.push_block_hash(hash);
    chain.push(hash, Arc::new(genesis_block));
    for block in stored {
        let resealed = reexecute(&mut state, genesis.chain_id, chain.head().hash, &block);
        let hash = resealed.hash();
        state.push_block_hash(hash);
        if resealed.header != block.header {
            return Err(Error::Storage(format!(
                "block {} does not re-execute to the stored block; run `medledger verify`",
                block.number()
            )));
        }
        chain.push(hash, Arc::new(block));
    }
    Ok((state, chain))
}

/// Executes a stored block's transactions again on `state` and returns the block that results.
/// The caller records the block's hash in `state` (for BLOCKHASH) once it accepts the block.
pub(crate) fn reexecute(
    state: &mut State,
    chain_id: u64,
    parent_hash: B256,
    block: &SealedBlock,
) -> SealedBlock {
    let h = &block.header;
    let ctx = BlockContext {
        number: h.number,
        timestamp: h.timestamp,
        gas_limit: h.gas_limit,
        base_fee: h.base_fee_per_gas.unwrap_or_default(),
        prevrandao: h.mix_hash,
    };
    let txs = block
        .transactions
        .iter()
        .zip(&block.senders)
        .map(|(tx, sender)| PendingTx {
            tx: tx.clone(),
            sender: *sender,
            hash: *tx.tx_hash(),
        })
        .collect();
    executor::seal_block(state, chain_id, parent_hash, ctx, txs).block
}

impl Inner {
    fn send_miner(&self, msg: MinerMsg) -> Result<()> {
        let miner = self.miner.lock();
        miner
            .as_ref()
            .ok_or(Error::ShuttingDown)?
            .send(msg)
            .map_err(|_| Error::ShuttingDown)
    }

    fn wake_miner(&self) {
        let _ = self.send_miner(MinerMsg::Wake);
    }

    /// Remembers the state at the head. The miner calls it once every sealed block is
    /// published, so the state and the head describe the same block.
    fn take_snapshot(&self) -> u64 {
        let snapshot = Snapshot {
            state: self.state.read().clone(),
            number: self.chain.read().head().block.number(),
            clock: *self.clock.lock(),
        };
        let mut next = self.next_snapshot.lock();
        let id = *next;
        *next += 1;
        self.snapshots.lock().push((id, snapshot));
        id
    }
}
