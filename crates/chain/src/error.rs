//! Errors of the chain: one enum for the node and the reasons a transaction is refused.

use alloy::primitives::Bytes;

/// Why a transaction was refused before it reached a block. The messages are the ones Ethereum
/// clients (ethers.js, web3.py) recognise, so keep their wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("nonce too low: next nonce {expected}, tx nonce {got}")]
    NonceTooLow { expected: u64, got: u64 },
    #[error("insufficient funds for gas * price + value: balance {balance}, cost {cost}")]
    InsufficientFunds { balance: String, cost: String },
    #[error("invalid chain id: expected {expected}, got {got}")]
    WrongChainId { expected: u64, got: u64 },
    #[error("already known")]
    AlreadyKnown,
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    #[error("max fee per gas less than block base fee: maxFeePerGas {max_fee}, baseFee {base_fee}")]
    FeeBelowBaseFee { max_fee: u128, base_fee: u64 },
    #[error("max priority fee per gas higher than max fee per gas")]
    TipAboveFeeCap,
    #[error("intrinsic gas too low: gas {gas}, minimum needed {needed}")]
    IntrinsicGasTooLow { gas: u64, needed: u64 },
    #[error("exceeds block gas limit")]
    GasLimitExceeded,
    #[error("transaction type not supported")]
    UnsupportedType,
    #[error("invalid transaction: {0}")]
    Invalid(String),
    #[error("invalid sender: {0}")]
    InvalidSignature(String),
    #[error("unknown account")]
    UnknownAccount,
}

/// Every failure of the node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tx(#[from] TxError),
    /// The EVM reverted; `data` is the revert payload (custom error or `Error(string)`).
    #[error("execution reverted{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Reverted { reason: Option<String>, data: Bytes },
    #[error("execution halted: {0}")]
    Halted(String),
    #[error("unknown block")]
    UnknownBlock,
    #[error("{0}")]
    InvalidInput(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("the node is shutting down")]
    ShuttingDown,
    /// A block could not be stored: the node refuses transactions and state queries (its state
    /// may hold what is not on disk) until it is restarted, which replays what is.
    #[error("{0}; the node takes no transactions and answers no state query until restarted")]
    Stopped(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
