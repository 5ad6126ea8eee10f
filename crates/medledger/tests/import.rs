//! `medledger import` against a running `medledger serve`: 50 synthetic patients' bundles
//! (PyPI carebundle, five clinical profiles, fixed seeds) shared as one patient's reports with
//! nothing lost (every resource type counted in the files, in the summary, in the stored details
//! and out of /fhir), a re-run that skips them all, a broken bundle refused by name with a
//! non-zero exit while the rest goes on, and a wrong password refused.

mod support;

use std::{
    collections::BTreeMap,
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

use medledger_testkit::carebundles;
use serde_json::Value;

use support::{BIN, get, login, printed_password, serve_command, start_serve};

const PROFILES: [&str; 5] = [
    "anaemia",
    "ckd_stage3",
    "healthy",
    "hypertension",
    "type2_diabetes",
];

/// Resources per type in every `.json` file of `dir`.
fn counted_in(dir: &Path) -> (usize, BTreeMap<String, u64>) {
    let mut counts = BTreeMap::new();
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bundle: Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        files += 1;
        for e in bundle["entry"].as_array().unwrap() {
            let kind = e["resource"]["resourceType"].as_str().unwrap().to_string();
            *counts.entry(kind).or_default() += 1;
        }
    }
    (files, counts)
}

/// Runs `medledger import` with `password` on standard input (when given) or in the
/// environment; its output, with a bound on how long it may take.
fn import(url: &str, password: Password, paths: &[&Path]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["import", "--server", url, "--username", "alice"])
        .args(paths)
        .env_remove("MEDLEDGER_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Password::Env(p) = password {
        cmd.env("MEDLEDGER_PASSWORD", p);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Password::Stdin(p) = password {
        writeln!(stdin, "{p}").unwrap();
    }
    drop(stdin);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(std::time::Duration::from_secs(600))
        .expect("medledger import ends within 600 s")
        .unwrap()
}

enum Password<'a> {
    Stdin(&'a str),
    Env(&'a str),
}

fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The per-type counts of the summary's "N resources shared: 3 Condition, 40 Observation" line.
fn summary_counts(stdout: &str) -> BTreeMap<String, u64> {
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("resources shared: ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no resources line in {stdout}"));
    line.split(", ")
        .map(|part| {
            let (n, kind) = part.split_once(' ').unwrap();
            (kind.to_string(), n.parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_bundles_are_imported_with_nothing_lost_and_a_rerun_skips_them() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = dir.path().join("bundles");
    for (i, profile) in PROFILES.iter().enumerate() {
        carebundles(&bundles, profile, 10, 100 + i as u64);
    }
    let (files, counted) = counted_in(&bundles);
    assert_eq!(files, 50);
    assert!(counted.len() >= 6, "{counted:?}");

    let server = start_serve(serve_command(dir.path(), &["--demo"]));
    let alice = printed_password(&server.lines, "patient  alice").expect("alice's demo login");
    let client = reqwest::Client::new();

    let wrong = import(&server.url, Password::Env("not her password"), &[&bundles]);
    assert!(!wrong.status.success());
    assert!(
        printed(&wrong).contains("logging in as alice:"),
        "{}",
        printed(&wrong)
    );

    let first = import(&server.url, Password::Stdin(&alice), &[&bundles]);
    let stdout = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(first.status.success(), "{}", printed(&first));
    assert!(
        stdout.contains("import: 50 files: 50 shared, 0 already there, 0 refused"),
        "{stdout}"
    );
    assert_eq!(summary_counts(&stdout), counted, "the summary, per type");

    // What the server keeps, per type, is what the files hold.
    let token = login(&client, &server.url, "alice", &alice).await.unwrap();
    let listed = get(&client, &format!("{}/api/v1/records", server.url), &token).await;
    let mut kept: BTreeMap<String, u64> = BTreeMap::new();
    let mut bundle_reports = 0;
    for record in listed["records"].as_array().unwrap() {
        if let Some(resources) = record["meta"]["resources"].as_object() {
            bundle_reports += 1;
            for (kind, n) in resources {
                *kept.entry(kind.clone()).or_default() += n.as_u64().unwrap();
            }
        }
    }
    assert_eq!(bundle_reports, 50);
    assert_eq!(kept, counted, "the stored details, per type");
    // And what /fhir serves of each type it searches.
    for (kind, n) in &counted {
        if ["Patient", "Practitioner", "Organization"].contains(&kind.as_str()) {
            continue;
        }
        let bundle: Value = client
            .get(format!("{}/fhir/{kind}?_count=1", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(bundle["total"].as_u64(), Some(*n), "/fhir/{kind}: {bundle}");
    }

    // A re-run shares nothing again.
    let again = import(&server.url, Password::Env(&alice), &[&bundles]);
    assert!(again.status.success(), "{}", printed(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains("import: 50 files: 0 shared, 50 already there, 0 refused"),
        "{}",
        printed(&again)
    );

    // A broken bundle is refused by name and the exit says so; the good one beside it is shared.
    let more = dir.path().join("more");
    let mixed = carebundles(&more, "mixed", 1, 999);
    let mut broken: Value = serde_json::from_slice(&std::fs::read(&mixed[0]).unwrap()).unwrap();
    broken["type"] = "history".into();
    std::fs::write(
        more.join("broken.json"),
        serde_json::to_vec(&broken).unwrap(),
    )
    .unwrap();
    let mixed = import(&server.url, Password::Env(&alice), &[&more, &bundles]);
    let out = printed(&mixed);
    assert_eq!(mixed.status.code(), Some(1), "{out}");
    assert!(
        out.contains("import: 52 files: 1 shared, 50 already there, 1 refused"),
        "{out}"
    );
    assert!(
        out.contains("broken.json: this FHIR Bundle is not valid R4"),
        "{out}"
    );
    let listed = get(&client, &format!("{}/api/v1/records", server.url), &token).await;
    let bundles_now = listed["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["meta"]["resources"].is_object())
        .count();
    assert_eq!(bundles_now, 51);
}
