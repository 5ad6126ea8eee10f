//! What must hold against mistakes and attackers: tampered blobs, a stolen data directory, bad
//! uploads, password guessing, sessions, malformed input, and the OpenAPI document matching the
//! routes.

use std::collections::BTreeSet;

use medledger_records::accounts;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use sqlx::Row;

use crate::{Backend, MAX_UPLOAD, PASSWORD, TestApp};

/// Every file under `dir`, with its bytes.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_blob_is_refused_and_never_returned() {
    tampered_blob(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_blob_is_refused_and_never_returned_on_postgresql_and_s3() {
    tampered_blob(Backend::PostgresS3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_blob_is_refused_and_never_returned_on_ganache() {
    tampered_blob(Backend::Ganache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_blob_is_refused_and_never_returned_on_anvil() {
    tampered_blob(Backend::Anvil).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_blob_is_refused_and_never_returned_on_hardhat() {
    tampered_blob(Backend::Hardhat).await;
}

async fn tampered_blob(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (_, patient) = t.sign_up("tina", "Tina Tamper").await;
    let record = t
        .share(&patient, "X-ray", "original findings: normal", &[])
        .await;
    // The blob altered where it is kept (a file, or an object in the bucket).
    let blob = record.trim_start_matches("0x");
    assert_eq!(t.blob_names().await, [blob]);
    let store = t.app.blobs();
    let mut bytes = store.get(blob).await.unwrap().unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0x01;
    store.put(blob, bytes).await.unwrap();

    let response = t.content(&record, Some(&patient)).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "integrity_failure", "{body}");
    assert!(!body.to_string().contains("findings"));
    let (status, meta) = t
        .get(&format!("/api/v1/records/{record}"), Some(&patient))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(meta["anchor"]["integrity"], "mismatch");
    let report = t.app.verify_blobs().await.unwrap();
    assert_eq!((report.checked, report.bad.len()), (1, 1));
    assert_eq!(report.bad[0].1.to_string(), "mismatch");
    // Nothing was logged as opened.
    let (_, audit) = t.get("/api/v1/audit", Some(&patient)).await;
    assert_eq!(audit["events"].as_array().unwrap().len(), 0);

    store.delete(blob).await.unwrap();
    let response = t.content(&record, Some(&patient)).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_without_a_grant_cannot_decrypt_a_full_copy_of_the_data_directory() {
    // The copy is of the SQLite file itself.
    let t = TestApp::spawn_on_sqlite().await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Central", "Lyon").await;
    let (granted, _) = t.add_doctor(&admin, "dr.granted", hospital).await;
    let (_outsider, _) = t.add_doctor(&admin, "dr.outsider", hospital).await;
    let (_, patient) = t.sign_up("dora", "Dora SECRET-NAME").await;
    let secret = "SECRET-DIAGNOSIS stage II";
    let (status, body) = t
        .upload(
            Some(&patient),
            &[("title", "SECRET-TITLE biopsy"), ("share_with", &granted)],
            Some(("dora-private-file-name.txt", secret.as_bytes().to_vec())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let record = body["id"].as_str().unwrap().to_string();

    // The whole data directory, copied (SQLite, WAL and blobs).
    let copy = tempfile::tempdir().unwrap();
    for (path, bytes) in files(t.dir.path()) {
        let target = copy.path().join(path.strip_prefix(t.dir.path()).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
    // No secret and no client file name appears in plain text anywhere in it.
    for (path, bytes) in files(copy.path()) {
        for needle in [
            secret,
            "SECRET-TITLE",
            "SECRET-NAME",
            "dora-private-file-name",
        ] {
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "{needle} in {}",
                path.display()
            );
        }
    }

    // With their own password the outsider unlocks their keystore (as they could offline) and
    // tries every wrapped key in the copy: none opens. The granted doctor's key opens the record.
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        copy.path().join("medledger.db").display()
    ))
    .await
    .unwrap();
    let keystore_of = |name: &'static str| {
        let db = db.clone();
        async move {
            let row = sqlx::query("SELECT keystore FROM users WHERE username = $1")
                .bind(name)
                .fetch_one(&db)
                .await
                .unwrap();
            let json: String = row.get("keystore");
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("k.json"), json).unwrap();
            let signer = alloy::signers::local::PrivateKeySigner::decrypt_keystore(
                dir.path().join("k.json"),
                PASSWORD,
            )
            .unwrap();
            accounts::encryption_key(&signer)
        }
    };
    let outsider_key = keystore_of("dr.outsider").await;
    let granted_key = keystore_of("dr.granted").await;
    let wraps = sqlx::query("SELECT object_id, wrapped FROM wraps")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(wraps.len() >= 4, "patient, escrow and grantee wraps");
    let mut granted_opened = None;
    for row in &wraps {
        let object: String = row.get("object_id");
        let wrapped: Vec<u8> = row.get("wrapped");
        assert!(medledger_vault::unwrap(&outsider_key, &wrapped, object.as_bytes()).is_err());
        if object == record
            && let Ok(dek) = medledger_vault::unwrap(&granted_key, &wrapped, object.as_bytes())
        {
            granted_opened = Some(dek);
        }
    }
    let dek = granted_opened.expect("the granted doctor holds a key to the record");
    let blob = std::fs::read(
        copy.path()
            .join("blobs")
            .join(record.trim_start_matches("0x")),
    )
    .unwrap();
    let plain = medledger_vault::open(&dek, record.as_bytes(), &blob).unwrap();
    assert_eq!(plain, secret.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_blob_store_degrades_health_and_refuses_uploads_clearly() {
    let t = TestApp::spawn(Backend::PostgresS3).await;
    let (_, patient) = t.sign_up("bea", "Bea Bucket").await;
    let kept = t
        .share(&patient, "Kept", "stored before the outage", &[])
        .await;
    t.seaweed.as_ref().unwrap().kill();

    let (status, health) = t.get("/healthz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["degraded"], json!(["blob_store"]), "{health}");
    assert_eq!(health["backends"]["database"]["ok"], true, "{health}");
    assert_eq!(health["backends"]["chain"]["ok"], true, "{health}");

    let (status, body) = t
        .upload(
            Some(&patient),
            &[("title", "During the outage")],
            Some(("scan.txt", b"not stored".to_vec())),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("storage"), "{message}");
    let response = t.content(&kept, Some(&patient)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (_, list) = t.get("/api/v1/records", Some(&patient)).await;
    assert_eq!(list["records"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_change_nothing() {
    bad_uploads(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_change_nothing_on_postgresql_and_s3() {
    bad_uploads(Backend::PostgresS3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_change_nothing_on_ganache() {
    bad_uploads(Backend::Ganache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_change_nothing_on_anvil() {
    bad_uploads(Backend::Anvil).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_change_nothing_on_hardhat() {
    bad_uploads(Backend::Hardhat).await;
}

async fn bad_uploads(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (_, patient) = t.sign_up("ursula", "Ursula Upload").await;
    let title = [("title", "scan")];
    // (file, other fields, status, error code)
    type Case<'a> = (
        Option<(&'a str, Vec<u8>)>,
        &'a [(&'a str, &'a str)],
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            Some(("big.txt", vec![b'a'; MAX_UPLOAD + 1])),
            &title,
            413,
            "payload_too_large",
        ),
        (
            Some(("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00".to_vec())),
            &title,
            415,
            "unsupported_media_type",
        ),
        (
            Some(("page.html", b"<html>\x00</html>".to_vec())),
            &title,
            415,
            "unsupported_media_type",
        ),
        (None, &title, 400, "invalid_input"),
        (
            Some(("empty.txt", Vec::new())),
            &title,
            400,
            "invalid_input",
        ),
        (Some(("a.txt", b"text".to_vec())), &[], 400, "invalid_input"),
        (
            Some(("a.txt", b"text".to_vec())),
            &[("title", "x"), ("kind", "prescription")],
            400,
            "invalid_input",
        ),
        (
            Some(("a.txt", b"text".to_vec())),
            &[("title", "x"), ("kind", "banana")],
            400,
            "invalid_input",
        ),
        (
            Some(("a.txt", b"text".to_vec())),
            &[("title", "x"), ("date", "yesterday")],
            400,
            "invalid_input",
        ),
        (
            Some(("a.txt", b"text".to_vec())),
            &[("title", "x"), ("share_with", "not-an-address")],
            400,
            "invalid_input",
        ),
        (
            Some(("a.txt", b"text".to_vec())),
            &[
                ("title", "x"),
                ("share_with", "0x0000000000000000000000000000000000000001"),
            ],
            404,
            "not_found",
        ),
    ];
    for (file, fields, status, code) in cases {
        let (got, body) = t.upload(Some(&patient), fields, file).await;
        assert_eq!(got.as_u16(), status, "{fields:?}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            t.blob_names().await.is_empty(),
            "nothing stored after {fields:?}"
        );
    }
    // Far over the body limit the server answers 413 before reading it all and closes the
    // connection; a client still sending may see the reset instead. Either way nothing is kept.
    let form = reqwest::multipart::Form::new().text("title", "scan").part(
        "file",
        reqwest::multipart::Part::bytes(vec![b'a'; MAX_UPLOAD * 3]).file_name("huge.txt"),
    );
    // A client of its own: the connection it leaves half-closed must not be reused below.
    let sent = reqwest::Client::new()
        .post(format!("{}/api/v1/records", t.url))
        .bearer_auth(&patient)
        .multipart(form)
        .send()
        .await;
    if let Ok(response) = sent {
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    assert!(t.blob_names().await.is_empty());
    let (_, list) = t.get("/api/v1/records", Some(&patient)).await;
    assert_eq!(list["records"].as_array().unwrap().len(), 0);
    // Accepted kinds are judged from the bytes, whatever the name says.
    for (bytes, media) in [
        (b"%PDF-1.7\n%\xe2\xe3\n".to_vec(), "application/pdf"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec(), "image/png"),
        (
            br#"{"resourceType":"Observation","status":"final"}"#.to_vec(),
            "application/fhir+json",
        ),
    ] {
        let (status, body) = t
            .upload(Some(&patient), &title, Some(("x.bin", bytes)))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["meta"]["media_type"], media);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_throttled_and_unknown_names_look_like_wrong_passwords() {
    password_guessing(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_throttled_on_postgresql_and_s3() {
    password_guessing(Backend::PostgresS3).await;
}

async fn password_guessing(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.sign_up("gina", "Gina Guess").await;
    let try_login = |user: &'static str, password: &'static str| {
        let t = &t;
        async move {
            t.post(
                "/api/v1/auth/login",
                None,
                json!({ "username": user, "password": password }),
            )
            .await
        }
    };
    let wrong = try_login("gina", "not her password").await;
    let unknown = try_login("nobody", "not her password").await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown, "the same answer for both");
    for _ in 0..4 {
        try_login("gina", "still not her password").await;
        try_login("nobody", "still not her password").await;
    }
    let (status, body) = try_login("gina", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(
        try_login("nobody", PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Other names are not affected.
    t.sign_up("hugo", "Hugo Other").await;
}

/// Twenty wrong guesses sent at once: each attempt is counted before its password is checked, so
/// no more than the limit (5) are checked; the rest, and then the right password, are refused.
async fn parallel_guesses(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.sign_up("pia", "Pia Parallel").await;
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (http, url) = (t.http.clone(), format!("{}/api/v1/auth/login", t.url));
        guesses.spawn(async move {
            http.post(url)
                .json(&json!({ "username": "pia", "password": format!("guess number {i}") }))
                .send()
                .await
                .map(|r| r.status())
        });
    }
    let answers: Vec<StatusCode> = guesses
        .join_all()
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let checked = answers
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = answers
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, refused), (5, 15), "{answers:?}");
    let (status, _) = t
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "username": "pia", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_password_guesses_cannot_exceed_the_limit() {
    parallel_guesses(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_password_guesses_cannot_exceed_the_limit_on_postgresql_and_s3() {
    parallel_guesses(Backend::PostgresS3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_at_logout_and_when_the_password_changes() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let (_, first) = t.sign_up("sam", "Sam Session").await;
    let second = t.login("sam", PASSWORD).await;

    // The browser's way in: an HttpOnly, SameSite cookie.
    let response = t
        .http
        .post(format!("{}/api/v1/auth/login", t.url))
        .json(&json!({ "username": "sam", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let me = t
        .http
        .get(format!("{}/api/v1/me", t.url))
        .header(header::COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);

    let (status, body) = t
        .post(
            "/api/v1/me/password",
            Some(&first),
            json!({ "current_password": PASSWORD, "new_password": "short" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = t
        .post(
            "/api/v1/me/password",
            Some(&first),
            json!({ "current_password": PASSWORD, "new_password": "a brand new long password" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(t.get("/api/v1/me", Some(&first)).await.0, StatusCode::OK);
    assert_eq!(
        t.get("/api/v1/me", Some(&second)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let me = t
        .http
        .get(format!("{}/api/v1/me", t.url))
        .header(header::COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        t.post(
            "/api/v1/auth/login",
            None,
            json!({ "username": "sam", "password": PASSWORD })
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    // The keystore is re-sealed: the new password opens it, and it is the same account.
    let fresh = t.login("sam", "a brand new long password").await;
    let (_, me) = t.get("/api/v1/me", Some(&fresh)).await;
    let (_, before) = t.get("/api/v1/me", Some(&first)).await;
    assert_eq!(me["address"], before["address"]);

    assert_eq!(
        t.call(Method::POST, "/api/v1/auth/logout", Some(&first), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.get("/api/v1/me", Some(&first)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        t.get("/api/v1/me", Some("made-up-token")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_a_hospital_cuts_its_doctors_off_at_once() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Central", "Lyon").await;
    let (doctor_address, doctor) = t.add_doctor(&admin, "dr.who", hospital).await;
    let (_, patient) = t.sign_up("polly", "Polly Patient").await;
    let record = t
        .share(&patient, "ECG", "sinus rhythm", &[&doctor_address])
        .await;
    assert_eq!(
        t.content(&record, Some(&doctor)).await.status(),
        StatusCode::OK
    );
    let (status, body) = t
        .post(
            &format!("/api/v1/hospitals/{hospital}/suspend"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], false);
    assert_eq!(
        t.content(&record, Some(&doctor)).await.status(),
        StatusCode::FORBIDDEN
    );
    let (status, body) = t
        .post(
            &format!("/api/v1/hospitals/{hospital}/suspend"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    t.post(
        &format!("/api/v1/hospitals/{hospital}/reactivate"),
        Some(&admin),
        json!({}),
    )
    .await;
    assert_eq!(
        t.content(&record, Some(&doctor)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_4xx_answers() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let raw = |method: Method, path: &str, content_type: Option<&str>, body: &str| {
        let mut request = t
            .http
            .request(method, format!("{}{path}", t.url))
            .bearer_auth(&admin)
            .body(body.to_string());
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let json_type = Some("application/json");
    for (method, path, content_type, body, status) in [
        (
            Method::POST,
            "/api/v1/hospitals",
            json_type,
            "{not json",
            400,
        ),
        (
            Method::POST,
            "/api/v1/hospitals",
            json_type,
            r#"{"name": 5}"#,
            422,
        ),
        (
            Method::POST,
            "/api/v1/hospitals",
            None,
            r#"{"name": "x"}"#,
            415,
        ),
        (
            Method::POST,
            "/api/v1/hospitals",
            json_type,
            r#"{"name": "   "}"#,
            400,
        ),
        (
            Method::POST,
            "/api/v1/patients",
            json_type,
            r#"{"username": "ab", "password": "x", "name": "y"}"#,
            400,
        ),
        (
            Method::POST,
            "/api/v1/patients",
            json_type,
            r#"{"username": "abc", "password": "long enough password", "name": "y", "date_of_birth": "1990-02-31x"}"#,
            400,
        ),
        (Method::GET, "/api/v1/hospitals/abc", None, "", 400),
        (Method::GET, "/api/v1/hospitals/99", None, "", 404),
        (
            Method::PUT,
            "/api/v1/hospitals/99",
            json_type,
            r#"{"name": "x"}"#,
            404,
        ),
        (Method::GET, "/api/v1/doctors/0x12", None, "", 400),
        (Method::GET, "/api/v1/records/xyz", None, "", 400),
        (
            Method::GET,
            "/api/v1/records/0x0000000000000000000000000000000000000000000000000000000000000001",
            None,
            "",
            404,
        ),
        (Method::DELETE, "/api/v1/grants/notanumber", None, "", 400),
        (
            Method::POST,
            "/api/v1/doctors",
            json_type,
            r#"{"username": "dr.x", "password": "long enough password", "name": "X", "hospital_id": 42}"#,
            404,
        ),
        (Method::GET, "/api/v1/nothing-here", None, "", 404),
        (Method::DELETE, "/api/v1/hospitals", None, "", 405),
    ] {
        let (got, answer) = raw(method.clone(), path, content_type, body).await;
        assert_eq!(got, status, "{method} {path} {body}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    // None of it changed anything.
    let (_, hospitals) = t.get("/api/v1/hospitals", None).await;
    assert_eq!(hospitals["hospitals"].as_array().unwrap().len(), 0);
    let (_, doctors) = t.get("/api/v1/doctors", None).await;
    assert_eq!(doctors["doctors"].as_array().unwrap().len(), 0);
    assert!(
        t.app
            .people()
            .account_by_name("dr.x")
            .await
            .unwrap()
            .is_none()
    );
    // A doctor name that failed on chain can be used again.
    let hospital = t.add_hospital(&admin, "Central", "Lyon").await;
    t.add_doctor(&admin, "dr.x", hospital).await;
    // A second enrolment link cannot take a user name that is in use.
    let (status, body) = t
        .post(
            "/api/v1/doctors",
            Some(&admin),
            json!({ "name": "X", "hospital_id": hospital }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let link = t.path_of(body["enrolment_url"].as_str().unwrap());
    let (status, body) = t
        .post(
            &format!("/api/v1{link}"),
            None,
            json!({ "username": "dr.x", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

/// The routes the server has, read from its route table.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let source = include_str!("../../src/api/mod.rs");
    let mut out = BTreeSet::new();
    for chunk in source.split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).unwrap().to_string();
        let call = chunk.split(".fallback(").next().unwrap();
        for method in ["get", "post", "put", "delete"] {
            if call.contains(&format!("{method}(")) {
                out.insert((method.to_string(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_exactly_the_routes() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let (status, doc) = t.get("/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
            let op = &item[method];
            assert!(
                op["summary"].is_string() && op["responses"].is_object(),
                "{method} {path}"
            );
        }
    }
    assert_eq!(documented, routes_in_source());
    // Each documented route is served (never the unknown-route or wrong-method answer).
    for (method, path) in &documented {
        let concrete = path
            .replace("{id}", "1")
            .replace("{address}", "0x0000000000000000000000000000000000000001");
        let (status, body) = t
            .call(
                method.to_uppercase().parse().unwrap(),
                &concrete,
                None,
                None,
            )
            .await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !body.to_string().contains("no such route"),
            "{method} {path}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_who_joins_a_granted_hospital_later_can_open_what_the_grant_covers() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let granted = t.add_hospital(&admin, "Granted", "Lyon").await;
    let other = t.add_hospital(&admin, "Other", "Nice").await;
    let (patient_address, patient) = t.sign_up("hana", "Hana Hospital").await;
    let record = t.share(&patient, "CT scan", "lungs clear", &[]).await;
    let (status, body) = t
        .post(
            "/api/v1/grants",
            Some(&patient),
            json!({ "hospital_id": granted, "scope": "kinds", "kinds": ["report"], "expires_in_days": 7 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Both doctors join after the grant: the patient never wrapped a key for them.
    let (_, newcomer) = t.add_doctor(&admin, "dr.newcomer", granted).await;
    let (_, elsewhere) = t.add_doctor(&admin, "dr.elsewhere", other).await;
    let (_, patients) = t.get("/api/v1/patients", Some(&newcomer)).await;
    assert_eq!(
        patients["patients"][0]["name"], "Hana Hospital",
        "{patients}"
    );
    let (_, records) = t
        .get(
            &format!("/api/v1/records?patient={patient_address}"),
            Some(&newcomer),
        )
        .await;
    assert_eq!(
        records["records"][0]["meta"]["title"], "CT scan",
        "{records}"
    );
    let response = t.content(&record, Some(&newcomer)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-medledger-emergency"], "false");
    assert_eq!(response.bytes().await.unwrap(), "lungs clear".as_bytes());

    // A doctor of another hospital gets nothing, and neither does the newcomer once revoked.
    assert_eq!(
        t.content(&record, Some(&elsewhere)).await.status(),
        StatusCode::FORBIDDEN
    );
    let (_, patients) = t.get("/api/v1/patients", Some(&elsewhere)).await;
    assert_eq!(patients["patients"].as_array().unwrap().len(), 0);
    let grant = body["id"].as_u64().unwrap();
    let (status, _) = t
        .call(
            Method::DELETE,
            &format!("/api/v1/grants/{grant}"),
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        t.content(&record, Some(&newcomer)).await.status(),
        StatusCode::FORBIDDEN
    );
    let (_, patients) = t.get("/api/v1/patients", Some(&newcomer)).await;
    assert_eq!(patients["patients"].as_array().unwrap().len(), 0);
}
