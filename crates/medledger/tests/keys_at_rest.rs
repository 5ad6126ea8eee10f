//! The escrow and research keys live only in their own files, outside the data directory: after
//! a story that uses both (an emergency opened through the escrow, a study opt-in that wraps the
//! patient's bundles for the research key), neither key's bytes (raw, or hex in either case) is
//! in the data directory (the SQLite database, its WAL, the blobs, the chain) or in a backup
//! made without `--with-keys`; a backup made with it does hold them, where the scan finds them.

mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use medledger_chain::alloy::primitives::hex;
use serde_json::{Value, json};
use support::{BIN, login, serve_command, start_serve};

const ADMIN_PASSWORD: &str = "a good long admin password";
const PASSWORD: &str = "a long enough password";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A key's forms as they could be stored: its 32 bytes, and their hex in lower and upper case.
fn forms(key: &[u8; 32]) -> Vec<(&'static str, Vec<u8>)> {
    let lower = hex::encode(key);
    vec![
        ("raw", key.to_vec()),
        ("hex", lower.clone().into_bytes()),
        ("HEX", lower.to_uppercase().into_bytes()),
    ]
}

/// Where under `dir` any of `keys` appears, in any of its forms: "file: key (form)".
fn found(dir: &Path, keys: &[(&str, [u8; 32])]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, bytes) in files(dir) {
        for (what, key) in keys {
            for (form, needle) in forms(key) {
                if contains(&bytes, &needle) {
                    out.push(format!("{}: the {what} key ({form})", path.display()));
                }
            }
        }
    }
    out
}

/// A key file's 32 bytes (it holds 64 hex digits).
fn key_of(path: &Path) -> [u8; 32] {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .unwrap_or_else(|| panic!("{} holds a 32-byte key in hex", path.display()))
}

/// POSTs `body` (JSON) as `token`: the status and the answer.
async fn post(url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = client().post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Shares `bytes` as `file`, titled `title`, with `doctor`: the record's id.
async fn share(
    url: &str,
    token: &str,
    title: &str,
    file: &str,
    bytes: Vec<u8>,
    doctor: &str,
) -> String {
    let form = reqwest::multipart::Form::new()
        .text("title", title.to_string())
        .text("share_with", doctor.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(file.to_string()),
        );
    let response = client()
        .post(format!("{url}/api/v1/records"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

/// An invitation by the admin (`what`: "doctors" or "researchers"), taken up as `username`:
/// the new account's address and a session token.
async fn enrol(
    url: &str,
    admin: &str,
    what: &str,
    body: Value,
    username: &str,
) -> (String, String) {
    let (status, invited) = post(&format!("{url}/api/v1/{what}"), Some(admin), body).await;
    assert_eq!(status, 201, "{invited}");
    // The whole link, on the server's public URL; its last part is the token.
    let link = invited["enrolment_url"].as_str().unwrap();
    let token = link.rsplit('/').next().unwrap();
    let (status, enrolled) = post(
        &format!("{url}/api/v1/enrol/{token}"),
        None,
        json!({ "username": username, "password": PASSWORD }),
    )
    .await;
    assert_eq!(status, 201, "{enrolled}");
    let address = enrolled["address"].as_str().unwrap().to_string();
    let token = login(&client(), url, username, PASSWORD).await.unwrap();
    (address, token)
}

/// Runs the binary with `args`: whether it succeeded, and what it printed.
fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_escrow_and_research_keys_are_in_neither_the_data_directory_nor_a_plain_backup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let research_at = dir.path().join("research.key");
    let (escrow_at, faucet_at) = (dir.path().join("escrow.key"), dir.path().join("faucet.key"));
    let research_flag = research_at.to_str().unwrap();
    let mut cmd = serve_command(dir.path(), &["--research-key", research_flag]);
    cmd.env("MEDLEDGER_ADMIN_PASSWORD", ADMIN_PASSWORD);
    let server = start_serve(cmd);
    let url = server.url.clone();

    let admin = login(&client(), &url, "admin", ADMIN_PASSWORD)
        .await
        .unwrap();
    let (status, hospital) = post(
        &format!("{url}/api/v1/hospitals"),
        Some(&admin),
        json!({ "name": "Keys General", "city": "Lyon" }),
    )
    .await;
    assert_eq!(status, 201, "{hospital}");
    let doctor = |name: &str| json!({ "name": name, "hospital_id": hospital["id"] });
    let (doctor_address, granted) =
        enrol(&url, &admin, "doctors", doctor("Dr. Granted"), "dr.granted").await;
    let (_, urgent) = enrol(&url, &admin, "doctors", doctor("Dr. Urgent"), "dr.urgent").await;
    let (researcher, _) = enrol(
        &url,
        &admin,
        "researchers",
        json!({ "name": "Prof. Keys" }),
        "prof.keys",
    )
    .await;
    let (status, signed) = post(
        &format!("{url}/api/v1/patients"),
        None,
        json!({ "username": "kira", "password": PASSWORD, "name": "Kira Keys",
                "date_of_birth": "1961-05-17", "contact": "+33 6 12 34 56 78" }),
    )
    .await;
    assert_eq!(status, 201, "{signed}");
    let patient_address = signed["address"].as_str().unwrap().to_string();
    let patient = login(&client(), &url, "kira", PASSWORD).await.unwrap();

    let report = share(
        &url,
        &patient,
        "Echocardiogram",
        "echo.txt",
        b"ejection fraction 58%".to_vec(),
        &doctor_address,
    )
    .await;
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}], "text": "Haemoglobin"},
            "subject": {"reference": "urn:uuid:p"}, "effectiveDateTime": "2026-01-05",
            "valueQuantity": {"value": 12.9, "unit": "g/dL"}}},
    ]});
    share(
        &url,
        &patient,
        "Lab bundle",
        "labs.json",
        serde_json::to_vec(&bundle).unwrap(),
        &doctor_address,
    )
    .await;
    let opened = client()
        .get(format!("{url}/api/v1/records/{report}/content"))
        .bearer_auth(&granted)
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);

    // Break-glass: the doctor without a grant opens the report through the escrow's wrap.
    let (status, declared) = post(
        &format!("{url}/api/v1/emergency"),
        Some(&urgent),
        json!({ "patient": patient_address, "reason": "collapsed in the waiting room" }),
    )
    .await;
    assert_eq!(status, 201, "{declared}");
    let opened = client()
        .get(format!("{url}/api/v1/records/{report}/content"))
        .bearer_auth(&urgent)
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    assert_eq!(opened.headers()["x-medledger-emergency"], "true");

    // A study, and the patient's opt-in: their bundle is wrapped for the research key.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (status, study) = post(
        &format!("{url}/api/v1/studies"),
        Some(&admin),
        json!({ "researcher": researcher, "title": "Anaemia and the heart",
                "data": ["Observation"], "ends_at": now + 30 * 86_400 }),
    )
    .await;
    assert_eq!(status, 201, "{study}");
    let (status, joined) = post(
        &format!("{url}/api/v1/studies/{}/opt-in", study["id"]),
        Some(&patient),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{joined}");
    // Stopped (as a backup of the embedded chain needs), as a crash would stop it.
    drop(server);

    let keys = [
        ("escrow", key_of(&escrow_at)),
        ("research", key_of(&research_at)),
        ("faucet", key_of(&faucet_at)),
    ];
    assert!(
        files(&data)
            .iter()
            .any(|(p, _)| p.ends_with("medledger.db")),
        "the SQLite database is in the data directory"
    );
    assert!(
        files(&data)
            .iter()
            .any(|(p, _)| p.starts_with(data.join("blobs"))),
        "the blobs are in the data directory"
    );
    let in_data = found(&data, &keys);
    assert!(
        in_data.is_empty(),
        "keys in the data directory:\n{}",
        in_data.join("\n")
    );

    let keys_flags = [
        "--escrow-key",
        escrow_at.to_str().unwrap(),
        "--research-key",
        research_flag,
        "--faucet-key",
        faucet_at.to_str().unwrap(),
    ];
    let backup = |to: &Path, extra: &[&str]| {
        let mut args = vec![
            "backup",
            "--data-dir",
            data.to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
        ];
        args.extend(keys_flags);
        args.extend(extra);
        run(&args)
    };
    let plain = dir.path().join("plain");
    let (ok, out) = backup(&plain, &[]);
    assert!(ok, "{out}");
    // The story did use both keys: wraps for the escrow and for the research key are backed up
    // (sealed, as they are stored).
    let wraps: Vec<Value> =
        serde_json::from_slice(&std::fs::read(plain.join("database/wraps.json")).unwrap()).unwrap();
    for reader in ["escrow", "research"] {
        assert!(
            wraps.iter().any(|w| w["reader"]["text"] == reader),
            "a key wrapped for the {reader} key: {wraps:?}"
        );
    }
    let in_plain = found(&plain, &keys);
    assert!(
        in_plain.is_empty(),
        "keys in a backup without --with-keys:\n{}",
        in_plain.join("\n")
    );

    // The scan finds the keys where they are: a backup with them holds each, in keys/ only.
    let full = dir.path().join("full");
    let (ok, out) = backup(&full, &["--with-keys"]);
    assert!(ok, "{out}");
    let in_full = found(&full, &keys);
    for (what, _) in &keys {
        assert!(
            in_full
                .iter()
                .any(|f| f.contains(&format!("the {what} key (hex)"))),
            "the {what} key in a backup made --with-keys: {in_full:?}"
        );
    }
    let keys_dir = full.join("keys").display().to_string();
    assert!(
        in_full.iter().all(|f| f.starts_with(&keys_dir)),
        "only the key files hold the keys: {in_full:?}"
    );
}
