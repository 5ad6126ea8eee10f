//! `medledger serve` killed with `kill -9` again and again under a mixed load — uploads,
//! grants, openings and prescriptions from several people at once. After every restart each
//! acknowledged upload still opens, byte for byte, and checks out against its anchor; at the
//! end no anchor on chain points at missing data and `medledger verify` passes.

mod support;

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::Rng;
use serde_json::{Value, json};
use support::{Started, login, serve_command, start_serve};

const KILLS: usize = 30;
const PASSWORD: &str = "a long enough password";
const ADMIN_PASSWORD: &str = "a good long admin password";

fn start(dir: &Path) -> Started {
    let mut cmd = serve_command(dir, &[]);
    cmd.env("MEDLEDGER_ADMIN_PASSWORD", ADMIN_PASSWORD);
    start_serve(cmd)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = client.post(url).json(&body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    match request.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// What the server acknowledged: a report's id, its patient and its bytes.
type Acked = Arc<Mutex<Vec<(String, usize, String)>>>;

struct People {
    patients: Vec<(String, String)>,
    doctor: (String, String),
}

async fn tokens(client: &reqwest::Client, url: &str, people: &People) -> (Vec<String>, String) {
    let mut patients = Vec::new();
    for (name, _) in &people.patients {
        patients.push(
            login(client, url, name, PASSWORD)
                .await
                .expect("patient logs in"),
        );
    }
    let doctor = login(client, url, &people.doctor.0, PASSWORD)
        .await
        .expect("doctor logs in");
    (patients, doctor)
}

/// Every acknowledged report opens for its patient with exactly its bytes, and its anchor
/// checks out.
async fn check_acknowledged(client: &reqwest::Client, url: &str, tokens: &[String], acked: &Acked) {
    let acked = acked.lock().unwrap().clone();
    for (id, patient, text) in &acked {
        let response = client
            .get(format!("{url}/api/v1/records/{id}/content"))
            .bearer_auth(&tokens[*patient])
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "acknowledged report {id} does not open"
        );
        assert_eq!(&response.text().await.unwrap(), text, "report {id} changed");
        let meta: Value = client
            .get(format!("{url}/api/v1/records/{id}"))
            .bearer_auth(&tokens[*patient])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(meta["anchor"]["integrity"], "verified", "{meta}");
    }
}

/// One person's share of the load until the server dies: a patient uploads (and now and then
/// grants the doctor, and opens an acknowledged report); the doctor prescribes and opens.
async fn load(
    url: String,
    token: String,
    who: usize,
    doctor: Option<String>,
    patients: Vec<String>,
    acked: Acked,
) {
    let client = client();
    let mut n = 0u64;
    loop {
        n += 1;
        match &doctor {
            None => {
                let text = format!(
                    "report {who}-{n}-{}: sodium 140 mmol/L",
                    rand::thread_rng().r#gen::<u32>()
                );
                let form = reqwest::multipart::Form::new()
                    .text("title", format!("Panel {who}-{n}"))
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(text.clone().into_bytes())
                            .file_name("r.txt"),
                    );
                let Ok(response) = client
                    .post(format!("{url}/api/v1/records"))
                    .bearer_auth(&token)
                    .multipart(form)
                    .send()
                    .await
                else {
                    return;
                };
                if response.status() == 201 {
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    if let Some(id) = body["id"].as_str() {
                        acked.lock().unwrap().push((id.to_string(), who, text));
                    }
                }
                if n.is_multiple_of(3) {
                    let _ = post(
                        &client,
                        &format!("{url}/api/v1/grants"),
                        Some(&token),
                        json!({
                            "hospital_id": 1, "scope": "all", "expires_in_days": 30
                        }),
                    )
                    .await;
                }
            }
            Some(_) => {
                let patient = &patients[n as usize % patients.len()];
                let (status, _) = post(&client, &format!("{url}/api/v1/prescriptions"), Some(&token), json!({
                    "patient": patient, "medications": [{ "name": "amoxicillin", "dose": "500 mg" }]
                })).await;
                if status == 0 {
                    return;
                }
            }
        }
        let some = acked.lock().unwrap().last().cloned();
        if let Some((id, _, _)) = some
            && client
                .get(format!("{url}/api/v1/records/{id}/content"))
                .bearer_auth(&token)
                .send()
                .await
                .is_err()
        {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_kill_9s_under_mixed_load_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let client = client();
    let mut server = start(dir.path());
    let url = server.url.clone();
    let admin = login(&client, &url, "admin", ADMIN_PASSWORD).await.unwrap();
    let (status, body) = post(
        &client,
        &format!("{url}/api/v1/hospitals"),
        Some(&admin),
        json!({ "name": "Central", "city": "Lyon" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        &client,
        &format!("{url}/api/v1/doctors"),
        Some(&admin),
        json!({ "name": "Dr. Crash", "hospital_id": 1 }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // The whole link, on the server's public URL; its last part is the token.
    let link = body["enrolment_url"].as_str().unwrap();
    let token = link.rsplit('/').next().unwrap();
    let (status, body) = post(
        &client,
        &format!("{url}/api/v1/enrol/{token}"),
        None,
        json!({ "username": "dr.crash", "password": PASSWORD }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let doctor_address = body["address"].as_str().unwrap().to_string();
    let mut people = People {
        patients: Vec::new(),
        doctor: ("dr.crash".into(), doctor_address),
    };
    for name in ["pat.one", "pat.two"] {
        let (status, body) = post(
            &client,
            &format!("{url}/api/v1/patients"),
            None,
            json!({
                "username": name, "password": PASSWORD, "name": format!("Patient {name}")
            }),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        people
            .patients
            .push((name.into(), body["address"].as_str().unwrap().to_string()));
    }
    let (patient_tokens, _) = tokens(&client, &url, &people).await;
    for token in &patient_tokens {
        let (status, body) = post(
            &client,
            &format!("{url}/api/v1/grants"),
            Some(token),
            json!({
                "doctor": people.doctor.1, "scope": "all", "expires_in_days": 30
            }),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let acked: Acked = Arc::default();
    let addresses: Vec<String> = people.patients.iter().map(|p| p.1.clone()).collect();
    for kill in 0..KILLS {
        let url = server.url.clone();
        let (patients, doctor) = tokens(&client, &url, &people).await;
        check_acknowledged(&client, &url, &patients, &acked).await;
        let mut tasks = Vec::new();
        for (who, token) in patients.iter().enumerate() {
            tasks.push(tokio::spawn(load(
                url.clone(),
                token.clone(),
                who,
                None,
                addresses.clone(),
                acked.clone(),
            )));
        }
        tasks.push(tokio::spawn(load(
            url.clone(),
            doctor.clone(),
            9,
            Some(doctor.clone()),
            addresses.clone(),
            acked.clone(),
        )));
        let wait = rand::thread_rng().gen_range(150..900);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        eprintln!(
            "kill {}: {} acknowledged uploads so far",
            kill + 1,
            acked.lock().unwrap().len()
        );
        server = start(dir.path());
    }
    let url = server.url.clone();
    let (patients, _) = tokens(&client, &url, &people).await;
    check_acknowledged(&client, &url, &patients, &acked).await;
    let count = acked.lock().unwrap().len();
    assert!(
        count >= KILLS,
        "the load acknowledged only {count} uploads in {KILLS} rounds"
    );
    drop(server);
    let (ok, out) = support::verify(&dir.path().join("data"));
    assert!(ok, "{out}");
    assert!(
        out.contains("chain: OK") && out.contains("reports: OK"),
        "{out}"
    );
}
