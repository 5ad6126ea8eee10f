//! The records workload: a deployed ledger with doctors and patients (setup, not timed), then
//! pre-signed anchors, grants and access logs pushed by `in_flight` workers, each owning its own
//! senders so nonces stay in order. Latency is submission to receipt, as a client sees it.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hyper::body::Bytes;
use medledger_chain::{
    DEV_MNEMONIC, DevAccounts,
    alloy::{
        consensus::{SignableTransaction, TxEip1559, TxEnvelope},
        eips::Encodable2718,
        primitives::{self, Address, B256, TxKind, U256, hex, keccak256},
        signers::{SignerSync, local::PrivateKeySigner},
        sol_types::{SolCall, SolConstructor},
    },
};
use medledger_records::{
    contracts::{Consent, Records, Registry},
    model::{Purpose, RecordKind, Scope},
};
use serde_json::{Value, json};

use crate::{
    Figures,
    backend::Backend,
    conn::{self, Conn},
};

const CHAIN_ID: u64 = 1337;
const GAS: u64 = 500_000;
const MAX_FEE: u128 = 100_000_000_000;
const TIP: u128 = 1_000_000_000;
/// Patients per worker: grants spread over them, so the cost of `canAccess` stays flat.
const PATIENTS_PER_WORKER: usize = 8;

pub(crate) struct Workload {
    /// Per worker, `eth_sendRawTransaction` request bodies in nonce order.
    txs: Vec<Vec<Bytes>>,
    /// `canAccess` `eth_call` request bodies.
    calls: Vec<Bytes>,
}

/// A deterministic key, distinct per run (`run` is that run's fresh Registry address).
pub(crate) fn key(run: Address, label: &str, i: usize) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(format!("medledger-bench {run} {label} {i}")))
        .expect("a valid key")
}

/// Signs transactions for several senders, tracking each one's nonce.
pub(crate) struct Signer {
    pub(crate) nonces: HashMap<Address, u64>,
}

impl Signer {
    pub(crate) fn sign(
        &mut self,
        from: &PrivateKeySigner,
        to: TxKind,
        input: Vec<u8>,
        value: U256,
    ) -> String {
        let nonce = self.nonces.entry(from.address()).or_insert(0);
        let tx = TxEip1559 {
            chain_id: CHAIN_ID,
            nonce: *nonce,
            gas_limit: if to.is_create() { 3_000_000 } else { GAS },
            max_fee_per_gas: MAX_FEE,
            max_priority_fee_per_gas: TIP,
            to,
            value,
            access_list: Default::default(),
            input: primitives::Bytes::from(input),
        };
        *nonce += 1;
        let signature = from.sign_hash_sync(&tx.signature_hash()).expect("signing");
        format!(
            "0x{}",
            hex::encode(TxEnvelope::Eip1559(tx.into_signed(signature)).encoded_2718())
        )
    }
}

/// Sends each sender's list in order, senders in parallel; fails on any error or failed receipt.
async fn send_all(backend: &Backend, lists: Vec<Vec<String>>) -> anyhow::Result<Vec<Value>> {
    let mut tasks = Vec::new();
    for list in lists {
        let b = backend.client();
        tasks.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            for raw in list {
                let (receipt, _) = b.submit(&raw).await?;
                if receipt["status"] != "0x1" {
                    bail!("setup transaction failed: {receipt}");
                }
                receipts.push(receipt);
            }
            Ok(receipts)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

/// A JSON-RPC client: one connection pool, the URL parsed once (a client re-parsing it for every
/// request would measure itself, not the chain).
#[derive(Clone)]
pub(crate) struct Rpc {
    pub(crate) client: reqwest::Client,
    pub(crate) url: reqwest::Url,
}

impl Rpc {
    pub(crate) async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let value: Value = self
            .client
            .post(self.url.clone())
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        if let Some(error) = value.get("error") {
            bail!("{method}: {error}");
        }
        Ok(value["result"].clone())
    }

    /// Submits a raw transaction and polls for its receipt; returns it with the latency.
    pub(crate) async fn submit(&self, raw: &str) -> anyhow::Result<(Value, Duration)> {
        let started = Instant::now();
        let hash = self.call("eth_sendRawTransaction", json!([raw])).await?;
        loop {
            let receipt = self
                .call("eth_getTransactionReceipt", json!([hash]))
                .await?;
            if !receipt.is_null() {
                return Ok((receipt, started.elapsed()));
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("no receipt for {hash} after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// The part of a receipt the workload checks.
#[derive(serde::Deserialize)]
struct Status {
    status: String,
}

/// Submits a transaction and waits for its receipt, over one connection; returns the receipt's
/// status with the latency from submission to receipt.
async fn submit(conn: &mut Conn, body: Bytes) -> anyhow::Result<(String, Duration)> {
    let started = Instant::now();
    let hash: String = conn
        .call(body)
        .await?
        .context("eth_sendRawTransaction answered null")?;
    let ask = conn::body("eth_getTransactionReceipt", &hash);
    loop {
        if let Some(receipt) = conn.call::<Status>(ask.clone()).await? {
            return Ok((receipt.status, started.elapsed()));
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("no receipt for {hash} after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn address_of(receipt: &Value) -> anyhow::Result<Address> {
    receipt["contractAddress"]
        .as_str()
        .context("no contract address")?
        .parse()
        .context("address")
}

impl Workload {
    /// Deploys the ledger, funds and registers everyone, and pre-signs `n` workload transactions.
    pub(crate) async fn prepare(
        backend: &Backend,
        n: usize,
        in_flight: usize,
    ) -> anyhow::Result<Workload> {
        let dev = DevAccounts::from_mnemonic(DEV_MNEMONIC, 10)?
            .signers()
            .to_vec();
        let admin = &dev[0];
        let mut signer = Signer {
            nonces: HashMap::new(),
        };
        for account in &dev {
            let count = backend
                .rpc(
                    "eth_getTransactionCount",
                    json!([account.address(), "latest"]),
                )
                .await?;
            let nonce =
                u64::from_str_radix(count.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16)?;
            signer.nonces.insert(account.address(), nonce);
        }
        // Contracts.
        let registry = deploy(backend, &mut signer, admin, Registry::BYTECODE.to_vec()).await?;
        let mut code = Records::BYTECODE.to_vec();
        code.extend(Records::constructorCall { registry }.abi_encode());
        let records = deploy(backend, &mut signer, admin, code).await?;
        let mut code = Consent::BYTECODE.to_vec();
        code.extend(
            Consent::constructorCall {
                registry,
                records,
                emergencyWindowSeconds: 86_400,
                emergenciesPerDay: 3,
            }
            .abi_encode(),
        );
        let consent = deploy(backend, &mut signer, admin, code).await?;
        let wire = Records::setConsentCall { consent }.abi_encode();
        let hospital = Registry::addHospitalCall {
            name: "Bench General".into(),
            city: "Lyon".into(),
            addr: "1 Bench St".into(),
            specialties: "cardiology".into(),
            services: "emergency".into(),
            contact: "desk@bench.example".into(),
        }
        .abi_encode();
        let admin_txs = vec![
            signer.sign(admin, TxKind::Call(records), wire, U256::ZERO),
            signer.sign(admin, TxKind::Call(registry), hospital, U256::ZERO),
        ];
        send_all(backend, vec![admin_txs]).await?;

        // People: a doctor and PATIENTS_PER_WORKER patients per worker, funded by the dev accounts.
        let doctors: Vec<_> = (0..in_flight).map(|i| key(registry, "doctor", i)).collect();
        let patients: Vec<_> = (0..in_flight * PATIENTS_PER_WORKER)
            .map(|i| key(registry, "patient", i))
            .collect();
        let funders = &dev[1..];
        let mut funding = vec![Vec::new(); funders.len()];
        for (i, person) in doctors.iter().chain(&patients).enumerate() {
            let funder = &funders[i % funders.len()];
            let ether = U256::from(10u64).pow(U256::from(18u64));
            funding[i % funders.len()].push(signer.sign(
                funder,
                TxKind::Call(person.address()),
                vec![],
                ether,
            ));
        }
        send_all(backend, funding).await?;
        let add_doctors = doctors
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let call = Registry::addDoctorCall {
                    account: d.address(),
                    name: format!("Dr Bench {i}"),
                    specialty: "cardiology".into(),
                    licenceId: format!("LIC-{i}"),
                    hospitalId: 1,
                };
                signer.sign(admin, TxKind::Call(registry), call.abi_encode(), U256::ZERO)
            })
            .collect();
        send_all(backend, vec![add_doctors]).await?;
        // Each patient registers, anchors one record and grants its worker's doctor.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let mut setup = Vec::new();
        let mut setup_records = Vec::new();
        for (p, patient) in patients.iter().enumerate() {
            let doctor = &doctors[p / PATIENTS_PER_WORKER];
            let record = keccak256(format!("setup record {p}"));
            setup_records.push(record);
            setup.push(vec![
                signer.sign(
                    patient,
                    TxKind::Call(registry),
                    Registry::registerPatientCall {}.abi_encode(),
                    U256::ZERO,
                ),
                signer.sign(patient, TxKind::Call(records), anchor(record), U256::ZERO),
                signer.sign(
                    patient,
                    TxKind::Call(consent),
                    grant(doctor.address(), now),
                    U256::ZERO,
                ),
            ]);
        }
        send_all(backend, setup).await?;

        // The measured workload, pre-signed: per worker, 2 anchors : 1 grant : 2 access logs.
        let per_worker = n.div_ceil(in_flight);
        let mut txs: Vec<Vec<Bytes>> = vec![Vec::with_capacity(per_worker); in_flight];
        let mut made = 0;
        'outer: for i in 0..per_worker {
            for (w, list) in txs.iter_mut().enumerate() {
                if made == n {
                    break 'outer;
                }
                let p = w * PATIENTS_PER_WORKER + i % PATIENTS_PER_WORKER;
                let patient = &patients[p];
                let raw = match i % 5 {
                    0 | 1 => {
                        let record = keccak256(format!("record {w} {i}"));
                        signer.sign(patient, TxKind::Call(records), anchor(record), U256::ZERO)
                    }
                    2 => signer.sign(
                        patient,
                        TxKind::Call(consent),
                        grant(doctors[w].address(), now),
                        U256::ZERO,
                    ),
                    _ => {
                        let call = Consent::logAccessCall {
                            patient: patient.address(),
                            recordId: setup_records[p],
                            purpose: Purpose::Treatment.into(),
                        };
                        signer.sign(
                            &doctors[w],
                            TxKind::Call(consent),
                            call.abi_encode(),
                            U256::ZERO,
                        )
                    }
                };
                list.push(conn::body("eth_sendRawTransaction", &raw));
                made += 1;
            }
        }
        let calls = (0..patients.len())
            .map(|p| {
                let call = Consent::canAccessCall {
                    patient: patients[p].address(),
                    reader: doctors[p / PATIENTS_PER_WORKER].address(),
                    recordId: setup_records[p],
                    purpose: Purpose::Treatment.into(),
                };
                let request = json!({
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_call",
                    "params": [{"to": consent, "data": format!("0x{}", hex::encode(call.abi_encode()))}, "latest"],
                });
                Bytes::from(request.to_string())
            })
            .collect();
        Ok(Workload { txs, calls })
    }

    pub(crate) async fn run(self, backend: &Backend, calls: usize) -> anyhow::Result<Figures> {
        let total: usize = self.txs.iter().map(Vec::len).sum();
        let addr = backend.addr()?;
        let mut conns = Vec::with_capacity(self.txs.len());
        for _ in &self.txs {
            conns.push(Conn::open(addr).await?);
        }
        let first_block = block_number(backend).await?;
        let cpu_before = backend.cpu_secs();
        let own_cpu_before = own_cpu_secs();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (list, mut conn) in self.txs.into_iter().zip(conns) {
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(list.len());
                let mut failed = 0;
                for body in list {
                    match submit(&mut conn, body).await {
                        Ok((status, latency)) => {
                            if status != "0x1" {
                                failed += 1;
                            }
                            latencies.push(latency);
                        }
                        Err(e) => {
                            eprintln!("  {e}");
                            failed += 1;
                        }
                    }
                }
                (latencies, failed)
            }));
        }
        let mut latencies = Vec::with_capacity(total);
        let mut failed = 0;
        for task in tasks {
            let (l, f) = task.await?;
            latencies.extend(l);
            failed += f;
        }
        let elapsed = started.elapsed();
        let chain_cpu = backend.cpu_secs() - cpu_before;
        let client_cpu = own_cpu_secs() - own_cpu_before;
        let blocks = block_number(backend).await? - first_block;
        latencies.sort_unstable();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        let (p50, p99) = (pct(0.50), pct(0.99));

        // canAccess through eth_call, the same number of workers.
        let workers = 64.min(calls.max(1));
        let expected = format!("0x{}", hex::encode(B256::with_last_byte(1)));
        let mut conns = Vec::with_capacity(workers);
        for _ in 0..workers {
            conns.push(Conn::open(addr).await?);
        }
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (w, mut conn) in conns.into_iter().enumerate() {
            let mine: Vec<Bytes> = self
                .calls
                .iter()
                .cycle()
                .skip(w)
                .step_by(workers)
                .take(calls / workers)
                .cloned()
                .collect();
            let expected = expected.clone();
            tasks.push(tokio::spawn(async move {
                for body in mine {
                    let out: Option<String> = conn.call(body).await?;
                    if out.as_deref() != Some(expected.as_str()) {
                        bail!("canAccess answered {out:?}, expected true");
                    }
                }
                Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let calls_per_sec = (calls / workers * workers) as f64 / started.elapsed().as_secs_f64();
        Ok(Figures {
            txs: total,
            failed,
            elapsed,
            p50,
            p99,
            calls_per_sec,
            chain_cpu,
            client_cpu,
            blocks,
        })
    }
}

async fn block_number(backend: &Backend) -> anyhow::Result<u64> {
    let number = backend.rpc("eth_blockNumber", json!([])).await?;
    let hex = number.as_str().context("eth_blockNumber is not a string")?;
    Ok(u64::from_str_radix(hex.trim_start_matches("0x"), 16)?)
}

/// CPU seconds this process (the bench client) has used so far.
fn own_cpu_secs() -> f64 {
    crate::backend::cpu_secs_of("self")
}

fn anchor(record: B256) -> Vec<u8> {
    Records::anchorRecordCall {
        id: record,
        kind: RecordKind::Report.into(),
        contentHash: keccak256(record),
    }
    .abi_encode()
}

fn grant(doctor: Address, now: u64) -> Vec<u8> {
    Consent::grantDoctorCall {
        doctor,
        scope: Scope::All.into(),
        kindsMask: 0,
        recordIds: vec![],
        purpose: Purpose::Treatment.into(),
        expiresAt: now + 365 * 86_400,
    }
    .abi_encode()
}

async fn deploy(
    backend: &Backend,
    signer: &mut Signer,
    from: &PrivateKeySigner,
    code: Vec<u8>,
) -> anyhow::Result<Address> {
    let raw = signer.sign(from, TxKind::Create, code, U256::ZERO);
    let receipts = send_all(backend, vec![vec![raw]]).await?;
    address_of(&receipts[0])
}
