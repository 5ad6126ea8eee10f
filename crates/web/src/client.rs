//! Who a request comes from, for the limits counted per client: the connection's peer address,
//! or — when that peer is a proxy the operator named (`--trusted-proxy`) — the address the proxies
//! recorded in `X-Forwarded-For`, read from the right and skipping the trusted ones. A client
//! cannot choose its own address by sending the header: without a trusted proxy it is ignored.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};

use crate::ApiState;

/// The client's address, when the server knows its connections' peers.
pub(crate) struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<ApiState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<ClientAddr, std::convert::Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Ok(ClientAddr(peer.map(|peer| {
            client_of(peer, &forwarded, &state.trusted_proxies)
        })))
    }
}

/// The client behind `peer`: `peer` itself unless it is trusted, else the rightmost address in
/// `X-Forwarded-For` that is not a trusted proxy (a malformed entry stops the walk there: what
/// lies left of it cannot be trusted either).
fn client_of(peer: IpAddr, forwarded: &[&str], trusted: &[IpAddr]) -> IpAddr {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| canonical(*t) == canonical(ip));
    let mut client = canonical(peer);
    if !is_trusted(client) {
        return client;
    }
    let hops = forwarded
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !is_trusted(client) {
                    return client;
                }
            }
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let proxy = ip("10.0.0.2");
        // Not trusted: the header is the client's own words and is ignored.
        assert_eq!(
            client_of(ip("198.51.100.9"), &["1.2.3.4"], &[proxy]),
            ip("198.51.100.9")
        );
        assert_eq!(
            client_of(ip("198.51.100.9"), &["1.2.3.4"], &[]),
            ip("198.51.100.9")
        );
        // Trusted: the rightmost address the proxies added that is not one of them.
        assert_eq!(
            client_of(proxy, &["6.6.6.6, 203.0.113.5"], &[proxy]),
            ip("203.0.113.5")
        );
        let inner = ip("10.0.0.3");
        assert_eq!(
            client_of(
                proxy,
                &["6.6.6.6, 203.0.113.5", "10.0.0.3"],
                &[proxy, inner]
            ),
            ip("203.0.113.5")
        );
        // A garbled entry stops the walk at the last good hop.
        assert_eq!(
            client_of(proxy, &["203.0.113.5, nonsense"], &[proxy]),
            proxy
        );
        // No header behind a trusted proxy: the proxy is all we know.
        assert_eq!(client_of(proxy, &[], &[proxy]), proxy);
        // IPv4-mapped IPv6 peers count as their IPv4 address.
        assert_eq!(
            client_of(ip("::ffff:10.0.0.2"), &["203.0.113.5"], &[proxy]),
            ip("203.0.113.5")
        );
    }
}
