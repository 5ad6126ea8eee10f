//! The embedded Ethereum node: revm executes transactions, a miner seals them into blocks, and a
//! durable block log keeps them across restarts. It knows nothing about healthcare, HTTP or JSON.

mod block;
mod error;
mod executor;
mod genesis;
mod node;
mod pool;
mod state;
mod store;
mod verify;

pub use block::{SealedBlock, TxLocation};
pub use error::{Error, Result, TxError};
pub use executor::{CallOutcome, CallRequest};
pub use genesis::{DEV_MNEMONIC, DevAccounts, Genesis};
pub use node::{BlockRef, BlockTag, MiningMode, Node, NodeConfig, TxLookup};
pub use store::{copy_chain, holds_chain};
pub use verify::{VerifyReport, verify_data_dir};

/// Re-exported so that the layers above name exactly the types this node speaks.
pub use alloy;
