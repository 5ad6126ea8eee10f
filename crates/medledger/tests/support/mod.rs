//! What the process tests share: a `medledger node` started on a free loopback port (killed
//! when dropped), optionally with a limit on the size of the files it writes, and a minimal
//! JSON-RPC client with signed transactions.
#![allow(dead_code)] // each test file uses its own part

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

use medledger_chain::alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::Encodable2718,
    primitives::{Address, TxKind, U256, hex},
    signers::{SignerSync, local::PrivateKeySigner},
};
use serde_json::{Value, json};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_medledger");

/// Runs `medledger verify --data-dir DIR`: whether it passed, and what it printed.
pub(crate) fn verify(data_dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["verify", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A node process, killed (SIGKILL) when dropped, so a failing test leaves none behind.
pub(crate) struct Running(Child);

impl Running {
    /// kill -9: no chance to flush anything.
    pub(crate) fn kill(&mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Passes a child's stderr on to the test's own, line by line, marked with `who`.
fn forward_stderr(child: &mut Child, who: &'static str) {
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[{who}] {line}");
        }
    });
}

/// Starts the node on a free loopback port and returns it with its JSON-RPC URL.
pub(crate) fn start(dir: &std::path::Path) -> (Running, String) {
    let mut command = Command::new(BIN);
    command
        .args(["node", "--rpc-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir);
    spawn(command)
}

/// Starts the node with the files it writes limited to `blocks` blocks of the shell's
/// `ulimit -f` (a write past it fails with EFBIG, as on a full disk; SIGXFSZ is ignored).
/// With `log`, the node's stderr is appended to that file instead (one already past the limit
/// makes every log line fail to be written, as `scripts/test > log 2>&1` once did).
pub(crate) fn start_with_file_limit(
    dir: &std::path::Path,
    blocks: u64,
    log: Option<&std::path::Path>,
) -> (Running, String) {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(
            r#"trap '' XFSZ; ulimit -f "$1"; if [ -n "$3" ]; then exec 2>>"$3"; fi
               exec "$0" node --rpc-addr 127.0.0.1:0 --data-dir "$2""#,
        )
        .arg(BIN)
        .arg(blocks.to_string())
        .arg(dir)
        .arg(log.map(|p| p.as_os_str().to_owned()).unwrap_or_default());
    spawn(command)
}

fn spawn(mut command: Command) -> (Running, String) {
    // The node's stderr comes through a pipe, never the test's own: with a file-size limit a
    // node could not write to a log file already past it, whatever the test's output is.
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the medledger binary runs");
    forward_stderr(&mut child, "node");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("the node prints its address").unwrap();
        if let Some(addr) = line.strip_prefix("Listening on ") {
            break format!("http://{addr}");
        }
    };
    // Keep draining stdout so the node never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Running(child), url)
}

pub(crate) async fn rpc(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    params: Value,
) -> Result<Value, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let response = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let value: Value = response.json().await.map_err(|e| e.to_string())?;
    match value.get("error") {
        Some(error) => Err(error.to_string()),
        None => Ok(value["result"].clone()),
    }
}

pub(crate) fn transfer(from: &PrivateKeySigner, to: Address, nonce: u64) -> String {
    signed(from, to, nonce, Vec::new())
}

pub(crate) fn signed(from: &PrivateKeySigner, to: Address, nonce: u64, input: Vec<u8>) -> String {
    let tx = TxEip1559 {
        chain_id: 1337,
        nonce,
        // EIP-7623: calldata costs at least 40 gas a non-zero byte.
        gas_limit: 21_000 + 40 * input.len() as u64,
        max_fee_per_gas: 50_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value: U256::from(1),
        access_list: Default::default(),
        input: input.into(),
    };
    let signature = from.sign_hash_sync(&tx.signature_hash()).unwrap();
    format!(
        "0x{}",
        hex::encode(TxEnvelope::Eip1559(tx.into_signed(signature)).encoded_2718())
    )
}

// ---------------------------------------------------------------- medledger serve

/// What a started server printed before `Listening on`. Dropping it kills the server, so a
/// failing assertion never leaves one running.
pub(crate) struct Started {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) lines: Vec<String>,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn serve_command(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--http-addr",
        "127.0.0.1:0",
        "--rpc-addr",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(dir.join("data"))
    .arg("--escrow-key")
    .arg(dir.join("escrow.key"))
    .arg("--faucet-key")
    .arg(dir.join("faucet.key"))
    .args(extra)
    .env_remove("MEDLEDGER_ADMIN_PASSWORD")
    .env_remove("MEDLEDGER_FUNDER_KEY");
    cmd
}

pub(crate) fn start_serve(mut cmd: Command) -> Started {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the medledger binary runs");
    forward_stderr(&mut child, "serve");
    // Lines come through a channel, so waiting for the address has a bound.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let bound = std::time::Duration::from_secs(120);
    let deadline = std::time::Instant::now() + bound;
    let mut lines = Vec::new();
    let url = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => match line.strip_prefix("Listening on ") {
                Some(addr) => break addr.to_string(),
                None => lines.push(line),
            },
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "serve did not print \"Listening on\" within {bound:?} (or exited); it printed {lines:?}"
                );
            }
        }
    };
    // Keep draining stdout (where the server logs) so it never blocks on a full pipe, shown
    // with a failing test.
    std::thread::spawn(move || {
        for line in rx {
            eprintln!("[serve] {line}");
        }
    });
    Started { child, url, lines }
}

/// The password printed after `label` (e.g. "Admin login: admin /", "patient  alice").
pub(crate) fn printed_password(lines: &[String], label: &str) -> Option<String> {
    lines.iter().find_map(|l| {
        let rest = l.trim().strip_prefix(label)?;
        rest.split_whitespace().next().map(str::to_string)
    })
}

pub(crate) async fn login(
    client: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
) -> Option<String> {
    let response = client
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({ "username": user, "password": password }))
        .send()
        .await
        .unwrap();
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.unwrap();
    Some(body["token"].as_str()?.to_string())
}

/// Shares `text` as a report titled `title` (file name `file`) on the server at `url`: its id,
/// when the server acknowledged it (201); `None` for any other answer or a lost connection.
pub(crate) async fn share_text(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    title: &str,
    file: &str,
    text: &str,
) -> Option<String> {
    let form = reqwest::multipart::Form::new()
        .text("title", title.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(text.as_bytes().to_vec()).file_name(file.to_string()),
        );
    let response = client
        .post(format!("{url}/api/v1/records"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .ok()?;
    if response.status() != reqwest::StatusCode::CREATED {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    Some(body["id"].as_str()?.to_string())
}

/// `GET url` without a session: its JSON.
pub(crate) async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

pub(crate) async fn get(client: &reqwest::Client, url: &str, token: &str) -> Value {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
