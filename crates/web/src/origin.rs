//! The one origin the deployment answers as (`--public-url`): what Sign-In with Ethereum
//! messages must name, what FHIR links and enrolment links are built on. Never the request's
//! `Host`, which the client chooses.

use axum::http::{HeaderMap, Uri, header};

/// `https://records.example` (or `http://127.0.0.1:8080`): a scheme and an authority, nothing
/// else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    origin: String,
    host: String,
}

impl PublicUrl {
    /// Reads `--public-url`: `http` or `https`, a host (and port), no path, query or user.
    pub fn parse(text: &str) -> Result<PublicUrl, String> {
        let uri: Uri = text
            .trim()
            .parse()
            .map_err(|e| format!("{text:?} is not a URL ({e})"))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s,
            _ => {
                return Err(format!(
                    "{text:?} must start with https:// (or http:// on a private network)"
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{text:?} names no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("{text:?} must not name a user"));
        }
        if authority.host().is_empty() {
            return Err(format!("{text:?} names no host"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "{text:?} must be an origin only (like https://records.example), without a path or query: medledger answers at the root of its host"
            ));
        }
        let host = authority.as_str().to_ascii_lowercase();
        Ok(PublicUrl {
            origin: format!("{scheme}://{host}"),
            host,
        })
    }

    /// `scheme://host[:port]`, without a trailing slash.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `host[:port]`, as a `Host` header for this origin says it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether `headers` address this origin (their `Host`, or none: HTTP/1.0).
    pub(crate) fn addressed_by(&self, headers: &HeaderMap) -> Result<(), String> {
        match headers.get(header::HOST).map(|h| h.to_str()) {
            None => Ok(()),
            Some(Ok(host)) if host.eq_ignore_ascii_case(&self.host) => Ok(()),
            Some(Ok(host)) => Err(format!(
                "this server answers as {}, not as {host}: sign in at {} itself",
                self.origin, self.origin
            )),
            Some(Err(_)) => Err("the Host header is not readable".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_a_scheme_and_a_host_only() {
        let ok = PublicUrl::parse("https://Records.Example").unwrap();
        assert_eq!(ok.origin(), "https://records.example");
        assert_eq!(ok.host(), "records.example");
        let ok = PublicUrl::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(ok.origin(), "http://127.0.0.1:8080");
        assert_eq!(ok.host(), "127.0.0.1:8080");
        for bad in [
            "records.example",
            "ftp://records.example",
            "https://records.example/medledger",
            "https://records.example/?a=b",
            "https://user@records.example",
            "https://",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn only_its_own_host_addresses_it() {
        let public = PublicUrl::parse("https://records.example").unwrap();
        let mut headers = HeaderMap::new();
        assert!(public.addressed_by(&headers).is_ok());
        headers.insert(header::HOST, "RECORDS.example".parse().unwrap());
        assert!(public.addressed_by(&headers).is_ok());
        headers.insert(header::HOST, "records.example.phish".parse().unwrap());
        let refused = public.addressed_by(&headers).unwrap_err();
        assert!(
            refused.contains("answers as https://records.example"),
            "{refused}"
        );
    }
}
