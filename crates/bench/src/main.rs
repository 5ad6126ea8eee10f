//! `medledger-bench`: the records workload (40% anchors, 20% grants, 40% access logs), pre-signed,
//! pushed through JSON-RPC with a fixed number of requests in flight, against the embedded node
//! and against Ganache in the same run. Prints figures; asserts nothing about time.

mod app;
mod backend;
mod conn;
mod fhir;
mod index;
mod workload;

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

use crate::{backend::Backend, workload::Workload};

#[derive(Debug, Parser)]
#[command(about = "Records workload over JSON-RPC: embedded node vs Ganache")]
struct Args {
    /// Transactions in the measured workload.
    #[arg(long, default_value_t = 10_000)]
    n: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Transactions for Ganache (it manages tens per second; the ratio uses tx/s either way).
    #[arg(long)]
    ganache_n: Option<usize>,
    /// canAccess eth_calls to time.
    #[arg(long, default_value_t = 20_000)]
    calls: usize,
    /// Leave Ganache out.
    #[arg(long)]
    skip_ganache: bool,
    /// Also run N = 100,000 on the embedded node: scaling, memory, restart time.
    #[arg(long)]
    scale: bool,
    /// Benchmark the application (`medledger serve` over HTTP) instead of the chain.
    #[arg(long)]
    app: bool,
    /// Benchmark the requests that read history, at 1,000 and at 100,000 chain transactions.
    #[arg(long)]
    index: bool,
    /// Benchmark FHIR: importing 50 carebundle bundles, and reading them back through /fhir.
    #[arg(long)]
    fhir: bool,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub(crate) struct Figures {
    pub(crate) txs: usize,
    pub(crate) failed: usize,
    pub(crate) elapsed: Duration,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) calls_per_sec: f64,
    /// CPU seconds the chain's process used during the transactions.
    pub(crate) chain_cpu: f64,
    /// CPU seconds the bench client itself used during the transactions (same machine).
    pub(crate) client_cpu: f64,
    /// Blocks the transactions went into.
    pub(crate) blocks: u64,
}

impl Figures {
    fn tx_per_sec(&self) -> f64 {
        self.txs as f64 / self.elapsed.as_secs_f64()
    }
}

fn print(name: &str, f: &Figures) {
    println!(
        "{name:<28} {:>8} tx {:>10.0} tx/s   p50 {:>8.2} ms   p99 {:>8.2} ms   canAccess {:>9.0} calls/s   chain CPU {:>5.0} us/tx   client CPU {:>5.0} us/tx   {:>6.1} tx/block   failed {}",
        f.txs,
        f.tx_per_sec(),
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3,
        f.calls_per_sec,
        f.chain_cpu * 1e6 / f.txs as f64,
        f.client_cpu * 1e6 / f.txs as f64,
        f.txs as f64 / f.blocks.max(1) as f64,
        f.failed
    );
}

async fn run(
    backend: &Backend,
    n: usize,
    in_flight: usize,
    calls: usize,
) -> anyhow::Result<Figures> {
    let workload = Workload::prepare(backend, n, in_flight)
        .await
        .context("setting up the workload")?;
    workload.run(backend, calls).await
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if !args.app && !args.index && !args.fhir {
        // The chain workload's client takes one core's worth of turns at most: the node it
        // measures shares the machine, and a client spread over both cores hands its tasks
        // between threads for nothing (measured: about 5% fewer tx/s with two).
        runtime.worker_threads(1);
    }
    runtime
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(bench(args))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    if args.app {
        return app::run().await;
    }
    if args.index {
        return index::run().await;
    }
    if args.fhir {
        return fhir::run().await;
    }
    println!(
        "records workload: 40% anchors / 20% grants / 40% access logs, pre-signed, {} in flight; machine: {} cores",
        args.in_flight,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let node = Backend::medledger().await?;
    let ours = run(&node, args.n, args.in_flight, args.calls).await?;
    print("medledger (embedded node)", &ours);
    if args.scale {
        let before = node.rss_mb();
        let big = run(&node, 100_000, args.in_flight, args.calls).await?;
        print("medledger, N = 100,000", &big);
        println!(
            "  throughput at N = 100,000 vs N = {}: {:.2}x; resident memory {:.0} MB (was {:.0} MB)",
            args.n,
            big.tx_per_sec() / ours.tx_per_sec(),
            node.rss_mb(),
            before
        );
        let started = Instant::now();
        let blocks = node.restart().await?;
        println!(
            "  restart with {} blocks ({} workload transactions so far): {:.2} s to answer JSON-RPC",
            blocks,
            args.n + 100_000,
            started.elapsed().as_secs_f64()
        );
    }
    drop(node);
    if !args.skip_ganache {
        let ganache = Backend::ganache().await?;
        let n = args.ganache_n.unwrap_or(args.n);
        let theirs = run(&ganache, n, args.in_flight, args.calls.min(5_000)).await?;
        print("ganache 7.9.2", &theirs);
        println!(
            "ratio medledger / ganache: {:.1}x tx/s, {:.1}x canAccess calls/s",
            ours.tx_per_sec() / theirs.tx_per_sec(),
            ours.calls_per_sec / theirs.calls_per_sec
        );
    }
    Ok(())
}
