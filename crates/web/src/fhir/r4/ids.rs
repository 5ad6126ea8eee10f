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

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT_HEX: &str = "00000000000000000000000000000000000000aa";

    #[test]
    fn an_account_id_is_forty_hex_digits_and_reads_back_lowercase() {
        // (id, the account's id as written back, or the refusal's start)
        let rows: [(String, Result<&str, &str>); 7] = [
            (ACCOUNT_HEX.into(), Ok(ACCOUNT_HEX)),
            (format!("0x{ACCOUNT_HEX}"), Ok(ACCOUNT_HEX)),
            (ACCOUNT_HEX.to_uppercase(), Ok(ACCOUNT_HEX)),
            (ACCOUNT_HEX[1..].into(), Err("ids here are 40 hex digits")),
            (String::new(), Err("ids here are 40 hex digits")),
            (
                format!("Patient/{ACCOUNT_HEX}"),
                Err("ids here are 40 hex digits"),
            ),
            (
                format!("zz{}", &ACCOUNT_HEX[2..]),
                Err("no resource has the id"),
            ),
        ];
        for (id, expected) in rows {
            match (account_id(&id), expected) {
                (Ok(address), Ok(written)) => assert_eq!(id_of(address), written, "{id}"),
                (Err(e), Err(says)) => {
                    assert_eq!(e.kind, Kind::NotFound, "{id}");
                    assert!(e.message.contains(says), "{id}: {}", e.message);
                }
                (got, _) => panic!("{id}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_reference_parameter_names_an_account_with_or_without_its_type() {
        let account = account_id(ACCOUNT_HEX).unwrap();
        // (value, kind, whether it names the account; a refusal otherwise)
        let rows = [
            (format!("Patient/{ACCOUNT_HEX}"), "Patient", true),
            (ACCOUNT_HEX.to_string(), "Patient", true),
            (format!("0x{ACCOUNT_HEX}"), "Patient", true),
            (format!("Practitioner/{ACCOUNT_HEX}"), "Practitioner", true),
            ("Patient/123".to_string(), "Patient", false),
            ("Patient/".to_string(), "Patient", false),
            (format!("Patient/{ACCOUNT_HEX}0"), "Patient", false),
        ];
        for (value, kind, names) in rows {
            match reference_param(&value, kind) {
                Ok(a) => assert!(names && a == account, "{value}"),
                Err(e) => {
                    assert!(!names, "{value}: {}", e.message);
                    assert_eq!(e.kind, Kind::Invalid, "{value}");
                    assert!(
                        e.message
                            .starts_with(&format!("{value:?} is not a {kind} of this server")),
                        "{}",
                        e.message
                    );
                }
            }
        }
    }

    #[test]
    fn a_record_id_is_sixty_four_hex_digits_and_reads_back() {
        let record = B256::repeat_byte(0xab);
        let written = record_id(&record);
        assert_eq!(written, "ab".repeat(32));
        // (id, whether it reads back as the record)
        let rows = [
            (written.clone(), true),
            (format!("0x{written}"), true),
            (written[1..].to_string(), false),
            (format!("{written}00"), false),
            (format!("{}zz", &written[2..]), false),
            (String::new(), false),
        ];
        for (id, reads) in rows {
            match parse_record(&id) {
                Ok(r) => assert!(reads && r == record, "{id}"),
                Err(e) => {
                    assert!(!reads, "{id}: {}", e.message);
                    assert_eq!(e.kind, Kind::NotFound, "{id}");
                    assert_eq!(e.message, format!("no resource has the id {id:?}"));
                }
            }
        }
    }

    #[test]
    fn an_imported_resource_id_is_its_reports_prefix_and_its_place() {
        let record = B256::repeat_byte(0xcd);
        let prefix = "cd".repeat(28);
        assert_eq!(clinical_id(&record, 3), format!("{prefix}-3"));
        // (id, what it splits into)
        let rows = [
            (clinical_id(&record, 3), Some((prefix.as_str(), 3))),
            (clinical_id(&record, 0), Some((prefix.as_str(), 0))),
            (clinical_id(&record, 12345), Some((prefix.as_str(), 12345))),
            (format!("{}-3", &prefix[1..]), None),
            (format!("{prefix}0-3"), None),
            (format!("{prefix}-x"), None),
            (format!("{prefix}--1"), None),
            (format!("{prefix}-3-4"), None),
            (prefix.clone(), None),
            (record_id(&record), None),
        ];
        for (id, expected) in rows {
            assert_eq!(parse_clinical_id(&id), expected, "{id}");
        }
    }
}
