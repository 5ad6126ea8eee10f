//! The domain's one error type: a kind that says whose fault it is (and so which HTTP status it
//! becomes in the web crate) and a message a person can act on. Internal failures keep their
//! detail for the log and show only a generic message.

use std::fmt;

use alloy::primitives::{Address, B256, Bytes};
use serde::Serialize;

/// What went wrong, as the caller must understand it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Malformed input: a field missing, a value out of range.
    Invalid,
    /// Well-formed input that breaks a rule (an expiry in the past, an empty scope).
    Unprocessable,
    /// Not logged in, or the session ended.
    Unauthenticated,
    /// The password was right, and the account's second factor (a TOTP code) is needed too.
    SecondFactorRequired,
    /// The role must have a second factor, and this account has none yet: set it up first.
    SecondFactorSetupRequired,
    /// Logged in, but this person may not do this.
    Forbidden,
    NotFound,
    /// The thing exists already, or is already in the requested state.
    Conflict,
    TooLarge,
    UnsupportedType,
    TooManyAttempts,
    /// Stored data does not match its on-chain anchor (or its authentication tag).
    Integrity,
    /// A service we depend on (the Ethereum node, the database) does not answer.
    Unavailable,
    /// The deployment does not fit together (met at start only).
    Misconfigured,
    /// Our fault: the detail is logged, never shown.
    Internal,
    /// Nothing failed: the acting person keeps their key in their own wallet, and the call
    /// (`Error::wallet`) waits for the wallet to sign and send it.
    WalletSignature,
}

impl Kind {
    /// A stable machine-readable code for the JSON error body.
    pub fn code(self) -> &'static str {
        match self {
            Kind::Invalid => "invalid_input",
            Kind::Unprocessable => "unprocessable",
            Kind::Unauthenticated => "unauthenticated",
            Kind::SecondFactorRequired => "second_factor_required",
            Kind::SecondFactorSetupRequired => "second_factor_setup_required",
            Kind::Forbidden => "forbidden",
            Kind::NotFound => "not_found",
            Kind::Conflict => "conflict",
            Kind::TooLarge => "payload_too_large",
            Kind::UnsupportedType => "unsupported_media_type",
            Kind::TooManyAttempts => "too_many_attempts",
            Kind::Integrity => "integrity_failure",
            Kind::Unavailable => "unavailable",
            Kind::Misconfigured => "misconfigured",
            Kind::Internal => "internal",
            Kind::WalletSignature => "wallet_signature_needed",
        }
    }
}

/// A failure with a message fit for the person who caused it. It logs nothing itself: the
/// boundary that turns it into an answer logs it, once (an internal failure's detail, with its
/// source, at error level).
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    /// The input field the failure concerns, so a form can show it beside that field and an
    /// API client can point at it.
    pub field: Option<&'static str>,
    /// For `Kind::WalletSignature`: the call the person's wallet is to sign and send.
    pub wallet: Option<Box<PreparedWrite>>,
    /// For an internal failure: what was being done and what went wrong, for the log only.
    detail: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

const INTERNAL_MESSAGE: &str =
    "something went wrong on our side; nothing was changed that you were told about";

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            field: None,
            wallet: None,
            detail: None,
            source: None,
        }
    }

    /// A call prepared for the person's own wallet: it completes once the wallet sent it and
    /// the page (or script) hands back its hash.
    pub fn wallet(prepared: PreparedWrite) -> Error {
        Error {
            wallet: Some(Box::new(prepared)),
            ..Error::new(
                Kind::WalletSignature,
                "confirm this transaction in your wallet: it is prepared, and completes once your wallet has sent it",
            )
        }
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(Kind::Invalid, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Error {
        Error::new(Kind::Unprocessable, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Error {
        Error::new(Kind::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(Kind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(Kind::Conflict, message)
    }

    /// A deployment that does not fit together (another chain, another escrow key, old
    /// contracts): only ever met at start, where the binary prints the message and stops.
    pub fn misconfigured(message: impl Into<String>) -> Error {
        Error::new(Kind::Misconfigured, message)
    }

    /// An internal failure: `detail` is kept for the log, never shown.
    pub fn internal(context: &str, detail: impl fmt::Display) -> Error {
        Error {
            detail: Some(format!("{context}: {detail}")),
            ..Error::new(Kind::Internal, INTERNAL_MESSAGE)
        }
    }

    /// An internal failure caused by `source` while doing `context`.
    pub fn internal_from(
        context: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error {
            detail: Some(format!("{context}: {source}")),
            source: Some(Box::new(source)),
            ..Error::new(Kind::Internal, INTERNAL_MESSAGE)
        }
    }

    /// The same failure, about input field `field`.
    pub fn on(mut self, field: &'static str) -> Error {
        self.field = Some(field);
        self
    }

    /// What the log should say of an internal failure (`None` for the others, whose message
    /// says it all).
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// What an operator reads of it (a log line, the binary's last words): the detail of an
    /// internal failure, else the message.
    pub fn for_operator(&self) -> &str {
        self.detail.as_deref().unwrap_or(&self.message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error::internal_from("database", e)
    }
}

impl From<medledger_vault::Error> for Error {
    fn from(e: medledger_vault::Error) -> Error {
        match e {
            medledger_vault::Error::Integrity => Error::new(
                Kind::Integrity,
                "the stored data failed its integrity check: it was altered or damaged",
            ),
            medledger_vault::Error::Store(detail) => Error {
                detail: Some(format!("blob store: {detail}")),
                ..Error::new(
                    Kind::Unavailable,
                    "the report storage does not answer; try again in a moment",
                )
            },
            other => Error::internal_from("vault", other),
        }
    }
}

/// A call prepared for a person's own wallet: what `eth_sendTransaction` is to send, and what
/// it is expected to cost. The write completes with the hash of the transaction the wallet sent
/// (`App::complete_write`), once that is exactly this call from this account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreparedWrite {
    /// The journal's id of the write, to complete or cancel it by.
    pub id: i64,
    pub from: Address,
    pub to: Address,
    /// The call's input, 0x-hex.
    pub data: Bytes,
    pub chain_id: u64,
    /// The gas limit to send it with (the node's estimate: a little more than it uses, since a
    /// call into another contract must leave 1/64 behind) and the gas price to send it at (wei
    /// per gas, decimal, the node's price now). A wallet shows their product as the fee; the
    /// receipt charges the gas used at that price.
    pub gas: u64,
    pub gas_price: String,
    /// gas x gas price, in wei (decimal): the most it can cost.
    pub max_fee_wei: String,
    /// The record the call anchors, when it anchors one (a shared report, a prescription).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<B256>,
}
