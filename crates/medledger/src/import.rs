//! `medledger import`: shares many FHIR bundle files as one patient's reports through the REST
//! API of a running server (a client like any other, logged in as the patient, not a back door),
//! with a progress bar and a summary. A file the patient shared before (the same bytes, by the
//! digest the server keeps in each report's sealed details) is skipped, so a re-run after an
//! interruption shares only what is missing.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use medledger_chain::alloy::primitives::keccak256;
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// The medledger server, as its patients reach it.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The patient's user name.
    #[arg(long)]
    username: String,
    /// The patient's password (read from standard input when not given).
    #[arg(long, env = "MEDLEDGER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// The current code of the patient's second factor, if they have one.
    #[arg(long)]
    code: Option<String>,
    /// Bundle files (FHIR R4 JSON), or directories whose `.json` files are shared.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// What happened to each file.
#[derive(Debug, Default)]
struct Summary {
    shared: usize,
    skipped: usize,
    refused: Vec<(PathBuf, String)>,
    resources: BTreeMap<String, u64>,
}

/// The files named, directories opened to their `.json` files, in a stable order.
fn files_of(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading the directory {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
                .collect();
            inside.sort();
            files.extend(inside);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            bail!("{} is neither a file nor a directory", path.display());
        }
    }
    if files.is_empty() {
        bail!("no .json files to import in what was named");
    }
    Ok(files)
}

/// The message of a REST error answer, or its status.
async fn refusal(response: reqwest::Response) -> String {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    body["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("the server answered {status}"))
}

/// A report's date from its bundle: the first encounter's or observation's day, if any.
fn bundle_date(bundle: &Value) -> String {
    let entries = bundle["entry"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    entries
        .iter()
        .map(|e| &e["resource"])
        .find_map(|r| {
            r["period"]["start"]
                .as_str()
                .or_else(|| r["effectiveDateTime"].as_str())
        })
        .and_then(|d| d.get(..10))
        .filter(|d| d.len() == 10 && d.as_bytes()[4] == b'-' && d.as_bytes()[7] == b'-')
        .unwrap_or_default()
        .to_string()
}

pub(crate) async fn run(args: ImportArgs) -> anyhow::Result<bool> {
    let files = files_of(&args.paths)?;
    let password = match args.password {
        Some(p) => p,
        None => {
            eprint!("password for {}: ", args.username);
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let server = args.server.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .context("starting the HTTP client")?;

    let mut login = json!({ "username": args.username, "password": password });
    if let Some(code) = &args.code {
        login["code"] = json!(code);
    }
    let response = http
        .post(format!("{server}/api/v1/auth/login"))
        .json(&login)
        .send()
        .await
        .with_context(|| format!("reaching the server at {server}"))?;
    if !response.status().is_success() {
        bail!(
            "logging in as {}: {}",
            args.username,
            refusal(response).await
        );
    }
    let session: Value = response.json().await.context("reading the login answer")?;
    if session["role"] != "patient" {
        bail!(
            "{} is not a patient: only patients share reports",
            args.username
        );
    }
    let token = session["token"].as_str().unwrap_or_default().to_string();

    let response = http
        .get(format!("{server}/api/v1/records"))
        .bearer_auth(&token)
        .send()
        .await
        .context("listing the patient's reports")?;
    if !response.status().is_success() {
        bail!("listing the patient's reports: {}", refusal(response).await);
    }
    let listed: Value = response
        .json()
        .await
        .context("reading the list of reports")?;
    let mut there: HashSet<String> = listed["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["meta"]["digest"].as_str().map(str::to_string))
        .collect();

    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} bundles  {elapsed_precise}  {msg}")
            .context("the progress bar's template")?,
    );
    let mut summary = Summary::default();
    for file in &files {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        bar.set_message(name.clone());
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let digest = keccak256(&bytes).to_string();
        if there.contains(&digest) {
            summary.skipped += 1;
            bar.inc(1);
            continue;
        }
        let bundle: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let title = Path::new(&name)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| name.clone());
        let form = reqwest::multipart::Form::new()
            .text("title", title)
            .text("kind", "report")
            .text("date", bundle_date(&bundle))
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name.clone()),
            );
        let response = http
            .post(format!("{server}/api/v1/records"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .with_context(|| format!("sharing {}", file.display()))?;
        if response.status() == reqwest::StatusCode::CREATED {
            let record: Value = response.json().await.context("reading the shared report")?;
            for (kind, n) in record["meta"]["resources"]
                .as_object()
                .into_iter()
                .flatten()
            {
                *summary.resources.entry(kind.clone()).or_default() += n.as_u64().unwrap_or(0);
            }
            there.insert(digest);
            summary.shared += 1;
        } else if response.status().is_client_error() {
            let why = refusal(response).await;
            bar.println(format!("refused {}: {why}", file.display()));
            summary.refused.push((file.clone(), why));
        } else {
            bar.abandon();
            bail!(
                "sharing {}: {} (the files before it are shared; run the import again to go on)",
                file.display(),
                refusal(response).await
            );
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let resources: u64 = summary.resources.values().sum();
    let by_type: Vec<String> = summary
        .resources
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    println!(
        "import: {} files: {} shared, {} already there, {} refused",
        files.len(),
        summary.shared,
        summary.skipped,
        summary.refused.len()
    );
    if summary.shared > 0 {
        println!(
            "import: {resources} resources shared: {}",
            by_type.join(", ")
        );
    }
    for (file, why) in &summary.refused {
        println!("import: refused {}: {why}", file.display());
    }
    Ok(summary.refused.is_empty())
}
