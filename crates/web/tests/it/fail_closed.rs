//! "Logged before shown" fails closed: with the chain refusing, dropping or never confirming the
//! reader's log transaction, every way a doctor can read a patient's data (REST, FHIR, the web
//! pages) answers with a refusal or an error, and nothing of the patient's comes back.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::U256,
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
};
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{PASSWORD, TestApp, pages::Browser};

// Every piece of the patient's data carries a marker of its own, so a leak names what leaked.
// None of them is directory data (hospital or doctor names), which is public by design.
const NAME: &str = "Quintessa ZQNAME-7731";
const BORN: &str = "1953-07-29";
const CONTACT: &str = "ZQ-CONTACT-4410 rue Haute";
const TITLE: &str = "ZQ-TITLE-9021 liver biopsy";
const NOTES: &str = "ZQ-NOTES-5530 sedated";
const CONTENT: &str = "ZQ-CONTENT-1187 hepatocellular carcinoma, grade 2";
const FILE: &str = "zq-file-3310.txt";
const BUNDLE_TITLE: &str = "ZQ-BUNDLE-TITLE-2047";
const BUNDLE_FILE: &str = "zq-bundle-file-6021.json";
const CONDITION: &str = "ZQ-CONDITION-6642 hepatitis C";
const OBSERVATION: &str = "ZQ-OBSERVATION-2290 ALT";
const BUNDLE_MED: &str = "ZQ-BUNDLEMED-3391 sofosbuvir";
const MEDICATION: &str = "ZQ-MEDICATION-8812 ribavirin";
const RX_NOTES: &str = "ZQ-RXNOTES-4471 with food";

/// The distinctive part of each marker: what a response must never contain while the log
/// cannot be written (a date of birth is distinctive whole).
fn token(marker: &str) -> &str {
    marker
        .split(' ')
        .find(|w| w.contains("ZQ"))
        .unwrap_or(marker)
}

/// A FHIR Bundle with a Condition, a numeric Observation (which the lab-trends page charts) and
/// a MedicationRequest, each named by a marker.
fn bundle() -> Value {
    json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient"}},
        {"resource": {"resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "50711007"}], "text": CONDITION},
            "subject": {"reference": "urn:uuid:p"}, "onsetDateTime": "2021-02-03"}},
        {"resource": {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "1742-6"}], "text": OBSERVATION},
            "subject": {"reference": "urn:uuid:p"}, "effectiveDateTime": "2026-01-05",
            "valueQuantity": {"value": 87.0, "unit": "U/L"}}},
        {"resource": {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "medicationCodeableConcept": {"text": BUNDLE_MED},
            "subject": {"reference": "urn:uuid:p"}, "authoredOn": "2026-01-06"}},
    ]})
}

/// How a probe reaches the server.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// The REST API, with the doctor's bearer token.
    Api,
    /// The FHIR API as a FHIR client asks (`Accept: application/fhir+json`).
    Fhir,
    /// The FHIR API asked for raw bytes (a Binary's own content).
    FhirRaw,
    /// A web page, in the doctor's logged-in browser.
    Page,
    /// A page's download form, posted with the session's form token.
    Download,
}

/// One way of reading the patient's data, and what it shows when all goes well (the markers'
/// distinctive parts, or their encodings).
struct Probe {
    via: Via,
    path: String,
    shows: Vec<String>,
}

fn probe(via: Via, path: impl Into<String>, shows: &[&str]) -> Probe {
    Probe {
        via,
        path: path.into(),
        shows: shows.iter().map(|m| token(m).to_string()).collect(),
    }
}

/// Sends `probe` as the doctor (token for the APIs, `browser` for the pages): its status and
/// its body as text, whatever they are (a 500 is an answer here, not a failure of the helper).
async fn run(
    t: &TestApp,
    token: &str,
    browser: &Browser<'_>,
    probe: &Probe,
) -> (StatusCode, String) {
    let url = format!("{}{}", t.url, probe.path);
    let response = match probe.via {
        Via::Api => t.http.get(&url).bearer_auth(token).send().await.unwrap(),
        Via::Fhir => t
            .http
            .get(&url)
            .bearer_auth(token)
            .header("accept", "application/fhir+json")
            .send()
            .await
            .unwrap(),
        Via::FhirRaw => t
            .http
            .get(&url)
            .bearer_auth(token)
            .header("accept", "*/*")
            .send()
            .await
            .unwrap(),
        Via::Page => {
            let (head, body) = browser.get(&probe.path).await;
            return (head.status, body);
        }
        Via::Download => browser.post(&probe.path, &[("csrf", &browser.csrf)]).await,
    };
    let status = response.status();
    (status, response.text().await.unwrap())
}

/// Which of `needles` `body` holds: words case-insensitively, encodings (base64) exactly.
fn leaks(body: &str, needles: &[(String, bool)]) -> Vec<String> {
    let lower = body.to_lowercase();
    needles
        .iter()
        .filter(|(needle, exact)| {
            if *exact {
                body.contains(needle.as_str())
            } else {
                lower.contains(&needle.to_lowercase())
            }
        })
        .map(|(needle, _)| needle.clone())
        .collect()
}

/// What goes wrong with the reader's log transaction.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The node answers `eth_sendRawTransaction` with a JSON-RPC error.
    Refused,
    /// The transaction is lost on the way (the app cannot tell whether the node has it).
    Dropped,
    /// The transaction is mined, but its receipt never reaches the app within its timeout.
    Unconfirmed,
}

/// Moves `key`'s nonce on by one: a transfer of nothing to itself, sent to the node directly
/// (not through the proxy) and mined within 30 s.
async fn bump_nonce(t: &TestApp, key: &PrivateKeySigner) {
    let chain = ProviderBuilder::new()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(t.chain_url.parse().unwrap());
    let sent = async {
        chain
            .send_transaction(
                TransactionRequest::default()
                    .with_to(key.address())
                    .with_value(U256::ZERO),
            )
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap()
    };
    let receipt = tokio::time::timeout(Duration::from_secs(30), sent)
        .await
        .expect("the transfer is mined within 30 s");
    assert!(receipt.status());
}

/// How many logged reads the app has started (each journalled before it is signed and sent).
async fn logged_reads(t: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM chain_writes WHERE follow LIKE '%logged_read%'")
        .fetch_one(t.app.db())
        .await
        .unwrap()
}

/// The newest entry of the patient's access log (its first page holds at most 50, so its
/// length says nothing once that many are logged).
async fn newest(t: &TestApp, patient: &str) -> Value {
    let (status, body) = t.get("/api/v1/audit", Some(patient)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"][0].clone()
}

/// Everything is set up while the chain works, and every path is shown to disclose its
/// markers then; then, for each way the log transaction can fail (refused, dropped, mined but
/// never confirmed), every path is asked again as the doctor and must refuse, having tried to
/// log the read, with no marker in its answer. Without the rule that nothing is shown before
/// its log is mined, those passes would answer as the first one did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_path_shows_a_patients_data_when_the_read_cannot_be_logged() {
    let (t, proxy) = TestApp::spawn_behind_proxy().await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Closed General", "Lyon").await;
    let (doctor_address, doctor) = t.add_doctor(&admin, "dr.closed", hospital).await;
    let (status, signed) = t
        .post(
            "/api/v1/patients",
            None,
            json!({ "username": "quintessa", "password": PASSWORD, "name": NAME,
                    "date_of_birth": BORN, "contact": CONTACT }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{signed}");
    let patient_address = signed["address"].as_str().unwrap().to_string();
    let patient = t.login("quintessa", PASSWORD).await;
    let pid = patient_address.trim_start_matches("0x").to_lowercase();

    let (status, shared) = t
        .upload(
            Some(&patient),
            &[
                ("title", TITLE),
                ("kind", "report"),
                ("date", "2026-11-20"),
                ("notes", NOTES),
            ],
            Some((FILE, CONTENT.as_bytes().to_vec())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{shared}");
    let report = shared["id"].as_str().unwrap().to_string();
    let bundle_bytes = serde_json::to_vec(&bundle()).unwrap();
    let (status, shared) = t
        .upload(
            Some(&patient),
            &[("title", BUNDLE_TITLE), ("kind", "report")],
            Some((BUNDLE_FILE, bundle_bytes.clone())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{shared}");
    let bundle_record = shared["id"].as_str().unwrap().to_string();
    // Every record, the prescription to come included, and the whole profile.
    let (status, granted) = t
        .post(
            "/api/v1/grants",
            Some(&patient),
            json!({ "doctor": doctor_address, "scope": "all", "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{granted}");
    let (status, prescribed) = t
        .post(
            "/api/v1/prescriptions",
            Some(&doctor),
            json!({ "patient": patient_address, "notes": RX_NOTES, "medications": [
                { "name": MEDICATION, "dose": "600 mg", "frequency": "twice a day" }
            ] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{prescribed}");

    let mut browser = Browser::new(&t).await;
    browser.login("dr.closed", PASSWORD).await;
    // The ids of one imported Condition and one prescribed line, as the doctor finds them.
    let (_, conditions) =
        crate::fhir::fhir_get(&t, &format!("/fhir/Condition?patient={pid}"), Some(&doctor)).await;
    let condition = conditions["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the doctor finds the Condition: {conditions}"))
        .to_string();
    let (_, requests) = crate::fhir::fhir_get(
        &t,
        &format!("/fhir/MedicationRequest?patient={pid}"),
        Some(&doctor),
    )
    .await;
    let line = requests["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
        .find(|r| r["medicationCodeableConcept"]["text"] == MEDICATION)
        .and_then(|r| r["id"].as_str())
        .unwrap_or_else(|| panic!("the doctor finds their prescription's line: {requests}"))
        .to_string();

    let report_id = report.trim_start_matches("0x");
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let content_b64 = b64(CONTENT.as_bytes());
    let probes = [
        probe(
            Via::Api,
            format!("/api/v1/records?patient={patient_address}"),
            &[TITLE, NOTES],
        ),
        probe(
            Via::Api,
            format!("/api/v1/records/{report}"),
            &[TITLE, NOTES],
        ),
        probe(
            Via::Api,
            format!("/api/v1/records/{report}/content"),
            &[CONTENT],
        ),
        probe(
            Via::Api,
            format!("/api/v1/records/{bundle_record}/content"),
            &[CONDITION],
        ),
        probe(Via::Api, "/api/v1/prescriptions", &[MEDICATION, RX_NOTES]),
        probe(Via::Api, "/api/v1/patients", &[NAME, BORN]),
        probe(
            Via::Fhir,
            format!("/fhir/Patient/{pid}"),
            &[NAME, BORN, CONTACT],
        ),
        probe(Via::Fhir, "/fhir/Patient", &[NAME]),
        probe(
            Via::Fhir,
            format!("/fhir/Patient/{pid}/$everything"),
            &[NAME, TITLE, CONDITION, OBSERVATION, MEDICATION],
        ),
        probe(
            Via::Fhir,
            format!("/fhir/DocumentReference/{report_id}"),
            &[TITLE],
        ),
        probe(
            Via::Fhir,
            format!("/fhir/DocumentReference?patient={pid}"),
            &[TITLE, BUNDLE_TITLE],
        ),
        probe(
            Via::Fhir,
            format!("/fhir/Binary/{report_id}"),
            &[&content_b64],
        ),
        probe(
            Via::FhirRaw,
            format!("/fhir/Binary/{report_id}"),
            &[CONTENT],
        ),
        probe(
            Via::Fhir,
            format!("/fhir/Condition/{condition}"),
            &[CONDITION],
        ),
        probe(
            Via::Fhir,
            format!("/fhir/Condition?patient={pid}"),
            &[CONDITION],
        ),
        probe(
            Via::Fhir,
            format!("/fhir/Observation?patient={pid}"),
            &[OBSERVATION],
        ),
        probe(
            Via::Fhir,
            format!("/fhir/MedicationRequest?patient={pid}"),
            &[MEDICATION, BUNDLE_MED],
        ),
        probe(Via::Fhir, "/fhir/MedicationRequest", &[MEDICATION]),
        probe(
            Via::Fhir,
            format!("/fhir/MedicationRequest/{line}"),
            &[MEDICATION],
        ),
        probe(Via::Page, "/doctor", &[NAME]),
        probe(
            Via::Page,
            format!("/doctor/patients/{patient_address}"),
            &[NAME, CONTACT, TITLE],
        ),
        probe(
            Via::Page,
            format!("/doctor/patients/{patient_address}/trends"),
            &[OBSERVATION],
        ),
        probe(Via::Page, "/doctor/prescriptions", &[MEDICATION]),
        probe(Via::Page, format!("/records/{report}"), &[TITLE]),
        probe(
            Via::Download,
            format!("/records/{report}/download"),
            &[CONTENT],
        ),
    ];
    // Pages and answers about the doctor's own doings: not the patient's data, so they may
    // answer, but never with a marker in them.
    let own = [
        probe(Via::Api, "/api/v1/audit", &[]),
        probe(Via::Api, "/api/v1/emergencies", &[]),
        probe(Via::Fhir, "/fhir/AuditEvent", &[]),
        probe(Via::Fhir, "/fhir/Consent", &[]),
        probe(Via::Fhir, format!("/fhir/Provenance/{report_id}"), &[]),
        probe(Via::Fhir, format!("/fhir/Provenance?patient={pid}"), &[]),
        probe(Via::Page, "/doctor/openings", &[]),
    ];

    let mut needles: Vec<(String, bool)> = [
        NAME,
        BORN,
        CONTACT,
        TITLE,
        NOTES,
        CONTENT,
        FILE,
        BUNDLE_TITLE,
        BUNDLE_FILE,
        CONDITION,
        OBSERVATION,
        BUNDLE_MED,
        MEDICATION,
        RX_NOTES,
    ]
    .iter()
    .map(|m| (token(m).to_string(), false))
    .collect();
    // A Binary carries the file's bytes in base64.
    needles.push((content_b64.clone(), true));
    needles.push((b64(&bundle_bytes), true));

    // While the chain works, each path shows what it is for: the markers are there to leak.
    for p in &probes {
        let (status, body) = run(&t, &doctor, &browser, p).await;
        assert_eq!(status, StatusCode::OK, "{} {}: {body}", p.path, status);
        for shown in &p.shows {
            assert!(
                body.contains(shown.as_str()),
                "{} shows {shown} when its read is logged: {body}",
                p.path
            );
        }
    }

    let switch = |fault: Fault, on: bool| {
        let flag: &AtomicBool = match fault {
            Fault::Refused => &proxy.refuse_sends,
            Fault::Dropped => &proxy.drop_sends,
            Fault::Unconfirmed => &proxy.hide_receipts,
        };
        flag.store(on, Ordering::SeqCst);
    };
    // The doctor's own key, to move their nonce on between probes: a refused or dropped log
    // leaves the nonce where it was, and the next read would otherwise sign the very same
    // transaction again (see `a_read_refused_by_the_node_can_be_asked_again`), so each probe
    // would not reach the chain at all.
    let key = t.own_key(&doctor).await;
    let mut problems = Vec::new();
    for fault in [Fault::Refused, Fault::Dropped, Fault::Unconfirmed] {
        let logged_before = newest(&t, &patient).await;
        switch(fault, true);
        let asked = probes
            .iter()
            .map(|p| (p, true))
            .chain(own.iter().map(|p| (p, false)));
        for (p, must_refuse) in asked {
            if !matches!(fault, Fault::Unconfirmed) {
                bump_nonce(&t, &key).await;
            }
            let tried_before = logged_reads(&t).await;
            let (status, body) = run(&t, &doctor, &browser, p).await;
            if must_refuse && !(status.is_client_error() || status.is_server_error()) {
                problems.push(format!(
                    "{fault:?}: {:?} {} answered {status}, not a refusal: {}",
                    p.via,
                    p.path,
                    body.chars().take(300).collect::<String>()
                ));
            }
            // The refusal is the log's: the read went as far as signing its log transaction.
            if must_refuse && logged_reads(&t).await <= tried_before {
                problems.push(format!(
                    "{fault:?}: {:?} {} ({status}) refused without trying to log the read: {}",
                    p.via,
                    p.path,
                    body.chars().take(300).collect::<String>()
                ));
            }
            let leaked = leaks(&body, &needles);
            if !leaked.is_empty() {
                problems.push(format!(
                    "{fault:?}: {:?} {} ({status}) shows {leaked:?}",
                    p.via, p.path
                ));
            }
        }
        if !matches!(fault, Fault::Unconfirmed) {
            // Nothing reached the chain, so the patient's log has nothing new either.
            assert_eq!(
                newest(&t, &patient).await,
                logged_before,
                "{fault:?}: no read was logged"
            );
        }
        switch(fault, false);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The chain works again: the same doctor reads again, and it is logged.
    let before = newest(&t, &patient).await;
    let (status, body) = t
        .call(
            Method::GET,
            &format!("/api/v1/records/{report}"),
            Some(&doctor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["meta"]["title"], TITLE, "{body}");
    let after = newest(&t, &patient).await;
    assert_ne!(after["tx_hash"], before["tx_hash"], "{after}");
    assert_eq!(after["reader"], doctor_address.to_lowercase(), "{after}");
}

/// Asks `path` as `token` once a second, for at most `seconds`, until it answers 200: the
/// last status and body.
async fn until_ok(t: &TestApp, path: &str, token: &str, seconds: u64) -> (StatusCode, String) {
    let mut last = (StatusCode::IM_A_TEAPOT, String::new());
    for _ in 0..seconds {
        let response = t
            .http
            .get(format!("{}{path}", t.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        last = (response.status(), response.text().await.unwrap());
        if last.0 == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    last
}

/// A granted doctor and one report of a patient's: (the app, its proxy, the doctor's token,
/// the record id).
async fn one_report() -> (TestApp, crate::ChainProxy, String, String) {
    let (t, proxy) = TestApp::spawn_behind_proxy().await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Again General", "Lyon").await;
    let (doctor_address, doctor) = t.add_doctor(&admin, "dr.again", hospital).await;
    let (_, patient) = t.sign_up("ada", "Ada Again").await;
    let record = t
        .share(&patient, "Spirometry", "FEV1 3.1 L", &[&doctor_address])
        .await;
    (t, proxy, doctor, record)
}

/// Failing closed must not mean failing for good: once the node takes transactions again, the
/// same read is answered (and logged). A refusal leaves the doctor's nonce where it was, so the
/// same read signs the very same transaction again; the journal must not stand in its way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_refused_by_the_node_can_be_asked_again() {
    let (t, proxy, doctor, record) = one_report().await;
    let path = format!("/api/v1/records/{record}");
    proxy.refuse_sends.store(true, Ordering::SeqCst);
    let (status, body) = until_ok(&t, &path, &doctor, 1).await;
    assert!(status.is_server_error(), "{status}: {body}");
    assert!(!body.contains("Spirometry"), "{body}");
    proxy.refuse_sends.store(false, Ordering::SeqCst);
    // The app's journal is resolved every 5 s: 15 s leaves it three turns.
    let (status, body) = until_ok(&t, &path, &doctor, 15).await;
    assert_eq!(status, StatusCode::OK, "the same read, asked again: {body}");
    assert!(body.contains("Spirometry"), "{body}");
}

/// The same for a log transaction lost on its way: once the node can be reached again, the
/// same read is answered within a few of the journal's turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_log_was_lost_can_be_asked_again() {
    let (t, proxy, doctor, record) = one_report().await;
    let path = format!("/api/v1/records/{record}");
    proxy.drop_sends.store(true, Ordering::SeqCst);
    let (status, body) = until_ok(&t, &path, &doctor, 1).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(!body.contains("Spirometry"), "{body}");
    proxy.drop_sends.store(false, Ordering::SeqCst);
    let (status, body) = until_ok(&t, &path, &doctor, 15).await;
    assert_eq!(status, StatusCode::OK, "the same read, asked again: {body}");
    assert!(body.contains("Spirometry"), "{body}");
}
