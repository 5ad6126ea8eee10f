//! The perimeter: what a client outside can learn or drive. HSTS behind HTTPS; one answer for
//! an unknown name, a wallet account's name and a wrong password.

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::{Backend, PASSWORD, TestApp, wallet::Wallet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_https_browsers_are_told_to_stay_on_https() {
    let (https, _) = TestApp::spawn_configured(crate::defaults(Backend::Embedded), false, |c| {
        c.secure_cookies = true;
    })
    .await;
    for path in ["/healthz", "/login", "/api/v1/doctors", "/fhir/metadata"] {
        let response = https
            .http
            .get(format!("{}{path}", https.url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response
                .headers()
                .get(header::STRICT_TRANSPORT_SECURITY)
                .map(|v| v.to_str().unwrap()),
            Some("max-age=31536000; includeSubDomains"),
            "{path}"
        );
    }
    // Over plain HTTP (no --secure-cookies) the header would pin a host to HTTPS it may not
    // serve: it is not sent.
    let http = TestApp::spawn(Backend::Embedded).await;
    let response = http
        .http
        .get(format!("{}/login", http.url))
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get(header::STRICT_TRANSPORT_SECURITY)
            .is_none()
    );
}

/// A password login tells nothing of which names exist or which are wallets': an unknown name,
/// a wallet account's name and a known name with a wrong password get the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_login_does_not_tell_which_names_exist() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let wallet = Wallet::new(&t);
    crate::wallet::wallet_patient(&t, &wallet, "walt").await;
    t.sign_up("pia", "Pia Known").await;
    let mut answers = Vec::new();
    for (username, password) in [
        ("nobody.here", PASSWORD),
        ("walt", PASSWORD),
        ("pia", "a wrong password!"),
    ] {
        let (status, body) = t
            .post(
                "/api/v1/auth/login",
                None,
                json!({ "username": username, "password": password }),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{username}: {body}");
        answers.push(body);
    }
    assert_eq!(
        answers[0], answers[1],
        "a wallet account's name is told apart"
    );
    assert_eq!(answers[0], answers[2], "a known name is told apart");
}

/// A second factor holds against a stolen session or password: codes are counted per account on
/// every sign-in path, it cannot be replaced without a current code, and a change ends the
/// account's other sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_cannot_be_guessed_replaced_or_dropped_with_a_session_alone() {
    use crate::trust::{code_at, totp, wrong_code_for};
    let t = TestApp::spawn(Backend::Embedded).await;
    let login = async |username: &str, code: Option<String>| {
        let mut body = json!({ "username": username, "password": PASSWORD });
        if let Some(code) = code {
            body["code"] = json!(code);
        }
        t.post("/api/v1/auth/login", None, body).await
    };
    let alive = async |token: &str| t.get("/api/v1/me", Some(token)).await.0 == StatusCode::OK;
    let (_, mine) = t.sign_up("mona", "Mona Factor").await;
    let (_, other) = login("mona", None).await;
    let other = other["token"].as_str().unwrap().to_string();
    assert!(alive(&other).await);

    // Set up from one session: the other one ends.
    let (status, setup) = t.post("/api/v1/me/mfa", Some(&mine), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{setup}");
    let totp = totp(setup["secret"].as_str().unwrap());
    let (status, body) = t
        .post(
            "/api/v1/me/mfa/confirm",
            Some(&mine),
            json!({ "code": code_at(&totp, 0) }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(alive(&mine).await, "the session that made the change stays");
    assert!(!alive(&other).await, "every other session ends");

    // A session alone cannot swap the factor for its holder's own.
    let (status, body) = t.post("/api/v1/me/mfa", Some(&mine), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("current code")
    );
    let (status, _) = t
        .post(
            "/api/v1/me/mfa",
            Some(&mine),
            json!({ "code": wrong_code_for(&totp) }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Guessing codes with the password: stopped within the limit, and then even the right code
    // waits for the window (the guess above counted too).
    let mut refused = 1;
    let stopped = loop {
        let (status, body) = login("mona", Some(wrong_code_for(&totp))).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break body;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        refused += 1;
        assert!(refused <= 5, "more than 5 wrong codes were judged");
    };
    assert!(
        stopped["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many wrong codes")
    );
    let (status, _) = login("mona", Some(code_at(&totp, 30))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Turning it off takes a code and ends the other sessions too (another account, whose
    // count is its own).
    let (_, first) = t.sign_up("otto", "Otto Off").await;
    let (_, setup) = t.post("/api/v1/me/mfa", Some(&first), json!({})).await;
    let totp = crate::trust::totp(setup["secret"].as_str().unwrap());
    t.post(
        "/api/v1/me/mfa/confirm",
        Some(&first),
        json!({ "code": code_at(&totp, -30) }),
    )
    .await;
    let (status, second) = login("otto", Some(code_at(&totp, 0))).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second = second["token"].as_str().unwrap().to_string();
    let (status, _) = t
        .post(
            "/api/v1/me/mfa/off",
            Some(&first),
            json!({ "code": wrong_code_for(&totp) }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(alive(&second).await);
    let (status, body) = t
        .post(
            "/api/v1/me/mfa/off",
            Some(&first),
            json!({ "code": code_at(&totp, 30) }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(
        !alive(&second).await,
        "turning it off ends the other sessions"
    );
    assert!(alive(&first).await);
}

/// A change made with the session cookie alone (what a sibling subdomain or another port on the
/// host can make a browser send) is refused; the page's own script, which sends the page's CSRF
/// token from this origin, is not; a bearer token needs nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_alone_cannot_change_anything_through_the_api() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let (_, token) = t.sign_up("cora", "Cora Cookie").await;
    let cookie = format!("medledger_session={token}");
    // The page's CSRF token, as its script reads it.
    let html = t
        .http
        .get(format!("{}/account", t.url))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = html
        .split("<meta name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page carries its CSRF token")
        .to_string();
    let public = t.url.trim_end_matches('/').to_string();
    let change = async |headers: &[(&str, &str)]| {
        let mut request = t
            .http
            .post(format!("{}/api/v1/me/mfa", t.url))
            .header(header::COOKIE, &cookie)
            .json(&json!({}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json::<serde_json::Value>().await.unwrap())
    };
    let refusals: [&[(&str, &str)]; 5] = [
        &[],
        &[("x-csrf-token", "0000")],
        &[("origin", "http://127.0.0.1:1")],
        &[
            ("x-csrf-token", &csrf),
            ("origin", "https://neighbour.example"),
        ],
        &[("x-csrf-token", &csrf), ("sec-fetch-site", "same-site")],
    ];
    for headers in refusals {
        let (status, body) = change(headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("X-CSRF-Token"),
            "{body}"
        );
    }
    let status = t
        .http
        .get(format!("{}/api/v1/me", t.url))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK, "a read needs no token");
    // The page's own script: its token, from this origin.
    let (status, body) = change(&[
        ("x-csrf-token", &csrf),
        ("origin", &public),
        ("sec-fetch-site", "same-origin"),
    ])
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A script with the bearer token.
    let (status, body) = t.post("/api/v1/me/mfa", Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The account lists where it is signed in, and ends any one of those sessions; nobody else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_their_sessions_and_ends_any_of_them() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let (_, here) = t.sign_up("sol", "Sol Sessions").await;
    let laptop = t.login("sol", PASSWORD).await;
    let phone = t.login("sol", PASSWORD).await;
    let (_, stranger) = t.sign_up("sten", "Sten Stranger").await;
    let alive = async |token: &str| t.get("/api/v1/me", Some(token)).await.0 == StatusCode::OK;

    let (status, listed) = t.get("/api/v1/me/sessions", Some(&here)).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{listed}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    // The handles open nothing: none is a token or part of one.
    for s in sessions {
        let id = s["id"].as_str().unwrap();
        assert!(
            ![&here, &laptop, &phone].iter().any(|t| t.contains(id)),
            "{id}"
        );
    }
    // The phone's session, as the phone lists it, ended from here.
    let (_, from_phone) = t.get("/api/v1/me/sessions", Some(&phone)).await;
    let phones = from_phone["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A stranger cannot end it.
    let (status, _) = t
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/me/sessions/{phones}"),
            Some(&stranger),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(alive(&phone).await);
    let (status, body) = t
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/me/sessions/{phones}"),
            Some(&here),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(!alive(&phone).await, "the phone's session ended");
    assert!(
        alive(&laptop).await && alive(&here).await,
        "the others go on"
    );
    let (_, listed) = t.get("/api/v1/me/sessions", Some(&here)).await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 2);
}

/// An operator sees security events: who, what, from where, the outcome; never a password or a
/// code. Only an admin reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_events_are_logged_for_the_admin_without_secrets() {
    use crate::trust::{code_at, totp};
    let t = TestApp::spawn(Backend::Embedded).await;
    let (_, token) = t.sign_up("lia", "Lia Logged").await;
    let wrong = "a wrong password for lia";
    let (status, _) = t
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "username": "lia", "password": wrong }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    t.login("lia", PASSWORD).await;
    // A forged change (the cookie alone) and a relayed sign-in.
    let forged = t
        .http
        .post(format!("{}/api/v1/me/mfa", t.url))
        .header(header::COOKIE, format!("medledger_session={token}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let relayed = t
        .http
        .post(format!("{}/api/v1/auth/siwe/nonce", t.url))
        .header(header::HOST, "phish.example")
        .json(&json!({ "address": "0x00000000000000000000000000000000000000a1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(relayed.status(), StatusCode::BAD_REQUEST);
    // A second factor turned on.
    let (_, setup) = t.post("/api/v1/me/mfa", Some(&token), json!({})).await;
    let code = code_at(&totp(setup["secret"].as_str().unwrap()), 0);
    let (status, _) = t
        .post(
            "/api/v1/me/mfa/confirm",
            Some(&token),
            json!({ "code": code }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, _) = t.get("/api/v1/security-events", Some(&token)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a patient does not read the log"
    );
    let admin = t.admin().await;
    let (status, log) = t.get("/api/v1/security-events", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let events = log["events"].as_array().unwrap();
    let has = |kind: &str, who: &str, outcome: &str| {
        events.iter().any(|e| {
            e["kind"] == kind
                && e["who"].as_str().unwrap().contains(who)
                && e["outcome"] == outcome
                && e["client"] == "127.0.0.1"
        })
    };
    assert!(has("sign_in_refused", "lia", "unauthenticated"), "{log}");
    assert!(has("signed_in", "lia", "ok"), "{log}");
    assert!(
        has("forged_request_refused", "POST /api/v1/me/mfa", "forbidden"),
        "{log}"
    );
    assert!(
        has("forged_request_refused", "phish.example", "invalid"),
        "{log}"
    );
    assert!(has("second_factor_on", "lia", "ok"), "{log}");
    let text = log.to_string();
    for secret in [wrong, PASSWORD, &code, &token] {
        assert!(!text.contains(secret), "a secret is in the log: {secret}");
    }
    // The admin's page lists them too.
    let mut browser = crate::pages::Browser::new(&t).await;
    browser.login("admin", crate::ADMIN_PASSWORD).await;
    let (head, html) = browser.get("/admin/security").await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(html.contains("second_factor_on") && html.contains("forged_request_refused"));
}

/// No request runs forever: one waiting on a chain that never answers is stopped at the
/// request's time limit (set here below the receipt timeout) with a 503 that says so, and the
/// server answers the next request at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_has_a_time_limit() {
    let (t, proxy) = TestApp::spawn_configured(crate::defaults(Backend::Embedded), true, |c| {
        c.receipt_timeout = std::time::Duration::from_secs(60);
        c.request_timeout = Some(std::time::Duration::from_secs(2));
    })
    .await;
    let proxy = proxy.unwrap();
    let admin = t.admin().await;
    // The chain takes the hospital's transaction, but its receipt never comes.
    proxy
        .hide_receipts
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = t
        .post(
            "/api/v1/hospitals",
            Some(&admin),
            json!({ "name": "Slow General", "city": "Nantes" }),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("took longer than 2 s"), "{message}");
    proxy
        .hide_receipts
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let (status, _) = t.get("/api/v1/hospitals", None).await;
    assert_eq!(status, StatusCode::OK);
}
