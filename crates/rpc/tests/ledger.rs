//! The endpoint as a ledger (what `medledger serve` offers): test methods refused as unknown,
//! only the configured origins admitted by CORS, geth's and Besu's limits with clear errors, and
//! parameters validated as geth validates them. Driven over HTTP on a loopback port.

use std::time::Duration;

use medledger_chain::{Node, NodeConfig};
use medledger_rpc::{Cors, Rpc, RpcConfig};
use serde_json::{Value, json};

struct Endpoint {
    url: String,
    http: reqwest::Client,
    _node: Node,
}

async fn start(config: RpcConfig) -> Endpoint {
    let node = Node::spawn(NodeConfig::test()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let rpc = Rpc::with_config(node.clone(), config);
    tokio::spawn(medledger_rpc::serve(listener, rpc, std::future::pending()));
    Endpoint {
        url,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        _node: node,
    }
}

const APP: &str = "http://127.0.0.1:8080";

fn ledger_config() -> RpcConfig {
    RpcConfig::ledger(Cors::parse(APP).unwrap())
}

impl Endpoint {
    async fn post(&self, body: Value) -> (u16, Value) {
        let response = self.http.post(&self.url).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// One call: its result, or its error code and message.
    async fn call(&self, method: &str, params: Value) -> Result<Value, (i64, String)> {
        let (_, body) = self
            .post(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .await;
        match body.get("error") {
            Some(e) => Err((
                e["code"].as_i64().unwrap(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )),
            None => Ok(body["result"].clone()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_refuses_every_test_method_and_a_dev_chain_keeps_them() {
    let ledger = start(ledger_config()).await;
    let dev = start(RpcConfig::dev()).await;
    let account = dev._node.dev_accounts().addresses()[0];
    let calls = [
        ("evm_snapshot", json!([])),
        ("evm_revert", json!(["0x1"])),
        ("evm_increaseTime", json!([3600])),
        ("evm_mine", json!([])),
        ("evm_setNextBlockTimestamp", json!(["0x7fffffff"])),
        (
            "eth_sendTransaction",
            json!([{"from": account, "to": account, "value": "0x1"}]),
        ),
    ];
    for (method, params) in &calls {
        let refused = ledger.call(method, params.clone()).await.unwrap_err();
        assert_eq!(refused.0, -32601, "{method}: {refused:?}");
        assert!(refused.1.contains(method), "{method}: {refused:?}");
        // Even a malformed call is refused as unknown, not parsed.
        let refused = ledger.call(method, json!({"bad": 1})).await.unwrap_err();
        assert_eq!(refused.0, -32601, "{method}: {refused:?}");
    }
    for (method, params) in &calls {
        assert!(
            dev.call(method, params.clone()).await.is_ok(),
            "dev chain: {method}"
        );
    }
    // What wallets and tools use still answers.
    for method in [
        "eth_chainId",
        "eth_blockNumber",
        "eth_gasPrice",
        "net_version",
    ] {
        assert!(ledger.call(method, json!([])).await.is_ok(), "{method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_admits_only_the_configured_origins() {
    let ledger = start(ledger_config()).await;
    let preflight = |origin: &'static str| {
        ledger
            .http
            .request(reqwest::Method::OPTIONS, &ledger.url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight(APP).await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        APP,
        "the app's own origin is admitted"
    );
    let evil = preflight("http://evil.example").await.unwrap();
    assert!(
        evil.headers().get("access-control-allow-origin").is_none(),
        "another origin is not admitted: {:?}",
        evil.headers()
    );
    let simple = ledger
        .http
        .post(&ledger.url)
        .header("origin", "http://evil.example")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}))
        .send()
        .await
        .unwrap();
    assert!(
        simple
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let dev = start(RpcConfig::dev()).await;
    let any = dev
        .http
        .post(&dev.url)
        .header("origin", "http://anything.example")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(any.headers()["access-control-allow-origin"], "*");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_with_clear_errors() {
    let ledger = start(ledger_config()).await;
    // A body over 5 MiB.
    let huge = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction",
                      "params": [format!("0x{}", "ab".repeat(3 * 1024 * 1024))]});
    let (status, body) = ledger.post(huge).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too large")
    );
    // A batch of more than 1000.
    let batch: Vec<Value> = (0..1001)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_chainId", "params": []}))
        .collect();
    let (_, body) = ledger.post(Value::Array(batch)).await;
    assert_eq!(body["error"]["code"], -32600, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("batch"));
    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_chainId", "params": []}))
        .collect();
    let (_, body) = ledger.post(Value::Array(batch)).await;
    assert_eq!(body.as_array().map(Vec::len), Some(1000));
    // A log query over more blocks than the limit (here 2, to keep the chain short; a ledger's
    // default is Besu's 5000). The head bounds the range a query asks for.
    let mut config = ledger_config();
    assert_eq!(config.limits.max_log_blocks, Some(5000));
    config.limits.max_log_blocks = Some(2);
    let short = start(config).await;
    for _ in 0..3 {
        short._node.mine(None).await.unwrap();
    }
    let (code, message) = short
        .call(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "toBlock": "latest"}]),
        )
        .await
        .unwrap_err();
    assert_eq!(code, -32005, "{message}");
    assert!(message.contains("limit of 2 blocks"), "{message}");
    assert!(
        short
            .call(
                "eth_getLogs",
                json!([{"fromBlock": "0x2", "toBlock": "0x3"}])
            )
            .await
            .is_ok()
    );
    let dev = start(RpcConfig::dev()).await;
    assert!(
        dev.call("eth_getLogs", json!([{"fromBlock": "0x0"}]))
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_are_validated_as_geth_validates_them() {
    let ledger = start(ledger_config()).await;
    let address = "0x0000000000000000000000000000000000000001";
    let hash = format!("0x{}", "11".repeat(32));
    let head = ledger
        .call("eth_getBlockByNumber", json!(["latest", false]))
        .await
        .unwrap();
    let head_hash = head["hash"].clone();
    let invalid = [
        ("eth_getBalance", json!(["0x1234", "latest"])),
        ("eth_getBalance", json!([format!("{address}0"), "latest"])),
        ("eth_getBalance", json!([address, "0x10000000000000000"])),
        ("eth_getBlockByHash", json!(["0x1234", false])),
        ("eth_getTransactionReceipt", json!([&hash[..65]])),
        (
            "eth_getStorageAt",
            json!([address, format!("0x{}", "1".repeat(65)), "latest"]),
        ),
        ("eth_getBlockByNumber", json!(["1", false])),
        ("eth_getBlockByNumber", json!(["0x1", "yes"])),
        (
            "eth_getLogs",
            json!([{"fromBlock": "0x2", "toBlock": "0x1"}]),
        ),
        (
            "eth_getLogs",
            json!([{"blockHash": head_hash, "fromBlock": "0x0"}]),
        ),
        ("eth_getLogs", json!([{"address": "0x12"}])),
        ("eth_getLogs", json!([{"topics": ["0x12"]}])),
        ("eth_call", json!([{"to": "0x12"}, "latest"])),
        ("eth_feeHistory", json!(["0x1", "latest", [50, 10]])),
        ("eth_getBlockReceipts", json!([])),
    ];
    let mut wrong = Vec::new();
    for (method, params) in &invalid {
        match ledger.call(method, params.clone()).await {
            Err((-32602, _)) => {}
            other => wrong.push(format!("{method} {params}: {other:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused as invalid params:\n{}",
        wrong.join("\n")
    );
    // And what is well formed answers.
    let receipts = ledger
        .call("eth_getBlockReceipts", json!(["latest"]))
        .await
        .unwrap();
    assert_eq!(receipts, json!([]));
    let receipts = ledger
        .call("eth_getBlockReceipts", json!([head_hash]))
        .await
        .unwrap();
    assert_eq!(receipts, json!([]));
    let missing = ledger
        .call("eth_getBlockReceipts", json!(["0x100"]))
        .await
        .unwrap();
    assert_eq!(missing, Value::Null);
}
