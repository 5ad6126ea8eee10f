//! The FHIR R4 API: every answer is valid R4 (HL7's JSON schema and fhirkit-rs, through
//! tests/fhir/validate.py), searches filter and page after access filtering with totals that
//! count only what the reader may see, errors are OperationOutcomes, and a Binary read is an
//! opening logged on chain like a download.

use std::{collections::BTreeMap, path::PathBuf};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Backend, TestApp, repo_root};

/// Every FHIR document a test received, to be validated together at its end.
#[derive(Default)]
pub(crate) struct Received {
    docs: BTreeMap<String, Value>,
}

impl Received {
    pub(crate) fn keep(&mut self, what: &str, doc: &Value) {
        let n = self.docs.len();
        self.docs
            .insert(format!("{n:04}-{}", slug(what)), doc.clone());
    }

    /// Runs the R4 validator over everything kept; fails the test with its report.
    pub(crate) fn validate(&self) {
        assert!(!self.docs.is_empty(), "nothing was kept to validate");
        let dir = tempfile::tempdir().unwrap();
        for (name, doc) in &self.docs {
            std::fs::write(
                dir.path().join(format!("{name}.json")),
                serde_json::to_vec_pretty(doc).unwrap(),
            )
            .unwrap();
        }
        let out = std::process::Command::new(python())
            .arg(repo_root().join("tests/fhir/validate.py"))
            .arg(dir.path())
            .output()
            .expect("run tests/fhir/validate.py");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "FHIR validation failed:\n{report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            report.contains(&format!("{} documents, 0 problems", self.docs.len())),
            "{report}"
        );
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(60)
        .collect()
}

/// The Python of the FHIR test tools (scripts/fhir-deps installs them).
pub(crate) fn python() -> PathBuf {
    medledger_testkit::fhir_python()
}

/// A FHIR GET: status, body, and the content type.
pub(crate) async fn fhir_get(t: &TestApp, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = t
        .http
        .get(format!("{}{path}", t.url))
        .header("accept", "application/fhir+json");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {text}");
    assert!(
        kind.starts_with("application/fhir+json"),
        "{path} answered {kind}: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    if !status.is_success() {
        assert_eq!(body["resourceType"], "OperationOutcome", "{path}: {body}");
        assert!(
            body["issue"][0]["diagnostics"].as_str().unwrap().len() > 10,
            "{body}"
        );
    }
    (status, body)
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .map(|l| l["url"].as_str().unwrap().to_string())
}

/// A link's path and query, for the test client (links are absolute).
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fhir_api_reads_and_searches_what_the_chain_allows_as_valid_r4() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let mut seen = Received::default();
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "FHIR General", "Lyon").await;
    let (doctor_address, doctor) = t.add_doctor(&admin, "dr.fhir", hospital).await;
    let (_, stranger) = t.add_doctor(&admin, "dr.stranger", hospital).await;
    let (patient_address, patient) = t.sign_up("fiona", "Fiona Fhir").await;
    let (other_address, other) = t.sign_up("otto", "Otto Other").await;
    let patient_id = patient_address.trim_start_matches("0x").to_lowercase();

    // Five reports, three shared with the doctor; one report of the other patient.
    let mut shared = Vec::new();
    for i in 0..5 {
        let with: &[&str] = if i < 3 { &[&doctor_address] } else { &[] };
        let id = t
            .share(&patient, &format!("Panel {i}"), &format!("value {i}"), with)
            .await;
        if i < 3 {
            shared.push(id);
        }
    }
    t.share(&other, "Otto's panel", "otto", &[&doctor_address])
        .await;
    let (status, body) = t
        .post(
            "/api/v1/prescriptions",
            Some(&doctor),
            json!({ "patient": patient_address, "medications": [
                { "name": "Metformin", "dose": "500 mg", "frequency": "twice a day" },
                { "name": "Atorvastatin", "dose": "20 mg" }
            ], "notes": "with meals" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // What the server does.
    let (status, cap) = fhir_get(&t, "/fhir/metadata", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cap["fhirVersion"], "4.0.1");
    let types: Vec<&str> = cap["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    for kind in [
        "Patient",
        "DocumentReference",
        "Binary",
        "MedicationRequest",
        "Consent",
        "AuditEvent",
        "Provenance",
        "Observation",
    ] {
        assert!(types.contains(&kind), "{kind} in {types:?}");
    }
    // Exactly the types the router serves, no more, no fewer.
    let source = std::fs::read_to_string(repo_root().join("crates/web/src/fhir/mod.rs")).unwrap();
    let mut routed: Vec<&str> = source
        .split("\"/fhir/")
        .skip(1)
        .filter_map(|rest| rest.split(['/', '"']).next())
        .filter(|kind| kind.starts_with(|c: char| c.is_ascii_uppercase()))
        .collect();
    routed.sort_unstable();
    routed.dedup();
    let mut listed = types.clone();
    listed.sort_unstable();
    assert_eq!(listed, routed);
    seen.keep("metadata", &cap);
    let smart: Value = t
        .http
        .get(format!("{}/.well-known/smart-configuration", t.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        smart["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("patient/*.rs")),
        "{smart}"
    );

    // The patient's own profile; the doctor sees it through the grant, the stranger not.
    let (status, me) = fhir_get(&t, &format!("/fhir/Patient/{patient_id}"), Some(&patient)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["name"][0]["text"], "Fiona Fhir");
    assert_eq!(me["birthDate"], "1984-03-12");
    seen.keep("patient", &me);
    let (status, _) = fhir_get(&t, &format!("/fhir/Patient/{patient_id}"), Some(&doctor)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        fhir_get(&t, &format!("/fhir/Patient/{patient_id}"), Some(&stranger)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!body.to_string().contains("Fiona"), "{body}");
    seen.keep("not found", &body);
    let (status, body) = fhir_get(&t, &format!("/fhir/Patient/{patient_id}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    seen.keep("unauthenticated", &body);
    let (status, found) = fhir_get(&t, "/fhir/Patient", Some(&doctor)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["total"], 2, "both patients share with the doctor");
    seen.keep("patients", &found);

    // The patient's reports, two a page: every page valid, nothing lost or repeated.
    let mut ids = Vec::new();
    let mut next = Some("/fhir/DocumentReference?_count=2".to_string());
    let mut pages = 0;
    while let Some(path) = next {
        let (status, page) = fhir_get(&t, &path, Some(&patient)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["total"], 5);
        for d in entries(&page) {
            ids.push(d["id"].as_str().unwrap().to_string());
        }
        seen.keep("documents page", &page);
        next = link(&page, "next").map(|l| path_of(&l));
        pages += 1;
        assert!(pages < 10, "the pages never end");
    }
    assert_eq!(pages, 3);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5);

    // The doctor: total and pages count only the three shared reports (the other patient's
    // are not in this patient's search), and only the page shown is logged as viewed.
    let audit_before = t.get("/api/v1/audit", Some(&patient)).await.1["events"]
        .as_array()
        .unwrap()
        .len();
    let (status, page) = fhir_get(
        &t,
        &format!("/fhir/DocumentReference?patient=Patient/{patient_id}&_count=2"),
        Some(&doctor),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 3, "{page}");
    assert_eq!(entries(&page).len(), 2);
    let next = link(&page, "next").expect("a next page");
    let (_, last) = fhir_get(&t, &path_of(&next), Some(&doctor)).await;
    assert_eq!(entries(&last).len(), 1);
    assert!(link(&last, "next").is_none());
    seen.keep("doctor documents", &page);
    let (_, log) = t.get("/api/v1/audit", Some(&patient)).await;
    let events = log["events"].as_array().unwrap();
    assert_eq!(events.len(), audit_before + 2, "two views logged: {log}");
    let viewed: usize = events[..2]
        .iter()
        .map(|e| e["record_ids"].as_array().unwrap().len())
        .sum();
    assert_eq!(viewed, 3, "the two pages' records, each logged once");
    // A stranger's search finds nothing: the total says 0, not what exists.
    let (status, none) = fhir_get(
        &t,
        &format!("/fhir/DocumentReference?patient={patient_id}"),
        Some(&stranger),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none["total"], 0);
    assert!(none.get("entry").is_none());
    seen.keep("empty", &none);
    // Another patient's compartment is closed to a patient.
    let (status, body) = fhir_get(
        &t,
        &format!("/fhir/DocumentReference?patient={}", other_address),
        Some(&patient),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Search parameters.
    let today =
        &medledger_records::model::rfc3339(t.app.ledger().now().await.unwrap() as i64)[..10];
    for (query, expected) in [
        (format!("date={today}"), 5),
        (format!("date=ge{}", &today[..4]), 5),
        ("date=lt2000".to_string(), 0),
        ("type=report".to_string(), 5),
        ("type=urn:medledger:record-kind|other".to_string(), 0),
        ("status=current".to_string(), 5),
        (format!("_id={}", shared[0].trim_start_matches("0x")), 1),
    ] {
        let (status, found) = fhir_get(
            &t,
            &format!("/fhir/DocumentReference?{query}"),
            Some(&patient),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{query}: {found}");
        assert_eq!(found["total"], expected, "{query}: {found}");
    }
    for bad in ["date=yesterday", "colour=red", "_count=many"] {
        let (status, body) = fhir_get(
            &t,
            &format!("/fhir/DocumentReference?{bad}"),
            Some(&patient),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        seen.keep("bad search", &body);
    }

    // One report: its anchor as an identifier, its bytes at Binary/{id}.
    let id = shared[0].trim_start_matches("0x");
    let (status, doc) = fhir_get(&t, &format!("/fhir/DocumentReference/{id}"), Some(&doctor)).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["description"], "Panel 0");
    assert_eq!(
        doc["content"][0]["attachment"]["url"],
        format!("Binary/{id}")
    );
    assert_eq!(doc["content"][0]["attachment"]["contentType"], "text/plain");
    let (_, rest) = t
        .get(&format!("/api/v1/records/{}", shared[0]), Some(&patient))
        .await;
    assert!(
        doc["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["value"] == rest["anchor"]["tx_hash"]),
        "the anchoring transaction: {doc} / {rest}"
    );
    seen.keep("document", &doc);
    let (status, binary) = fhir_get(&t, &format!("/fhir/Binary/{id}"), Some(&doctor)).await;
    assert_eq!(status, StatusCode::OK, "{binary}");
    assert_eq!(binary["contentType"], "text/plain");
    assert_eq!(binary["data"], "dmFsdWUgMA==", "base64 of \"value 0\"");
    seen.keep("binary", &binary);
    let raw = t
        .http
        .get(format!("{}/fhir/Binary/{id}", t.url))
        .bearer_auth(&doctor)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(raw.text().await.unwrap(), "value 0");
    let (_, log) = t.get("/api/v1/audit", Some(&patient)).await;
    let openings = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "opened")
        .count();
    assert_eq!(openings, 2, "each Binary read is an opening on chain");
    // A report not shared with the doctor stays closed to them, and reads as one that does not
    // exist.
    let (_, mine) = fhir_get(&t, "/fhir/DocumentReference", Some(&patient)).await;
    let unshared = entries(&mine)
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .find(|d| !shared.iter().any(|s| s.trim_start_matches("0x") == d))
        .unwrap();
    for path in [
        format!("/fhir/Binary/{unshared}"),
        format!("/fhir/DocumentReference/{unshared}"),
    ] {
        let (status, body) = fhir_get(&t, &path, Some(&doctor)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }

    // Prescriptions, grants, the access log.
    for (path, token, at_least) in [
        ("/fhir/MedicationRequest", &patient, 2),
        // The doctor's grants cover single reports, not the prescription's lines: none shown.
        ("/fhir/MedicationRequest", &doctor, 0),
        ("/fhir/Consent", &patient, 3),
        ("/fhir/Consent", &doctor, 4),
        ("/fhir/AuditEvent", &patient, 4),
        ("/fhir/AuditEvent", &doctor, 4),
        ("/fhir/Practitioner", &patient, 2),
        ("/fhir/PractitionerRole", &patient, 2),
        ("/fhir/Organization", &patient, 1),
    ] {
        let (status, bundle) = fhir_get(&t, path, Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {bundle}");
        let found = entries(&bundle).len();
        assert!(found >= at_least, "{path}: {found} < {at_least}: {bundle}");
        seen.keep(path, &bundle);
        // Each resource is read back by its id where the type is read by id.
        if let Some(first) = entries(&bundle).first()
            && path != "/fhir/AuditEvent"
        {
            let (status, one) = fhir_get(
                &t,
                &format!("{path}/{}", first["id"].as_str().unwrap()),
                Some(token),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{path}: {one}");
            assert_eq!(one["id"], first["id"]);
            seen.keep(path, &one);
        }
    }
    let (_, meds) = fhir_get(&t, "/fhir/MedicationRequest", Some(&patient)).await;
    let names: Vec<&str> = meds["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["resource"]["medicationCodeableConcept"]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["Metformin", "Atorvastatin"]);

    // Everything about the patient in one Bundle, as much as each reader may see.
    for (token, documents, medications, consents) in [(&patient, 5, 2, 3), (&doctor, 3, 0, 3)] {
        let (status, all) = fhir_get(
            &t,
            &format!("/fhir/Patient/{patient_id}/$everything"),
            Some(token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{all}");
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for r in entries(&all) {
            *counts
                .entry(r["resourceType"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        let count = |kind: &str| counts.get(kind).copied().unwrap_or(0);
        assert_eq!(count("Patient"), 1, "{counts:?}");
        assert_eq!(count("DocumentReference"), documents, "{counts:?}");
        assert_eq!(count("MedicationRequest"), medications, "{counts:?}");
        assert_eq!(count("Consent"), consents, "{counts:?}");
        assert_eq!(all["total"], counts.values().sum::<usize>());
        seen.keep("everything", &all);
    }
    let (status, _) = fhir_get(
        &t,
        &format!("/fhir/Patient/{patient_id}/$everything"),
        Some(&other),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = fhir_get(&t, "/fhir/Observation/1", Some(&patient)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    seen.keep("unknown id", &body);
    // Writes are not taken, as FHIR says so.
    for path in ["/fhir/Patient", "/fhir/Observation/1", "/fhir/Nothing"] {
        let r = t
            .http
            .post(format!("{}{path}", t.url))
            .bearer_auth(&patient)
            .json(&json!({ "resourceType": "Patient" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/fhir+json")
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["resourceType"], "OperationOutcome", "{path}: {body}");
        seen.keep("write refused", &body);
    }

    // Provenance: each anchored resource's author, time and anchoring transaction.
    let report = &shared[0];
    let report_id = report.trim_start_matches("0x");
    let (_, document) = fhir_get(
        &t,
        &format!("/fhir/DocumentReference/{report_id}"),
        Some(&doctor),
    )
    .await;
    let anchor_tx = document["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["system"] == "urn:medledger:transaction")
        .unwrap()["value"]
        .clone();
    let (status, found) = fhir_get(
        &t,
        &format!("/fhir/Provenance?target=DocumentReference/{report_id}"),
        Some(&doctor),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["total"], 1, "{found}");
    let provenance = &entries(&found)[0];
    assert_eq!(
        provenance["entity"][0]["what"]["identifier"]["value"],
        anchor_tx
    );
    assert_eq!(
        provenance["agent"][0]["who"]["reference"],
        format!("Patient/{patient_id}")
    );
    seen.keep("provenance search", &found);
    let (status, read) =
        fhir_get(&t, &format!("/fhir/Provenance/{report_id}"), Some(&doctor)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&read, provenance);
    let (_, all) = fhir_get(&t, "/fhir/Provenance?_count=100", Some(&patient)).await;
    assert_eq!(all["total"], 6, "five reports and one prescription: {all}");
    let prescription = entries(&all)
        .into_iter()
        .find(|p| {
            p["target"][0]["reference"]
                .as_str()
                .unwrap()
                .starts_with("MedicationRequest/")
        })
        .unwrap();
    assert_eq!(
        prescription["target"].as_array().unwrap().len(),
        2,
        "both lines"
    );
    assert_eq!(
        prescription["agent"][0]["who"]["reference"],
        format!(
            "Practitioner/{}",
            doctor_address.trim_start_matches("0x").to_lowercase()
        )
    );
    seen.keep("provenance", &all);
    let (status, _) = fhir_get(
        &t,
        &format!("/fhir/Provenance/{report_id}"),
        Some(&stranger),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    seen.validate();
}
