//! How this server names things in FHIR: the identifier systems of its own ids, and the resource
//! ids it gives accounts, records and the resources imported from shared bundles, each read back
//! by the same rule that wrote it.

use medledger_records::{
    Error, Kind, Result,
    primitives::{Address, B256},
    reports::parse_record_id,
};

/// The identifier systems of this server's own ids.
pub(crate) const ACCOUNT: &str = "urn:medledger:account";
pub(crate) const RECORD: &str = "urn:medledger:record";
pub(crate) const CONTENT_HASH: &str = "urn:medledger:content-hash";
pub(crate) const TRANSACTION: &str = "urn:medledger:transaction";
pub(crate) const GRANT: &str = "urn:medledger:grant";
pub(crate) const HOSPITAL: &str = "urn:medledger:hospital";
pub(crate) const LICENCE: &str = "urn:medledger:licence";
pub(crate) const PRESCRIPTION: &str = "urn:medledger:prescription";
pub(crate) const RECORD_KIND: &str = "urn:medledger:record-kind";
pub(crate) const ACCESS: &str = "urn:medledger:access";

/// A resource id that names an account: 40 hex digits, with or without `0x`.
pub(crate) fn account_id(id: &str) -> Result<Address> {
    let hex = id.strip_prefix("0x").unwrap_or(id);
    if hex.len() != 40 {
        return Err(Error::new(
            Kind::NotFound,
            format!("no resource has the id {id:?}: ids here are 40 hex digits"),
        ));
    }
    hex.parse::<Address>()
        .map_err(|_| Error::new(Kind::NotFound, format!("no resource has the id {id:?}")))
}

/// An account's resource id: its address as 40 lowercase hex digits.
pub(crate) fn id_of(address: Address) -> String {
    hex::encode(address.as_slice())
}

/// A reference parameter (`patient=Patient/ID` or `patient=ID`) naming an account.
pub(crate) fn reference_param(value: &str, kind: &str) -> Result<Address> {
    let id = value
        .strip_prefix(&format!("{kind}/"))
        .unwrap_or(value)
        .rsplit('/')
        .next()
        .unwrap_or(value);
    account_id(id).map_err(|_| {
        Error::new(
            Kind::Invalid,
            format!("{value:?} is not a {kind} of this server (Patient/ and 40 hex digits)"),
        )
    })
}

/// The id of a record's resources: its 32 bytes as 64 hex digits.
pub(crate) fn record_id(id: &B256) -> String {
    hex::encode(id.as_slice())
}

/// A record's id read back from a resource id, with or without `0x`.
pub(crate) fn parse_record(id: &str) -> Result<B256> {
    parse_record_id(id)
        .or_else(|_| parse_record_id(&format!("0x{id}")))
        .map_err(|_| Error::new(Kind::NotFound, format!("no resource has the id {id:?}")))
}

/// The id an imported resource is served under: its report's id (the first 56 hex digits)
/// and its place in the bundle.
pub(crate) fn clinical_id(record: &B256, index: usize) -> String {
    format!("{}-{index}", &hex::encode(record)[..56])
}

/// Splits a served id back into its report's prefix and the place.
pub(crate) fn parse_clinical_id(id: &str) -> Option<(&str, usize)> {
    let (prefix, index) = id.rsplit_once('-')?;
    (prefix.len() == 56).then_some(())?;
    Some((prefix, index.parse().ok()?))
}
