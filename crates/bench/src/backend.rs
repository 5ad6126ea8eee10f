//! The chains under test, each started as its own process on a free loopback port: the
//! `medledger node` release binary beside this one, and Ganache from the project's node_modules.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

pub(crate) struct Backend {
    /// JSON-RPC address (of the first start: `restart` is the last thing a run does).
    pub(crate) url: String,
    pub(crate) client: reqwest::Client,
    /// Behind a lock because `restart` replaces it.
    child: std::sync::Mutex<Child>,
    /// The embedded node's data, removed on drop; Ganache keeps none.
    data_dir: Option<PathBuf>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn medledger_bin() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("MEDLEDGER_BIN") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("medledger");
    if !bin.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p medledger`",
            bin.display()
        );
    }
    Ok(bin)
}

fn spawn_medledger(dir: &std::path::Path) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(medledger_bin()?)
        .args(["node", "--rpc-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting medledger node")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let url = loop {
        let line = lines
            .next()
            .context("medledger node exited before listening")??;
        if let Some(addr) = line.strip_prefix("Listening on ") {
            break format!("http://{addr}");
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok((child, url))
}

impl Backend {
    pub(crate) async fn medledger() -> anyhow::Result<Backend> {
        let dir = std::env::temp_dir().join(format!("medledger-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (child, url) = spawn_medledger(&dir)?;
        Ok(Backend {
            url,
            client: reqwest::Client::new(),
            child: std::sync::Mutex::new(child),
            data_dir: Some(dir),
        })
    }

    pub(crate) async fn ganache() -> anyhow::Result<Backend> {
        let cli = PathBuf::from("node_modules/ganache/dist/node/cli.js");
        if !cli.exists() {
            bail!(
                "{} is missing: run `npm ci` in the repository root first",
                cli.display()
            );
        }
        let port = free_port()?;
        let child = Command::new("node")
            .arg(&cli)
            .args([
                "--chain.chainId=1337",
                "--chain.hardfork=shanghai",
                "--wallet.totalAccounts=10",
                "--wallet.defaultBalance=1000",
                "--logging.quiet",
                "--server.host=127.0.0.1",
            ])
            .arg(format!("--server.port={port}"))
            .arg(format!(
                "--wallet.mnemonic={}",
                medledger_chain::DEV_MNEMONIC
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting ganache")?;
        let backend = Backend {
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            child: std::sync::Mutex::new(child),
            data_dir: None,
        };
        for _ in 0..300 {
            if backend.rpc("eth_chainId", json!([])).await.is_ok() {
                return Ok(backend);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("ganache did not answer within 30 s")
    }

    pub(crate) async fn rpc(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.client().call(method, params).await
    }

    /// A JSON-RPC client of this chain.
    pub(crate) fn client(&self) -> crate::workload::Rpc {
        crate::workload::Rpc {
            client: self.client.clone(),
            url: self.parsed_url(),
        }
    }

    /// The JSON-RPC socket address.
    pub(crate) fn addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        self.url
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("{} is not http://IP:PORT", self.url))
    }

    pub(crate) fn parsed_url(&self) -> reqwest::Url {
        reqwest::Url::parse(&self.url).expect("the backend URL is http://127.0.0.1:PORT")
    }

    /// Resident memory of the node process, in MB.
    pub(crate) fn rss_mb(&self) -> f64 {
        let pid = self.child.lock().map(|c| c.id()).unwrap_or(0);
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<f64>().ok())
                })
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// CPU time the chain's process has used so far (user + system), in seconds.
    pub(crate) fn cpu_secs(&self) -> f64 {
        let pid = self.child.lock().map(|c| c.id()).unwrap_or(0);
        cpu_secs_of(&pid.to_string())
    }

    /// Kills the embedded node (SIGKILL) and starts it again on the same data; returns the
    /// block height it came back with.
    pub(crate) async fn restart(&self) -> anyhow::Result<u64> {
        let dir = self
            .data_dir
            .clone()
            .context("only the embedded node restarts")?;
        let url = {
            let mut child = self.child.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            child.kill()?;
            child.wait()?;
            let (fresh, url) = spawn_medledger(&dir)?;
            *child = fresh;
            url
        };
        let height = reqwest::Client::new()
            .post(&url)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}))
            .send()
            .await?
            .json::<Value>()
            .await?;
        let hex = height["result"]
            .as_str()
            .unwrap_or("0x0")
            .trim_start_matches("0x");
        Ok(u64::from_str_radix(hex, 16)?)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// CPU time (user + system) the process `pid` (a number, or `self`) has used so far, in seconds.
pub(crate) fn cpu_secs_of(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at field 3.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 here; Linux counts 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}
