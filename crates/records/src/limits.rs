//! Limits every app server of a deployment counts against together, in the app database: login
//! attempts per name, sign-ups per client, the faucet's fundings per day, an account's top-ups
//! per day. An attempt is counted
//! before it is judged, in one statement that returns the count, so parallel attempts cannot all
//! slip under the limit.

use std::{net::IpAddr, time::Duration};

use alloy::primitives::Address;

use crate::{
    db::Db,
    error::{Error, Kind, Result},
    store::rate_limits::RateLimits,
};

/// At most `max` in each `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

impl Limit {
    pub const fn per_hour(max: u32) -> Limit {
        Limit {
            max,
            window: Duration::from_secs(3600),
        }
    }

    pub const fn per_day(max: u32) -> Limit {
        Limit {
            max,
            window: Duration::from_secs(24 * 3600),
        }
    }
}

/// The limits a deployment runs with.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Patients signing up from one client (an IPv4 address, or an IPv6 /64).
    pub sign_ups_per_client: Limit,
    /// Ether the faucet sends (new accounts and top-ups), counted in fundings.
    pub faucet: Limit,
    /// Top-ups of one account whose ether runs low.
    pub top_ups_per_account: Limit,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            sign_ups_per_client: Limit::per_hour(10),
            faucet: Limit::per_day(1000),
            top_ups_per_account: Limit::per_day(3),
        }
    }
}

/// What a client is counted as: its IPv4 address, or its IPv6 /64 (one subscriber's network).
fn client_key(client: IpAddr) -> String {
    match client {
        IpAddr::V4(v4) => format!("signup {v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("signup {v4}"),
            None => {
                let s = v6.segments();
                format!("signup {:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The counters of the limits, over the app database every server shares.
#[derive(Clone)]
pub(crate) struct Limiter {
    db: Db,
    limits: Limits,
}

impl Limiter {
    pub(crate) fn new(db: Db, limits: Limits) -> Limiter {
        Limiter { db, limits }
    }

    /// Counts one more against `key`; whether it is still within `limit`.
    pub(crate) async fn count_against(&self, key: &str, limit: Limit) -> Result<bool> {
        let count = RateLimits(&self.db)
            .count(key, limit.window.as_secs() as i64)
            .await?;
        Ok(count <= i64::from(limit.max))
    }

    /// Starts `key`'s count again (a login that succeeded).
    pub(crate) async fn clear_count(&self, key: &str) -> Result<()> {
        RateLimits(&self.db).clear(key).await
    }

    /// A sign-up from `client` (when the web layer knows it), or a refusal once that client has
    /// signed up too many patients this hour.
    pub(crate) async fn count_sign_up(&self, client: Option<IpAddr>) -> Result<()> {
        let Some(client) = client else {
            return Ok(());
        };
        if self
            .count_against(&client_key(client), self.limits.sign_ups_per_client)
            .await?
        {
            Ok(())
        } else {
            Err(Error::new(
                Kind::TooManyAttempts,
                "too many accounts were made from your network in the last hour; try again later",
            ))
        }
    }

    /// One funding by the faucet, or a refusal once it has given out its daily allowance.
    pub(crate) async fn count_funding(&self) -> Result<()> {
        if self.count_against("faucet", self.limits.faucet).await? {
            Ok(())
        } else {
            Err(Error::new(
                Kind::Unavailable,
                "the faucet has given out today's allowance of ether; new accounts can be made again tomorrow (or the operator raises --faucet-daily-cap)",
            ))
        }
    }

    /// One more top-up of `account` today; whether it is still within its allowance.
    pub(crate) async fn count_top_up(&self, account: Address) -> Result<bool> {
        self.count_against(
            &format!("top-up {account}"),
            self.limits.top_ups_per_account,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_counted_by_address_or_ipv6_network() {
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(client_key(v4), "signup 203.0.113.7");
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(client_key(mapped), "signup 203.0.113.7");
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
    }
}
