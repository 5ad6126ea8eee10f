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
    let mut browser = Browser::new(&t).await;
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
    let mut admin_browser = Browser::new(&t).await;
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
    let mut browser = Browser::new(&t).await;
    browser.login("dr.read", crate::PASSWORD).await;
    let (head, html) = browser
        .get(&format!("/doctor/patients/{patient_address}"))
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(html.contains("Rita Reader") && html.contains("Chest X-ray"));

    let (_, mut audit) = t.get("/api/v1/audit", Some(&patient)).await;
    // The log comes the most recent first; read it in the order things happened.
    audit["events"].as_array_mut().unwrap().reverse();
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
    let mut browser = Browser::new(&t).await;
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
        "SELECT COUNT(*) FROM wraps WHERE reader = $1 AND object_id LIKE 'profile:%'",
    )
    .bind(research_address.to_lowercase())
    .fetch_one(t.app.db())
    .await
    .unwrap();
    assert_eq!(wraps, 0, "a research grantee holds no key to the profile");

    // The grant (30 days) expires; the doctor's wrapped keys are still stored.
    t.advance(31 * 86_400).await;
    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM wraps WHERE reader = $1")
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

/// Finding 4: the admin set each doctor's password, so the operator could log in as any doctor.
/// Now adding a doctor makes an invitation and a one-time link; the doctor chooses their own
/// password there and their key is made then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_cannot_become_a_doctor_doctors_enrol_through_one_time_links() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Central", "Lyon").await;
    // Whatever the admin sends, no login is made: a password in the request is ignored.
    let (status, invited) = t
        .post(
            "/api/v1/doctors",
            Some(&admin),
            json!({ "name": "Dr. Own", "hospital_id": hospital,
                    "username": "dr.own", "password": "the admin's guess 123" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invited}");
    crate::assert_transaction(&invited);
    let token = invited["token"].as_str().unwrap().to_string();
    // The whole link, on the deployment's public URL, to send as it is.
    assert_eq!(invited["enrolment_url"], format!("{}/enrol/{token}", t.url));
    let link = t.path_of(invited["enrolment_url"].as_str().unwrap());
    let (status, _) = t
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "username": "dr.own", "password": "the admin's guess 123" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, doctors) = t.get("/api/v1/doctors", None).await;
    assert_eq!(
        doctors["doctors"],
        json!([]),
        "not in the directory until enrolled"
    );
    let (_, open) = t.get("/api/v1/enrolments", Some(&admin)).await;
    assert_eq!(open["enrolments"][0]["name"], "Dr. Own");
    assert!(
        !open.to_string().contains(&token),
        "the link is shown once, never listed"
    );
    // The server keeps the token only hashed.
    if t.app.engine() == medledger_records::db::Engine::Sqlite {
        let db = std::fs::read(t.dir.path().join("medledger.db")).unwrap();
        let wal = std::fs::read(t.dir.path().join("medledger.db-wal")).unwrap_or_default();
        for bytes in [&db, &wal] {
            assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
        }
    } else {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT invite_key, token_hash FROM invites")
                .fetch_all(t.app.db())
                .await
                .unwrap();
        assert!(!rows.is_empty());
        for (key, hash) in rows {
            assert!(!key.contains(&token) && !hash.contains(&token), "{hash}");
        }
    }

    // The link's holder sees what it is for, and enrols with their own password.
    let (status, what) = t.get(&format!("/api/v1{link}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (what["role"].as_str(), what["status"].as_str()),
        (Some("doctor"), Some("open"))
    );
    let (status, _) = t.get("/api/v1/enrol/not-a-token", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = t
        .post(
            &format!("/api/v1{link}"),
            None,
            json!({ "username": "dr.own", "password": "short" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let address = t.enrol(&link, "dr.own").await;
    let doctor = t.login("dr.own", crate::PASSWORD).await;
    let (_, me) = t.get("/api/v1/me", Some(&doctor)).await;
    assert_eq!(
        (me["role"].as_str(), me["address"].as_str()),
        (Some("doctor"), Some(address.as_str()))
    );
    let (_, d) = t.get(&format!("/api/v1/doctors/{address}"), None).await;
    assert_eq!(
        (d["name"].as_str(), d["active"].as_bool()),
        (Some("Dr. Own"), Some(true))
    );
    // Once only.
    let (status, body) = t
        .post(
            &format!("/api/v1{link}"),
            None,
            json!({ "username": "dr.again", "password": crate::PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, what) = t.get(&format!("/api/v1{link}"), None).await;
    assert_eq!(what["status"], "used");

    // A withdrawn link and an expired one take nobody in.
    let (withdrawn, key) = invite(&t, &admin, hospital).await;
    let (status, body) = t
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/enrolments/{key}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t
        .post(
            &format!("/api/v1{withdrawn}"),
            None,
            json!({ "username": "dr.w", "password": crate::PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (expired, _) = invite(&t, &admin, hospital).await;
    t.advance(8 * 86_400).await;
    let (status, body) = t
        .post(
            &format!("/api/v1{expired}"),
            None,
            json!({ "username": "dr.e", "password": crate::PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert!(
        t.app
            .people()
            .account_by_name("dr.w")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        t.app
            .people()
            .account_by_name("dr.e")
            .await
            .unwrap()
            .is_none()
    );

    // Another admin enrols the same way; a doctor cannot invite anyone.
    let (status, body) = t.post("/api/v1/admins", Some(&doctor), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, invited) = t.post("/api/v1/admins", Some(&admin), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{invited}");
    t.enrol(invited["enrolment_url"].as_str().unwrap(), "second.admin")
        .await;
    let second = t.login("second.admin", crate::PASSWORD).await;
    let (status, _) = t
        .post(
            "/api/v1/hospitals",
            Some(&second),
            json!({ "name": "North", "city": "Lille" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

/// A doctor's invitation: its link and its key.
async fn invite(t: &TestApp, admin: &str, hospital: u64) -> (String, String) {
    let (_, body) = t
        .post(
            "/api/v1/doctors",
            Some(admin),
            json!({ "name": "Dr. Later", "hospital_id": hospital }),
        )
        .await;
    (
        t.path_of(body["enrolment_url"].as_str().unwrap()),
        body["invite_key"].as_str().unwrap().to_string(),
    )
}

pub(crate) fn totp(secret: &str) -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
}

pub(crate) fn code_at(totp: &totp_rs::Totp, offset: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    totp.generate((now + offset) as u64).to_string()
}

/// A six-digit code that `totp` gives at no time step near now (so surely refused; a fixed
/// code is right by chance for one secret in about 330,000).
pub(crate) fn wrong_code_for(totp: &totp_rs::Totp) -> String {
    let near: Vec<String> = (-3..=3).map(|step| code_at(totp, step * 30)).collect();
    (0..10)
        .map(|d| d.to_string().repeat(6))
        .find(|code| !near.contains(code))
        .expect("seven codes cannot cover ten")
}

/// `wrong_code_for` the secret (base32) an account was given.
pub(crate) fn wrong_code(secret: &str) -> String {
    wrong_code_for(&totp(secret))
}

/// TOTP second factors (RFC 6238), with codes computed here: `--require-mfa admin,doctor`
/// confines such an account to setting one up; then logging in needs a code, each used once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_guards_the_privileged_roles_that_require_it() {
    use medledger_records::model::Role;
    let t = TestApp::spawn_requiring_mfa(vec![Role::Admin, Role::Doctor]).await;
    let login = |user: &'static str, code: Option<String>| {
        let t = &t;
        async move {
            let mut body = json!({ "username": user, "password": crate::ADMIN_PASSWORD });
            if let Some(c) = code {
                body["code"] = json!(c);
            }
            t.post("/api/v1/auth/login", None, body).await
        }
    };
    let (status, session) = login("admin", None).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["must_set_up_second_factor"], true);
    let admin = session["token"].as_str().unwrap().to_string();
    // Nothing but the setup until it is done.
    let (status, refused) = t
        .post(
            "/api/v1/hospitals",
            Some(&admin),
            json!({ "name": "Central", "city": "Lyon" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "second_factor_setup_required");
    let (status, me) = t.get("/api/v1/me", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            me["second_factor"].as_bool(),
            me["second_factor_required"].as_bool()
        ),
        (Some(false), Some(true))
    );
    let (status, setup) = t.post("/api/v1/me/mfa", Some(&admin), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{setup}");
    assert!(
        setup["otpauth_url"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let totp = totp(setup["secret"].as_str().unwrap());
    let (status, _) = t
        .post(
            "/api/v1/me/mfa/confirm",
            Some(&admin),
            json!({ "code": wrong_code_for(&totp) }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = t
        .post(
            "/api/v1/me/mfa/confirm",
            Some(&admin),
            json!({ "code": code_at(&totp, 0) }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = t
        .post(
            "/api/v1/hospitals",
            Some(&admin),
            json!({ "name": "Central", "city": "Lyon" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the session may act once it is set up"
    );
    let (_, me) = t.get("/api/v1/me", Some(&admin)).await;
    assert_eq!(me["second_factor"], true);
    let (status, body) = t
        .post(
            "/api/v1/me/mfa/off",
            Some(&admin),
            json!({ "code": code_at(&totp, 30) }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a required factor stays on: {body}"
    );

    // From now on a login needs a code: none, a wrong one or a used one is refused.
    let (status, body) = login("admin", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "second_factor_required", "{body}");
    assert!(body.get("token").is_none());
    let (status, _) = login("admin", Some(wrong_code_for(&totp))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = login("admin", Some(code_at(&totp, 0))).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the confirming code was used already"
    );
    let next = code_at(&totp, 30);
    let (status, session) = login("admin", Some(next.clone())).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["must_set_up_second_factor"], false);
    let (status, _) = login("admin", Some(next)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a code works once");

    // A patient's role does not require one; an admin's browser session goes to the setup.
    let (_, patient) = t.sign_up("pia", "Pia Patient").await;
    let (status, _) = t.get("/api/v1/records", Some(&patient)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, invited) = t
        .post(
            "/api/v1/doctors",
            Some(session["token"].as_str().unwrap()),
            json!({ "name": "Dr. Two", "hospital_id": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invited}");
    t.enrol(invited["enrolment_url"].as_str().unwrap(), "dr.two")
        .await;
    let doctor = t.login("dr.two", crate::PASSWORD).await;
    let (status, body) = t.get("/api/v1/patients", Some(&doctor)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let browser = Browser::new(&t).await;
    let response = browser
        .post(
            "/login",
            &[
                ("username", "dr.two"),
                ("password", crate::PASSWORD),
                ("csrf", &browser.csrf),
            ],
        )
        .await;
    assert_eq!(response.headers()["location"], "/account?mfa=required");
    let (head, _) = browser.get("/doctor").await;
    assert_eq!(head.status, StatusCode::SEE_OTHER);
    let (head, html) = browser.get("/account?mfa=required").await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(html.contains("Set up a second factor"), "{html}");
}
