//! The HTTP side: one POST endpoint taking single or batched JSON-RPC requests, and the one
//! `match` that answers each method.

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use medledger_chain::{
    BlockTag, CallRequest, Node, TxLookup,
    alloy::{
        eips::{BlockId, BlockNumberOrTag},
        primitives::{B256, TxKind, U64, U256, keccak256},
        rpc::types::{FeeHistory, Filter, FilterBlockOption, Log, TransactionRequest},
    },
};
use serde_json::{Value, json, value::RawValue};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    Cors, EthRequest, RpcConfig, RpcError, convert,
    filters::{FilterKind, Filters},
};

/// The JSON-RPC service over a node.
#[derive(Clone)]
pub struct Rpc {
    node: Node,
    filters: Arc<Filters>,
    config: Arc<RpcConfig>,
}

impl Rpc {
    /// The Ganache drop-in: every method, any origin (`RpcConfig::dev`).
    pub fn new(node: Node) -> Self {
        Rpc::with_config(node, RpcConfig::dev())
    }

    pub fn with_config(node: Node, config: RpcConfig) -> Self {
        Rpc {
            node,
            filters: Arc::new(Filters::default()),
            config: Arc::new(config),
        }
    }

    pub fn config(&self) -> &RpcConfig {
        &self.config
    }

    /// Answers one JSON-RPC body (a request or a batch); `None` when nothing is to be sent back
    /// (a batch of notifications only).
    pub async fn handle_body(&self, body: &[u8]) -> Option<Box<RawValue>> {
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return Some(failure(
                    Value::Null,
                    RpcError::parse(format!("parse error: {e}")),
                ));
            }
        };
        match value {
            Value::Array(items) if items.is_empty() => Some(failure(
                Value::Null,
                RpcError::invalid_request("empty batch"),
            )),
            Value::Array(items) if items.len() > self.config.limits.max_batch => Some(failure(
                Value::Null,
                RpcError::invalid_request(format!(
                    "batch too large: at most {} requests in one batch",
                    self.config.limits.max_batch
                )),
            )),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(answer) = self.handle_one(item).await {
                        out.push(answer);
                    }
                }
                if out.is_empty() { None } else { raw(&out).ok() }
            }
            single => self.handle_one(single).await,
        }
    }

    async fn handle_one(&self, request: Value) -> Option<Box<RawValue>> {
        let Value::Object(mut object) = request else {
            return Some(failure(
                Value::Null,
                RpcError::invalid_request("a request must be an object"),
            ));
        };
        let id = object.remove("id");
        let Some(Value::String(method)) = object.remove("method") else {
            return Some(failure(
                id.unwrap_or(Value::Null),
                RpcError::invalid_request("missing method"),
            ));
        };
        let params = object.remove("params").unwrap_or(Value::Null);
        let result = if !self.config.methods.allows(&method) {
            Err(RpcError::method_not_found(&method))
        } else {
            match EthRequest::parse(&method, &params) {
                Ok(req) => self.execute(req).await,
                Err(e) => Err(e),
            }
        };
        // A request without an id is a notification: it gets no answer.
        let id = id?;
        Some(match result {
            Ok(result) => raw(&Success {
                jsonrpc: "2.0",
                id,
                result,
            })
            .unwrap_or_else(|e| failure(Value::Null, e)),
            Err(e) => failure(id, e),
        })
    }

    fn tag(&self, block: BlockId) -> Result<BlockTag, RpcError> {
        match block {
            BlockId::Hash(hash) => self
                .node
                .block_by_hash(&hash.block_hash)
                .map(|b| BlockTag::Number(b.block.number()))
                .ok_or_else(|| RpcError::new(RpcError::SERVER, "header not found")),
            BlockId::Number(n) => Ok(number_tag(n)),
        }
    }

    fn block_number(&self, tag: BlockNumberOrTag) -> Result<u64, RpcError> {
        Ok(self.node.resolve(number_tag(tag))?)
    }

    /// Answers one parsed request.
    pub async fn execute(&self, request: EthRequest) -> Result<Box<RawValue>, RpcError> {
        use EthRequest as R;
        let node = &self.node;
        match request {
            R::ClientVersion => raw(&concat!("medledger/v", env!("CARGO_PKG_VERSION"))),
            R::Sha3(data) => raw(&keccak256(&data)),
            R::NetVersion => raw(&node.chain_id().to_string()),
            R::NetListening => raw(&true),
            R::NetPeerCount => raw(&U64::ZERO),
            R::ChainId => raw(&U64::from(node.chain_id())),
            R::Syncing | R::Mining => raw(&false),
            R::Coinbase => raw(&medledger_chain::alloy::primitives::Address::ZERO),
            R::BlockNumber => raw(&U64::from(node.block_number())),
            R::Accounts => raw(&node.dev_accounts().addresses()),
            R::GetBalance(a, b) => raw(&node.balance(a, self.tag(b)?)?),
            R::GetTransactionCount(a, b) => raw(&U64::from(node.nonce(a, self.tag(b)?)?)),
            R::GetCode(a, b) => raw(&node.code(a, self.tag(b)?)?),
            R::GetStorageAt(a, s, b) => raw(&node.storage(a, s, self.tag(b)?)?),
            R::GasPrice => raw(&U256::from(node.gas_price())),
            R::MaxPriorityFeePerGas => raw(&U256::from(node.max_priority_fee())),
            R::BlobBaseFee => raw(&U256::from(1)),
            R::FeeHistory(count, newest, percentiles) => {
                raw(&self.fee_history(count.to::<u64>(), newest, &percentiles)?)
            }
            R::EstimateGas(tx, b) => raw(&U64::from(
                node.estimate_gas(&call_request(&tx), self.tag(b)?)?,
            )),
            R::Call(tx, b) => raw(&node.call(&call_request(&tx), self.tag(b)?)?.output),
            R::SendRawTransaction(bytes) => raw(&node.send_raw_transaction(&bytes).await?),
            R::SendTransaction(tx) => raw(&node.send_transaction(call_request(&tx)).await?),
            R::GetTransactionByHash(hash) => match node.transaction(&hash) {
                Some(TxLookup::Mined { block, index }) => raw(&convert::transaction(&block, index)),
                Some(TxLookup::Pending { tx, sender }) => {
                    raw(&medledger_chain::alloy::rpc::types::Transaction {
                        inner:
                            medledger_chain::alloy::consensus::transaction::Recovered::new_unchecked(
                                *tx, sender,
                            ),
                        block_hash: None,
                        block_number: None,
                        transaction_index: None,
                        effective_gas_price: None,
                        block_timestamp: None,
                    })
                }
                None => raw(&()),
            },
            R::GetTransactionReceipt(hash) => match node.transaction(&hash) {
                Some(TxLookup::Mined { block, index }) => raw(&convert::receipt(&block, index)),
                _ => raw(&()),
            },
            R::GetBlockReceipts(b) => {
                let block = match b {
                    BlockId::Hash(hash) => node.block_by_hash(&hash.block_hash),
                    BlockId::Number(n) => node.block(number_tag(n)),
                };
                match block {
                    Some(block) => raw(&(0..block.block.transactions.len())
                        .map(|i| convert::receipt(&block, i))
                        .collect::<Vec<_>>()),
                    None => raw(&()),
                }
            }
            R::GetTransactionByBlockNumberAndIndex(b, i) => {
                let block = node.block(number_tag(b));
                raw(&tx_at(block, i))
            }
            R::GetTransactionByBlockHashAndIndex(h, i) => raw(&tx_at(node.block_by_hash(&h), i)),
            R::GetBlockByNumber(b, full) => match node.block(number_tag(b)) {
                Some(block) => raw(&convert::block(&block, full)),
                None => raw(&()),
            },
            R::GetBlockByHash(h, full) => match node.block_by_hash(&h) {
                Some(block) => raw(&convert::block(&block, full)),
                None => raw(&()),
            },
            R::GetBlockTransactionCountByNumber(b) => match node.block(number_tag(b)) {
                Some(block) => raw(&U64::from(block.block.transactions.len())),
                None => raw(&()),
            },
            R::GetBlockTransactionCountByHash(h) => match node.block_by_hash(&h) {
                Some(block) => raw(&U64::from(block.block.transactions.len())),
                None => raw(&()),
            },
            R::GetUncleCountByBlockNumber(_) | R::GetUncleCountByBlockHash(_) => raw(&U64::ZERO),
            R::GetLogs(filter) => raw(&self.logs(&filter)?),
            R::NewFilter(filter) => raw(&self
                .filters
                .install(FilterKind::Logs(filter), node.block_number())),
            R::NewBlockFilter => raw(&self
                .filters
                .install(FilterKind::Blocks, node.block_number())),
            R::NewPendingTransactionFilter => raw(&self
                .filters
                .install(FilterKind::PendingTransactions, node.block_number())),
            R::GetFilterChanges(id) => raw(&self.filter_changes(id)?),
            R::GetFilterLogs(id) => match self.filters.get(id) {
                Some(FilterKind::Logs(filter)) => raw(&self.logs(&filter)?),
                Some(_) => raw(&Vec::<Log>::new()),
                None => Err(RpcError::new(RpcError::SERVER, "filter not found")),
            },
            R::UninstallFilter(id) => raw(&self.filters.uninstall(id)),
            R::EvmMine(timestamp) => {
                node.mine(timestamp.map(|t| t.to::<u64>())).await?;
                raw(&"0x0")
            }
            R::EvmSnapshot => raw(&U64::from(node.snapshot().await?)),
            R::EvmRevert(id) => {
                let id = u64::try_from(id).unwrap_or(u64::MAX);
                raw(&node.revert(id).await?)
            }
            R::EvmIncreaseTime(seconds) => raw(&node.increase_time(seconds.to::<u64>())),
            R::EvmSetNextBlockTimestamp(t) => {
                node.set_next_block_timestamp(t.to::<u64>())?;
                raw(&t)
            }
        }
    }

    fn fee_history(
        &self,
        count: u64,
        newest: BlockNumberOrTag,
        percentiles: &[f64],
    ) -> Result<FeeHistory, RpcError> {
        if percentiles.iter().any(|p| !(0.0..=100.0).contains(p))
            || percentiles.windows(2).any(|w| w[0] > w[1])
        {
            return Err(RpcError::invalid_params(
                "reward percentiles must rise within 0..=100",
            ));
        }
        let newest = self.block_number(newest)?;
        let count = count.clamp(1, 1024).min(newest + 1);
        let oldest = newest + 1 - count;
        let mut history = FeeHistory {
            oldest_block: oldest,
            ..Default::default()
        };
        let mut rewards = Vec::new();
        for n in oldest..=newest {
            let block = self
                .node
                .block(BlockTag::Number(n))
                .ok_or_else(|| RpcError::from(medledger_chain::Error::UnknownBlock))?;
            let h = &block.block.header;
            history
                .base_fee_per_gas
                .push(h.base_fee_per_gas.unwrap_or_default() as u128);
            history
                .gas_used_ratio
                .push(h.gas_used as f64 / h.gas_limit as f64);
            history.base_fee_per_blob_gas.push(1);
            history.blob_gas_used_ratio.push(0.0);
            rewards.push(convert::reward_percentiles(&block, percentiles));
        }
        // The base fee of the block after the newest one.
        let next = if newest == self.node.block_number() {
            self.node.next_base_fee()
        } else {
            self.node
                .block(BlockTag::Number(newest + 1))
                .and_then(|b| b.block.header.base_fee_per_gas)
                .unwrap_or_default()
        };
        history.base_fee_per_gas.push(next as u128);
        history.base_fee_per_blob_gas.push(1);
        if !percentiles.is_empty() {
            history.reward = Some(rewards);
        }
        Ok(history)
    }

    fn logs(&self, filter: &Filter) -> Result<Vec<Log>, RpcError> {
        let (from, to) = match &filter.block_option {
            FilterBlockOption::AtBlockHash(hash) => {
                let block = self
                    .node
                    .block_by_hash(hash)
                    .ok_or_else(|| RpcError::new(RpcError::SERVER, "unknown block"))?;
                (block.block.number(), block.block.number())
            }
            FilterBlockOption::Range {
                from_block,
                to_block,
            } => {
                if let (Some(BlockNumberOrTag::Number(from)), Some(BlockNumberOrTag::Number(to))) =
                    (from_block, to_block)
                    && from > to
                {
                    return Err(RpcError::invalid_params(
                        "invalid block range: fromBlock is after toBlock",
                    ));
                }
                let head = self.node.block_number();
                let resolve = |b: Option<BlockNumberOrTag>| match b {
                    None => Ok(head),
                    Some(BlockNumberOrTag::Number(n)) => Ok(n.min(head)),
                    Some(tag) => self.block_number(tag),
                };
                (resolve(*from_block)?, resolve(*to_block)?)
            }
        };
        if from > to {
            return Err(RpcError::invalid_params(
                "invalid block range: fromBlock is after toBlock",
            ));
        }
        if let Some(max) = self.config.limits.max_log_blocks
            && to - from >= max
        {
            return Err(RpcError::new(
                RpcError::LIMIT_EXCEEDED,
                format!(
                    "query exceeds the limit of {max} blocks per eth_getLogs: asked for blocks {from} to {to}; narrow fromBlock/toBlock"
                ),
            ));
        }
        self.logs_in(filter, from, to)
    }

    fn logs_in(&self, filter: &Filter, from: u64, to: u64) -> Result<Vec<Log>, RpcError> {
        let mut logs = Vec::new();
        for n in from..=to {
            let Some(block) = self.node.block(BlockTag::Number(n)) else {
                break;
            };
            if !filter.matches_bloom(block.block.header.logs_bloom) {
                continue;
            }
            logs.extend(
                convert::block_logs(&block)
                    .into_iter()
                    .filter(|l| filter.matches(&l.inner)),
            );
            let max = self.config.limits.max_logs;
            if logs.len() > max {
                return Err(RpcError::new(
                    RpcError::LIMIT_EXCEEDED,
                    format!("query returned more than {max} results; narrow the block range"),
                ));
            }
        }
        Ok(logs)
    }

    fn filter_changes(&self, id: U256) -> Result<Value, RpcError> {
        let head = self.node.block_number();
        let Some((kind, from, to)) = self.filters.poll(id, head) else {
            return Err(RpcError::new(RpcError::SERVER, "filter not found"));
        };
        Ok(match kind {
            FilterKind::Blocks => {
                let hashes: Vec<B256> = (from..=to)
                    .filter_map(|n| self.node.block(BlockTag::Number(n)).map(|b| b.hash))
                    .collect();
                json!(hashes)
            }
            FilterKind::PendingTransactions => {
                // Mined at once under automatic mining: report what reached blocks since.
                let hashes: Vec<B256> = (from..=to)
                    .filter_map(|n| self.node.block(BlockTag::Number(n)))
                    .flat_map(|b| {
                        b.block
                            .transactions
                            .iter()
                            .map(|t| *t.tx_hash())
                            .collect::<Vec<_>>()
                    })
                    .collect();
                json!(hashes)
            }
            FilterKind::Logs(filter) => {
                let (lo, hi) = match filter.block_option {
                    FilterBlockOption::Range {
                        from_block,
                        to_block,
                    } => {
                        let lo = match from_block {
                            Some(BlockNumberOrTag::Number(n)) => from.max(n),
                            _ => from,
                        };
                        let hi = match to_block {
                            Some(BlockNumberOrTag::Number(n)) => to.min(n),
                            _ => to,
                        };
                        (lo, hi)
                    }
                    FilterBlockOption::AtBlockHash(_) => (from, to),
                };
                if lo > hi {
                    json!([])
                } else {
                    json!(self.logs_in(&filter, lo, hi)?)
                }
            }
        })
    }
}

#[derive(serde::Serialize)]
struct Success {
    jsonrpc: &'static str,
    id: Value,
    result: Box<RawValue>,
}

/// Serialises straight to JSON text: responses are written once, never built as a `Value` tree.
fn raw<T: serde::Serialize + ?Sized>(value: &T) -> Result<Box<RawValue>, RpcError> {
    serde_json::value::to_raw_value(value).map_err(|e| {
        tracing::error!("cannot serialise a JSON-RPC answer: {e}");
        RpcError::new(RpcError::INTERNAL, "internal error")
    })
}

fn failure(id: Value, error: RpcError) -> Box<RawValue> {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": error});
    serde_json::value::to_raw_value(&body).unwrap_or_default()
}

fn number_tag(tag: BlockNumberOrTag) -> BlockTag {
    match tag {
        BlockNumberOrTag::Number(n) => BlockTag::Number(n),
        BlockNumberOrTag::Earliest => BlockTag::Earliest,
        BlockNumberOrTag::Pending => BlockTag::Pending,
        _ => BlockTag::Latest,
    }
}

fn tx_at(block: Option<medledger_chain::BlockRef>, index: U64) -> Value {
    let index = index.to::<usize>();
    match block {
        Some(block) if index < block.block.transactions.len() => {
            json!(convert::transaction(&block, index))
        }
        _ => Value::Null,
    }
}

fn call_request(tx: &TransactionRequest) -> CallRequest {
    CallRequest {
        from: tx.from,
        to: match tx.to {
            Some(TxKind::Call(a)) => Some(a),
            _ => None,
        },
        gas: tx.gas,
        gas_price: tx.gas_price,
        max_fee_per_gas: tx.max_fee_per_gas,
        max_priority_fee_per_gas: tx.max_priority_fee_per_gas,
        value: tx.value,
        input: tx.input.input().cloned(),
        nonce: tx.nonce,
        access_list: tx.access_list.clone(),
        tx_type: tx.transaction_type,
    }
}

async fn handle(State(rpc): State<Rpc>, body: Body) -> Response {
    let limit = rpc.config.limits.max_body_bytes;
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        let error = RpcError::invalid_request(format!(
            "request body too large (or unreadable): at most {limit} bytes"
        ));
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONTENT_TYPE, "application/json")],
            failure(Value::Null, error).to_string(),
        )
            .into_response();
    };
    match rpc.handle_body(&body).await {
        Some(value) => (
            [(header::CONTENT_TYPE, "application/json")],
            value.to_string(),
        )
            .into_response(),
        None => axum::http::StatusCode::NO_CONTENT.into_response(),
    }
}

/// The JSON-RPC endpoint at `/`, callable from the web pages its configuration names.
pub fn router(rpc: Rpc) -> Router {
    let cors = match &rpc.config.cors {
        Cors::Any => CorsLayer::permissive(),
        Cors::Origins(origins) => CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers([header::CONTENT_TYPE])
            .vary([header::ORIGIN]),
    };
    Router::new()
        .route("/", post(handle))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(cors)
        .with_state(rpc)
}

/// Serves JSON-RPC on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    rpc: Rpc,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Answers are small and clients wait for each one: never let Nagle hold them back.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, router(rpc))
        .with_graceful_shutdown(shutdown)
        .await
}
