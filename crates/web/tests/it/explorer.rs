//! The ledger explorer pages.
