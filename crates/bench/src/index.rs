//! The cost of history: the requests that read it (the patient's access log, an account's page in
//! the explorer, the contracts' counts, state at an old block) timed on two systems, one whose
//! chain holds 1,000 transactions and one whose chain holds 100,000, measured in turns and printed
//! side by side. The chains grow by ether transfers among 50 accounts, signed beforehand and sent
//! 50 at a time, so the accounts' pages grow with them; the patient's log holds the same entries
//! on both.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use medledger_chain::alloy::{
    primitives::{Address, TxKind, U256},
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use serde_json::{Value, json};

use crate::{
    app::{self, PASSWORD, login, post},
    workload::{Rpc, Signer},
};

/// Accounts whose transfers make the chain long.
const SENDERS: usize = 50;
/// Openings of the patient's report by the doctor: more than one page of the log.
const OPENINGS: usize = 60;
/// Requests timed for each figure of the app, and for each JSON-RPC figure (quicker, so noisier).
const SAMPLES: usize = 200;
const RPC_SAMPLES: usize = 2_000;
/// Turns of measuring both systems.
const ROUNDS: usize = 4;

type Timed = Vec<(String, Duration)>;

/// A system whose chain holds `target` transactions, ready to be measured.
struct Grown {
    server: app::Server,
    chain: Rpc,
    paths: Paths,
}

pub(crate) async fn run() -> anyhow::Result<()> {
    println!(
        "chain index: request times on two systems (embedded chain, SQLite), one grown to 1,000 chain transactions and one to 100,000, measured in turns ({} rounds, each starting with the other system; the best of the rounds' medians of {} requests to the app, {} to the chain); machine: {} cores",
        ROUNDS,
        SAMPLES,
        RPC_SAMPLES,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let http = reqwest::Client::new();
    let small = grown(&http, 0, 1_000).await?;
    let large = grown(&http, 1, 100_000).await?;
    let mut best: [Option<Timed>; 2] = [None, None];
    for round in 0..ROUNDS {
        // Which goes first alternates, so a drift of the machine's speed favours neither.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let system = [&small, &large][i];
            let figures = measure(&http, &system.chain, &system.paths).await?;
            best[i] = Some(match best[i].take() {
                None => figures,
                Some(old) => old
                    .into_iter()
                    .zip(figures)
                    .map(|((what, a), (_, b))| (what, a.min(b)))
                    .collect(),
            });
        }
    }
    let [Some(a), Some(b)] = best else {
        bail!("nothing was measured");
    };
    println!(
        "{:<62} {:>12} {:>12} {:>8}",
        "time per request", "1,000 txs", "100,000 txs", "ratio"
    );
    for ((what, a), (_, b)) in a.iter().zip(&b) {
        println!(
            "{what:<62} {:>9.2} ms {:>9.2} ms {:>7.2}x",
            a.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3,
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
    small.server.stop()?;
    large.server.stop()
}

async fn grown(http: &reqwest::Client, round: usize, target: u64) -> anyhow::Result<Grown> {
    let funder = PrivateKeySigner::random();
    let faucet = funder.clone();
    let server = app::start_with(app::Backend::Embedded, round, move |config| {
        if let medledger::Chain::Embedded { faucet: f, .. } = &mut config.chain {
            *f = medledger::Faucet::Key(faucet);
        }
    })?;
    let base = server.url.clone();
    let http = http.clone();
    let chain = Rpc {
        client: http.clone(),
        url: reqwest::Url::parse(&server.chain_url)?,
    };
    if chain.call("eth_chainId", json!([])).await? != json!("0x539") {
        bail!("the benchmark signs for chain 1337");
    }

    // The people, a report, and more openings of it than a page of the log holds.
    let doctor = app::enrol_doctor(&http, &base, "Index Hospital", "Dr. Index", "dr.index").await?;
    let doctor_address = doctor["address"].as_str().context("address")?.to_string();
    let signed_up = post(
        &http,
        &format!("{base}/api/v1/patients"),
        None,
        json!({ "username": "indexed", "password": PASSWORD, "name": "Ida Index" }),
    )
    .await?;
    let patient_address = signed_up["address"]
        .as_str()
        .context("the patient's address")?
        .to_string();
    let patient = login(&http, &base, "indexed", PASSWORD).await?;
    let form = reqwest::multipart::Form::new()
        .text("title", "Lipid panel")
        .text("share_with", doctor_address.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"LDL 2.9".to_vec()).file_name("lipids.txt"),
        );
    let shared: Value = http
        .post(format!("{base}/api/v1/records"))
        .bearer_auth(&patient)
        .multipart(form)
        .send()
        .await?
        .json()
        .await?;
    let record = shared["id"].as_str().context("record id")?.to_string();
    let doctor = login(&http, &base, "dr.index", PASSWORD).await?;
    for _ in 0..OPENINGS {
        let response = http
            .get(format!("{base}/api/v1/records/{record}/content"))
            .bearer_auth(&doctor)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("opening the report: {}", response.status());
        }
    }

    // The senders, funded by the faucet's key.
    let senders: Vec<PrivateKeySigner> = (0..SENDERS)
        .map(|i| crate::workload::key(Address::ZERO, "index sender", i))
        .collect();
    let mut signer = Signer {
        nonces: HashMap::new(),
    };
    let nonce = chain
        .call(
            "eth_getTransactionCount",
            json!([funder.address(), "pending"]),
        )
        .await?;
    let nonce = u64::from_str_radix(nonce.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16)?;
    signer.nonces.insert(funder.address(), nonce);
    for s in &senders {
        let raw = signer.sign(
            &funder,
            TxKind::Call(s.address()),
            Vec::new(),
            U256::from(10u64) * U256::from(10u64).pow(U256::from(18)),
        );
        let (receipt, _) = chain.submit(&raw).await?;
        if receipt["status"] != "0x1" {
            bail!("funding a sender failed: {receipt}");
        }
    }
    let early_block = block_number(&chain).await?;

    let busiest = senders[0].address();
    let paths = Paths {
        base: base.clone(),
        patient,
        doctor_address: doctor_address.clone(),
        patient_address,
        busiest,
        early_block,
        registry: server.registry.clone(),
    };
    let started = Instant::now();
    // The busiest sender's page is full (more than a page of transactions) on either chain.
    grow(&chain, &mut signer, &senders[..1], 60).await?;
    let have = chain_txs(&chain).await?;
    grow(
        &chain,
        &mut signer,
        &senders,
        target.saturating_sub(have) as usize,
    )
    .await?;
    println!(
        "  grew a chain to {} transactions in {:.1} s",
        chain_txs(&chain).await?,
        started.elapsed().as_secs_f64()
    );
    // The index catches up on the first request that reads it.
    let started = Instant::now();
    get(&http, &paths.audit(), Some(&paths.patient)).await?;
    println!(
        "  its first access-log request (the index catching up): {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok(Grown {
        server,
        chain,
        paths,
    })
}

/// What the timed requests ask for.
struct Paths {
    base: String,
    patient: String,
    doctor_address: String,
    patient_address: String,
    busiest: Address,
    early_block: u64,
    registry: String,
}

impl Paths {
    fn audit(&self) -> String {
        format!("{}/api/v1/audit", self.base)
    }
}

async fn get(http: &reqwest::Client, url: &str, token: Option<&str>) -> anyhow::Result<String> {
    let mut request = http.get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("GET {url}: {status} {body}");
    }
    Ok(body)
}

/// The median of `SAMPLES` runs of `op`, after one not counted.
async fn median<F, Fut>(op: F) -> anyhow::Result<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    median_of(SAMPLES, op).await
}

async fn median_of<F, Fut>(samples: usize, mut op: F) -> anyhow::Result<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    op(0).await?;
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let started = Instant::now();
        op(i).await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times[samples / 2])
}

async fn measure(http: &reqwest::Client, chain: &Rpc, p: &Paths) -> anyhow::Result<Timed> {
    let mut out = Vec::new();
    let audit = p.audit();
    let first: Value = serde_json::from_str(&get(http, &audit, Some(&p.patient)).await?)?;
    let next = first["next"]
        .as_str()
        .context("the log has a second page")?;
    let second = format!("{}{next}", p.base);
    out.push((
        "patient's access log, first page (API)".into(),
        median(|_| async { get(http, &audit, Some(&p.patient)).await.map(drop) }).await?,
    ));
    out.push((
        "patient's access log, second page (API)".into(),
        median(|_| async { get(http, &second, Some(&p.patient)).await.map(drop) }).await?,
    ));
    let doctor_page = format!("{}/explorer/address/{}", p.base, p.doctor_address);
    out.push((
        "explorer: the doctor's account page".into(),
        median(|_| async { get(http, &doctor_page, None).await.map(drop) }).await?,
    ));
    let busy_page = format!("{}/explorer/address/{}", p.base, p.busiest);
    out.push((
        "explorer: a busy sender's account page".into(),
        median(|_| async { get(http, &busy_page, None).await.map(drop) }).await?,
    ));
    let contracts = format!("{}/explorer/contracts", p.base);
    out.push((
        "explorer: the contracts' counts".into(),
        median(|_| async { get(http, &contracts, None).await.map(drop) }).await?,
    ));
    // For comparison, what the access log read before the index: the patient's events by
    // eth_getLogs over the whole chain, in pages of 2,000 blocks as the app asked for them.
    let topic = format!(
        "0x{:0>64}",
        p.patient_address.trim_start_matches("0x").to_lowercase()
    );
    let head = block_number(chain).await?;
    out.push((
        "(before the index: eth_getLogs of the patient's events, whole chain)".into(),
        median(|_| {
            let topic = topic.clone();
            async move {
                let mut from = 0;
                while from <= head {
                    let to = head.min(from + 1_999);
                    chain
                        .call(
                            "eth_getLogs",
                            json!([{
                                "fromBlock": format!("0x{from:x}"),
                                "toBlock": format!("0x{to:x}"),
                                "topics": [null, topic],
                            }]),
                        )
                        .await?;
                    from = to + 1;
                }
                Ok(())
            }
        })
        .await?,
    ));
    // State at old blocks, a different block each time (nothing is kept between them).
    let old = |i: usize| format!("0x{:x}", 1 + (i as u64 * 7919) % p.early_block.max(1));
    out.push((
        "eth_getBalance at an early block".into(),
        median_of(RPC_SAMPLES, |i| async move {
            chain
                .call("eth_getBalance", json!([p.busiest, old(i)]))
                .await
                .map(drop)
        })
        .await?,
    ));
    let count = medledger_records::contracts::Registry::patientCountCall {}.abi_encode();
    let registry = &p.registry;
    let data = format!(
        "0x{}",
        medledger_chain::alloy::primitives::hex::encode(&count)
    );
    out.push((
        "eth_call Registry.patientCount at an early block".into(),
        median_of(RPC_SAMPLES, |i| {
            let data = data.clone();
            async move {
                let block = format!("0x{:x}", (head / 2).min(p.early_block) + (i as u64 % 3));
                chain
                    .call("eth_call", json!([{ "to": registry, "data": data }, block]))
                    .await
                    .map(drop)
            }
        })
        .await?,
    ));
    Ok(out)
}

async fn block_number(chain: &Rpc) -> anyhow::Result<u64> {
    let n = chain.call("eth_blockNumber", json!([])).await?;
    Ok(u64::from_str_radix(
        n.as_str()
            .context("a block number")?
            .trim_start_matches("0x"),
        16,
    )?)
}

/// Every transaction on the chain.
async fn chain_txs(chain: &Rpc) -> anyhow::Result<u64> {
    let head = block_number(chain).await?;
    let mut total = 0;
    for n in 0..=head {
        let count = chain
            .call(
                "eth_getBlockTransactionCountByNumber",
                json!([format!("0x{n:x}")]),
            )
            .await?;
        total += u64::from_str_radix(
            count.as_str().context("a count")?.trim_start_matches("0x"),
            16,
        )?;
    }
    Ok(total)
}

/// Sends `n` transfers, each sender to the next, the senders in parallel.
async fn grow(
    chain: &Rpc,
    signer: &mut Signer,
    senders: &[PrivateKeySigner],
    n: usize,
) -> anyhow::Result<()> {
    let mut lists = vec![Vec::new(); senders.len()];
    for i in 0..n {
        let k = i % senders.len();
        let to = senders[(k + 1) % senders.len()].address();
        lists[k].push(signer.sign(&senders[k], TxKind::Call(to), Vec::new(), U256::from(1)));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for list in lists {
        let chain = chain.clone();
        tasks.spawn(async move {
            for raw in list {
                chain.call("eth_sendRawTransaction", json!([raw])).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}
