//! JSON-RPC errors: the standard codes, and the one conversion from node errors to them.

use medledger_chain::{Error, TxError, alloy::primitives::Bytes};
use serde::Serialize;
use serde_json::Value;

/// A JSON-RPC error object.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL: i64 = -32603;
    /// Geth's code for a refused transaction or a failed query.
    pub const SERVER: i64 = -32000;
    /// EIP-1474: the node cannot serve this now (it has stopped: a block could not be stored).
    pub const UNAVAILABLE: i64 = -32002;
    /// EIP-1474: a request past one of the node's limits (block range, result count).
    pub const LIMIT_EXCEEDED: i64 = -32005;
    /// EIP-1474 / geth: execution reverted, with the revert data.
    pub const REVERTED: i64 = 3;

    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn parse(message: impl Into<String>) -> Self {
        Self::new(Self::PARSE_ERROR, message)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(Self::INVALID_REQUEST, message)
    }

    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            Self::METHOD_NOT_FOUND,
            format!("the method {method} does not exist/is not available"),
        )
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(Self::INVALID_PARAMS, message)
    }
}

impl From<Error> for RpcError {
    fn from(error: Error) -> Self {
        match error {
            Error::Reverted { ref data, .. } => RpcError {
                code: Self::REVERTED,
                message: error.to_string(),
                data: Some(Value::String(hex(data))),
            },
            Error::Halted(_) => Self::new(Self::SERVER, error.to_string()),
            Error::Tx(TxError::InvalidSignature(_)) | Error::InvalidInput(_) => {
                Self::invalid_params(error.to_string())
            }
            Error::Tx(_) => Self::new(Self::SERVER, error.to_string()),
            Error::UnknownBlock => Self::new(Self::SERVER, "header not found"),
            Error::ShuttingDown => Self::new(Self::SERVER, error.to_string()),
            Error::Stopped(_) => Self::new(Self::UNAVAILABLE, error.to_string()),
            Error::Storage(_) | Error::Io(_) => {
                tracing::error!("internal error answering a JSON-RPC request: {error}");
                Self::new(Self::INTERNAL, "internal error")
            }
        }
    }
}

fn hex(bytes: &Bytes) -> String {
    format!("{bytes}")
}
