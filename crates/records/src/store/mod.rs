//! Storage, one module per table: the only code of the domain that speaks SQL. Each table is a
//! small handle over the app database (`Records(&db)`, `Wraps(&db)`, …) whose methods say what
//! they store and find; what is sealed stays sealed here, and only the keyring opens it.

pub(crate) mod emergencies;
pub(crate) mod records;
pub(crate) mod wraps;
