//! The chain index behind the access log, an account's transactions and the contracts' counts:
//! paged the most recent first with nothing lost or repeated between pages, the same as the chain
//! says, and following the chain back when it is reverted.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Backend, TestApp};

/// Every page of the access log, following `next`: the events, and how many pages.
async fn whole_log(t: &TestApp, token: &str) -> (Vec<Value>, usize) {
    let (mut events, mut pages) = (Vec::new(), 0);
    let mut next = Some("/api/v1/audit".to_string());
    while let Some(path) = next {
        let (status, page) = t.get(&path, Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        next = page["next"].as_str().map(str::to_string);
        pages += 1;
        assert!(pages < 20, "the log's pages never end");
    }
    (events, pages)
}

/// The access log's openings as the chain itself has them (eth_getLogs), as transaction hashes.
async fn openings_on_chain(t: &TestApp, patient: &str) -> HashSet<String> {
    let topic = patient
        .parse::<medledger_records::primitives::Address>()
        .unwrap()
        .into_word();
    let logs = t
        .chain_call(
            "eth_getLogs",
            json!([{
                "address": t.app.contracts().consent.to_string(),
                "fromBlock": "0x0",
                "toBlock": "latest",
                "topics": [
                    <medledger_records::contracts::Consent::AccessLogged as alloy::sol_types::SolEvent>::SIGNATURE_HASH.to_string(),
                    topic.to_string(),
                ],
            }]),
        )
        .await;
    logs.as_array()
        .unwrap()
        .iter()
        .map(|l| l["transactionHash"].as_str().unwrap().to_string())
        .collect()
}

fn opened(events: &[Value]) -> HashSet<String> {
    events
        .iter()
        .filter(|e| e["action"] == "opened")
        .map(|e| e["tx_hash"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_and_an_accounts_transactions_are_paged_and_follow_a_reverted_chain() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Index General", "Lyon").await;
    let (doctor_address, doctor) = t.add_doctor(&admin, "dr.pages", hospital).await;
    let (patient_address, patient) = t.sign_up("paula", "Paula Pages").await;
    let record = t
        .share(&patient, "Lipid panel", "LDL 2.9", &[&doctor_address])
        .await;
    let later = t
        .share(
            &patient,
            "Lipid panel, later",
            "LDL 2.4",
            &[&doctor_address],
        )
        .await;
    // More openings than one page holds.
    let page = medledger_records::audit::AUDIT_PAGE;
    for _ in 0..page + 7 {
        assert_eq!(
            t.content(&record, Some(&doctor)).await.status(),
            StatusCode::OK
        );
    }
    let (events, pages) = whole_log(&t, &patient).await;
    assert_eq!(pages, 2, "{} entries make two pages", events.len());
    let hashes: Vec<&str> = events
        .iter()
        .map(|e| e["tx_hash"].as_str().unwrap())
        .collect();
    let distinct: HashSet<&str> = hashes.iter().copied().collect();
    assert_eq!(distinct.len(), hashes.len(), "no entry is on two pages");
    let blocks: Vec<u64> = events
        .iter()
        .map(|e| e["block_number"].as_u64().unwrap())
        .collect();
    assert!(
        blocks.windows(2).all(|w| w[0] >= w[1]),
        "the most recent first: {blocks:?}"
    );
    assert_eq!(opened(&events).len(), page + 7);
    assert_eq!(
        opened(&events),
        openings_on_chain(&t, &patient_address).await
    );
    // The doctor's log holds the same openings.
    let (theirs, _) = whole_log(&t, &doctor).await;
    assert_eq!(opened(&theirs), opened(&events));

    // A malformed page is refused, with the reason.
    for bad in ["x", "1", "1.", ".2", "1.2.3", "99999999999999999999.1"] {
        let (status, body) = t
            .get(&format!("/api/v1/audit?before={bad}"), Some(&patient))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("block and a position"),
            "{body}"
        );
    }

    // The doctor's account page: every transaction counted, a page at a time.
    let html = |path: String| {
        let http = t.http.clone();
        let url = format!("{}{path}", t.url);
        async move {
            let response = http.get(url).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.text().await.unwrap()
        }
    };
    let first = html(format!("/explorer/address/{doctor_address}")).await;
    let sent = t
        .chain_call("eth_getTransactionCount", json!([doctor_address, "latest"]))
        .await;
    let sent = u64::from_str_radix(sent.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    // Its transactions: those it sent, and the faucet's funding it received.
    assert!(
        first.contains(&format!("{} on the chain", sent + 1)),
        "{first}"
    );
    let older = first
        .split("?before=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no link to older transactions: {first}"))
        .to_string();
    let second = html(format!("/explorer/address/{doctor_address}?before={older}")).await;
    let tx_links = |page: &str| -> HashSet<String> {
        page.split("/explorer/tx/")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().to_string())
            .collect()
    };
    let (a, b) = (tx_links(&first), tx_links(&second));
    assert_eq!(a.len(), medledger_records::explorer::ACCOUNT_ROWS);
    assert!(a.is_disjoint(&b), "no transaction is on both pages");
    assert_eq!(a.len() + b.len(), sent as usize + 1);
    assert!(second.contains("Most recent"), "{second}");

    // The chain goes back: the index forgets what the chain no longer holds, and the blocks
    // mined under the same numbers afterwards are listed instead.
    let snapshot = t.chain_call("evm_snapshot", json!([])).await;
    for _ in 0..3 {
        assert_eq!(
            t.content(&record, Some(&doctor)).await.status(),
            StatusCode::OK
        );
    }
    let (before_revert, _) = whole_log(&t, &patient).await;
    assert_eq!(opened(&before_revert).len(), page + 10);
    assert_eq!(
        t.chain_call("evm_revert", json!([snapshot])).await,
        json!(true)
    );
    let (after_revert, _) = whole_log(&t, &patient).await;
    assert_eq!(
        opened(&after_revert),
        opened(&events),
        "the reverted openings are gone"
    );
    // (Another record: the same opening again would be the very transaction reverted, byte for
    // byte, which the journal already holds.)
    assert_eq!(
        t.content(&later, Some(&doctor)).await.status(),
        StatusCode::OK
    );
    let (events, _) = whole_log(&t, &patient).await;
    assert_eq!(opened(&events).len(), page + 8);
    assert_eq!(
        opened(&events),
        openings_on_chain(&t, &patient_address).await
    );
}
