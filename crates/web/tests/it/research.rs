//! Research on chain: an admin invites a researcher (who enrols through the link), registers a
//! study for them (only the hash of its details goes on chain), and patients opt in and
//! withdraw by their own transactions, which the Research contract records; refusals are clear
//! and change nothing.

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
        async move { t.app.opted_in(who.parse().unwrap(), id).await.unwrap() }
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
