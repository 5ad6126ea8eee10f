//! The findings of the trust-by-construction issue, each reproduced as it was found and shown
//! closed: a count is a logged read (1), a break-glass reason is enforced (3), and clinical
//! content is bound to its anchor (4). Finding 2 (a wallet's state change reused) is in
//! `wallet.rs`. Each runs on the embedded defaults and, in the suite's second pass, on
//! PostgreSQL + S3.

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, B256},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
    sol,
    sol_types::SolCall,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use medledger_records::primitives::keccak256;

use crate::{Backend, PASSWORD, TestApp, fhir::fhir_get};

sol! {
    function declareEmergency(address patient, bytes32 reasonHash) external returns (uint256 id);
}

/// A bundle with an HIV infection (SNOMED 86406008), active since 2019, and a lab result.
fn hiv_bundle() -> Value {
    json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient"}},
        {"resource": {"resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "86406008"}], "text": "HIV infection"},
            "subject": {"reference": "urn:uuid:p"}, "onsetDateTime": "2019-04-01"}},
        {"resource": {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}], "text": "Haemoglobin"},
            "subject": {"reference": "urn:uuid:p"}, "effectiveDateTime": "2026-01-05",
            "valueQuantity": {"value": 13.1, "unit": "g/dL"}}},
    ]})
}

/// The patient's access log, newest first.
async fn audit(t: &TestApp, patient: &str) -> Vec<Value> {
    let (status, body) = t.get("/api/v1/audit", Some(patient)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"].as_array().unwrap().clone()
}

/// A hospital, a doctor of it, and a patient who shared `bundle` (titled "Clinic summary") and
/// granted the doctor every record: (doctor's address, doctor's token, patient's address,
/// patient's token, record id).
async fn granted_bundle(t: &TestApp, bundle: &Value) -> (String, String, String, String, String) {
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Central", "Lyon").await;
    let (doctor_address, doctor) = t.add_doctor(&admin, "dr.count", hospital).await;
    let (patient_address, patient) = t.sign_up("cora", "Cora Count").await;
    let (status, shared) = t
        .upload(
            Some(&patient),
            &[("title", "Clinic summary"), ("kind", "report")],
            Some(("summary.json", bundle.to_string().into_bytes())),
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
    let record = shared["id"].as_str().unwrap().to_string();
    (doctor_address, doctor, patient_address, patient, record)
}

/// Finding 1: a granted doctor's search with `_count=0` answered `total: 1` when the patient's
/// bundle held an HIV diagnosis and `total: 0` when it did not, and the patient's log did not
/// change; so did a page past the end, and every clinical search parameter. Now every search
/// that looks into sealed content is logged before it answers, and says what was searched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_or_an_empty_page_of_a_search_is_a_logged_read() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let (doctor_address, doctor, patient_address, patient, _) =
        granted_bundle(&t, &hiv_bundle()).await;
    let id = patient_address.trim_start_matches("0x").to_lowercase();
    let searches = [
        (
            format!("/fhir/Condition?patient={id}&code=http://snomed.info/sct|86406008&_count=0"),
            1,
        ),
        (
            format!("/fhir/Condition?patient={id}&code=http://snomed.info/sct|38341003&_count=0"),
            0,
        ),
        (
            format!("/fhir/Condition?patient={id}&status=active&_count=0"),
            1,
        ),
        (
            format!("/fhir/Condition?patient={id}&date=lt2019-01-01&_count=0"),
            0,
        ),
        (
            format!("/fhir/Condition?patient={id}&category=problem-list-item&_count=0"),
            1,
        ),
        (format!("/fhir/Observation?patient={id}&_offset=50"), 1),
    ];
    for (path, total) in &searches {
        let before = audit(&t, &patient).await.len();
        let (status, bundle) = fhir_get(&t, path, Some(&doctor)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {bundle}");
        assert_eq!(bundle["total"], *total, "{path}: {bundle}");
        assert!(
            bundle["entry"].as_array().is_none_or(Vec::is_empty),
            "{path}: nothing on the page"
        );
        let log = audit(&t, &patient).await;
        assert_eq!(log.len(), before + 1, "{path} leaves a trace: {log:?}");
        let entry = &log[0];
        assert_eq!(entry["reader"], doctor_address.to_lowercase(), "{entry}");
        let what = if path.contains("Condition") {
            "conditions"
        } else {
            "observations"
        };
        assert_eq!(
            entry["summary"],
            format!("searched your {what} (in 1 report: Clinic summary)"),
            "{entry}"
        );
    }
    // The patient's own searches are theirs: no entry.
    let before = audit(&t, &patient).await.len();
    let (status, _) = fhir_get(
        &t,
        &format!("/fhir/Condition?patient={id}&_count=0"),
        Some(&patient),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(audit(&t, &patient).await.len(), before);
}

/// Finding 3: a doctor holding their own key declared an emergency on chain directly, with any
/// reason hash, and the server opened the patient's records with the escrow key. Now such a
/// declaration is shown as made outside medledger with no reason, and opens nothing through
/// the escrow; a declaration made through the server still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_declared_around_the_server_opens_nothing_through_the_escrow() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Central", "Lyon").await;
    let (doctor_address, doctor) = t.add_doctor(&admin, "dr.around", hospital).await;
    let (patient_address, patient) = t.sign_up("ivy", "Ivy Around").await;
    let record = t
        .share(&patient, "Psychiatric letter", "sealed words", &[])
        .await;
    let patient_account: Address = patient_address.parse().unwrap();

    // The doctor sends the declaration from their own key, with a hash of nothing the server
    // holds.
    let key = t.own_key(&doctor).await;
    assert_eq!(
        format!("{:#x}", key.address()),
        doctor_address.to_lowercase()
    );
    let chain = ProviderBuilder::new()
        .wallet(EthereumWallet::from(key))
        .connect_http(t.chain_url.parse().unwrap());
    let call = declareEmergencyCall {
        patient: patient_account,
        reasonHash: B256::repeat_byte(0x42),
    };
    let receipt = chain
        .send_transaction(
            TransactionRequest::default()
                .with_to(t.app.contracts().consent)
                .with_input(call.abi_encode()),
        )
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status(), "the contract takes it: {receipt:?}");
    assert!(
        t.app
            .emergency_open(patient_account, doctor_address.parse().unwrap())
            .await
            .unwrap()
    );

    // The chain lets the doctor in, but the escrow opens nothing: no title, no content, no
    // name.
    let (status, records) = t
        .get(
            &format!("/api/v1/records?patient={patient_address}"),
            Some(&doctor),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{records}");
    assert_eq!(records["records"][0]["id"], record.as_str(), "{records}");
    assert!(records["records"][0]["meta"].is_null(), "{records}");
    assert!(!records.to_string().contains("Psychiatric"));
    let response = t.content(&record, Some(&doctor)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!response.text().await.unwrap().contains("sealed words"));
    let id = patient_address.trim_start_matches("0x").to_lowercase();
    let (_, read) = fhir_get(&t, &format!("/fhir/Patient/{id}"), Some(&doctor)).await;
    assert!(!read.to_string().contains("Ivy Around"), "{read}");

    // The patient and the admin see it for what it is.
    for who in [&patient, &admin] {
        let (_, list) = t.get("/api/v1/emergencies", Some(who)).await;
        let e = &list["emergencies"][0];
        assert_eq!(e["declared_outside"], true, "{list}");
        assert!(e["reason"].is_null(), "{list}");
    }
    // And on their pages.
    for (name, password, page) in [
        ("ivy", PASSWORD, "/patient"),
        ("admin", crate::ADMIN_PASSWORD, "/admin"),
    ] {
        let mut browser = crate::pages::Browser::new(&t).await;
        browser.login(name, password).await;
        let (head, html) = browser.get(page).await;
        assert_eq!(head.status, StatusCode::OK, "{page}");
        assert!(
            html.contains("declared outside medledger, no reason given"),
            "{page}: {html}"
        );
    }
    let log = audit(&t, &patient).await;
    let declared = log
        .iter()
        .find(|e| e["action"] == "declared_emergency")
        .unwrap();
    assert!(
        declared["summary"]
            .as_str()
            .unwrap()
            .contains("declared outside medledger, no reason given"),
        "{declared}"
    );

    // Ended, and declared again through the server: the escrow opens the record.
    let (_, list) = t.get("/api/v1/emergencies", Some(&patient)).await;
    let open_id = list["emergencies"][0]["id"].as_u64().unwrap();
    let (status, body) = t
        .post(
            &format!("/api/v1/emergencies/{open_id}/end"),
            Some(&patient),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, declared) = t
        .post(
            "/api/v1/emergency",
            Some(&doctor),
            json!({ "patient": patient_address, "reason": "found unconscious" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{declared}");
    let response = t.content(&record, Some(&doctor)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "sealed words");
    let (_, list) = t.get("/api/v1/emergencies", Some(&patient)).await;
    assert_eq!(list["emergencies"][0]["declared_outside"], false, "{list}");
    assert_eq!(list["emergencies"][0]["reason"], "found unconscious");
}

/// Finding 3's second half: a wallet doctor cancelled the prepared declaration after its
/// transaction was mined, and the stored reason was deleted. Now the cancellation finds the
/// transaction and refuses, and the reason stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mined_declarations_reason_is_never_deleted() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Central", "Lyon").await;
    let (_, invited) = t
        .post(
            "/api/v1/doctors",
            Some(&admin),
            json!({ "name": "Dr. Keep", "specialty": "cardiology", "licence_id": "LIC-K",
                    "hospital_id": hospital }),
        )
        .await;
    let key = PrivateKeySigner::random();
    let wallet = crate::wallet::Wallet::of(&t, key);
    let proof = wallet.proof(&t).await;
    let (status, answer) = t
        .post(
            &t.path_of(invited["enrolment_url"].as_str().unwrap())
                .replace("/enrol/", "/api/v1/enrol/"),
            None,
            json!({ "username": "dr.keep", "wallet": proof }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    wallet
        .complete(&t, answer["token"].as_str().unwrap(), &answer)
        .await;
    let doctor = wallet.sign_in(&t).await;
    let (patient_address, patient) = t.sign_up("kim", "Kim Keep").await;
    let record = t.share(&patient, "Allergies", "penicillin", &[]).await;

    let (status, prepared) = t
        .post(
            "/api/v1/emergency",
            Some(&doctor),
            json!({ "patient": patient_address, "reason": "anaphylaxis, unconscious" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{prepared}");
    let hash = wallet.send(&prepared).await;
    let provider = ProviderBuilder::new().connect_http(t.chain_url.parse().unwrap());
    let mut mined = None;
    for _ in 0..100 {
        mined = provider.get_transaction_receipt(hash).await.unwrap();
        if mined.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(mined.is_some(), "the declaration is mined within 10 s");
    let cancel = t
        .http
        .delete(format!(
            "{}{}",
            t.url,
            prepared["complete"].as_str().unwrap()
        ))
        .bearer_auth(&doctor)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), StatusCode::CONFLICT);
    let (_, list) = t.get("/api/v1/emergencies", Some(&patient)).await;
    assert_eq!(
        list["emergencies"][0]["reason"], "anaphylaxis, unconscious",
        "{list}"
    );
    assert_eq!(list["emergencies"][0]["declared_outside"], false);
    // And it opens the record through the escrow, the opening logged by the wallet.
    let response = wallet.open(&t, &doctor, &record).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// Rewrites a record's sealed metadata as someone who can write to the database and holds its
/// key would (here, the patient's key from their keystore): `title` replaced, sealed again
/// under the record's own key (so it still decrypts), and the database's own copy of the
/// anchored hash recomputed to match. Only the chain can tell.
async fn reseal_title(t: &TestApp, patient: &str, record: &str, title: &str) {
    let key = medledger_records::accounts::encryption_key(&t.own_key(patient).await);
    let (_, me) = t.get("/api/v1/me", Some(patient)).await;
    let reader = me["address"].as_str().unwrap().to_lowercase();
    let wrapped: Vec<u8> =
        sqlx::query_scalar("SELECT wrapped FROM wraps WHERE object_id = $1 AND reader = $2")
            .bind(record)
            .bind(&reader)
            .fetch_one(t.app.db())
            .await
            .unwrap();
    let dek = medledger_vault::unwrap(&key, &wrapped, record.as_bytes()).unwrap();
    let (sealed, resources, blob_hash): (Vec<u8>, Option<Vec<u8>>, String) =
        sqlx::query_as("SELECT meta, resources, blob_hash FROM records WHERE id = $1")
            .bind(record)
            .fetch_one(t.app.db())
            .await
            .unwrap();
    let aad = format!("meta:{record}");
    let mut meta: Value =
        serde_json::from_slice(&medledger_vault::open(&dek, aad.as_bytes(), &sealed).unwrap())
            .unwrap();
    meta["title"] = json!(title);
    let resealed = medledger_vault::seal(&dek, aad.as_bytes(), meta.to_string().as_bytes());
    // The anchor's format (reports/anchor.rs), so the database agrees with itself.
    let mut all = b"medledger record anchor v2".to_vec();
    all.extend_from_slice(blob_hash.parse::<B256>().unwrap().as_slice());
    all.extend_from_slice(keccak256(resealed.as_slice()).as_slice());
    all.extend_from_slice(keccak256(resources.unwrap_or_default().as_slice()).as_slice());
    sqlx::query("UPDATE records SET meta = $1, content_hash = $2 WHERE id = $3")
        .bind(resealed)
        .bind(keccak256(all.as_slice()).to_string())
        .bind(record)
        .execute(t.app.db())
        .await
        .unwrap();
}

/// Finding 4: the structured content, the metadata and a prescription's lines were never
/// compared with the anchor: a changed title, allergy or dose still showed as verified. Now the
/// anchor covers all of it; a read says "altered" (409) and `verify` reports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_metadata_or_structured_content_is_caught_by_the_anchor() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let (_, doctor, patient_address, patient, record) = granted_bundle(&t, &hiv_bundle()).await;
    let (status, meta) = t
        .get(&format!("/api/v1/records/{record}"), Some(&patient))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(meta["anchor"]["covers"], "record", "{meta}");
    assert_eq!(meta["anchor"]["integrity"], "verified", "{meta}");
    assert!(t.app.verify_blobs().await.unwrap().bad.is_empty());

    reseal_title(&t, &patient, &record, "Routine check-up").await;
    for who in [&patient, &doctor] {
        let (status, body) = t.get(&format!("/api/v1/records/{record}"), Some(who)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "integrity_failure", "{body}");
        // The anchor caught it, not a failed decryption (the metadata decrypts).
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("on-chain anchor"),
            "{body}"
        );
        assert!(!body.to_string().contains("Routine"), "{body}");
    }
    let (_, list) = t.get("/api/v1/records", Some(&patient)).await;
    assert!(list["records"][0]["meta"].is_null(), "{list}");
    assert_eq!(list["records"][0]["anchor"]["integrity"], "mismatch");
    let response = t.content(&record, Some(&doctor)).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let report = t.app.verify_blobs().await.unwrap();
    assert_eq!(report.bad.len(), 1, "{report:?}");
    assert_eq!(report.bad[0].1.to_string(), "mismatch");
    let id = patient_address.trim_start_matches("0x").to_lowercase();
    let (status, found) =
        fhir_get(&t, &format!("/fhir/Condition?patient={id}"), Some(&doctor)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        found["total"], 0,
        "an altered bundle shows nothing: {found}"
    );
}
