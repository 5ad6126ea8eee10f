//! medledger as a library: the running system built in one place (`spawn`) from a validated
//! configuration (`Config`), for the `medledger` binary and the tests alike. The binary keeps the
//! flags and the environment; nothing below it reads either.

mod backup;
mod keys;
mod system;

pub use backup::{Deployment, Summary, backup, restore};

pub use system::{Chain, Config, DataDir, DemoOutcome, Faucet, System, spawn, verify_reports};
