//! The write journal under a slow or lossy chain: nothing acknowledged (or mined) is lost and
//! nothing is deleted while its transaction might still be mined. The chain is reached through
//! a proxy that withholds receipts or drops sent transactions; the app waits one second.

use std::sync::atomic::Ordering;

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::U256,
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;

use crate::{PASSWORD, TestApp};

/// Records stored but not (yet) anchored, and blobs in the store.
async fn unanchored(t: &TestApp) -> (i64, usize) {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM records WHERE tx_hash IS NULL")
        .fetch_one(t.app.db())
        .await
        .unwrap();
    (n, t.blob_names().await.len())
}

async fn upload(t: &TestApp, token: &str, title: &str) -> (StatusCode, serde_json::Value) {
    t.upload(
        Some(token),
        &[("title", title), ("kind", "report")],
        Some(("r.txt", format!("{title}: potassium 4.1").into_bytes())),
    )
    .await
}

/// Finding 5 of the trust issue: a receipt that comes too late used to make the app delete the
/// record's row, keys and blob while the chain held its anchor (and the same for grants and new
/// accounts). Now the write stays open and the journal completes it once the receipt is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receipt_loses_nothing_and_the_journal_completes_the_write() {
    let (t, proxy) = TestApp::spawn_behind_proxy().await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Central", "Lyon").await;
    let (doctor_address, doctor) = t.add_doctor(&admin, "dr.slow", hospital).await;
    let (_, patient) = t.sign_up("sam", "Sam Slow").await;

    proxy.hide_receipts.store(true, Ordering::SeqCst);
    let (status, body) = upload(&t, &patient, "Late panel").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("not mined"), "{message}");
    assert_eq!(unanchored(&t).await.0, 1, "the record's data is kept");
    let (status, body) = t
        .post(
            "/api/v1/grants",
            Some(&patient),
            json!({ "doctor": doctor_address, "scope": "all", "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = t
        .post(
            "/api/v1/patients",
            None,
            json!({ "username": "lena", "password": PASSWORD, "name": "Lena Late" }),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = t
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "username": "lena", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not confirmed")
    );
    // The periodic resolver leaves alone what a request may still be waiting for.
    assert_eq!(t.app.resolve_journal(3600).await.unwrap().done, 0);

    proxy.hide_receipts.store(false, Ordering::SeqCst);
    let resolved = t.app.resolve_journal(0).await.unwrap();
    // The server's own periodic resolver may have settled some of the three meanwhile (it
    // takes writes older than the receipt timeout): none failed, none is left open.
    assert_eq!((resolved.failed, resolved.open), (0, 0), "{resolved:?}");
    assert!((1..=3).contains(&resolved.done), "{resolved:?}");
    assert_eq!(
        t.app.resolve_journal(0).await.unwrap().done,
        0,
        "all three settled"
    );
    assert_eq!(unanchored(&t).await.0, 0);
    let (_, list) = t.get("/api/v1/records", Some(&patient)).await;
    let records = list["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{list}");
    let id = records[0]["id"].as_str().unwrap();
    let opened = t.content(id, Some(&patient)).await;
    assert_eq!(opened.status(), StatusCode::OK);
    assert!(opened.text().await.unwrap().starts_with("Late panel"));
    // The grant settled after the fact re-wrapped the key for the doctor (with the escrow, as
    // the patient was not there): the doctor opens the report.
    let opened = t.content(id, Some(&doctor)).await;
    assert_eq!(opened.status(), StatusCode::OK);
    t.login("lena", PASSWORD).await;
    let report = t.app.verify_blobs().await.unwrap();
    assert_eq!((report.checked, report.bad.len()), (1, 0));
}

/// A transaction lost on its way to the node is sent again from the journal and completes;
/// one whose nonce was taken by another transaction can never be mined, and only then is its
/// data removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_transaction_is_sent_again_and_a_superseded_one_is_undone() {
    let (t, proxy) = TestApp::spawn_behind_proxy().await;
    let (patient_address, patient) = t.sign_up("nora", "Nora Lost").await;

    proxy.drop_sends.store(true, Ordering::SeqCst);
    let (status, body) = upload(&t, &patient, "Lost scan").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    proxy.drop_sends.store(false, Ordering::SeqCst);
    let resolved = t.app.resolve_journal(0).await.unwrap();
    assert_eq!((resolved.done, resolved.failed), (1, 0), "{resolved:?}");
    let (_, list) = t.get("/api/v1/records", Some(&patient)).await;
    assert_eq!(list["records"].as_array().unwrap().len(), 1);

    // Lost again; meanwhile the patient's key sends another transaction with that nonce.
    proxy.drop_sends.store(true, Ordering::SeqCst);
    let blobs_before = unanchored(&t).await.1;
    let (status, _) = upload(&t, &patient, "Superseded scan").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unanchored(&t).await, (1, blobs_before + 1));
    let keystore = sqlx::query("SELECT keystore FROM users WHERE username = 'nora'")
        .fetch_one(t.app.db())
        .await
        .unwrap()
        .get::<String, _>("keystore");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.json"), keystore).unwrap();
    let signer = PrivateKeySigner::decrypt_keystore(dir.path().join("k.json"), PASSWORD).unwrap();
    assert_eq!(
        format!("{:#x}", signer.address()),
        patient_address.to_lowercase()
    );
    let wallet = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer.clone()))
        .connect_http(t.chain_url.parse().unwrap());
    wallet
        .send_transaction(
            TransactionRequest::default()
                .with_to(signer.address())
                .with_value(U256::ZERO),
        )
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    proxy.drop_sends.store(false, Ordering::SeqCst);
    let resolved = t.app.resolve_journal(0).await.unwrap();
    assert_eq!((resolved.done, resolved.failed), (0, 1), "{resolved:?}");
    assert_eq!(unanchored(&t).await, (0, blobs_before), "its data is gone");
    let (_, list) = t.get("/api/v1/records", Some(&patient)).await;
    assert_eq!(list["records"].as_array().unwrap().len(), 1);
}
