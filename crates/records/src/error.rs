//! The domain's one error type: a kind that says whose fault it is (and so which HTTP status it
//! becomes in the web crate) and a message a person can act on. Internal failures keep their
//! detail for the log and show only a generic message.

use std::fmt;

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
    /// Our fault: the detail is logged, never shown.
    Internal,
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
            Kind::Internal => "internal",
        }
    }
}

/// A failure with a message fit for the person who caused it.
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
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

    /// An internal failure: `detail` goes to the log only.
    pub fn internal(context: &str, detail: impl fmt::Display) -> Error {
        tracing::error!("{context}: {detail}");
        Error::new(
            Kind::Internal,
            "something went wrong on our side; nothing was changed that you were told about",
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error::internal("database", e)
    }
}

impl From<medledger_vault::Error> for Error {
    fn from(e: medledger_vault::Error) -> Error {
        match e {
            medledger_vault::Error::Integrity => Error::new(
                Kind::Integrity,
                "the stored data failed its integrity check: it was altered or damaged",
            ),
            other => Error::internal("vault", other),
        }
    }
}
