//! The FHIR benchmark: 50 synthetic patients' bundles (PyPI carebundle, five profiles, fixed
//! seeds) imported as one patient's reports through the REST API, against the same bytes shared
//! as plain text in the same run (the ratio is the cost of checking a bundle against R4 and
//! sealing its resources); then reads of them back through /fhir: `Patient/$everything`, a
//! code search, and a doctor's search (a canAccess per report). Prints figures.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::app::{self, Backend, PASSWORD, enrol_doctor, login, post};

const PROFILES: [&str; 5] = [
    "anaemia",
    "ckd_stage3",
    "healthy",
    "hypertension",
    "type2_diabetes",
];

/// 50 bundles, ten of each profile (the testkit's carebundle, which says how to install it).
fn bundles(dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for (i, profile) in PROFILES.iter().enumerate() {
        for file in medledger_testkit::carebundles(dir, profile, 10, 200 + i as u64) {
            out.push(std::fs::read(file)?);
        }
    }
    Ok(out)
}

async fn share(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    title: String,
    bytes: Vec<u8>,
    with: &str,
) -> anyhow::Result<Value> {
    let form = reqwest::multipart::Form::new()
        .text("title", title)
        .text("share_with", with.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("bundle.json"),
        );
    let response = http
        .post(format!("{base}/api/v1/records"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await?;
    let status = response.status();
    let v: Value = response.json().await?;
    if !status.is_success() {
        bail!("share: {status} {v}");
    }
    Ok(v)
}

/// The median time of `runs` GETs of `path`, and the answer's total.
async fn timed_get(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    runs: usize,
) -> anyhow::Result<(Duration, u64)> {
    let mut times = Vec::new();
    let mut total = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let response = http.get(url).bearer_auth(token).send().await?;
        let status = response.status();
        let v: Value = response.json().await?;
        times.push(started.elapsed());
        if !status.is_success() {
            bail!("{url}: {status} {v}");
        }
        total = v["total"].as_u64().unwrap_or(0);
    }
    times.sort();
    Ok((times[times.len() / 2], total))
}

pub(crate) async fn run() -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let bundles = bundles(&dir)?;
    let resources: usize = bundles
        .iter()
        .map(|b| {
            serde_json::from_slice::<Value>(b)
                .map(|v| v["entry"].as_array().map_or(0, Vec::len))
                .unwrap_or(0)
        })
        .sum();
    let mib = bundles.iter().map(Vec::len).sum::<usize>() as f64 / (1024.0 * 1024.0);
    let server = app::start_with(Backend::Embedded, 0, |_| {})?;
    let base = server.url.clone();
    let http = reqwest::Client::new();
    let doctor = enrol_doctor(&http, &base, "FHIR Hospital", "Dr. Fhir", "dr.fhir").await?;
    let doctor_address = doctor["address"].as_str().context("doctor")?.to_string();
    let doctor = login(&http, &base, "dr.fhir", PASSWORD).await?;
    let mut patients = Vec::new();
    for name in ["fhirbench", "plainbench"] {
        let signed = post(
            &http,
            &format!("{base}/api/v1/patients"),
            None,
            json!({ "username": name, "password": PASSWORD, "name": "Fay Bench" }),
        )
        .await?;
        let address = signed["address"].as_str().context("address")?.to_string();
        patients.push((address, login(&http, &base, name, PASSWORD).await?));
    }

    // The same bytes as text (a leading letter makes them not JSON), then as bundles, in turns
    // of ten so the machine's drift weighs on both.
    let (mut as_text, mut as_bundles) = (Duration::ZERO, Duration::ZERO);
    for (i, b) in bundles.iter().enumerate() {
        let mut text = b"x".to_vec();
        text.extend_from_slice(b);
        let started = Instant::now();
        share(
            &http,
            &base,
            &patients[1].1,
            format!("text {i}"),
            text,
            &doctor_address,
        )
        .await?;
        as_text += started.elapsed();
        let started = Instant::now();
        let shared = share(
            &http,
            &base,
            &patients[0].1,
            format!("bundle {i}"),
            b.clone(),
            &doctor_address,
        )
        .await?;
        as_bundles += started.elapsed();
        if shared["meta"]["resources"].as_object().is_none() {
            bail!("bundle {i} was not kept as a bundle: {shared}");
        }
    }
    let n = bundles.len() as f64;
    println!(
        "FHIR import and read (medledger serve over HTTP, embedded chain, SQLite + blob dir); machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  {} carebundle bundles ({resources} resources, {mib:.1} MiB), shared one at a time with a grant to a doctor",
        bundles.len()
    );
    println!(
        "  import as FHIR bundles (R4 check, sealed resources)   {:>7.2} bundles/s {:>8.0} resources/s",
        n / as_bundles.as_secs_f64(),
        resources as f64 / as_bundles.as_secs_f64()
    );
    println!(
        "  the same bytes as plain text                          {:>7.2} files/s   (bundles at {:.0}% of this rate)",
        n / as_text.as_secs_f64(),
        100.0 * as_text.as_secs_f64() / as_bundles.as_secs_f64()
    );

    let patient_id = patients[0].0.trim_start_matches("0x").to_lowercase();
    for (what, path, token) in [
        (
            "Patient/$everything, the patient (50 bundles)",
            format!("/fhir/Patient/{patient_id}/$everything"),
            &patients[0].1,
        ),
        (
            "Observation?code=… , the patient",
            "/fhir/Observation?code=http://loinc.org|2951-2&_count=10".to_string(),
            &patients[0].1,
        ),
        (
            "Observation?patient=… , the doctor (canAccess x 50, logged)",
            format!("/fhir/Observation?patient={patient_id}&_count=10"),
            &doctor,
        ),
        (
            "Patient/$everything, the doctor (logged)",
            format!("/fhir/Patient/{patient_id}/$everything"),
            &doctor,
        ),
    ] {
        let (median, total) = timed_get(&http, &format!("{base}{path}"), token, 5).await?;
        println!(
            "  {what:<62} median of 5 {:>8.1} ms   total {total}",
            median.as_secs_f64() * 1e3
        );
    }
    server.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("medledger-fhir-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
