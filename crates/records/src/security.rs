//! The security log: one structured line (tracing target `medledger::security`) and one row per
//! security-relevant event — a sign-in refused or made, a request refused as forged (CSRF, a
//! relayed sign-in), a second factor turned on, replaced or off, an emergency declared, an
//! enrolment — saying who, what, from where and the outcome. Never a password, a code, a token,
//! a reason or anything clinical: only names, addresses and the kind of event. An admin reads
//! the latest (`/admin/security`, `GET /api/v1/security-events`); rows older than 90 days go.

use std::net::IpAddr;

use serde::Serialize;

use crate::{
    db::Db,
    error::{Error, Result},
    model::{Role, unix_now},
    person::Person,
    store::security_events::{EventRow, SecurityEvents},
};

/// How long the database keeps an event (the structured log lines are the operator's to keep).
const KEPT_SECS: i64 = 90 * 86_400;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    SignedIn,
    SignInRefused,
    /// A change refused because it did not come from this site (CSRF, another `Host`).
    ForgedRequestRefused,
    SecondFactorOn,
    SecondFactorOff,
    EmergencyDeclared,
    Enrolled,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::SignedIn => "signed_in",
            Event::SignInRefused => "sign_in_refused",
            Event::ForgedRequestRefused => "forged_request_refused",
            Event::SecondFactorOn => "second_factor_on",
            Event::SecondFactorOff => "second_factor_off",
            Event::EmergencyDeclared => "emergency_declared",
            Event::Enrolled => "enrolled",
        }
    }
}

/// An event as the admin's page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SecurityEvent {
    pub at: i64,
    pub kind: String,
    pub who: String,
    pub client: String,
    pub outcome: String,
}

/// The security log, a part of its own over the app database.
#[derive(Clone)]
pub struct SecurityLog {
    db: Db,
}

impl SecurityLog {
    pub(crate) fn new(db: Db) -> SecurityLog {
        SecurityLog { db }
    }

    /// Records `event` of `who` (a user name or an address; empty when unknown) from `client`,
    /// with `outcome` (`ok`, or the refusal's code). A failure to store it is logged, never the
    /// caller's: the event itself has happened (or been refused) either way.
    pub async fn record(&self, event: Event, who: &str, client: Option<IpAddr>, outcome: &str) {
        let client = client.map(|c| c.to_string()).unwrap_or_default();
        tracing::info!(
            target: "medledger::security",
            event = event.as_str(),
            who,
            client = client.as_str(),
            outcome,
            "security event"
        );
        let now = unix_now();
        let row = EventRow {
            at: now,
            kind: event.as_str().to_string(),
            who: who.chars().take(200).collect(),
            client,
            outcome: outcome.chars().take(64).collect(),
        };
        if let Err(e) = SecurityEvents(&self.db).add(&row, now - KEPT_SECS).await {
            tracing::warn!("storing a security event: {}", e.for_operator());
        }
    }

    /// The latest `limit` events, newest first: for an admin only.
    pub async fn recent(&self, admin: &Person, limit: u32) -> Result<Vec<SecurityEvent>> {
        if admin.role != Role::Admin {
            return Err(Error::forbidden("only an admin reads the security log"));
        }
        Ok(SecurityEvents(&self.db)
            .recent(i64::from(limit.clamp(1, 1000)))
            .await?
            .into_iter()
            .map(|r| SecurityEvent {
                at: r.at,
                kind: r.kind,
                who: r.who,
                client: r.client,
                outcome: r.outcome,
            })
            .collect())
    }
}
