//! The trust issue's findings, each shown fixed over HTTP: break-glass is bounded, seen by the
//! patient at once and ended by them or an admin; every read of a patient's data by someone
//! else leaves a trace the patient sees (one transaction per request); a wrapped key is used
//! only while the chain allows; a grant reveals only what its purpose needs.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Backend, TestApp, pages::Browser};

fn actions(audit: &Value) -> Vec<String> {
    audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

/// Finding 2: a doctor with no relation to the patient could declare an emergency, read the
/// patient's reports and details, and declare again to extend it, indefinitely, while the
/// patient saw nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_is_bounded_seen_at_once_and_ended_by_the_patient_or_an_admin() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "St Mary", "Lyon").await;
    let (_, doctor) = t.add_doctor(&admin, "dr.glass", hospital).await;
    let (patient_address, patient) = t.sign_up("erin", "Erin Emergency").await;
    let (_, other) = t.sign_up("olga", "Olga Other").await;
    let record = t.share(&patient, "Allergy list", "penicillin", &[]).await;

    let declare = json!({ "patient": patient_address, "reason": "unconscious, no ID on arrival" });
    let (status, declared) = t
        .post("/api/v1/emergency", Some(&doctor), declare.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{declared}");
    let id = declared["id"].as_u64().unwrap();
    // No silent extension.
    let (status, again) = t
        .post("/api/v1/emergency", Some(&doctor), declare.clone())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be extended")
    );

    // The patient sees it at once, with its reason, on the API and on every page.
    let (_, list) = t.get("/api/v1/emergencies", Some(&patient)).await;
    let e = &list["emergencies"][0];
    assert_eq!(e["open"], true, "{list}");
    assert_eq!(e["reason"], "unconscious, no ID on arrival");
    assert_eq!(e["doctor_name"], "Dr. dr.glass");
    assert_eq!(e["hospital"], "St Mary");
    let (_, audit) = t.get("/api/v1/audit", Some(&patient)).await;
    assert_eq!(actions(&audit), ["declared_emergency"], "{audit}");
    assert!(
        audit["events"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("unconscious")
    );
    let browser = Browser::new(&t).await;
    browser.login("erin", crate::PASSWORD).await;
    for page in [
        "/patient",
        "/patient/sharing",
        "/patient/access-log",
        "/hospitals",
    ] {
        let (head, html) = browser.get(page).await;
        assert_eq!(head.status, StatusCode::OK, "{page}");
        assert!(
            html.contains("Emergency access to your records is open"),
            "{page}"
        );
        assert!(html.contains("unconscious, no ID on arrival"), "{page}");
        assert!(html.contains(&format!("/emergencies/{id}/end")), "{page}");
    }
    // The other patient sees nothing of it.
    let (_, list) = t.get("/api/v1/emergencies", Some(&other)).await;
    assert_eq!(list["emergencies"], json!([]));

    // What the doctor does under it shows up, flagged.
    let (_, records) = t
        .get(
            &format!("/api/v1/records?patient={patient_address}"),
            Some(&doctor),
        )
        .await;
    assert_eq!(records["records"][0]["meta"]["title"], "Allergy list");
    assert_eq!(
        t.content(&record, Some(&doctor)).await.status(),
        StatusCode::OK
    );
    let (_, list) = t.get("/api/v1/emergencies", Some(&patient)).await;
    let used: Vec<&str> = list["emergencies"][0]["used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(
        used,
        ["viewed the details of Allergy list", "opened Allergy list"]
    );

    // Only the patient or an admin ends it; then access stops at once.
    let end = format!("/api/v1/emergencies/{id}/end");
    for who in [&doctor, &other] {
        let (status, body) = t.post(&end, Some(who), json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let (status, ended) = t.post(&end, Some(&patient), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    crate::assert_transaction(&ended);
    assert_eq!(
        t.content(&record, Some(&doctor)).await.status(),
        StatusCode::FORBIDDEN
    );
    let (_, records) = t
        .get(
            &format!("/api/v1/records?patient={patient_address}"),
            Some(&doctor),
        )
        .await;
    assert_eq!(records["records"], json!([]));
    let (status, _) = t.post(&end, Some(&patient), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "ended already");
    let (_, list) = t.get("/api/v1/emergencies", Some(&patient)).await;
    assert_eq!(list["emergencies"][0]["open"], false);
    let (_, html) = browser.get("/patient").await;
    assert!(html.contains("An emergency access to your records ended"));
    assert!(html.contains("ended by erin"));

    // Declared again (allowed once ended), listed on the admin's dashboard, ended by the admin.
    let (status, declared) = t
        .post("/api/v1/emergency", Some(&doctor), declare.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{declared}");
    let id = declared["id"].as_u64().unwrap();
    let (_, open) = t.get("/api/v1/emergencies", Some(&admin)).await;
    assert_eq!(open["emergencies"].as_array().unwrap().len(), 1);
    assert!(
        open["emergencies"][0]
            .get("reason")
            .is_none_or(Value::is_null),
        "the admin does not read the reason"
    );
    let admin_browser = Browser::new(&t).await;
    admin_browser.login("admin", crate::ADMIN_PASSWORD).await;
    let (_, html) = admin_browser.get("/admin").await;
    assert!(html.contains(&format!("/emergencies/{id}/end")), "{html}");
    let response = admin_browser
        .post(
            &format!("/emergencies/{id}/end"),
            &[("csrf", &admin_browser.csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        t.content(&record, Some(&doctor)).await.status(),
        StatusCode::FORBIDDEN
    );
    let (_, open) = t.get("/api/v1/emergencies", Some(&admin)).await;
    assert_eq!(open["emergencies"], json!([]));
    // The daily cap (three here): the third declaration goes through, the fourth does not.
    let (status, declared) = t
        .post("/api/v1/emergency", Some(&doctor), declare.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{declared}");
    let id = declared["id"].as_u64().unwrap();
    t.post(
        &format!("/api/v1/emergencies/{id}/end"),
        Some(&patient),
        json!({}),
    )
    .await;
    let (status, capped) = t.post("/api/v1/emergency", Some(&doctor), declare).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{capped}");
    assert!(
        capped["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3 emergencies today")
    );
    let (_, audit) = t.get("/api/v1/audit", Some(&patient)).await;
    let declared = actions(&audit)
        .iter()
        .filter(|a| *a == "declared_emergency")
        .count();
    let ended = actions(&audit)
        .iter()
        .filter(|a| *a == "ended_emergency")
        .count();
    assert_eq!((declared, ended), (3, 3), "{audit}");
}

/// Finding 3: only downloads were audited. Now every response that shows a patient's data to
/// someone else is preceded by an on-chain event signed by the reader — one transaction per
/// request — and the patient's log shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_of_a_patients_data_leaves_a_trace_they_see() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Central", "Lyon").await;
    let (doctor_address, doctor) = t.add_doctor(&admin, "dr.read", hospital).await;
    let (patient_address, patient) = t.sign_up("rita", "Rita Reader").await;
    let first = t.share(&patient, "Blood panel March", "Hb 13.9", &[]).await;
    t.share(&patient, "Chest X-ray", "clear", &[]).await;
    let (status, body) = t
        .post(
            "/api/v1/grants",
            Some(&patient),
            json!({ "doctor": doctor_address, "scope": "all", "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The patient's own reads are not logged.
    t.get("/api/v1/records", Some(&patient)).await;
    let (_, audit) = t.get("/api/v1/audit", Some(&patient)).await;
    assert_eq!(actions(&audit), Vec::<String>::new());

    let (_, list) = t
        .get(
            &format!("/api/v1/records?patient={patient_address}"),
            Some(&doctor),
        )
        .await;
    assert_eq!(list["records"].as_array().unwrap().len(), 2);
    let (_, patients) = t.get("/api/v1/patients", Some(&doctor)).await;
    assert_eq!(patients["patients"][0]["name"], "Rita Reader");
    let (status, _) = t
        .get(&format!("/api/v1/records/{first}"), Some(&doctor))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        t.content(&first, Some(&doctor)).await.status(),
        StatusCode::OK
    );
    let (status, _) = t
        .post(
            "/api/v1/prescriptions",
            Some(&doctor),
            json!({ "patient": patient_address, "medications": [{ "name": "Iron" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, written) = t.get("/api/v1/prescriptions", Some(&doctor)).await;
    assert_eq!(
        written["prescriptions"][0]["body"]["medications"][0]["name"],
        "Iron"
    );
    // The doctor's page of the patient: records and profile, one view in one transaction.
    let browser = Browser::new(&t).await;
    browser.login("dr.read", crate::PASSWORD).await;
    let (head, html) = browser
        .get(&format!("/doctor/patients/{patient_address}"))
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(html.contains("Rita Reader") && html.contains("Chest X-ray"));

    let (_, audit) = t.get("/api/v1/audit", Some(&patient)).await;
    assert_eq!(
        actions(&audit),
        [
            "viewed",
            "viewed_profile",
            "viewed",
            "opened",
            "viewed",
            "viewed",
            "viewed_profile"
        ],
        "{audit}"
    );
    let events = audit["events"].as_array().unwrap();
    let summaries: Vec<&str> = events
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    // Records listed in the same second come in id order.
    assert!(
        summaries[0].starts_with("viewed the list of records (2: ")
            && summaries[0].contains("Blood panel March")
            && summaries[0].contains("Chest X-ray"),
        "{audit}"
    );
    assert_eq!(
        summaries[1..5],
        [
            "viewed the profile: name and date of birth",
            "viewed the details of Blood panel March",
            "opened Blood panel March",
            "viewed the details of Prescription",
        ],
        "{audit}"
    );
    assert!(events.iter().all(|e| e["reader_name"] == "Dr. dr.read"));
    // The chart's views are one transaction; every request made at most one.
    assert_eq!(events[5]["tx_hash"], events[6]["tx_hash"]);
    let mut hashes: Vec<&str> = events
        .iter()
        .map(|e| e["tx_hash"].as_str().unwrap())
        .collect();
    hashes.dedup();
    assert_eq!(hashes.len(), 6);
    assert!(events[6]["summary"].as_str().unwrap().contains("contact"));
}

/// "A wrapped key is never used unless the chain allows that reader at that moment": an
/// expired grant reveals nothing, not even the profile, though the doctor's wrapped keys are
/// still in the database. And a grant reveals only what its purpose needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_grant_reveals_nothing_and_a_narrow_grant_only_what_it_needs() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Central", "Lyon").await;
    let (doctor_address, doctor) = t.add_doctor(&admin, "dr.late", hospital).await;
    let (research_address, researcher) = t.add_doctor(&admin, "dr.research", hospital).await;
    let (patient_address, patient) = t.sign_up("nell", "Nell Narrow").await;
    let record = t
        .share(&patient, "Thyroid panel", "TSH 2.1", &[&doctor_address])
        .await;
    let (status, body) = t
        .post(
            "/api/v1/grants",
            Some(&patient),
            json!({ "doctor": research_address, "scope": "all", "purpose": "research", "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A single-record treatment grant shows who the patient is, not how to reach them.
    let browser = Browser::new(&t).await;
    browser.login("dr.late", crate::PASSWORD).await;
    let (_, html) = browser
        .get(&format!("/doctor/patients/{patient_address}"))
        .await;
    assert!(
        html.contains("Nell Narrow") && html.contains("Thyroid panel"),
        "{html}"
    );
    assert!(
        !html.contains("+33 6 00 00 00 00"),
        "no contact for a single-record grant"
    );
    // A research grant shows no profile at all.
    let (_, patients) = t.get("/api/v1/patients", Some(&researcher)).await;
    assert_eq!(patients["patients"], json!([]));
    let (_, list) = t
        .get(
            &format!("/api/v1/records?patient={patient_address}&purpose=research"),
            Some(&researcher),
        )
        .await;
    assert_eq!(list["records"][0]["meta"]["title"], "Thyroid panel");
    let wraps: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM wraps WHERE reader = ? AND object_id LIKE 'profile:%'",
    )
    .bind(research_address.to_lowercase())
    .fetch_one(t.app.db())
    .await
    .unwrap();
    assert_eq!(wraps, 0, "a research grantee holds no key to the profile");

    // The grant (30 days) expires; the doctor's wrapped keys are still stored.
    t.advance(31 * 86_400).await;
    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM wraps WHERE reader = ?")
        .bind(doctor_address.to_lowercase())
        .fetch_one(t.app.db())
        .await
        .unwrap();
    assert!(
        held >= 2,
        "record and profile keys still wrapped for the doctor"
    );
    let (_, audit_before) = t.get("/api/v1/audit", Some(&patient)).await;
    let (_, patients) = t.get("/api/v1/patients", Some(&doctor)).await;
    assert_eq!(patients["patients"], json!([]));
    let (head, html) = browser
        .get(&format!("/doctor/patients/{patient_address}"))
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(
        !html.contains("Nell Narrow") && !html.contains("Thyroid panel"),
        "{html}"
    );
    assert_eq!(
        t.content(&record, Some(&doctor)).await.status(),
        StatusCode::FORBIDDEN
    );
    let (status, _) = t
        .get(&format!("/api/v1/records/{record}"), Some(&doctor))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, audit_after) = t.get("/api/v1/audit", Some(&patient)).await;
    assert_eq!(
        audit_before, audit_after,
        "nothing was shown, so nothing was logged"
    );
}
