//! FHIR Bundles shared as reports: checked against R4's rules (a 422 that names the problems,
//! and nothing stored), kept as structured content, and their resources searched and read
//! through /fhir for whoever the chain lets see the report, valid R4, with nothing lost: every
//! resource of every type counted in the files, in the stored details and out of the API.

use std::{collections::BTreeMap, path::Path};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    Backend, TestApp,
    fhir::{Received, fhir_get},
};

/// `count` bundles of carebundle's `profile`, generated with `seed` (deterministic) into `dir`.
pub(crate) fn carebundles(dir: &Path, profile: &str, count: usize, seed: u64) -> Vec<Vec<u8>> {
    medledger_testkit::carebundles(dir, profile, count, seed)
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect()
}

/// How many resources of each type bundles hold.
pub(crate) fn types_in(bundles: &[&Vec<u8>]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for bytes in bundles {
        let bundle: Value = serde_json::from_slice(bytes).unwrap();
        for e in bundle["entry"].as_array().unwrap() {
            *counts
                .entry(e["resource"]["resourceType"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    counts
}

/// The resources of `bundles` of one type.
fn resources_of(bundles: &[&Vec<u8>], kind: &str) -> Vec<Value> {
    bundles
        .iter()
        .flat_map(|b| {
            let bundle: Value = serde_json::from_slice(b).unwrap();
            bundle["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["resource"].clone())
                .filter(|r| r["resourceType"] == kind)
                .collect::<Vec<_>>()
        })
        .collect()
}

impl TestApp {
    /// Shares a bundle file as a report; the status and the answer.
    async fn share_bundle(
        &self,
        token: &str,
        title: &str,
        bytes: &[u8],
        share_with: &[&str],
    ) -> (StatusCode, Value) {
        let mut fields = vec![("title", title), ("kind", "report")];
        for d in share_with {
            fields.push(("share_with", d));
        }
        self.upload(Some(token), &fields, Some(("bundle.json", bytes.to_vec())))
            .await
    }
}

/// Every resource a search finds, following `next` links; the total it announced.
async fn search_all(
    t: &TestApp,
    path: &str,
    token: &str,
    seen: &mut Received,
) -> (u64, Vec<Value>) {
    let (status, mut page) = fhir_get(t, path, Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{path}: {page}");
    let total = page["total"].as_u64().unwrap();
    let mut found = Vec::new();
    for _ in 0..100 {
        seen.keep(path, &page);
        found.extend(
            page["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["resource"].clone()),
        );
        let next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_string());
        let Some(next) = next else {
            return (total, found);
        };
        let rest = next.split_once("://").unwrap().1;
        let (status, next_page) = fhir_get(t, &rest[rest.find('/').unwrap()..], Some(token)).await;
        assert_eq!(status, StatusCode::OK);
        page = next_page;
    }
    panic!("{path}: more than 100 pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_bundles_are_checked_kept_and_searched_through_fhir_with_nothing_lost() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let dir = tempfile::tempdir().unwrap();
    let mut bundles = carebundles(dir.path(), "type2_diabetes", 2, 11);
    bundles.extend(carebundles(dir.path(), "anaemia", 2, 12));
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Bundle General", "Nantes").await;
    let (doctor_address, doctor) = t.add_doctor(&admin, "dr.bundle", hospital).await;
    let (_, stranger) = t.add_doctor(&admin, "dr.nobody", hospital).await;
    let (patient_address, patient) = t.sign_up("bea", "Bea Bundle").await;
    let (_, other) = t.sign_up("ole", "Ole Other").await;
    let patient_id = patient_address.trim_start_matches("0x").to_lowercase();
    let mut seen = Received::default();

    // Bundles that break R4's rules are refused with what is wrong, and nothing is stored.
    let blobs_before = t.blob_names().await.len();
    let mut broken: Value = serde_json::from_slice(&bundles[0]).unwrap();
    let observation = broken["entry"]
        .as_array()
        .unwrap()
        .iter()
        .position(|e| e["resource"]["resourceType"] == "Observation")
        .unwrap();
    broken["entry"][observation]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("status");
    broken["entry"][0]["resource"]["birthDate"] = json!("03/06/1961");
    let (status, body) = t
        .share_bundle(
            &patient,
            "Broken",
            &serde_json::to_vec(&broken).unwrap(),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "entry[{observation}] (Observation): status is required"
        )),
        "{message}"
    );
    assert!(message.contains("birthDate \"03/06/1961\""), "{message}");
    let searchset = json!({"resourceType": "Bundle", "type": "searchset", "entry": []});
    let (status, body) = t
        .share_bundle(
            &patient,
            "Search",
            &serde_json::to_vec(&searchset).unwrap(),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("collection or a transaction")
    );
    assert_eq!(t.blob_names().await.len(), blobs_before, "nothing stored");
    let (_, listed) = t.get("/api/v1/records", Some(&patient)).await;
    assert_eq!(listed["records"].as_array().unwrap().len(), 0);

    // Three bundles of the patient (the first two shared with the doctor), one of another.
    let mut ids = Vec::new();
    for (i, b) in bundles[..3].iter().enumerate() {
        let with: &[&str] = if i < 2 { &[&doctor_address] } else { &[] };
        let (status, body) = t
            .share_bundle(&patient, &format!("Labs {i}"), b, with)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        // What was kept, per type, is what the file holds.
        let kept: BTreeMap<String, u64> =
            serde_json::from_value(body["meta"]["resources"].clone()).unwrap();
        assert_eq!(kept, types_in(&[b]), "bundle {i}");
        assert_eq!(body["meta"]["media_type"], "application/fhir+json");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    let (status, body) = t
        .share_bundle(&other, "Ole's labs", &bundles[3], &[&doctor_address])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mine: Vec<&Vec<u8>> = bundles[..3].iter().collect();
    let shared: Vec<&Vec<u8>> = bundles[..2].iter().collect();

    // The patient: every resource of every served type comes out, in pages, valid R4, with
    // references that lead to this server's resources (none to the bundle's urn:uuid ids).
    let served = [
        "Observation",
        "Condition",
        "Encounter",
        "DiagnosticReport",
        "MedicationRequest",
        "MedicationStatement",
        "Procedure",
        "Immunization",
        "AllergyIntolerance",
        "CarePlan",
    ];
    let counted = types_in(&mine);
    let mut out = BTreeMap::new();
    for kind in served {
        let (total, found) =
            search_all(&t, &format!("/fhir/{kind}?_count=40"), &patient, &mut seen).await;
        assert_eq!(total as usize, found.len(), "{kind}");
        if total > 0 {
            out.insert(kind.to_string(), total);
        }
        let mut ids: Vec<&str> = found.iter().map(|r| r["id"].as_str().unwrap()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), found.len(), "{kind}: ids are unique");
        for r in &found {
            assert_eq!(r["resourceType"], kind);
            let text = r.to_string();
            assert!(
                !text.contains("urn:uuid:"),
                "{kind} keeps a bundle reference: {text}"
            );
            if let Some(subject) = r["subject"]["reference"].as_str() {
                assert_eq!(subject, format!("Patient/{patient_id}"));
            }
        }
    }
    let expected: BTreeMap<String, u64> = counted
        .iter()
        .filter(|(k, _)| served.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert!(expected["Observation"] > 20, "{expected:?}");
    assert_eq!(out, expected, "per type, in the files and out of /fhir");

    // Searches by code, status, category and date count what the files say.
    let observations = resources_of(&mine, "Observation");
    let code = observations[0]["code"]["coding"][0]["code"]
        .as_str()
        .unwrap();
    let with_code = observations
        .iter()
        .filter(|o| o["code"]["coding"][0]["code"] == code)
        .count();
    let (_, found) = fhir_get(
        &t,
        &format!("/fhir/Observation?code=http://loinc.org|{code}&_count=200"),
        Some(&patient),
    )
    .await;
    assert_eq!(found["total"], with_code, "{code}");
    let (_, found) = fhir_get(
        &t,
        "/fhir/Observation?code=http://loinc.org|0000-0&_count=1",
        Some(&patient),
    )
    .await;
    assert_eq!(found["total"], 0);
    let year = observations[0]["effectiveDateTime"].as_str().unwrap()[..4].to_string();
    let in_year = observations
        .iter()
        .filter(|o| o["effectiveDateTime"].as_str().unwrap().starts_with(&year))
        .count();
    let (_, found) = fhir_get(
        &t,
        &format!("/fhir/Observation?date={year}&status=final&category=laboratory&_count=1"),
        Some(&patient),
    )
    .await;
    let lab_final_in_year = observations
        .iter()
        .filter(|o| o["effectiveDateTime"].as_str().unwrap().starts_with(&year))
        .filter(|o| o["status"] == "final")
        .filter(|o| {
            o["category"].as_array().unwrap().iter().any(|c| {
                c["coding"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["code"] == "laboratory")
            })
        })
        .count();
    assert!(lab_final_in_year > 0 && lab_final_in_year <= in_year);
    assert_eq!(found["total"], lab_final_in_year);
    let (status, body) = fhir_get(&t, "/fhir/Observation?value=5", Some(&patient)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Read by id: the same resource the search showed; another type's id is not found.
    let (_, first) = fhir_get(&t, "/fhir/Condition?_count=1", Some(&patient)).await;
    let condition = first["entry"][0]["resource"].clone();
    let id = condition["id"].as_str().unwrap();
    let (status, read) = fhir_get(&t, &format!("/fhir/Condition/{id}"), Some(&patient)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, condition);
    seen.keep("condition", &read);
    let (status, _) = fhir_get(&t, &format!("/fhir/Observation/{id}"), Some(&patient)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The doctor sees the resources of the two bundles shared with them; the search looked into
    // both, so both are logged as viewed (its total counts them), even though the page shows
    // one; a stranger sees none.
    let shared_observations = types_in(&shared)["Observation"];
    let audit_before = t.get("/api/v1/audit", Some(&patient)).await.1["events"]
        .as_array()
        .unwrap()
        .len();
    let (status, page) = fhir_get(
        &t,
        &format!("/fhir/Observation?patient={patient_id}&_count=3"),
        Some(&doctor),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], shared_observations);
    seen.keep("doctor observations", &page);
    let (_, log) = t.get("/api/v1/audit", Some(&patient)).await;
    let events = log["events"].as_array().unwrap();
    assert_eq!(events.len(), audit_before + 1, "{log}");
    let mut sources: Vec<String> = page["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let source = e["resource"]["meta"]["source"].as_str().unwrap();
            source
                .strip_prefix("urn:medledger:record:")
                .unwrap()
                .to_string()
        })
        .collect();
    sources.dedup();
    assert_eq!(sources.len(), 1, "three observations of one bundle");
    assert!(ids[..2].contains(&sources[0]));
    let mut searched: Vec<String> = events[0]["record_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect();
    searched.sort();
    let mut both = ids[..2].to_vec();
    both.sort();
    assert_eq!(searched, both, "{log}");
    assert!(
        events[0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("searched your observations (in 2 reports"),
        "{log}"
    );
    let (_, everyone) = fhir_get(&t, "/fhir/Observation?_count=1", Some(&doctor)).await;
    assert_eq!(
        everyone["total"],
        shared_observations + types_in(&[&bundles[3]])["Observation"],
        "without patient=: every patient who shares with the doctor"
    );
    let (status, none) = fhir_get(
        &t,
        &format!("/fhir/Observation?patient={patient_id}"),
        Some(&stranger),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none["total"], 0);
    let unshared = resources_of(&[&bundles[2]], "Condition").len();
    assert!(unshared > 0);
    let (_, all_conditions) = fhir_get(&t, "/fhir/Condition?_count=200", Some(&patient)).await;
    let hidden = all_conditions["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .find(|id| id.starts_with(&ids[2][2..58]))
        .unwrap();
    let (status, _) = fhir_get(&t, &format!("/fhir/Condition/{hidden}"), Some(&doctor)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a report not shared with the doctor"
    );
    let (status, _) = fhir_get(&t, &format!("/fhir/Condition/{hidden}"), Some(&other)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another patient's");

    // $everything holds them too; the Binary is the bundle as shared.
    let (status, all) = fhir_get(
        &t,
        &format!("/fhir/Patient/{patient_id}/$everything"),
        Some(&patient),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let in_everything = all["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Observation")
        .count() as u64;
    assert_eq!(in_everything, counted["Observation"]);
    seen.keep("everything", &all);
    let bytes = t
        .content(&ids[0], Some(&patient))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.to_vec(), bundles[0]);
    seen.validate();
}

/// A bundle of three haemoglobin results with their reference range (one below it) and a
/// potassium result without one.
fn labs_bundle() -> Value {
    let hb = |when: &str, value: f64| {
        json!({"resource": {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}], "text": "Haemoglobin"},
            "subject": {"reference": "urn:uuid:pat"}, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": "g/dL"},
            "referenceRange": [{"low": {"value": 12.0, "unit": "g/dL"}, "high": {"value": 16.0, "unit": "g/dL"}}]}})
    };
    json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:pat", "resource": {"resourceType": "Patient"}},
        hb("2026-03-01T08:00:00Z", 10.9),
        hb("2026-01-05", 13.5),
        hb("2026-02-02T08:00:00Z", 12.4),
        {"resource": {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}], "text": "Potassium"},
            "effectiveDateTime": "2026-01-05", "valueQuantity": {"value": 4.1, "unit": "mmol/L"}}},
        {"resource": {"resourceType": "Observation", "status": "final",
            "code": {"text": "Smoking status"}, "valueString": "never"}},
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_trends_chart_the_measurements_for_the_patient_and_an_allowed_doctor() {
    use crate::{PASSWORD, pages::Browser};
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Trend General", "Lille").await;
    let (doctor_address, _) = t.add_doctor(&admin, "dr.trend", hospital).await;
    t.add_doctor(&admin, "dr.other", hospital).await;
    let (patient_address, patient) = t.sign_up("tina", "Tina Trend").await;
    let (status, body) = t
        .share_bundle(
            &patient,
            "Blood counts",
            &serde_json::to_vec(&labs_bundle()).unwrap(),
            &[&doctor_address],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let record = body["id"].as_str().unwrap().to_string();

    let check = |html: &str| {
        let html = html.replace("&#x2f;", "/");
        assert!(html.contains("<svg"), "{html}");
        let hb = html
            .split("<h2>Haemoglobin")
            .nth(1)
            .expect("a haemoglobin chart");
        let hb = hb.split("</section>").next().unwrap();
        assert!(hb.contains("(g/dL)"), "{hb}");
        assert!(hb.contains("reference range 12.0–16.0 g/dL"), "{hb}");
        assert!(hb.contains("class=\"range\""), "the range band: {hb}");
        assert_eq!(hb.matches("<circle").count(), 3, "{hb}");
        assert_eq!(hb.matches("class=\"out\"").count(), 1, "{hb}");
        assert!(
            hb.contains("2026-03-01T08:00:00Z: 10.9 g/dL (outside the range)"),
            "{hb}"
        );
        // In time order: January, February, March.
        let jan = hb.find("2026-01-05: 13.5").unwrap();
        let feb = hb.find("2026-02-02T08:00:00Z: 12.4").unwrap();
        assert!(jan < feb, "{hb}");
        let k = html
            .split("<h2>Potassium")
            .nth(1)
            .expect("a potassium chart");
        let k = k.split("</section>").next().unwrap();
        assert!(
            k.contains("(mmol/L)") && !k.contains("class=\"range\""),
            "{k}"
        );
        assert!(!html.contains("Smoking status"), "not numeric: no chart");
    };
    let mut tina = Browser::new(&t).await;
    tina.login("tina", PASSWORD).await;
    let (r, html) = tina.get("/patient/trends").await;
    assert_eq!(r.status, StatusCode::OK, "{html}");
    check(&html);

    let events = |log: Value| log["events"].as_array().unwrap().clone();
    let before = events(t.get("/api/v1/audit", Some(&patient)).await.1).len();
    let mut doctor = Browser::new(&t).await;
    doctor.login("dr.trend", PASSWORD).await;
    let (_, chart) = doctor
        .get(&format!("/doctor/patients/{patient_address}"))
        .await;
    let chart = chart.replace("&#x2f;", "/").to_lowercase();
    assert!(chart.contains(&format!(
        "/doctor/patients/{}/trends",
        patient_address.to_lowercase()
    )));
    let after_chart = events(t.get("/api/v1/audit", Some(&patient)).await.1).len();
    let (r, html) = doctor
        .get(&format!("/doctor/patients/{patient_address}/trends"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{html}");
    check(&html);
    let log = events(t.get("/api/v1/audit", Some(&patient)).await.1);
    assert!(after_chart > before);
    assert_eq!(
        log.len(),
        after_chart + 1,
        "the trends page is one logged view"
    );
    assert_eq!(log[0]["record_ids"], json!([record]));

    // A doctor without a grant sees no measurement, and nothing is logged for them.
    let mut other = Browser::new(&t).await;
    other.login("dr.other", PASSWORD).await;
    let (r, html) = other
        .get(&format!("/doctor/patients/{patient_address}/trends"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html.contains("No numeric measurement yet") && !html.contains("Haemoglobin"));
    assert_eq!(
        events(t.get("/api/v1/audit", Some(&patient)).await.1).len(),
        log.len()
    );
    // The patient's page is theirs alone.
    let (r, _) = other.get("/patient/trends").await;
    assert_ne!(r.status, StatusCode::OK);
}
