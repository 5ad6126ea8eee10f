//! The paper's whole story, on the embedded node and on Ganache: admin adds a hospital and a
//! doctor; a patient signs up and shares a report with the doctor; the doctor lists the patient,
//! opens the report and prescribes; the patient sees the prescription and the opening; the
//! patient revokes; the doctor is refused.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Backend, TestApp, assert_transaction};

async fn story(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (status, health) = t.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["chain_id"], 1337);
    assert_eq!(health["database"], true);
    assert_eq!(health["degraded"], json!([]), "{health}");
    let kinds = match t.backend {
        Backend::PostgresS3 => ("postgres", "s3"),
        Backend::Embedded | Backend::Ganache | Backend::Anvil | Backend::Hardhat => {
            ("sqlite", "directory")
        }
    };
    assert_eq!(health["backends"]["database"]["kind"], kinds.0, "{health}");
    assert_eq!(
        health["backends"]["blob_store"]["kind"], kinds.1,
        "{health}"
    );
    let faucet = &health["backends"]["faucet"];
    assert!(faucet["accounts_left"].as_u64().unwrap() > 10, "{health}");
    let before: u128 = faucet["balance_wei"].as_str().unwrap().parse().unwrap();

    // The admin adds a hospital and a doctor.
    let admin = t.admin().await;
    let (status, body) = t
        .post(
            "/api/v1/hospitals",
            Some(&admin),
            json!({ "name": "General Hospital", "city": "Lyon", "address": "1 Main St",
                    "specialties": "cardiology, radiology", "services": "imaging", "contact": "+33 4" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_transaction(&body);
    let hospital = body["id"].as_u64().unwrap();
    let (_, found) = t
        .get("/api/v1/hospitals?city=lyon&specialty=RADIO", None)
        .await;
    assert_eq!(found["hospitals"][0]["name"], "General Hospital");
    let (_, none) = t.get("/api/v1/hospitals?city=paris", None).await;
    assert_eq!(none["hospitals"].as_array().unwrap().len(), 0);
    let (doctor_address, doctor) = t.add_doctor(&admin, "dr.house", hospital).await;
    // The faucet paid for the doctor's account.
    let (_, health) = t.get("/healthz", None).await;
    let after: u128 = health["backends"]["faucet"]["balance_wei"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after < before, "{health}");

    // A patient signs up and shares a report with the doctor in the same step.
    let (patient_address, patient) = t.sign_up("alice", "Alice Moreau").await;
    let (status, me) = t.get("/api/v1/me", Some(&patient)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["role"], "patient");
    assert_eq!(
        me["address"].as_str().unwrap().to_lowercase(),
        patient_address.to_lowercase()
    );
    assert!(me["balance_wei"].as_str().unwrap().parse::<u128>().unwrap() > 0);
    let report = "Haemoglobin 13.5 g/dL\nLDL 2.1 mmol/L\n";
    let (status, shared) = t
        .upload(
            Some(&patient),
            &[
                ("title", "Blood test"),
                ("kind", "report"),
                ("date", "2026-11-20"),
                ("notes", "fasting"),
                ("share_with", &doctor_address),
                ("expires_in_days", "7"),
            ],
            Some(("blood.txt", report.as_bytes().to_vec())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{shared}");
    assert_transaction(&shared);
    let record = shared["id"].as_str().unwrap().to_string();
    assert_eq!(shared["meta"]["media_type"], "text/plain");
    assert_eq!(shared["grants"][0]["grant"]["scope"], "records");
    let (_, mine) = t.get("/api/v1/records", Some(&patient)).await;
    assert_eq!(mine["records"][0]["meta"]["title"], "Blood test");
    assert!(
        mine["records"][0]["anchor"]["block_number"]
            .as_u64()
            .is_some()
    );

    // The doctor lists the patient and opens the report.
    let (status, patients) = t.get("/api/v1/patients", Some(&doctor)).await;
    assert_eq!(status, StatusCode::OK, "{patients}");
    assert_eq!(patients["patients"][0]["name"], "Alice Moreau");
    let (_, records) = t
        .get(
            &format!("/api/v1/records?patient={patient_address}"),
            Some(&doctor),
        )
        .await;
    assert_eq!(records["records"][0]["id"], record.as_str());
    assert_eq!(records["records"][0]["meta"]["title"], "Blood test");
    let (status, meta) = t
        .get(&format!("/api/v1/records/{record}"), Some(&doctor))
        .await;
    assert_eq!(status, StatusCode::OK, "{meta}");
    assert_eq!(meta["anchor"]["integrity"], "verified");
    let response = t.content(&record, Some(&doctor)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-type"], "text/plain");
    let access_tx = headers["x-medledger-access-tx"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(response.bytes().await.unwrap(), report.as_bytes());

    // ...and writes a prescription.
    let (status, prescribed) = t
        .post(
            "/api/v1/prescriptions",
            Some(&doctor),
            json!({ "patient": patient_address, "notes": "review in 3 months",
                    "medications": [{ "name": "Atorvastatin", "dose": "20 mg", "frequency": "daily", "duration": "90 days" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{prescribed}");
    assert_transaction(&prescribed);

    // The patient sees the prescription and the opening.
    let (_, prescriptions) = t.get("/api/v1/prescriptions", Some(&patient)).await;
    let p = &prescriptions["prescriptions"][0];
    assert_eq!(p["body"]["medications"][0]["name"], "Atorvastatin");
    assert_eq!(
        p["doctor"].as_str().unwrap().to_lowercase(),
        doctor_address.to_lowercase()
    );
    let (_, written) = t.get("/api/v1/prescriptions", Some(&doctor)).await;
    assert_eq!(written["prescriptions"].as_array().unwrap().len(), 1);
    let (_, audit) = t.get("/api/v1/audit", Some(&patient)).await;
    let events: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "opened")
        .collect();
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["reader_name"], "Dr. dr.house");
    assert_eq!(events[0]["record_title"], "Blood test");
    assert_eq!(events[0]["purpose"], "treatment");
    assert_eq!(events[0]["emergency"], false);
    assert_eq!(events[0]["tx_hash"], access_tx.as_str());

    // The patient revokes; the doctor is refused at once.
    let (_, grants) = t.get("/api/v1/grants", Some(&patient)).await;
    let grant = grants["grants"][0]["id"].as_u64().unwrap();
    assert_eq!(grants["grants"][0]["active"], true);
    let (status, revoked) = t
        .call(
            Method::DELETE,
            &format!("/api/v1/grants/{grant}"),
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["revoked"], true);
    assert_transaction(&revoked);
    let response = t.content(&record, Some(&doctor)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let refused = response.text().await.unwrap();
    assert!(!refused.contains("Haemoglobin"), "{refused}");
    let (_, records) = t
        .get(
            &format!("/api/v1/records?patient={patient_address}"),
            Some(&doctor),
        )
        .await;
    assert_eq!(records["records"].as_array().unwrap().len(), 0);
    let (status, _) = t
        .post(
            "/api/v1/prescriptions",
            Some(&doctor),
            json!({ "patient": patient_address, "medications": [{ "name": "Aspirin" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, patients) = t.get("/api/v1/patients", Some(&doctor)).await;
    assert_eq!(patients["patients"].as_array().unwrap().len(), 0);
    let (_, audit) = t.get("/api/v1/audit", Some(&patient)).await;
    let opened = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "opened")
        .count();
    assert_eq!(opened, 1, "refusals log nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_papers_story_on_the_embedded_node() {
    story(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_papers_story_on_postgresql_and_s3() {
    story(Backend::PostgresS3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_papers_story_on_ganache() {
    story(Backend::Ganache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_papers_story_on_anvil() {
    story(Backend::Anvil).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_papers_story_on_hardhat() {
    story(Backend::Hardhat).await;
}
