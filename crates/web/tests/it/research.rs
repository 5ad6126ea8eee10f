//! Research on chain: an admin invites a researcher (who enrols through the link), registers a
//! study for them (only the hash of its details goes on chain), and patients opt in and
//! withdraw by their own transactions, which the Research contract records; refusals are clear
//! and change nothing.

use alloy::sol_types::SolEvent;
use medledger_records::{contracts::Research, primitives::keccak256};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Backend, PASSWORD, TestApp};

impl TestApp {
    /// A researcher invited by the admin and enrolled under `username`: address and token.
    pub(crate) async fn add_researcher(&self, admin: &str, username: &str) -> (String, String) {
        let (status, invited) = self
            .post(
                "/api/v1/researchers",
                Some(admin),
                json!({ "name": format!("Prof. {username}") }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{invited}");
        assert_eq!(invited["role"], "researcher");
        let link = invited["enrolment_url"].as_str().unwrap();
        let address = self.enrol(link, username).await;
        (address, self.login(username, PASSWORD).await)
    }

    /// A study registered by the admin for `researcher`, running for `days`: its answer.
    pub(crate) async fn add_study(&self, admin: &str, researcher: &str, days: u64) -> Value {
        let now = self.app.ledger().now().await.unwrap();
        let (status, study) = self
            .post(
                "/api/v1/studies",
                Some(admin),
                json!({ "researcher": researcher, "title": "Anaemia in chronic kidney disease",
                        "description": "Haemoglobin over time", "data": ["Observation", "Condition"],
                        "ends_at": now + days * 86_400 }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{study}");
        study
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studies_are_registered_on_chain_and_patients_opt_in_and_withdraw_themselves() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Study General", "Rennes").await;
    let (_, doctor) = t.add_doctor(&admin, "dr.study", hospital).await;
    let (researcher_address, researcher) = t.add_researcher(&admin, "rita").await;
    let (patient_address, patient) = t.sign_up("pia", "Pia Patient").await;
    let (_, other) = t.sign_up("olaf", "Olaf Other").await;
    let (_, me) = t.get("/api/v1/me", Some(&researcher)).await;
    assert_eq!(me["role"], "researcher");
    let (status, list) = t.get("/api/v1/researchers", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["researchers"][0]["name"], "Prof. rita");

    // Refusals: not an admin, not a researcher, in the past, no data, unstructured data.
    let now = t.app.ledger().now().await.unwrap();
    let base = json!({ "researcher": researcher_address, "title": "T", "data": ["Observation"],
                       "ends_at": now + 86_400 });
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    for (token, body, expected, words) in [
        (&researcher, base.clone(), 403, "only an admin"),
        (
            &admin,
            with("researcher", json!(patient_address)),
            404,
            "no such researcher",
        ),
        (
            &admin,
            with("ends_at", json!(now - 1)),
            422,
            "end in the future",
        ),
        (&admin, with("data", json!([])), 400, "name the data"),
        (
            &admin,
            with("data", json!(["DocumentReference"])),
            400,
            "structured data only",
        ),
        (&admin, with("title", json!(" ")), 400, "title"),
    ] {
        let (status, answer) = t.post("/api/v1/studies", Some(token), body).await;
        assert_eq!(status.as_u16(), expected, "{answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(words),
            "{answer}"
        );
    }
    let (_, studies) = t.get("/api/v1/studies", Some(&admin)).await;
    assert_eq!(
        studies["studies"],
        json!([]),
        "the refusals changed nothing"
    );

    // Registered: on chain only the hash of its details, which match what is listed.
    let study = t.add_study(&admin, &researcher_address, 30).await;
    let id = study["id"].as_u64().unwrap();
    assert_eq!(id, 1);
    let research = t.app.contracts().research;
    let on_chain = Research::new(research, t.app.ledger().provider().clone())
        .getStudy(id)
        .call()
        .await
        .unwrap();
    assert_eq!(
        on_chain.researcher.to_string().to_lowercase(),
        researcher_address.to_lowercase()
    );
    assert_eq!(
        on_chain.detailsHash.to_string(),
        study["details_hash"].as_str().unwrap()
    );
    let stored: String = sqlx::query_scalar("SELECT details FROM studies WHERE id = 1")
        .fetch_one(t.app.db())
        .await
        .unwrap();
    assert_eq!(keccak256(stored.as_bytes()), on_chain.detailsHash);
    let tx = study["transaction"]["hash"].as_str().unwrap();
    let input = t.chain_call("eth_getTransactionByHash", json!([tx])).await["input"].to_string();
    assert!(
        !input.contains(&hex_of("Anaemia")),
        "the title is not on chain"
    );

    // The patient sees it and opts in; the chain says so; twice is refused.
    let (_, listed) = t.get("/api/v1/studies", Some(&patient)).await;
    assert_eq!(listed["studies"][0]["opted_in"], false);
    assert_eq!(
        listed["studies"][0]["title"],
        "Anaemia in chronic kidney disease"
    );
    let (status, joined) = t
        .post(
            &format!("/api/v1/studies/{id}/opt-in"),
            Some(&patient),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["opted_in"], true);
    assert!(joined["transaction"]["hash"].is_string());
    let (status, again) = t
        .post(
            &format!("/api/v1/studies/{id}/opt-in"),
            Some(&patient),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let opted = |who: String| {
        let t = &t;
        async move {
            t.app
                .research()
                .opted_in(who.parse().unwrap(), id)
                .await
                .unwrap()
        }
    };
    assert!(opted(patient_address.clone()).await);
    // Nobody else can opt in or withdraw for them; doctors take no part.
    let (status, _) = t
        .post(
            &format!("/api/v1/studies/{id}/opt-in"),
            Some(&doctor),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = t
        .post(
            &format!("/api/v1/studies/{id}/withdraw"),
            Some(&other),
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the other patient is not in it"
    );
    assert!(opted(patient_address.clone()).await);
    let (status, _) = t
        .post("/api/v1/studies/7/opt-in", Some(&patient), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t
        .post("/api/v1/studies/x/opt-in", Some(&patient), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The researcher sees their study.
    let (_, theirs) = t.get("/api/v1/studies", Some(&researcher)).await;
    assert_eq!(theirs["studies"].as_array().unwrap().len(), 1);

    // Withdrawn: the chain says so, and the study can be joined again while it runs.
    let (status, left) = t
        .post(
            &format!("/api/v1/studies/{id}/withdraw"),
            Some(&patient),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{left}");
    assert_eq!(left["opted_in"], false);
    assert!(!opted(patient_address.clone()).await);

    // After its end nobody joins.
    let (status, _) = t
        .post(
            &format!("/api/v1/studies/{id}/opt-in"),
            Some(&other),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    t.advance(31 * 86_400).await;
    let (status, body) = t
        .post(
            &format!("/api/v1/studies/{id}/opt-in"),
            Some(&patient),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, listed) = t.get("/api/v1/studies", Some(&other)).await;
    assert_eq!(listed["studies"][0]["running"], false);
    assert_eq!(
        listed["studies"][0]["opted_in"], false,
        "an ended study holds no live opt-in"
    );
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// A bundle of carebundle's whose Patient is made someone in particular: `i` marks their name,
/// phone and record number so the test can look for them in the export.
fn bundle_of(bytes: &[u8], i: usize, born: &str, gender: &str, zip: &str) -> Vec<u8> {
    let mut bundle: Value = serde_json::from_slice(bytes).unwrap();
    for e in bundle["entry"].as_array_mut().unwrap() {
        let r = &mut e["resource"];
        if r["resourceType"] == "Patient" {
            r["name"] = json!([{ "family": format!("NAME{i}x"), "given": ["Secret"] }]);
            r["birthDate"] = json!(born);
            r["gender"] = json!(gender);
            r["telecom"] = json!([{ "system": "phone", "value": format!("555-01{i:02}") }]);
            r["identifier"] = json!([{ "system": "urn:mrn", "value": format!("MRN{i}x") }]);
            r["address"] =
                json!([{ "line": ["12 Main St"], "city": "Cambridge", "postalCode": zip }]);
        }
    }
    serde_json::to_vec(&bundle).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_export_holds_only_de_identified_data_of_live_opt_ins_with_k_at_least_5() {
    use crate::{fhir::Received, import::carebundles};
    use medledger_records::{primitives::B256, research::export::files_hash};
    use std::collections::BTreeMap;

    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let (researcher_address, researcher) = t.add_researcher(&admin, "rhea").await;
    let study = t.add_study(&admin, &researcher_address, 30).await;
    let id = study["id"].as_u64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sources = carebundles(dir.path(), "anaemia", 8, 31);

    // Five alike (kept), one alone in their group (suppressed), one who never opted in and one
    // who withdrew (both absent, though alike the five).
    let people = [
        ("1961-06-03", "female", "02139", "in"),
        ("1961-02-11", "female", "02141", "in"),
        ("1961-09-30", "female", "02139", "in"),
        ("1961-12-01", "female", "02142", "in"),
        ("1961-04-15", "female", "02139", "in"),
        ("1980-01-01", "male", "10001", "in"),
        ("1961-06-03", "female", "02139", "never"),
        ("1961-06-03", "female", "02139", "withdrew"),
    ];
    let mut addresses = Vec::new();
    let mut tokens = Vec::new();
    let mut included_expected = Vec::new();
    for (i, (born, gender, zip, consent)) in people.iter().enumerate() {
        let (address, token) = t
            .sign_up(&format!("subject{i}"), &format!("Subject {i}"))
            .await;
        let bytes = bundle_of(&sources[i], i, born, gender, zip);
        let fields = [("title", "Labs"), ("kind", "report")];
        let (status, body) = t
            .upload(Some(&token), &fields, Some(("labs.json", bytes)))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        if *consent != "never" {
            let (status, body) = t
                .post(
                    &format!("/api/v1/studies/{id}/opt-in"),
                    Some(&token),
                    json!({}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        if *consent == "withdrew" {
            let (status, _) = t
                .post(
                    &format!("/api/v1/studies/{id}/withdraw"),
                    Some(&token),
                    json!({}),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
        }
        if i < 5 {
            included_expected.push(address.to_lowercase());
        }
        addresses.push(address.to_lowercase());
        tokens.push(token);
    }

    // Kick-off: only the researcher, only asynchronously.
    let kick = |token: &str, prefer: bool| {
        let mut r = t
            .http
            .get(format!("{}/fhir/Group/{id}/$export", t.url))
            .bearer_auth(token.to_string())
            .header("accept", "application/fhir+json");
        if prefer {
            r = r.header("prefer", "respond-async");
        }
        r.send()
    };
    assert_eq!(
        kick(&researcher, false).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        kick(&admin, true).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let started = kick(&researcher, true).await.unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let status_url = started.headers()["content-location"]
        .to_str()
        .unwrap()
        .to_string();
    let path = |url: &str| {
        let rest = url.split_once("://").unwrap().1;
        rest[rest.find('/').unwrap()..].to_string()
    };

    // Polled until done (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let manifest: Value = loop {
        let r = t
            .http
            .get(format!("{}{}", t.url, path(&status_url)))
            .bearer_auth(&researcher)
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::ACCEPTED => {
                assert!(r.headers().contains_key("x-progress"));
            }
            StatusCode::OK => break r.json().await.unwrap(),
            other => panic!("status {other}: {}", r.text().await.unwrap()),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the export did not finish within 90 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let report = &manifest["extension"]["urn:medledger:export"]["report"];
    assert_eq!(report["opted_in"], 6, "{manifest}");
    assert_eq!(report["included_patients"], 5, "{manifest}");
    assert_eq!(report["small_group_patients"], 1, "{manifest}");
    assert!(
        report["why"][0]
            .as_str()
            .unwrap()
            .contains("fewer than 5 patients"),
        "{report}"
    );

    // Every file: valid R4 line by line, and nothing that identifies anyone.
    let mut seen = Received::default();
    let mut files = BTreeMap::new();
    let mut patients = Vec::new();
    for out in manifest["output"].as_array().unwrap() {
        let kind = out["type"].as_str().unwrap().to_string();
        let r = t
            .http
            .get(format!("{}{}", t.url, path(out["url"].as_str().unwrap())))
            .bearer_auth(&researcher)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/fhir+ndjson");
        let body = r.text().await.unwrap();
        let lines: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len() as u64, out["count"].as_u64().unwrap());
        for line in &lines {
            assert_eq!(line["resourceType"], kind.as_str());
            seen.keep(&kind, line);
        }
        if kind == "Patient" {
            patients = lines;
        }
        files.insert(kind, body);
    }
    assert!(
        files.contains_key("Observation") && files.contains_key("Condition"),
        "{files:?}"
    );
    assert!(!files.contains_key("DocumentReference") && !files.contains_key("Encounter"));
    assert_eq!(
        patients.len(),
        5,
        "withdrawn and never-consenting patients are absent"
    );
    let all: String = files.values().cloned().collect();
    for i in 0..people.len() {
        for needle in [
            format!("NAME{i}x"),
            format!("MRN{i}x"),
            format!("555-01{i:02}"),
        ] {
            assert!(!all.contains(&needle), "{needle} survived");
        }
    }
    // (ZIP codes are looked for as JSON strings: five digits can occur inside a pseudonym.)
    for needle in [
        "Secret",
        "Main St",
        "Cambridge",
        "\"02139\"",
        "\"02141\"",
        "1961-",
        "2026-01-",
        "urn:uuid",
        "T09:",
        "div",
        "\"text\"",
    ] {
        assert!(!all.contains(needle), "{needle} survived the export");
    }
    for address in &addresses {
        assert!(
            !all.to_lowercase().contains(&address[2..]),
            "an account address survived"
        );
    }
    for source in &sources {
        let bundle: Value = serde_json::from_slice(source).unwrap();
        for e in bundle["entry"].as_array().unwrap() {
            if let Some(u) = e["fullUrl"].as_str() {
                assert!(
                    !all.contains(u.trim_start_matches("urn:uuid:")),
                    "a source id survived"
                );
            }
        }
    }
    seen.validate();

    // k-anonymity over (birth year, sex, ZIP3), as PyPI pycanon computes it.
    let csv: String = std::iter::once("birth,sex,zip3\n".to_string())
        .chain(patients.iter().map(|p| {
            format!(
                "{},{},{}\n",
                p["birthDate"].as_str().unwrap_or("90+"),
                p["gender"].as_str().unwrap(),
                p["address"][0]["postalCode"].as_str().unwrap()
            )
        }))
        .collect();
    let csv_path = dir.path().join("quasi.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let out = std::process::Command::new(medledger_testkit::fhir_python())
        .args([
            "-c",
            "import sys, pandas; from pycanon import anonymity; \
             print(anonymity.k_anonymity(pandas.read_csv(sys.argv[1], dtype=str), ['birth', 'sex', 'zip3']))",
        ])
        .arg(&csv_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(k >= 5, "pycanon says k = {k}");

    // On chain: the files' hash, and exactly the five included patients.
    let ext = &manifest["extension"]["urn:medledger:export"];
    let hash: B256 = ext["files_hash"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        files_hash(&files),
        hash,
        "the downloaded files are the ones recorded"
    );
    let tx = ext["transaction"].as_str().unwrap();
    let receipt = t.chain_call("eth_getTransactionReceipt", json!([tx])).await;
    assert_eq!(receipt["status"], "0x1");
    let mut included: Vec<String> = receipt["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            l["topics"][0].as_str().unwrap()
                == medledger_records::contracts::Research::IncludedInExport::SIGNATURE_HASH
                    .to_string()
        })
        .map(|l| format!("0x{}", &l["topics"][1].as_str().unwrap()[26..]))
        .collect();
    included.sort();
    included_expected.sort();
    assert_eq!(included, included_expected);
    let recorded = receipt["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| {
            l["topics"][0].as_str().unwrap()
                == medledger_records::contracts::Research::ExportRecorded::SIGNATURE_HASH
                    .to_string()
        })
        .unwrap();
    assert!(
        recorded["data"]
            .as_str()
            .unwrap()
            .contains(&hash.to_string()[2..])
    );

    // The research key holds the bundles of those taking part, and of nobody else.
    for (i, address) in addresses.iter().enumerate() {
        let wrapped: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM wraps w JOIN records r ON r.id = w.object_id
             WHERE w.reader = 'research' AND r.patient = $1",
        )
        .bind(address)
        .fetch_one(t.app.db())
        .await
        .unwrap();
        let expected = i64::from(people[i].3 == "in");
        assert_eq!(wrapped, expected, "patient {i} ({})", people[i].3);
    }

    // A bundle shared while taking part is the study's too; one shared by someone who left is not.
    for (i, expected) in [(0usize, 2i64), (7, 0)] {
        let bytes = bundle_of(&sources[i], i, people[i].0, people[i].1, people[i].2);
        let fields = [("title", "More labs"), ("kind", "report")];
        let (status, body) = t
            .upload(Some(&tokens[i]), &fields, Some(("more.json", bytes)))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let wrapped: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM wraps w JOIN records r ON r.id = w.object_id
             WHERE w.reader = 'research' AND r.patient = $1",
        )
        .bind(&addresses[i])
        .fetch_one(t.app.db())
        .await
        .unwrap();
        assert_eq!(wrapped, expected, "patient {i}");
    }

    // Each included patient's access log says so; nobody else's does.
    for (i, token) in tokens.iter().enumerate() {
        let (_, log) = t.get("/api/v1/audit", Some(token)).await;
        let inclusions: Vec<&Value> = log["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "included_in_export")
            .collect();
        if i < 5 {
            assert_eq!(inclusions.len(), 1, "patient {i}: {log}");
            let summary = inclusions[0]["summary"].as_str().unwrap();
            assert!(
                summary.contains("included in an export for study 1")
                    && summary.contains("Anaemia in chronic kidney disease"),
                "{summary}"
            );
            assert_eq!(inclusions[0]["tx_hash"], tx);
        } else {
            assert!(inclusions.is_empty(), "patient {i} was not included: {log}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_research_pages_invite_register_join_and_export() {
    use crate::pages::Browser;
    let t = TestApp::spawn(Backend::Embedded).await;
    let mut admin = Browser::new(&t).await;
    admin.login("admin", crate::ADMIN_PASSWORD).await;
    let r = admin
        .post(
            "/admin/researchers",
            &[("csrf", &admin.csrf), ("name", "Prof. Page")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let link = html
        .split("id=\"enrolment-link\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the enrolment link is shown")
        .replace("&#x2f;", "/");
    let researcher_address = t.enrol(&link, "paige").await;
    let (_, page) = admin.get("/admin/research").await;
    assert!(page.contains("Prof. Page"), "{page}");
    // A refused registration comes back with its error; a good one is registered on chain.
    let r = admin
        .post(
            "/admin/studies",
            &[
                ("csrf", &admin.csrf),
                ("researcher", &researcher_address),
                ("title", "Page study"),
                ("ends_on", "2020-01-01"),
                ("data", "Observation"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("end in the future"));
    let r = admin
        .post(
            "/admin/studies",
            &[
                ("csrf", &admin.csrf),
                ("researcher", &researcher_address),
                ("title", "Page study"),
                ("description", "Haemoglobin"),
                ("ends_on", "2099-12-31"),
                ("data", "Observation"),
                ("data", "Condition"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, page) = admin.get("/admin/research").await;
    assert!(
        page.contains("Page study") && page.contains("Observation, Condition"),
        "{page}"
    );

    // A patient takes part from their page.
    t.sign_up("pat", "Pat Page").await;
    let mut patient = Browser::new(&t).await;
    patient.login("pat", PASSWORD).await;
    let (_, page) = patient.get("/patient/studies").await;
    assert!(
        page.contains("Page study") && page.contains("Take part"),
        "{page}"
    );
    let r = patient
        .post("/patient/studies/1/opt-in", &[("csrf", &patient.csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, page) = patient.get("/patient/studies").await;
    assert!(
        page.contains("you take part") && page.contains("Withdraw"),
        "{page}"
    );

    // An export left "running" by a stopped server an hour ago does not block a new one.
    sqlx::query(
        "INSERT INTO exports (id, study, researcher, state, created_at) VALUES ('cut-off', 1, $1, 'running', $2)",
    )
    .bind(researcher_address.to_lowercase())
    .bind(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 - 7200)
    .execute(t.app.db())
    .await
    .unwrap();

    // The researcher exports from their page and follows it to the end.
    let mut researcher = Browser::new(&t).await;
    researcher.login("paige", PASSWORD).await;
    let (_, page) = researcher.get("/researcher").await;
    assert!(
        page.contains("Page study") && page.contains("Export now"),
        "{page}"
    );
    let r = researcher
        .post(
            "/researcher/studies/1/export",
            &[("csrf", &researcher.csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, page) = researcher.get("/researcher").await;
        if page.contains("badge ok\">done") {
            assert!(page.contains("0 of 1 taking part"), "{page}");
            assert!(
                page.contains("fewer than 5 patients"),
                "a lone patient is suppressed: {page}"
            );
            break;
        }
        assert_eq!(
            page.matches("badge bad\">failed").count(),
            1,
            "only the cut-off export failed: {page}"
        );
        assert!(
            page.contains("<progress") || page.contains("http-equiv=\"refresh\""),
            "{page}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the export did not finish within 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let state: String = sqlx::query_scalar("SELECT state FROM exports WHERE id = 'cut-off'")
        .fetch_one(t.app.db())
        .await
        .unwrap();
    assert_eq!(state, "failed", "the cut-off export is marked failed");
    // Other roles do not get these pages.
    let (r, _) = patient.get("/researcher").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (r, _) = researcher.get("/admin/research").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
