//! Every supported method as one closed enum, parsed from a JSON-RPC method name and params.
//! Optional trailing parameters may be left out, as clients do (`eth_getBalance [addr]`).

use medledger_chain::alloy::{
    eips::{BlockId, BlockNumberOrTag},
    primitives::{Address, B256, Bytes, U64, U256},
    rpc::types::{Filter, TransactionRequest},
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::RpcError;

/// A JSON-RPC call this node answers.
#[derive(Debug, Clone)]
pub enum EthRequest {
    ClientVersion,
    Sha3(Bytes),
    NetVersion,
    NetListening,
    NetPeerCount,
    ChainId,
    Syncing,
    Mining,
    Coinbase,
    BlockNumber,
    Accounts,
    GetBalance(Address, BlockId),
    GetTransactionCount(Address, BlockId),
    GetCode(Address, BlockId),
    GetStorageAt(Address, U256, BlockId),
    GasPrice,
    MaxPriorityFeePerGas,
    BlobBaseFee,
    FeeHistory(U64, BlockNumberOrTag, Vec<f64>),
    EstimateGas(Box<TransactionRequest>, BlockId),
    Call(Box<TransactionRequest>, BlockId),
    SendRawTransaction(Bytes),
    SendTransaction(Box<TransactionRequest>),
    GetTransactionByHash(B256),
    GetTransactionReceipt(B256),
    /// Every receipt of a block (what explorers and indexers call).
    GetBlockReceipts(BlockId),
    GetTransactionByBlockNumberAndIndex(BlockNumberOrTag, U64),
    GetTransactionByBlockHashAndIndex(B256, U64),
    GetBlockByNumber(BlockNumberOrTag, bool),
    GetBlockByHash(B256, bool),
    GetBlockTransactionCountByNumber(BlockNumberOrTag),
    GetBlockTransactionCountByHash(B256),
    GetUncleCountByBlockNumber(BlockNumberOrTag),
    GetUncleCountByBlockHash(B256),
    GetLogs(Box<Filter>),
    NewFilter(Box<Filter>),
    NewBlockFilter,
    NewPendingTransactionFilter,
    GetFilterChanges(U256),
    GetFilterLogs(U256),
    UninstallFilter(U256),
    EvmMine(Option<U64>),
    EvmSnapshot,
    EvmRevert(U256),
    EvmIncreaseTime(U64),
    EvmSetNextBlockTimestamp(U64),
}

/// Deserialises positional params into a tuple of `arity` elements, padding missing trailing
/// ones with `null` so `Option` and defaulted fields accept their absence.
fn params<T: DeserializeOwned>(params: &Value, arity: usize) -> Result<T, RpcError> {
    let mut list = match params {
        Value::Null => Vec::new(),
        Value::Array(items) => items.clone(),
        _ => return Err(RpcError::invalid_params("params must be an array")),
    };
    if list.len() > arity {
        return Err(RpcError::invalid_params(format!(
            "too many arguments, want at most {arity}"
        )));
    }
    list.resize(arity, Value::Null);
    let value = if arity == 1 {
        list.pop().unwrap_or(Value::Null)
    } else {
        Value::Array(list)
    };
    serde_json::from_value(value)
        .map_err(|e| RpcError::invalid_params(format!("invalid params: {e}")))
}

fn required<T>(value: Option<T>, what: &str) -> Result<T, RpcError> {
    value.ok_or_else(|| {
        RpcError::invalid_params(format!("missing value for required argument {what}"))
    })
}

fn latest(block: Option<BlockId>) -> BlockId {
    block.unwrap_or(BlockId::Number(BlockNumberOrTag::Latest))
}

impl EthRequest {
    /// Parses a call. Unknown methods give -32601; bad params -32602.
    pub fn parse(method: &str, p: &Value) -> Result<Self, RpcError> {
        use EthRequest as R;
        if !matches!(p, Value::Null | Value::Array(_)) {
            return Err(RpcError::invalid_params("params must be an array"));
        }
        Ok(match method {
            "web3_clientVersion" => R::ClientVersion,
            "web3_sha3" => R::Sha3(required(params(p, 1)?, "data")?),
            "net_version" => R::NetVersion,
            "net_listening" => R::NetListening,
            "net_peerCount" => R::NetPeerCount,
            "eth_chainId" => R::ChainId,
            "eth_syncing" => R::Syncing,
            "eth_mining" => R::Mining,
            "eth_coinbase" => R::Coinbase,
            "eth_blockNumber" => R::BlockNumber,
            "eth_accounts" => R::Accounts,
            "eth_getBalance" => {
                let (a, b): (Option<Address>, Option<BlockId>) = params(p, 2)?;
                R::GetBalance(required(a, "address")?, latest(b))
            }
            "eth_getTransactionCount" => {
                let (a, b): (Option<Address>, Option<BlockId>) = params(p, 2)?;
                R::GetTransactionCount(required(a, "address")?, latest(b))
            }
            "eth_getCode" => {
                let (a, b): (Option<Address>, Option<BlockId>) = params(p, 2)?;
                R::GetCode(required(a, "address")?, latest(b))
            }
            "eth_getStorageAt" => {
                let (a, s, b): (Option<Address>, Option<U256>, Option<BlockId>) = params(p, 3)?;
                R::GetStorageAt(required(a, "address")?, required(s, "slot")?, latest(b))
            }
            "eth_gasPrice" => R::GasPrice,
            "eth_maxPriorityFeePerGas" => R::MaxPriorityFeePerGas,
            "eth_blobBaseFee" => R::BlobBaseFee,
            "eth_feeHistory" => {
                let (count, newest, pct): (
                    Option<U64>,
                    Option<BlockNumberOrTag>,
                    Option<Vec<f64>>,
                ) = params(p, 3)?;
                R::FeeHistory(
                    required(count, "blockCount")?,
                    required(newest, "newestBlock")?,
                    pct.unwrap_or_default(),
                )
            }
            "eth_estimateGas" => {
                let (tx, b): (Option<TransactionRequest>, Option<BlockId>) = params(p, 2)?;
                R::EstimateGas(Box::new(required(tx, "transaction")?), latest(b))
            }
            "eth_call" => {
                let (tx, b): (Option<TransactionRequest>, Option<BlockId>) = params(p, 2)?;
                R::Call(Box::new(required(tx, "transaction")?), latest(b))
            }
            "eth_sendRawTransaction" => R::SendRawTransaction(required(params(p, 1)?, "data")?),
            "eth_sendTransaction" => {
                R::SendTransaction(Box::new(required(params(p, 1)?, "transaction")?))
            }
            "eth_getTransactionByHash" => R::GetTransactionByHash(required(params(p, 1)?, "hash")?),
            "eth_getTransactionReceipt" => {
                R::GetTransactionReceipt(required(params(p, 1)?, "hash")?)
            }
            "eth_getBlockReceipts" => R::GetBlockReceipts(required(params(p, 1)?, "block")?),
            "eth_getTransactionByBlockNumberAndIndex" => {
                let (b, i): (Option<BlockNumberOrTag>, Option<U64>) = params(p, 2)?;
                R::GetTransactionByBlockNumberAndIndex(required(b, "block")?, required(i, "index")?)
            }
            "eth_getTransactionByBlockHashAndIndex" => {
                let (b, i): (Option<B256>, Option<U64>) = params(p, 2)?;
                R::GetTransactionByBlockHashAndIndex(
                    required(b, "block hash")?,
                    required(i, "index")?,
                )
            }
            "eth_getBlockByNumber" => {
                let (b, full): (Option<BlockNumberOrTag>, Option<bool>) = params(p, 2)?;
                R::GetBlockByNumber(required(b, "block")?, full.unwrap_or(false))
            }
            "eth_getBlockByHash" => {
                let (b, full): (Option<B256>, Option<bool>) = params(p, 2)?;
                R::GetBlockByHash(required(b, "block hash")?, full.unwrap_or(false))
            }
            "eth_getBlockTransactionCountByNumber" => {
                R::GetBlockTransactionCountByNumber(required(params(p, 1)?, "block")?)
            }
            "eth_getBlockTransactionCountByHash" => {
                R::GetBlockTransactionCountByHash(required(params(p, 1)?, "block hash")?)
            }
            "eth_getUncleCountByBlockNumber" => {
                R::GetUncleCountByBlockNumber(required(params(p, 1)?, "block")?)
            }
            "eth_getUncleCountByBlockHash" => {
                R::GetUncleCountByBlockHash(required(params(p, 1)?, "block hash")?)
            }
            "eth_getLogs" => R::GetLogs(Box::new(required(params(p, 1)?, "filter")?)),
            "eth_newFilter" => R::NewFilter(Box::new(required(params(p, 1)?, "filter")?)),
            "eth_newBlockFilter" => R::NewBlockFilter,
            "eth_newPendingTransactionFilter" => R::NewPendingTransactionFilter,
            "eth_getFilterChanges" => R::GetFilterChanges(required(params(p, 1)?, "filter id")?),
            "eth_getFilterLogs" => R::GetFilterLogs(required(params(p, 1)?, "filter id")?),
            "eth_uninstallFilter" => R::UninstallFilter(required(params(p, 1)?, "filter id")?),
            "evm_mine" => {
                // Ganache accepts a timestamp or an options object; the object is ignored here.
                let first = match p {
                    Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                R::EvmMine(match first {
                    Value::Null | Value::Object(_) => None,
                    Value::Number(n) => n.as_u64().map(U64::from),
                    other => Some(serde_json::from_value(other).map_err(|e| {
                        RpcError::invalid_params(format!("invalid timestamp: {e}"))
                    })?),
                })
            }
            "evm_snapshot" => R::EvmSnapshot,
            "evm_revert" => R::EvmRevert(required(params(p, 1)?, "snapshot id")?),
            "evm_increaseTime" => R::EvmIncreaseTime(quantity(p, "seconds")?),
            "evm_setNextBlockTimestamp" => R::EvmSetNextBlockTimestamp(quantity(p, "timestamp")?),
            other => return Err(RpcError::method_not_found(other)),
        })
    }
}

/// A number given either as a JSON number (Ganache's tests do this) or as a hex quantity.
fn quantity(p: &Value, what: &str) -> Result<U64, RpcError> {
    let value: Option<Value> = params(p, 1)?;
    match required(value, what)? {
        Value::Number(n) => n
            .as_u64()
            .map(U64::from)
            .ok_or_else(|| RpcError::invalid_params(format!("{what} must be a whole number"))),
        other => serde_json::from_value(other)
            .map_err(|e| RpcError::invalid_params(format!("invalid {what}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn optional_block_defaults_to_latest() {
        let req = EthRequest::parse(
            "eth_getBalance",
            &json!(["0x0000000000000000000000000000000000000001"]),
        )
        .unwrap();
        assert!(matches!(
            req,
            EthRequest::GetBalance(_, BlockId::Number(BlockNumberOrTag::Latest))
        ));
    }

    #[test]
    fn bad_params_and_unknown_methods_get_their_codes() {
        let err = EthRequest::parse("eth_getBalance", &json!(["not an address"])).unwrap_err();
        assert_eq!(err.code, RpcError::INVALID_PARAMS);
        let err = EthRequest::parse("eth_getBalance", &json!([])).unwrap_err();
        assert_eq!(err.code, RpcError::INVALID_PARAMS);
        let err = EthRequest::parse("eth_nope", &json!([])).unwrap_err();
        assert_eq!(err.code, RpcError::METHOD_NOT_FOUND);
        let err = EthRequest::parse("eth_blockNumber", &json!({"a": 1})).unwrap_err();
        assert_eq!(err.code, RpcError::INVALID_PARAMS);
    }

    #[test]
    fn evm_increase_time_takes_numbers_and_quantities() {
        assert!(
            matches!(EthRequest::parse("evm_increaseTime", &json!([60])).unwrap(), EthRequest::EvmIncreaseTime(n) if n == U64::from(60))
        );
        assert!(
            matches!(EthRequest::parse("evm_increaseTime", &json!(["0x3c"])).unwrap(), EthRequest::EvmIncreaseTime(n) if n == U64::from(60))
        );
    }
}
