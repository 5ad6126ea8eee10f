//! The application benchmark: the system `medledger serve` runs (built by `medledger::spawn`)
//! driven over HTTP, on the embedded defaults (embedded chain, SQLite, blob directory) and on
//! PostgreSQL + SeaweedFS's S3 (started on loopback as the tests start them), measured in turns
//! in one run and printed side by side with their ratio. Page and API requests per second at a
//! fixed concurrency, and report upload and download throughput (each upload is sealed, stored
//! and anchored on chain; each download is checked against its anchor, decrypted and logged on
//! chain).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

pub(crate) const ADMIN_PASSWORD: &str = "benchmark admin password";
pub(crate) const PASSWORD: &str = "benchmark user password";

/// The system, started through `medledger::spawn` (as `medledger serve` starts it) on a runtime
/// of its own, so that the load generator's tasks do not run on the server's workers.
pub(crate) struct Server {
    pub(crate) url: String,
    /// The embedded chain's JSON-RPC.
    pub(crate) chain_url: String,
    /// Where the deployment's Registry is.
    pub(crate) registry: String,
    dir: std::path::PathBuf,
    /// The engines of a PostgreSQL + S3 run (dropped after the system stops).
    _engines: Option<(medledger_testkit::Postgres, medledger_testkit::Seaweed)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// Stops the system cleanly and says whether it ran without a failure.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(ran)) => ran,
            Some(Err(_)) => bail!("the server's thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the system keeps its data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Embedded,
    PostgresS3,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Embedded => "SQLite + blob dir",
            Backend::PostgresS3 => "PostgreSQL + S3",
        }
    }
}

fn start(backend: Backend, round: usize) -> anyhow::Result<Server> {
    start_with(backend, round, |_| {})
}

/// Starts the system as `start` does, with `configure` changing its configuration first.
pub(crate) fn start_with(
    backend: Backend,
    round: usize,
    configure: impl FnOnce(&mut medledger::Config),
) -> anyhow::Result<Server> {
    let dir = std::env::temp_dir().join(format!(
        "medledger-app-bench-{}-{round}-{backend:?}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = medledger::Config::new(dir.join("data"));
    config.http_addr = loopback;
    if let medledger::Chain::Embedded { rpc_addr, .. } = &mut config.chain {
        *rpc_addr = loopback;
    }
    config.escrow_key = dir.join("escrow.key");
    config.admin_password = Some(ADMIN_PASSWORD.to_string());
    config.max_upload_bytes = 64 * 1024 * 1024;
    // The benchmark signs many patients up from one address.
    config.limits.sign_ups_per_client = medledger_records::limits::Limit::per_hour(10_000);
    let engines = match backend {
        Backend::Embedded => None,
        Backend::PostgresS3 => {
            let postgres = medledger_testkit::Postgres::start();
            let s3 = medledger_testkit::Seaweed::start();
            config.database = Some(
                medledger_records::db::Database::from_url(&postgres.new_database())
                    .map_err(|e| anyhow::anyhow!("{}", e.message))?,
            );
            config.blob_store = Some(medledger_vault::BlobLocation::parse(&s3.new_store())?);
            config.s3_keys = Some(medledger_vault::S3Keys {
                access_key_id: medledger_testkit::ACCESS_KEY.into(),
                secret_access_key: medledger_testkit::SECRET_KEY.into(),
                session_token: None,
            });
            Some((postgres, s3))
        }
    };
    configure(&mut config);

    let (ready, listening) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the server's runtime")?;
        runtime.block_on(async move {
            let system = match medledger::spawn(config).await {
                Ok(system) => system,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return Ok(());
                }
            };
            let _ = ready.send(Ok((
                system.http_url.clone(),
                system.chain_url.clone(),
                system.app.contracts().registry.to_string(),
            )));
            system
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
        })
    });
    let (url, chain_url, registry) = listening
        .recv_timeout(Duration::from_secs(120))
        .context("the system did not start within 120 s")?
        .context("starting the system")?;
    Ok(Server {
        url,
        chain_url,
        registry,
        dir,
        _engines: engines,
        stop: Some(stop),
        thread: Some(thread),
    })
}

pub(crate) async fn post(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut request = http.post(url).json(&body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await?;
    let status = response.status();
    let value: Value = response.json().await?;
    if !status.is_success() {
        bail!("{url}: {status} {value}");
    }
    Ok(value)
}

/// A hospital (added by the admin) and a doctor of it, enrolled through their one-time link
/// under `username`: the enrolment's answer (the doctor's address among it).
pub(crate) async fn enrol_doctor(
    http: &reqwest::Client,
    base: &str,
    hospital: &str,
    name: &str,
    username: &str,
) -> anyhow::Result<Value> {
    let admin = login(http, base, "admin", ADMIN_PASSWORD).await?;
    let hospital = post(
        http,
        &format!("{base}/api/v1/hospitals"),
        Some(&admin),
        json!({ "name": hospital, "city": "Lyon" }),
    )
    .await?;
    let invited = post(
        http,
        &format!("{base}/api/v1/doctors"),
        Some(&admin),
        json!({ "name": name, "hospital_id": hospital["id"] }),
    )
    .await?;
    // The whole link, on the server's public URL; its last part is the token.
    let link = invited["enrolment_url"]
        .as_str()
        .context("enrolment link")?;
    let token = link.rsplit('/').next().context("enrolment token")?;
    post(
        http,
        &format!("{base}/api/v1/enrol/{token}"),
        None,
        json!({ "username": username, "password": PASSWORD }),
    )
    .await
}

pub(crate) async fn login(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<String> {
    let v = post(
        http,
        &format!("{base}/api/v1/auth/login"),
        None,
        json!({ "username": user, "password": password }),
    )
    .await?;
    Ok(v["token"].as_str().context("token")?.to_string())
}

/// Runs `op` from `concurrency` tasks at once for `for_how_long`: completions per second.
async fn per_second<F, Fut>(
    concurrency: usize,
    for_how_long: Duration,
    op: F,
) -> anyhow::Result<f64>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while started.elapsed() < for_how_long {
                op().await?;
                done += 1;
            }
            Ok::<_, anyhow::Error>(done)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Requests per second for GET `url` with `concurrency` clients for `for_how_long`.
async fn gets(
    http: &reqwest::Client,
    url: String,
    token: Option<String>,
    concurrency: usize,
    for_how_long: Duration,
) -> anyhow::Result<f64> {
    let (http, url, token) = (http.clone(), Arc::new(url), Arc::new(token));
    per_second(concurrency, for_how_long, move || {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move {
            let mut request = http.get(url.as_str());
            if let Some(t) = token.as_ref() {
                request = request.bearer_auth(t);
            }
            let response = request.send().await?;
            if !response.status().is_success() {
                bail!("GET {url}: {}", response.status());
            }
            response.bytes().await?;
            Ok(())
        }
    })
    .await
}

/// Logs in as `users` in turn, `concurrency` at a time, for `for_how_long`: logins per second.
/// (One name is not logged into many times at once: the throttle counts attempts in flight, and
/// refuses a name past five.)
async fn logins(
    http: &reqwest::Client,
    base: &str,
    users: Vec<String>,
    concurrency: usize,
    for_how_long: Duration,
) -> anyhow::Result<f64> {
    let (http, base, users) = (http.clone(), Arc::new(base.to_string()), Arc::new(users));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    per_second(concurrency, for_how_long, move || {
        let (http, base, users) = (http.clone(), base.clone(), users.clone());
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            login(&http, &base, &users[i % users.len()], PASSWORD)
                .await
                .map(|_| ())
        }
    })
    .await
}

/// A figure: what, its value (higher is better), its unit.
type Figure = (String, f64, &'static str);

/// Each backend measured twice, in turns (embedded, PostgreSQL + S3, embedded, …), so a noisy
/// neighbour weighs on both; the table shows the better of each one's two runs and the ratio.
pub(crate) async fn run() -> anyhow::Result<()> {
    let backends = [Backend::Embedded, Backend::PostgresS3];
    let mut runs: Vec<(Backend, Vec<Figure>)> = Vec::new();
    for round in 0..2 {
        for backend in backends {
            eprintln!("round {}: {}", round + 1, backend.label());
            runs.push((backend, run_one(backend, round).await?));
        }
    }
    let best = |backend: Backend| {
        let mut best: Vec<Figure> = Vec::new();
        for (_, figures) in runs.iter().filter(|(b, _)| *b == backend) {
            for (i, (what, value, unit)) in figures.iter().enumerate() {
                match best.get_mut(i) {
                    Some(b) => b.1 = b.1.max(*value),
                    None => best.push((what.clone(), *value, unit)),
                }
            }
        }
        best
    };
    let (embedded, shared) = (best(Backend::Embedded), best(Backend::PostgresS3));
    println!(
        "application (medledger serve over HTTP, embedded chain); machine: {} cores; best of 2 runs each, taken in turns",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  {:<58} {:>18} {:>18} {:>6}",
        "",
        Backend::Embedded.label(),
        Backend::PostgresS3.label(),
        "ratio"
    );
    for ((what, a, unit), (_, b, _)) in embedded.iter().zip(&shared) {
        println!(
            "  {what:<58} {:>18} {:>18} {:>5.0}%",
            format!("{a:.1} {unit}"),
            format!("{b:.1} {unit}"),
            100.0 * b / a
        );
    }
    Ok(())
}

/// One backend's figures: (what, value, unit), higher is better.
async fn run_one(backend: Backend, round: usize) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let server = start(backend, round)?;
    let base = server.url.clone();
    let http = reqwest::Client::new();
    let doctor = enrol_doctor(&http, &base, "Bench Hospital", "Dr. Bench", "dr.bench").await?;
    post(
        &http,
        &format!("{base}/api/v1/patients"),
        None,
        json!({ "username": "bench", "password": PASSWORD, "name": "Ben Bench" }),
    )
    .await?;
    let patient = login(&http, &base, "bench", PASSWORD).await?;
    let doctor_address = doctor["address"]
        .as_str()
        .context("doctor address")?
        .to_string();

    // Uploads: 8 MiB of text each (sealed, stored, anchored, shared with the doctor).
    let size = 8 * 1024 * 1024;
    let body: Vec<u8> = (0..size).map(|i| b"ABCDEFGHIJ\n"[i % 11]).collect();
    let rounds = 5;
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..rounds {
        let form = reqwest::multipart::Form::new()
            .text("title", format!("Scan {i}"))
            .text("share_with", doctor_address.clone())
            .part(
                "file",
                reqwest::multipart::Part::bytes(body.clone()).file_name("scan.txt"),
            );
        let response = http
            .post(format!("{base}/api/v1/records"))
            .bearer_auth(&patient)
            .multipart(form)
            .send()
            .await?;
        let status = response.status();
        let v: Value = response.json().await?;
        if !status.is_success() {
            bail!("upload: {status} {v}");
        }
        ids.push(v["id"].as_str().context("id")?.to_string());
    }
    let up = started.elapsed();
    let doctor = login(&http, &base, "dr.bench", PASSWORD).await?;
    let started = Instant::now();
    for id in &ids {
        let bytes = http
            .get(format!("{base}/api/v1/records/{id}/content"))
            .bearer_auth(&doctor)
            .send()
            .await?
            .bytes()
            .await?;
        if bytes.len() != size {
            bail!("download returned {} bytes", bytes.len());
        }
    }
    let down = started.elapsed();
    let mib = (rounds * size) as f64 / (1024.0 * 1024.0);
    figures.push((
        format!("upload {rounds} x 8 MiB (seal, store, anchor, grant)"),
        mib / up.as_secs_f64(),
        "MiB/s",
    ));
    figures.push((
        format!("download {rounds} x 8 MiB (canAccess, verify, decrypt, log)"),
        mib / down.as_secs_f64(),
        "MiB/s",
    ));

    let window = Duration::from_secs(3);
    for (what, path, token) in [
        ("GET /healthz", "/healthz".to_string(), None),
        (
            "GET /api/v1/hospitals (JSON, chain reads)",
            "/api/v1/hospitals".into(),
            None,
        ),
        ("GET /hospitals (page)", "/hospitals".into(), None),
        (
            "GET /api/v1/records (patient, 5 records)",
            "/api/v1/records".into(),
            Some(patient.clone()),
        ),
        (
            "GET /api/v1/audit (patient)",
            "/api/v1/audit".into(),
            Some(patient.clone()),
        ),
    ] {
        let rate = gets(&http, format!("{base}{path}"), token, 16, window).await?;
        figures.push((format!("{what}, 16 concurrent"), rate, "req/s"));
    }

    // A burst of 50 concurrent logins (argon2id and scrypt each, on the blocking pool) while the
    // directory is read: the async workers must keep answering.
    let mut users = Vec::new();
    for i in 0..50 {
        let username = format!("login{i}");
        post(
            &http,
            &format!("{base}/api/v1/patients"),
            None,
            json!({ "username": username, "password": PASSWORD, "name": "Lou Login" }),
        )
        .await?;
        users.push(username);
    }
    let alone = gets(&http, format!("{base}/api/v1/hospitals"), None, 16, window).await?;
    let (during, logged_in) = tokio::join!(
        gets(&http, format!("{base}/api/v1/hospitals"), None, 16, window),
        logins(&http, &base, users, 50, window)
    );
    let (during, logged_in) = (during?, logged_in?);
    figures.push((
        "GET /api/v1/hospitals during 50 concurrent logins".into(),
        during,
        "req/s",
    ));
    figures.push(("  share of it alone".into(), 100.0 * during / alone, "%"));
    figures.push(("logins/s during it".into(), logged_in, "/s"));
    server.stop()?;
    Ok(figures)
}
