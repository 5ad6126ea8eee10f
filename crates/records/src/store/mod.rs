//! Storage, one module per table: the only code of the domain that speaks SQL. Each table is a
//! small handle over the app database (`Records(&db)`, `Wraps(&db)`, …) whose methods say what
//! they store and find; what is sealed stays sealed here, and only the keyring opens it.

pub mod backup;
pub(crate) mod chain_index;
pub(crate) mod emergencies;
pub(crate) mod exports;
pub(crate) mod grants;
pub(crate) mod invites;
pub(crate) mod journal;
pub(crate) mod rate_limits;
pub(crate) mod records;
pub(crate) mod security_events;
pub(crate) mod sessions;
pub(crate) mod settings;
pub(crate) mod siwe;
pub(crate) mod studies;
pub(crate) mod users;
pub(crate) mod wraps;
