//! One keep-alive HTTP/1.1 connection to a JSON-RPC endpoint, driven through hyper directly.
//!
//! The bench client shares the machine's two cores with the chain, so whatever it spends per
//! request is taken from the chain. This client sends request bodies serialized beforehand and
//! reads only the fields it checks, where a general client (reqwest and `serde_json::Value`)
//! would cost about as much again. It still makes every HTTP request and parses every answer.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::{
    Request,
    body::Bytes,
    client::conn::http1::{self, SendRequest},
    header,
};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::value::RawValue;

pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

/// A JSON-RPC answer, its result borrowed from the body.
#[derive(Deserialize)]
struct Answer<'a, T> {
    result: Option<T>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("  connection to {addr}: {e}");
            }
        });
        Ok(Conn {
            sender,
            host: addr.to_string(),
        })
    }

    /// Posts one JSON-RPC request body; returns the answer's body.
    pub(crate) async fn post(&mut self, body: Bytes) -> anyhow::Result<Bytes> {
        self.sender.ready().await?;
        let request = Request::post("/")
            .header(header::HOST, &self.host)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let response = self.sender.send_request(request).await?;
        if !response.status().is_success() {
            bail!("HTTP {}", response.status());
        }
        Ok(response.into_body().collect().await?.to_bytes())
    }

    /// Posts a request and reads its `result` as `T` (`None` for a JSON `null`).
    pub(crate) async fn call<T>(&mut self, body: Bytes) -> anyhow::Result<Option<T>>
    where
        T: for<'de> Deserialize<'de>,
    {
        let answer = self.post(body).await?;
        let parsed: Answer<'_, T> = serde_json::from_slice(&answer)
            .with_context(|| format!("unexpected answer {}", String::from_utf8_lossy(&answer)))?;
        if let Some(error) = parsed.error {
            bail!("{}", error.get());
        }
        Ok(parsed.result)
    }
}

/// A JSON-RPC request body with one string parameter (a raw transaction, a hash).
pub(crate) fn body(method: &str, param: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":["{param}"]}}"#
    ))
}
