//! The healthcare domain: who may do what with which record. For now, the bindings to the
//! Registry, Records and Consent contracts that hold the public ledger's half of the truth.

pub mod contracts;
pub mod model;
