//! Sign-up cannot drain the faucet: sign-ups are limited per client (and behind a trusted proxy
//! the client is who the proxy says, never who the client says), the faucet gives out a daily
//! allowance and then refuses clearly, and an account whose ether runs low is topped up a few
//! times a day.

use medledger_records::limits::Limit;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Backend, PASSWORD, TestApp};

/// Signs `username` up through the API, from whoever `forwarded` says (when given).
async fn sign_up(t: &TestApp, username: &str, forwarded: Option<&str>) -> (StatusCode, Value) {
    let mut request = t
        .http
        .post(format!("{}/api/v1/patients", t.url))
        .json(&json!({ "username": username, "password": PASSWORD, "name": "Nina Limit" }));
    if let Some(f) = forwarded {
        request = request.header("x-forwarded-for", f);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn can_log_in(t: &TestApp, username: &str) -> bool {
    let (status, _) = t
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "username": username, "password": PASSWORD }),
        )
        .await;
    status == StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_are_limited_per_client_and_the_header_alone_cannot_dodge_it() {
    let (t, _) = TestApp::spawn_configured(crate::defaults(Backend::Embedded), false, |c| {
        c.limits.sign_ups_per_client = Limit::per_hour(2);
    })
    .await;
    for name in ["nina1", "nina2"] {
        let (status, body) = sign_up(&t, name, None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = sign_up(&t, "nina3", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("your network"), "{message}");
    // No proxy is trusted: a header naming another client is the client's own word.
    let (status, _) = sign_up(&t, "nina4", Some("203.0.113.9")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!can_log_in(&t, "nina3").await && !can_log_in(&t, "nina4").await);
    // Bad input is refused for what it is and uses up nothing more.
    let (status, _) = t
        .post("/api/v1/patients", None, json!({ "username": "x" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_has_its_own_limit() {
    let (t, _) = TestApp::spawn_configured(crate::defaults(Backend::Embedded), false, |c| {
        c.limits.sign_ups_per_client = Limit::per_hour(1);
        // The tests' connections come from loopback: here that is the proxy.
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let (status, body) = sign_up(&t, "first", Some("203.0.113.1")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = sign_up(&t, "again", Some("203.0.113.1")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // A client cannot hide behind an address it writes itself: the proxy appends the one it saw.
    let (status, _) = sign_up(&t, "spoofed", Some("198.51.100.7, 203.0.113.1")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, body) = sign_up(&t, "second", Some("203.0.113.2")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_faucet_stops_at_its_daily_allowance_and_says_so() {
    // Room for two new accounts (the first admin's, at deployment, is not counted).
    let (t, _) = TestApp::spawn_configured(crate::defaults(Backend::Embedded), false, |c| {
        c.limits.faucet = Limit::per_day(2);
    })
    .await;
    t.sign_up("one", "One").await;
    t.sign_up("two", "Two").await;
    let (status, body) = sign_up(&t, "three", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("today's allowance"), "{message}");
    assert!(!can_log_in(&t, "three").await);
    // Those who have accounts go on working.
    let patient = t.login("two", PASSWORD).await;
    t.share(&patient, "Still works", "fine", &[]).await;
}

/// Sets `account`'s balance on Anvil (`anvil_setBalance`).
async fn set_balance(t: &TestApp, account: &str, wei: u64) {
    t.chain_call("anvil_setBalance", json!([account, format!("0x{wei:x}")]))
        .await;
}

async fn balance(t: &TestApp, token: &str) -> u128 {
    let (_, me) = t.get("/api/v1/me", Some(token)).await;
    me["balance_wei"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_low_on_ether_is_topped_up_a_few_times_a_day() {
    let (t, _) = TestApp::spawn_configured(Backend::Anvil, false, |c| {
        c.limits.top_ups_per_account = Limit::per_day(2);
    })
    .await;
    let (address, patient) = t.sign_up("tom", "Tom Topup").await;
    let funded = balance(&t, &patient).await;
    for round in 0..2 {
        // Its ether is (nearly) gone: the next write is paid by a top-up.
        set_balance(&t, &address, 1).await;
        t.share(&patient, &format!("Panel {round}"), "ok", &[])
            .await;
        let now = balance(&t, &patient).await;
        assert!(
            now > funded / 2,
            "round {round}: topped up to {now} of {funded}"
        );
    }
    // The day's top-ups are used: the write is refused, clearly, and nothing is kept.
    set_balance(&t, &address, 1).await;
    let (status, body) = t
        .upload(
            Some(&patient),
            &[("title", "Unpaid")],
            Some(("scan.txt", b"x".to_vec())),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("too little ether"), "{message}");
    let (_, list) = t.get("/api/v1/records", Some(&patient)).await;
    assert_eq!(list["records"].as_array().unwrap().len(), 2, "{list}");
}
