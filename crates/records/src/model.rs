//! The domain's closed inventories: roles, record kinds, grant scopes and purposes (their
//! discriminants are the contracts' enum values: Solidity enums travel as `uint8`), and a
//! record's integrity; and the plain values every part of the domain passes around (an account
//! as stored, a call prepared for a wallet, a listing's cursor, the clock). A word from outside
//! becomes one of these once, at the boundary.

use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::Address;
use medledger_vault::PublicKey;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Who an account is, as the Registry contract knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Role {
    None = 0,
    Admin = 1,
    Patient = 2,
    Doctor = 3,
    Researcher = 4,
}

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum RecordKind {
    Report = 0,
    Prescription = 1,
    Other = 2,
}

/// Why a record is opened; a grant names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Purpose {
    #[default]
    Treatment = 0,
    Research = 1,
}

/// Which records a grant covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Scope {
    #[default]
    All = 0,
    Kinds = 1,
    Records = 2,
}

/// Whether a record's stored ciphertext still matches the hash anchored on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Integrity {
    Verified,
    /// The blob was altered (or belongs to someone else).
    Mismatch,
    Missing,
}

/// The wire values (Solidity enums travel as `uint8`) and the words (JSON, forms, the database)
/// of each inventory, written once.
macro_rules! inventory {
    ($($ty:ident ($what:literal) { $($variant:ident = $word:literal),* }),*) => {$(
        impl From<$ty> for u8 {
            fn from(value: $ty) -> u8 {
                value as u8
            }
        }
        impl TryFrom<u8> for $ty {
            type Error = u8;
            fn try_from(value: u8) -> Result<Self, u8> {
                [$($ty::$variant),*].into_iter().find(|v| *v as u8 == value).ok_or(value)
            }
        }
        impl $ty {
            /// The word for it in JSON, forms and the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $word),*
                }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $ty {
            type Err = Error;
            /// Parses the word, refusing anything else with a message that lists the words.
            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($word => Ok($ty::$variant),)*
                    other => Err(Error::invalid(format!(
                        concat!("unknown ", $what, " {:?}: use ", $crate::model::words!($($word),*)),
                        other
                    ))),
                }
            }
        }
    )*};
}

/// `"a, b or c"` from a list of words, at compile time.
macro_rules! words {
    ($only:literal) => { $only };
    ($first:literal, $last:literal) => { concat!($first, " or ", $last) };
    ($first:literal, $($rest:literal),+) => { concat!($first, ", ", $crate::model::words!($($rest),+)) };
}
pub(crate) use words;

inventory!(
    Role ("role") {
        None = "none",
        Admin = "admin",
        Patient = "patient",
        Doctor = "doctor",
        Researcher = "researcher"
    },
    RecordKind ("record kind") {
        Report = "report",
        Prescription = "prescription",
        Other = "other"
    },
    Purpose ("purpose") {
        Treatment = "treatment",
        Research = "research"
    },
    Scope ("scope") {
        All = "all",
        Kinds = "kinds",
        Records = "records"
    }
);

impl Integrity {
    pub fn as_str(self) -> &'static str {
        match self {
            Integrity::Verified => "verified",
            Integrity::Mismatch => "mismatch",
            Integrity::Missing => "missing",
        }
    }
}

impl RecordKind {
    /// This kind's bit in a grant's kinds mask.
    pub fn mask_bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`, for messages and pages.
pub fn utc_datetime(secs: i64) -> String {
    let (year, month, day, rem) = civil(secs);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// Unix seconds as an RFC 3339 instant in UTC, `YYYY-MM-DDTHH:MM:SSZ` (FHIR's `instant`).
pub fn rfc3339(secs: i64) -> String {
    let (year, month, day, rem) = civil(secs);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC date of unix seconds, and the seconds into that day.
fn civil(secs: i64) -> (i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_counted_from_the_epoch_both_ways() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in [0, 11_017, 20_454, -1] {
            let (y, m, d, _) = civil(days * 86_400);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn instants_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3_661), "2000-02-29T01:01:01Z");
        assert_eq!(utc_datetime(951_782_400 + 3_661), "2000-02-29 01:01 UTC");
    }

    #[test]
    fn wire_values_round_trip_and_unknown_values_are_refused() {
        for kind in [
            RecordKind::Report,
            RecordKind::Prescription,
            RecordKind::Other,
        ] {
            assert_eq!(RecordKind::try_from(u8::from(kind)), Ok(kind));
        }
        assert_eq!(RecordKind::try_from(3), Err(3));
        assert_eq!(Role::try_from(3), Ok(Role::Doctor));
        assert_eq!(Purpose::try_from(2), Err(2));
        assert_eq!(RecordKind::Other.mask_bit(), 4);
    }

    #[test]
    fn words_parse_back_and_strangers_are_named() {
        for scope in [Scope::All, Scope::Kinds, Scope::Records] {
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
        }
        let e = "banana".parse::<Scope>().unwrap_err();
        assert_eq!(
            e.message,
            "unknown scope \"banana\": use all, kinds or records"
        );
        let e = "x".parse::<Purpose>().unwrap_err();
        assert_eq!(
            e.message,
            "unknown purpose \"x\": use treatment or research"
        );
        assert_eq!(
            serde_json::to_string(&[RecordKind::Report, RecordKind::Other]).unwrap(),
            r#"["report","other"]"#
        );
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(utc_datetime(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_datetime(1_764_633_600 + 3_660), "2025-12-02 01:01 UTC");
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// 32 random bytes from the operating system: record ids, salts.
pub(crate) fn random_b256() -> alloy::primitives::B256 {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.into()
}

/// An account as stored (no secrets unlocked).
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub address: Address,
    pub enc_public: PublicKey,
}

/// How addresses are stored: lower-case hex, so lookups are exact.
pub fn address_key(address: Address) -> String {
    format!("{address:#x}")
}

/// Where a listing, newest first, goes on: just older than this block and position (a
/// transaction's index in its block, or a log's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub block: u64,
    pub position: u64,
}

impl Cursor {
    /// `BLOCK.POSITION`, as a page's `before=` carries it.
    pub fn parse(s: &str) -> Result<Cursor> {
        let bad = || Error::invalid("“before” is a block and a position, like 120.3").on("before");
        let (block, position) = s.split_once('.').ok_or_else(bad)?;
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
                .filter(|n| *n <= i64::MAX as u64)
                .ok_or_else(bad)
        };
        Ok(Cursor {
            block: number(block)?,
            position: number(position)?,
        })
    }

    /// Past everything: the first page.
    pub(crate) fn start() -> Cursor {
        Cursor {
            block: i64::MAX as u64,
            position: 0,
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.block, self.position)
    }
}

/// The parts of a profile: name and date of birth; contact details (as the contract numbers them).
pub const PROFILE_IDENTITY: u8 = 1;
pub const PROFILE_CONTACT: u8 = 2;
