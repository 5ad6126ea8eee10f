//! The ledger explorer pages over HTTP against the embedded node: real chain activity shows up
//! decoded, bad path parameters get 400/404 pages, and nothing private leaks onto a page.

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::{Backend, TestApp, assert_transaction};

/// A page's status, final URL (after redirects) and body; every explorer page carries the CSP.
async fn page(t: &TestApp, path: &str) -> (StatusCode, String, String) {
    let response = t.http.get(format!("{}{path}", t.url)).send().await.unwrap();
    let status = response.status();
    let url = response.url().path().to_string();
    let csp = response
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.text().await.unwrap();
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {body}");
    let csp = csp.unwrap_or_else(|| panic!("{path} has no content-security-policy"));
    assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
    // The CSP forbids inline styles and scripts: the pages (and the chart) must not need them.
    assert!(!body.contains("style="), "{path} has an inline style");
    assert!(!body.contains("<script>"), "{path} has an inline script");
    (status, url, body)
}

#[tokio::test]
async fn the_explorer_shows_the_public_ledger_and_nothing_else() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;

    // Activity: a hospital (its transaction hash from the API's answer), a doctor, a patient
    // whose report (title and text marked SECRET) is shared with the doctor.
    let (status, added) = t
        .post(
            "/api/v1/hospitals",
            Some(&admin),
            json!({ "name": "Explorer General", "city": "Lyon", "specialties": "cardiology" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_transaction(&added);
    let hospital = added["id"].as_u64().unwrap();
    let add_hospital_tx = added["transaction"]["hash"].as_str().unwrap().to_string();
    let add_hospital_block = added["transaction"]["block_number"].as_u64().unwrap();
    let (doctor, _) = t.add_doctor(&admin, "dr.explorer", hospital).await;
    let patient_name = "Zelda Quillfeather";
    let (patient, patient_token) = t.sign_up("zelda", patient_name).await;
    t.share(
        &patient_token,
        "SECRET title",
        "SECRET findings: all fine",
        &[&doctor],
    )
    .await;
    let latest = t.app.ledger().block_number().await.unwrap();
    let contracts = t.app.contracts();
    let mut pages = Vec::new();

    // The index: the latest block, the chart, the search box.
    let (status, _, index) = page(&t, "/explorer").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        index.contains(&format!("href=\"/explorer/block/{latest}\"")),
        "{index}"
    );
    assert!(index.contains("<svg"));
    assert!(index.contains("<title"));
    assert!(index.contains("<rect"));
    assert!(index.contains("action=\"/explorer/search\""));
    pages.push(index);

    // The addHospital transaction: decoded call and event, status, gas, fee, contract name.
    let (status, _, tx) = page(&t, &format!("/explorer/tx/{add_hospital_tx}")).await;
    assert_eq!(status, StatusCode::OK, "{tx}");
    assert!(tx.contains("addHospital"), "{tx}");
    assert!(tx.contains("HospitalAdded"), "{tx}");
    assert!(tx.contains("success"), "{tx}");
    assert!(!tx.contains("reverted"), "{tx}");
    assert!(tx.contains("Registry"), "{tx}");
    assert!(tx.contains("Explorer General"), "{tx}");
    assert!(tx.contains("Gas used"), "{tx}");
    assert!(tx.contains(&contracts.registry.to_string()), "{tx}");
    assert!(
        tx.contains(&format!("/explorer/block/{add_hospital_block}")),
        "{tx}"
    );
    pages.push(tx);

    // Its block lists it, with the method name.
    let (status, _, block) = page(&t, &format!("/explorer/block/{add_hospital_block}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(block.contains(&add_hospital_tx), "{block}");
    assert!(block.contains("addHospital"), "{block}");
    assert!(block.contains("Gas used"), "{block}");
    pages.push(block);

    // The patient's account: their transactions, from the chain index.
    let (status, _, account) = page(&t, &format!("/explorer/address/{patient}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(account.contains("registerPatient"), "{account}");
    assert!(account.contains("anchorRecord"), "{account}");
    assert!(account.contains("grantDoctor"), "{account}");
    assert!(account.contains("patient"), "{account}");
    assert!(
        account.contains("on the chain, the most recent first"),
        "{account}"
    );
    pages.push(account);

    // A contract's own page.
    let (status, _, registry) =
        page(&t, &format!("/explorer/address/{}", contracts.registry)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(registry.contains("Registry contract"), "{registry}");
    pages.push(registry);

    // The deployed contracts, with counts read from them.
    let (status, _, deployed) = page(&t, "/explorer/contracts").await;
    assert_eq!(status, StatusCode::OK);
    for address in [contracts.registry, contracts.records, contracts.consent] {
        assert!(deployed.contains(&address.to_string()), "{deployed}");
    }
    assert!(deployed.contains("hospitals"), "{deployed}");
    assert!(deployed.contains("grants"), "{deployed}");
    pages.push(deployed);

    // Every block the activity made, in full.
    for n in 0..=latest {
        let (status, _, block) = page(&t, &format!("/explorer/block/{n}")).await;
        assert_eq!(status, StatusCode::OK);
        pages.push(block);
    }
    for tx_hash in hashes_in(&pages) {
        let (status, _, tx) = page(&t, &format!("/explorer/tx/{tx_hash}")).await;
        assert_eq!(status, StatusCode::OK, "{tx_hash}");
        pages.push(tx);
    }
    assert!(
        pages.iter().any(|p| p.contains("RecordAnchored")),
        "the anchoring transaction's page shows its event"
    );
    assert!(pages.iter().any(|p| p.contains("Granted")));
    assert!(
        pages.iter().any(|p| p.contains("0 (report)")),
        "enum arguments are named"
    );

    // The search box sends each kind of input to its page.
    let (status, url, _) = page(&t, &format!("/explorer/search?q={add_hospital_block}")).await;
    assert_eq!(
        (status, url.as_str()),
        (
            StatusCode::OK,
            format!("/explorer/block/{add_hospital_block}").as_str()
        )
    );
    let (status, url, _) = page(&t, &format!("/explorer/search?q={add_hospital_tx}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(url, format!("/explorer/tx/{add_hospital_tx}"));
    let (status, url, _) = page(&t, &format!("/explorer/search?q=%20{patient}%20")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        url.to_lowercase(),
        format!("/explorer/address/{patient}").to_lowercase()
    );
    let block_hash = alloy::providers::Provider::get_block_by_number(
        t.app.ledger().provider(),
        add_hospital_block.into(),
    )
    .await
    .unwrap()
    .unwrap()
    .header
    .hash;
    let (status, url, _) = page(&t, &format!("/explorer/search?q={block_hash}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(url, format!("/explorer/block/{add_hospital_block}"));
    let (status, _, by_hash) = page(&t, &format!("/explorer/block/{block_hash}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(by_hash.contains(&add_hospital_tx), "{by_hash}");
    let (status, _, body) = page(&t, "/explorer/search?q=not+a+thing").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("is not a block number"), "{body}");
    assert!(
        body.contains("<svg"),
        "a bad search shows the index again: {body}"
    );
    let (status, _, body) = page(&t, &format!("/explorer/search?q=0x{}", "ab".repeat(32))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no transaction or block"), "{body}");

    // Bad path parameters: 400 for what cannot be one, 404 for what is not there.
    for (path, expected) in [
        ("/explorer/block/abc", StatusCode::BAD_REQUEST),
        ("/explorer/block/-1", StatusCode::BAD_REQUEST),
        (
            "/explorer/block/999999999999999999999999",
            StatusCode::BAD_REQUEST,
        ),
        ("/explorer/block/99999999", StatusCode::NOT_FOUND),
        ("/explorer/tx/0x1234", StatusCode::BAD_REQUEST),
        ("/explorer/tx/%3Cscript%3E", StatusCode::BAD_REQUEST),
        (
            &format!("/explorer/tx/0x{}", "00".repeat(31) + "01"),
            StatusCode::NOT_FOUND,
        ),
        ("/explorer/address/0xzz", StatusCode::BAD_REQUEST),
        (
            &format!("/explorer/address/0x{}", "g".repeat(40)),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, _, body) = page(&t, path).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert!(!body.contains("<script>"), "{path} echoes markup");
    }

    // Only public ledger data: no report title or text, no patient name, anywhere.
    for p in &pages {
        assert!(!p.contains("SECRET"), "a page shows the report: {p}");
        assert!(
            !p.contains(patient_name),
            "a page shows the patient's name: {p}"
        );
        assert!(!p.contains("Zelda"), "a page shows the patient's name: {p}");
    }
}

/// Every transaction hash linked from `pages`.
fn hashes_in(pages: &[String]) -> Vec<String> {
    let mut out: Vec<String> = pages
        .iter()
        .flat_map(|p| p.split("/explorer/tx/").skip(1))
        .map(|rest| rest.chars().take(66).collect::<String>())
        .filter(|h| h.len() == 66 && h.starts_with("0x"))
        .collect();
    out.sort();
    out.dedup();
    out
}
