//! The FHIR API tells a doctor without a grant nothing about what exists: reading a real id of
//! another patient's record answers exactly as reading a well-formed id that exists nowhere
//! (the same status and the same OperationOutcome), so ids cannot be probed for.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Backend, TestApp};

/// A bundle with a Condition and a MedicationRequest, to read back by their served ids.
fn bundle() -> Value {
    json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient"}},
        {"resource": {"resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}], "text": "Diabetes"},
            "subject": {"reference": "urn:uuid:p"}, "onsetDateTime": "2018-05-01"}},
        {"resource": {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "medicationCodeableConcept": {"text": "Metformin"},
            "subject": {"reference": "urn:uuid:p"}, "authoredOn": "2026-01-06"}},
    ]})
}

/// A FHIR read as `token`: the status and the body (JSON; any status, a 500 included, is an
/// answer to compare here).
async fn read(t: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    let response = t
        .http
        .get(format!("{}{path}", t.url))
        .bearer_auth(token)
        .header("accept", "application/fhir+json")
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// `id` with the last hex digit of its record part changed (before a `-place` suffix, which
/// imported resources' ids have): the same shape, and, record ids being random, no record's.
fn other_id(id: &str) -> String {
    let end = id.find('-').unwrap_or(id.len());
    let changed = if &id[end - 1..end] == "0" { "1" } else { "0" };
    format!("{}{changed}{}", &id[..end - 1], &id[end..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_reader_may_not_see_reads_as_one_that_does_not_exist() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Probe General", "Lyon").await;
    let (granted_address, granted) = t.add_doctor(&admin, "dr.granted", hospital).await;
    let (_, stranger) = t.add_doctor(&admin, "dr.stranger", hospital).await;
    let (patient_address, patient) = t.sign_up("petra", "Petra Probe").await;
    let report = t
        .share(
            &patient,
            "Retina scan",
            "no retinopathy",
            &[&granted_address],
        )
        .await;
    let (status, shared) = t
        .upload(
            Some(&patient),
            &[
                ("title", "Diabetes summary"),
                ("kind", "report"),
                ("share_with", &granted_address),
            ],
            Some(("summary.json", serde_json::to_vec(&bundle()).unwrap())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{shared}");
    let (status, body) = t
        .post(
            "/api/v1/grants",
            Some(&patient),
            json!({ "doctor": granted_address, "scope": "all", "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, prescribed) = t
        .post(
            "/api/v1/prescriptions",
            Some(&granted),
            json!({ "patient": patient_address, "medications": [{ "name": "Insulin glargine" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{prescribed}");
    let prescription = prescribed["id"]
        .as_str()
        .unwrap()
        .trim_start_matches("0x")
        .to_string();

    // The real ids, as the patient reads them in their own compartment.
    let report = report.trim_start_matches("0x").to_string();
    let (_, conditions) = read(&t, "/fhir/Condition", &patient).await;
    let condition = conditions["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{conditions}"))
        .to_string();
    let (_, requests) = read(&t, "/fhir/MedicationRequest", &patient).await;
    let request_ids: Vec<(String, String)> = requests["entry"]
        .as_array()
        .unwrap_or_else(|| panic!("{requests}"))
        .iter()
        .map(|e| {
            (
                e["resource"]["medicationCodeableConcept"]["text"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                e["resource"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let id_of = |name: &str| {
        request_ids
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} in {request_ids:?}"))
            .1
            .clone()
    };
    let (imported, line) = (id_of("Metformin"), id_of("Insulin glargine"));

    // (what it is, the real id's path, a made-up id's path of the same shape)
    let cases = [
        (
            "a report's DocumentReference",
            "DocumentReference",
            report.clone(),
        ),
        ("a report's Binary", "Binary", report.clone()),
        ("an imported Condition", "Condition", condition),
        (
            "an imported MedicationRequest",
            "MedicationRequest",
            imported,
        ),
        (
            "a prescription's MedicationRequest",
            "MedicationRequest",
            line,
        ),
        ("a report's Provenance", "Provenance", report.clone()),
        ("a prescription's Provenance", "Provenance", prescription),
        (
            "the patient",
            "Patient",
            patient_address.trim_start_matches("0x").to_lowercase(),
        ),
    ];
    let mut differences = Vec::new();
    for (what, kind, real) in &cases {
        // The granted doctor reads it: the id is real and readable.
        let (status, body) = read(&t, &format!("/fhir/{kind}/{real}"), &granted).await;
        assert_eq!(status, StatusCode::OK, "{what}: {body}");
        let real_path = format!("/fhir/{kind}/{real}");
        let made_up_path = format!("/fhir/{kind}/{}", other_id(real));
        let hidden = read(&t, &real_path, &stranger).await;
        let missing = read(&t, &made_up_path, &stranger).await;
        assert!(
            hidden.0.is_client_error(),
            "{what}: the stranger is refused: {hidden:?}"
        );
        assert_eq!(
            hidden.1["resourceType"], "OperationOutcome",
            "{what}: {hidden:?}"
        );
        if hidden != missing {
            differences.push(format!(
                "{what}: GET {real_path} (real, not theirs) answered {} {}; GET {made_up_path} (no such id) answered {} {}",
                hidden.0, hidden.1, missing.0, missing.1
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "a doctor without a grant can tell a real id from a made-up one:\n{}",
        differences.join("\n")
    );
}
