//! Ethereum JSON-RPC over HTTP: the `eth_*`, `net_*`, `web3_*` and `evm_*` methods that ethers.js,
//! web3.py and MetaMask use, served by axum with batching and CORS for browser wallets; as a
//! Ganache-like dev chain, or as a ledger that refuses every test method (`RpcConfig`).

mod config;
mod convert;
mod error;
mod filters;
mod request;
mod server;

pub use config::{Cors, Limits, Methods, RpcConfig};
pub use error::RpcError;
pub use request::EthRequest;
pub use server::{Rpc, router, serve};
