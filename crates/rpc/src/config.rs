//! What an endpoint offers and to whom: the method set (a Ganache-like dev chain, or a ledger
//! that refuses test methods), which browser origins may call it, and the limits geth and Besu
//! put on one request.

use axum::http::HeaderValue;

/// Which methods an endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Methods {
    /// Everything, test methods included (`evm_*`, `eth_sendTransaction` with the dev
    /// accounts): what `medledger node`, the Ganache drop-in, offers.
    Dev,
    /// What wallets, explorers and client libraries need (reads, fees, filters,
    /// `eth_sendRawTransaction`); every test or admin method is refused as unknown. A ledger
    /// whose history nobody may rewrite: what `medledger serve` offers.
    Ledger,
}

impl Methods {
    /// Whether `method` is served. Test methods move the clock, rewrite history or sign with
    /// keys the node holds; a ledger offers none of them.
    pub fn allows(self, method: &str) -> bool {
        match self {
            Methods::Dev => true,
            Methods::Ledger => !(method.starts_with("evm_") || method == "eth_sendTransaction"),
        }
    }
}

/// Which web pages (by origin) a browser lets call the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    /// Any origin (`Access-Control-Allow-Origin: *`), as Ganache answers.
    Any,
    /// Only these origins, exactly as a browser sends them (`http://127.0.0.1:8080`).
    Origins(Vec<HeaderValue>),
}

impl Cors {
    /// Parses a comma-separated list of origins; `*` alone means any.
    pub fn parse(list: &str) -> Result<Cors, String> {
        let list = list.trim();
        if list == "*" {
            return Ok(Cors::Any);
        }
        let mut origins = Vec::new();
        for origin in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let well_formed = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && origin.split("://").nth(1).is_some_and(|host| {
                    !host.is_empty() && !host.contains('/') && !host.contains('*')
                });
            if !well_formed {
                return Err(format!(
                    "{origin:?} is not an origin: write scheme://host[:port], like http://127.0.0.1:8080, or * for any"
                ));
            }
            origins.push(
                HeaderValue::from_str(origin)
                    .map_err(|_| format!("{origin:?} is not an origin"))?,
            );
        }
        if origins.is_empty() {
            return Err("give at least one origin, or * for any".into());
        }
        Ok(Cors::Origins(origins))
    }
}

/// Bounds on one request, as geth and Besu have them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body (geth: 5 MB).
    pub max_body_bytes: usize,
    /// Most requests in one batch (geth: 1000).
    pub max_batch: usize,
    /// Most blocks one `eth_getLogs` may span (Besu: 5000); `None`: no bound, as Ganache.
    pub max_log_blocks: Option<u64>,
    /// Most logs one `eth_getLogs` answers.
    pub max_logs: usize,
}

impl Limits {
    /// A dev chain's: what a Ganache user's scripts need, with bounds that keep one query
    /// from exhausting memory.
    pub fn dev() -> Limits {
        Limits {
            max_body_bytes: 5 * 1024 * 1024,
            max_batch: 1000,
            max_log_blocks: None,
            max_logs: 100_000,
        }
    }

    /// A ledger's: as a Besu node answers by default.
    pub fn ledger() -> Limits {
        Limits {
            max_log_blocks: Some(5000),
            max_logs: 10_000,
            ..Limits::dev()
        }
    }
}

/// Everything that shapes an endpoint.
#[derive(Debug, Clone)]
pub struct RpcConfig {
    pub methods: Methods,
    pub cors: Cors,
    pub limits: Limits,
}

impl RpcConfig {
    /// The Ganache drop-in: every method, any origin.
    pub fn dev() -> RpcConfig {
        RpcConfig {
            methods: Methods::Dev,
            cors: Cors::Any,
            limits: Limits::dev(),
        }
    }

    /// A ledger reached by the given origins only.
    pub fn ledger(cors: Cors) -> RpcConfig {
        RpcConfig {
            methods: Methods::Ledger,
            cors,
            limits: Limits::ledger(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_refuses_test_methods_and_a_dev_chain_does_not() {
        for method in [
            "evm_snapshot",
            "evm_revert",
            "evm_increaseTime",
            "evm_mine",
            "evm_setNextBlockTimestamp",
            "eth_sendTransaction",
        ] {
            assert!(!Methods::Ledger.allows(method), "{method}");
            assert!(Methods::Dev.allows(method), "{method}");
        }
        for method in [
            "eth_sendRawTransaction",
            "eth_call",
            "eth_getLogs",
            "eth_chainId",
        ] {
            assert!(Methods::Ledger.allows(method), "{method}");
        }
    }

    #[test]
    fn origins_are_checked() {
        assert_eq!(Cors::parse("*"), Ok(Cors::Any));
        assert_eq!(
            Cors::parse("http://127.0.0.1:8080, https://app.example").unwrap(),
            Cors::Origins(vec![
                HeaderValue::from_static("http://127.0.0.1:8080"),
                HeaderValue::from_static("https://app.example")
            ])
        );
        assert!(Cors::parse("127.0.0.1:8080").is_err());
        assert!(Cors::parse("http://a.example/path").is_err());
        assert!(Cors::parse("http://*.example").is_err());
        assert!(Cors::parse(" , ").is_err());
    }
}
