//! No clinical data and no personal identifier is ever in plain text on chain: after a whole
//! story (sign-ups, a report, a FHIR bundle, a grant, reads, a prescription, an emergency, a
//! study and an opt-in), every block, every transaction's input and every receipt's logs are
//! read back over JSON-RPC and searched for each of the story's words, as text and as the hex
//! of their UTF-8 bytes (how an ABI-encoded string appears in `input` and `data`).

use alloy::sol_types::SolCall;
use medledger_records::contracts::{Consent, Records, Registry, Research};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Backend, PASSWORD, TestApp};

// Each marker's distinctive part (ZQ-…) is what is looked for; none is directory data, which
// is public by design (hospital and doctor names, specialties, licence ids).
const NAME: &str = "Wilhelmina ZQNAME-5120";
const OTHER_NAME: &str = "Bartholomew ZQNAME-6240";
const BORN: &str = "1947-11-03";
const CONTACT: &str = "ZQ-CONTACT-7782 Elm Street";
const USERNAME: &str = "zq-user-5120";
const TITLE: &str = "ZQ-TITLE-3384 colonoscopy";
const NOTES: &str = "ZQ-NOTES-1275 polyp removed";
const CONTENT: &str = "ZQ-CONTENT-9931 tubular adenoma";
const FILE: &str = "zq-file-4417.txt";
const BUNDLE_TITLE: &str = "ZQ-BUNDLE-TITLE-8808";
const BUNDLE_FILE: &str = "zq-bundle-file-2203.json";
const CONDITION: &str = "ZQ-CONDITION-5546 ulcerative colitis";
const OBSERVATION: &str = "ZQ-OBSERVATION-7719 calprotectin";
const MEDICATION: &str = "ZQ-MEDICATION-3107 mesalazine";
const DOSE: &str = "ZQ-DOSE-2290 800 mg";
const RX_NOTES: &str = "ZQ-RXNOTES-6650 after meals";
const REASON: &str = "ZQ-REASON-4482 unconscious after a fall";
const STUDY_TITLE: &str = "ZQ-STUDY-TITLE-1190";
const STUDY_DESCRIPTION: &str = "ZQ-STUDY-DESC-3321";
/// Public by design: the scan must find it, which shows it finds an ABI-encoded string.
const DOCTOR_NAME: &str = "Dr. dr.scan";

fn token(marker: &str) -> &str {
    marker
        .split(' ')
        .find(|w| w.to_uppercase().contains("ZQ"))
        .unwrap_or(marker)
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Whether `haystack` (a block, transaction or receipt as JSON) holds `word`: as text, or as
/// the hex of its bytes, in any case.
fn holds(haystack: &str, word: &str) -> bool {
    let haystack = haystack.to_lowercase();
    [word.to_string(), word.to_lowercase(), word.to_uppercase()]
        .iter()
        .any(|w| haystack.contains(&w.to_lowercase()) || haystack.contains(&hex_of(w)))
}

fn number(value: &Value) -> u64 {
    u64::from_str_radix(value.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_personal_or_clinical_is_on_chain_in_plain_text() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Scan General", "Lyon").await;
    let (doctor_address, doctor) = t.add_doctor(&admin, "dr.scan", hospital).await;
    let (_, urgent) = t.add_doctor(&admin, "dr.urgent", hospital).await;
    let (researcher_address, _) = t.add_researcher(&admin, "rex").await;
    let sign_up = |username: &'static str, name: &'static str| {
        let t = &t;
        async move {
            let (status, body) = t
                .post(
                    "/api/v1/patients",
                    None,
                    json!({ "username": username, "password": PASSWORD, "name": name,
                            "date_of_birth": BORN, "contact": CONTACT }),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            (
                body["address"].as_str().unwrap().to_string(),
                t.login(username, PASSWORD).await,
            )
        }
    };
    let (patient_address, patient) = sign_up(USERNAME, NAME).await;
    sign_up("zq-user-6240", OTHER_NAME).await;
    let pid = patient_address.trim_start_matches("0x").to_lowercase();

    let (status, shared) = t
        .upload(
            Some(&patient),
            &[
                ("title", TITLE),
                ("kind", "report"),
                ("date", "2026-11-20"),
                ("notes", NOTES),
                ("share_with", &doctor_address),
            ],
            Some((FILE, CONTENT.as_bytes().to_vec())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{shared}");
    let report = shared["id"].as_str().unwrap().to_string();
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient"}},
        {"resource": {"resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "64766004"}], "text": CONDITION},
            "subject": {"reference": "urn:uuid:p"}, "onsetDateTime": "2020-09-14"}},
        {"resource": {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "38445-3"}], "text": OBSERVATION},
            "subject": {"reference": "urn:uuid:p"}, "effectiveDateTime": "2026-02-01",
            "valueQuantity": {"value": 412.0, "unit": "ug/g"}}},
    ]});
    let (status, shared) = t
        .upload(
            Some(&patient),
            &[("title", BUNDLE_TITLE), ("kind", "report")],
            Some((BUNDLE_FILE, serde_json::to_vec(&bundle).unwrap())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{shared}");
    let (status, granted) = t
        .post(
            "/api/v1/grants",
            Some(&patient),
            json!({ "doctor": doctor_address, "scope": "all", "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{granted}");

    // The doctor reads (each read a logged view or opening on chain) and prescribes.
    for path in [
        format!("/api/v1/records?patient={patient_address}"),
        format!("/api/v1/records/{report}"),
        "/api/v1/patients".to_string(),
        format!("/fhir/Condition?patient={pid}"),
        format!("/fhir/Patient/{pid}"),
    ] {
        let (status, body) = t.get(&path, Some(&doctor)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let opened = t.content(&report, Some(&doctor)).await;
    assert_eq!(opened.status(), StatusCode::OK);
    assert_eq!(opened.text().await.unwrap(), CONTENT);
    let (status, prescribed) = t
        .post(
            "/api/v1/prescriptions",
            Some(&doctor),
            json!({ "patient": patient_address, "notes": RX_NOTES, "medications": [
                { "name": MEDICATION, "dose": DOSE, "frequency": "three times a day" }
            ] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{prescribed}");
    let (status, _) = t.get("/api/v1/prescriptions", Some(&doctor)).await;
    assert_eq!(status, StatusCode::OK);

    // Break-glass with a reason, used, then ended by the patient.
    let (status, declared) = t
        .post(
            "/api/v1/emergency",
            Some(&urgent),
            json!({ "patient": patient_address, "reason": REASON }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{declared}");
    let opened = t.content(&report, Some(&urgent)).await;
    assert_eq!(opened.status(), StatusCode::OK);
    let (status, ended) = t
        .post(
            &format!("/api/v1/emergencies/{}/end", declared["id"]),
            Some(&patient),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");

    // A study (only the hash of its details goes on chain) and the patient's opt-in.
    let now = t.app.ledger().now().await.unwrap();
    let (status, study) = t
        .post(
            "/api/v1/studies",
            Some(&admin),
            json!({ "researcher": researcher_address, "title": STUDY_TITLE,
                    "description": STUDY_DESCRIPTION, "data": ["Observation", "Condition"],
                    "ends_at": now + 30 * 86_400 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{study}");
    let (status, joined) = t
        .post(
            &format!("/api/v1/studies/{}/opt-in", study["id"]),
            Some(&patient),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");

    // Every block, with every transaction whole, and every receipt.
    let head = number(&t.chain_call("eth_blockNumber", json!([])).await);
    let mut pieces: Vec<(String, String)> = Vec::new();
    let mut calls: Vec<(String, String)> = Vec::new();
    for n in 0..=head {
        let block = t
            .chain_call("eth_getBlockByNumber", json!([format!("{n:#x}"), true]))
            .await;
        assert!(block.is_object(), "block {n}: {block}");
        pieces.push((format!("block {n}"), block.to_string()));
        for tx in block["transactions"].as_array().unwrap() {
            let hash = tx["hash"].as_str().unwrap().to_string();
            let input = tx["input"].as_str().unwrap_or_default().to_lowercase();
            pieces.push((format!("the input of {hash}"), input.clone()));
            calls.push((
                tx["to"].as_str().unwrap_or_default().to_lowercase(),
                input.get(..10).unwrap_or_default().to_string(),
            ));
            let receipt = t
                .chain_call("eth_getTransactionReceipt", json!([hash]))
                .await;
            for log in receipt["logs"].as_array().unwrap() {
                let mut words = log["topics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|topic| topic.as_str().unwrap().to_string())
                    .collect::<Vec<_>>();
                words.push(log["data"].as_str().unwrap().to_string());
                pieces.push((format!("a log of {hash}"), words.join(" ")));
            }
            pieces.push((format!("the receipt of {hash}"), receipt.to_string()));
        }
    }

    // The scan covers the story: each of its writes is a transaction it read.
    let contracts = t.app.contracts();
    let selector = |bytes: [u8; 4]| format!("0x{}", hex_of_bytes(&bytes));
    for (to, call, what) in [
        (
            contracts.registry,
            Registry::registerPatientCall::SELECTOR,
            "registerPatient",
        ),
        (
            contracts.records,
            Records::anchorRecordCall::SELECTOR,
            "anchorRecord",
        ),
        (
            contracts.consent,
            Consent::grantDoctorCall::SELECTOR,
            "grantDoctor",
        ),
        (
            contracts.consent,
            Consent::logViewsCall::SELECTOR,
            "logViews",
        ),
        (
            contracts.consent,
            Consent::logAccessCall::SELECTOR,
            "logAccess",
        ),
        (
            contracts.consent,
            Consent::declareEmergencyCall::SELECTOR,
            "declareEmergency",
        ),
        (
            contracts.consent,
            Consent::endEmergencyCall::SELECTOR,
            "endEmergency",
        ),
        (
            contracts.research,
            Research::registerStudyCall::SELECTOR,
            "registerStudy",
        ),
        (contracts.research, Research::optInCall::SELECTOR, "optIn"),
    ] {
        let to = format!("{to:#x}");
        assert!(
            calls
                .iter()
                .any(|(target, s)| *target == to && *s == selector(call)),
            "the chain holds a {what} transaction"
        );
    }
    // The scan finds an ABI-encoded string where one is, by design: the doctor's public name.
    assert!(
        pieces
            .iter()
            .any(|(where_, text)| where_.starts_with("the input") && holds(text, DOCTOR_NAME)),
        "the doctor's directory entry is found in a transaction's input"
    );

    let markers = [
        NAME,
        OTHER_NAME,
        BORN,
        CONTACT,
        USERNAME,
        "zq-user-6240",
        TITLE,
        NOTES,
        CONTENT,
        FILE,
        BUNDLE_TITLE,
        BUNDLE_FILE,
        CONDITION,
        OBSERVATION,
        MEDICATION,
        DOSE,
        RX_NOTES,
        REASON,
        STUDY_TITLE,
        STUDY_DESCRIPTION,
    ];
    let mut found = std::collections::BTreeSet::new();
    for marker in markers {
        for word in [marker, token(marker)] {
            for (where_, text) in &pieces {
                if holds(text, word) {
                    found.insert(format!("{:?} in {where_}", token(marker)));
                }
            }
        }
    }
    let found: Vec<String> = found.into_iter().collect();
    assert!(
        found.is_empty(),
        "plain text on chain ({} blocks read):\n{}",
        head + 1,
        found.join("\n")
    );
}

fn hex_of_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
