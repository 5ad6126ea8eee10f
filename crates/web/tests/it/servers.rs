//! Two app servers of one deployment (one PostgreSQL database, one chain, one blob store),
//! started at the same moment: one deploys; a person logged in on either is served by both;
//! what one writes the other opens; a revocation on one is refused by the other at once; and
//! both signing for the same person at the same moment do not collide on nonces.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_serve_the_same_people() {
    let (a, b) = TestApp::spawn_pair().await;

    // The admin logs in on A and works on B with the same session.
    let admin = a.admin().await;
    let hospital = b.add_hospital(&admin, "General Hospital", "Lyon").await;
    let (doctor_address, doctor) = a.add_doctor(&admin, "dr.house", hospital).await;
    let (status, me) = b.get("/api/v1/me", Some(&doctor)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a doctor logged in on A is known to B: {me}"
    );
    assert_eq!(me["role"], "doctor");

    // A page's form from A is accepted by B: its token is the session's, not the server's.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = format!("medledger_session={admin}");
    let html = browser
        .get(format!("{}/admin/hospitals", a.url))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page has a form")
        .to_string();
    let posted = browser
        .post(format!("{}/admin/hospitals", b.url))
        .header(reqwest::header::COOKIE, &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "North Clinic"),
            ("city", "Lille"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::SEE_OTHER);
    let (_, found) = a.get("/api/v1/hospitals?city=lille", None).await;
    assert_eq!(found["hospitals"][0]["name"], "North Clinic", "{found}");

    // A patient signs up on B and logs in there; the session works on A.
    let (patient_address, patient) = b.sign_up("alice", "Alice Moreau").await;
    let (status, _) = a.get("/api/v1/me", Some(&patient)).await;
    assert_eq!(status, StatusCode::OK);

    // The patient shares from both servers at the same moment: the same signer on two servers,
    // so the nonces must be taken in turn across them.
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut uploads = tokio::task::JoinSet::new();
    for i in 0..6 {
        let server = if i % 2 == 0 { a.clone() } else { b.clone() };
        let patient = patient.clone();
        uploads.spawn(async move {
            let title = format!("Panel {i}");
            let text = format!("Potassium 4.{i} mmol/L\n");
            let (status, body) = server
                .upload(
                    Some(&patient),
                    &[
                        ("title", &title),
                        ("kind", "report"),
                        ("date", "2026-11-20"),
                    ],
                    Some(("panel.txt", text.into_bytes())),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "upload {i}: {body}");
            (i, body["id"].as_str().unwrap().to_string())
        });
    }
    let mut shared = uploads.join_all().await;
    shared.sort();
    let (_, mine) = a.get("/api/v1/records", Some(&patient)).await;
    assert_eq!(mine["records"].as_array().unwrap().len(), 6, "{mine}");
    for (i, id) in &shared {
        // Each report opens on the server that did not write it.
        let other = if i % 2 == 0 { &b } else { &a };
        let response = other.content(id, Some(&patient)).await;
        assert_eq!(response.status(), StatusCode::OK, "report {i}");
        let text = response.text().await.unwrap();
        assert_eq!(text, format!("Potassium 4.{i} mmol/L\n"));
    }

    // The patient grants on A; the doctor opens on B.
    let (status, body) = a
        .post(
            "/api/v1/grants",
            Some(&patient),
            json!({ "doctor": doctor_address, "scope": "all", "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let record = &shared[0].1;
    let response = b.content(record, Some(&doctor)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Potassium 4.0"));

    // The patient revokes on B; A refuses the doctor at once.
    let (_, grants) = b.get("/api/v1/grants", Some(&patient)).await;
    let grant = grants["grants"][0]["id"].as_u64().unwrap();
    let (status, revoked) = b
        .call(
            Method::DELETE,
            &format!("/api/v1/grants/{grant}"),
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    let response = a.content(record, Some(&doctor)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (_, records) = a
        .get(
            &format!("/api/v1/records?patient={patient_address}"),
            Some(&doctor),
        )
        .await;
    assert_eq!(records["records"].as_array().unwrap().len(), 0);

    // The doctor's opening (on B) is in the patient's access log on A.
    let (_, audit) = a.get("/api/v1/audit", Some(&patient)).await;
    let opened = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "opened" && e["reader_name"] == "Dr. dr.house")
        .count();
    assert_eq!(opened, 1, "{audit}");

    // Logging out on A ends the session on B.
    let (status, _) = a
        .call(Method::POST, "/api/v1/auth/logout", Some(&patient), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = b.get("/api/v1/me", Some(&patient)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
