//! The access matrix: every route x {anonymous, the patient, another patient, a doctor with a
//! grant, with an expired grant, with a revoked grant, without one, a suspended doctor, a doctor
//! in an emergency, the admin, a researcher}, asserting the status, that nothing secret leaked
//! to whom it was
//! not for, and that refusals changed nothing. The routes include ending an emergency,
//! enrolment (invitations, links) and second factors.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Backend, PASSWORD, TestApp};

const WHO: [&str; 11] = [
    "anonymous",
    "patient",
    "other patient",
    "granted doctor",
    "expired grant",
    "revoked grant",
    "no grant",
    "suspended doctor",
    "emergency doctor",
    "admin",
    "researcher",
];
/// Who may see the patient's secrets: the patient, the granted doctor, the emergency doctor.
const MAY_SEE: [bool; 11] = [
    false, true, false, true, false, false, false, false, true, false, false,
];
/// Every secret in the fixture contains this marker.
const SECRET: &str = "SECRET";
const REPORT: &str = "SECRET-LAB-VALUE potassium 4.2 mmol/L";

struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
    /// The expected status for each of `WHO`; `None` skips (tested elsewhere).
    expect: [Option<u16>; 11],
}

fn case(method: Method, path: impl Into<String>, body: Option<Value>, expect: [u16; 11]) -> Case {
    Case {
        method,
        path: path.into(),
        body,
        expect: expect.map(Some),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_every_kind_of_caller_on_the_embedded_node() {
    matrix(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_every_kind_of_caller_on_postgresql_and_s3() {
    matrix(Backend::PostgresS3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_every_kind_of_caller_on_anvil() {
    matrix(Backend::Anvil).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_every_kind_of_caller_on_hardhat() {
    matrix(Backend::Hardhat).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_every_kind_of_caller_on_ganache() {
    matrix(Backend::Ganache).await;
}

async fn matrix(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Central", "Lyon").await;
    let spare = t.add_hospital(&admin, "Spare", "Nice").await;
    let mut doctors = Vec::new();
    for name in [
        "granted",
        "expired",
        "revoked",
        "nogrant",
        "suspended",
        "emergency",
    ] {
        doctors.push(t.add_doctor(&admin, &format!("dr.{name}"), hospital).await);
    }
    let [granted, expired, revoked, nogrant, suspended, emergency] = &doctors[..] else {
        unreachable!()
    };
    let (patient_address, patient) = t.sign_up("pauline", "Pauline SECRET-NAME").await;
    let (_, other) = t.sign_up("oscar", "Oscar Other").await;
    let record = t
        .share(
            &patient,
            "SECRET-TITLE lipid panel",
            REPORT,
            &[&granted.0, &revoked.0, &suspended.0],
        )
        .await;
    // A FHIR Bundle shared with the same doctors: its Observation is searchable through /fhir.
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "gender": "female"}},
        {"resource": {"resourceType": "Observation", "status": "final",
          "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
          "subject": {"reference": "urn:uuid:p"}, "valueString": "SECRET-OBSERVATION 4.2"}},
    ]});
    let mut fields = vec![("title", "Labs bundle"), ("kind", "report")];
    for d in [&granted.0, &suspended.0] {
        fields.push(("share_with", d));
    }
    let (status, body) = t
        .upload(
            Some(&patient),
            &fields,
            Some(("labs.json", serde_json::to_vec(&bundle).unwrap())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let fhir_observation = format!("{}-2", &body["id"].as_str().unwrap()[2..58]);
    let now = t.app.ledger().now().await.unwrap();
    let (status, body) = t
        .post(
            "/api/v1/grants",
            Some(&patient),
            json!({ "doctor": expired.0, "scope": "all", "purpose": "treatment", "expires_at": now + 60 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, grants) = t.get("/api/v1/grants", Some(&patient)).await;
    let grant_of = |doctor: &str| {
        grants["grants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["doctor"].as_str().unwrap().eq_ignore_ascii_case(doctor))
            .unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    let granted_grant = grant_of(&granted.0);
    let (status, _) = t
        .call(
            Method::DELETE,
            &format!("/api/v1/grants/{}", grant_of(&revoked.0)),
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .post(
            &format!("/api/v1/doctors/{}/suspend", suspended.0),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = t
        .post(
            "/api/v1/emergency",
            Some(&emergency.1),
            json!({ "patient": patient_address, "reason": "unconscious on arrival, SECRET reason" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        !body.to_string().contains(SECRET),
        "the reason stays off the answer: {body}"
    );
    let emergency_id = body["id"].as_u64().unwrap();
    let (status, invitation) = t
        .post(
            "/api/v1/doctors",
            Some(&admin),
            json!({ "name": "Dr. Invited", "hospital_id": hospital }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invitation}");
    let invite_key = invitation["invite_key"].as_str().unwrap().to_string();
    t.advance(120).await; // the expired grant lapses

    let (researcher_address, researcher) = t.add_researcher(&admin, "dr.science").await;
    let study = t.add_study(&admin, &researcher_address, 30).await["id"]
        .as_u64()
        .unwrap();
    let tokens: [Option<&str>; 11] = [
        None,
        Some(&patient),
        Some(&other),
        Some(&granted.1),
        Some(&expired.1),
        Some(&revoked.1),
        Some(&nogrant.1),
        Some(&suspended.1),
        Some(&emergency.1),
        Some(&admin),
        Some(&researcher),
    ];
    let p = &patient_address;
    let fhir_patient = p.trim_start_matches("0x").to_lowercase();
    let fhir_record = record.trim_start_matches("0x");
    let prescription =
        json!({ "patient": p, "medications": [{ "name": "Amoxicillin", "dose": "500 mg" }] });
    let hospital_body = json!({ "name": "Spare", "city": "Nice" });
    let mut cases = vec![
        // Public directory.
        case(Method::GET, "/healthz", None, [200; 11]),
        case(Method::GET, "/api/v1/openapi.json", None, [200; 11]),
        case(Method::GET, "/api/v1/hospitals", None, [200; 11]),
        case(
            Method::GET,
            format!("/api/v1/hospitals/{hospital}"),
            None,
            [200; 11],
        ),
        case(Method::GET, "/api/v1/doctors", None, [200; 11]),
        case(
            Method::GET,
            format!("/api/v1/doctors/{}", granted.0),
            None,
            [200; 11],
        ),
        // One's own account.
        case(
            Method::GET,
            "/api/v1/me",
            None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/v1/me/keystore",
            None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200],
        ),
        case(
            Method::POST,
            "/api/v1/me/password",
            Some(
                json!({ "current_password": "not the password", "new_password": "another long password" }),
            ),
            [401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403],
        ),
        // Wallets: a nonce for anyone; a sign-in or a move with no signed message is refused
        // as bad input; nobody completes or cancels a write that is not their wallet's.
        case(
            Method::POST,
            "/api/v1/auth/siwe/nonce",
            Some(json!({})),
            [201; 11],
        ),
        case(
            Method::POST,
            "/api/v1/auth/siwe",
            Some(json!({ "message": "sign me in", "signature": "0x00", "key_signature": "0x00" })),
            [400; 11],
        ),
        case(
            Method::POST,
            "/api/v1/me/wallet",
            Some(json!({ "message": "move me", "signature": "0x00", "key_signature": "0x00" })),
            [401, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400],
        ),
        case(
            Method::POST,
            "/api/v1/writes/1",
            Some(json!({ "tx_hash": format!("0x{}", "00".repeat(32)) })),
            [401, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404],
        ),
        case(
            Method::DELETE,
            "/api/v1/writes/1",
            None,
            [401, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404],
        ),
        // The record: the chain decides.
        case(
            Method::GET,
            format!("/api/v1/records/{record}"),
            None,
            [401, 200, 403, 200, 403, 403, 403, 403, 200, 403, 403],
        ),
        case(
            Method::GET,
            format!("/api/v1/records/{record}/content"),
            None,
            [401, 200, 403, 200, 403, 403, 403, 403, 200, 403, 403],
        ),
        // Emergency access is for treatment only.
        case(
            Method::GET,
            format!("/api/v1/records/{record}?purpose=research"),
            None,
            [401, 200, 403, 403, 403, 403, 403, 403, 403, 403, 403],
        ),
        case(
            Method::GET,
            "/api/v1/records",
            None,
            [401, 200, 200, 403, 403, 403, 403, 403, 403, 403, 403],
        ),
        case(
            Method::GET,
            format!("/api/v1/records?patient={p}"),
            None,
            [401, 403, 403, 200, 200, 200, 200, 403, 200, 403, 403],
        ),
        case(
            Method::GET,
            "/api/v1/patients",
            None,
            [401, 403, 403, 200, 200, 200, 200, 403, 200, 403, 403],
        ),
        case(
            Method::GET,
            "/api/v1/grants",
            None,
            [401, 200, 200, 200, 200, 200, 200, 403, 200, 403, 403],
        ),
        case(
            Method::GET,
            "/api/v1/prescriptions",
            None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200, 403, 403],
        ),
        case(
            Method::GET,
            "/api/v1/audit",
            None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200, 403, 403],
        ),
        case(
            Method::POST,
            "/api/v1/prescriptions",
            Some(prescription),
            [401, 403, 403, 201, 403, 403, 403, 403, 201, 403, 403],
        ),
        Case {
            method: Method::DELETE,
            path: format!("/api/v1/grants/{granted_grant}"),
            body: None,
            expect: [
                Some(401),
                None,
                Some(403),
                Some(403),
                Some(403),
                Some(403),
                Some(403),
                Some(403),
                Some(403),
                Some(403),
                Some(403),
            ],
        },
        Case {
            method: Method::POST,
            path: "/api/v1/grants".into(),
            body: Some(json!({ "doctor": nogrant.0, "scope": "all", "expires_in_days": 1 })),
            expect: [
                Some(401),
                None,
                Some(201),
                Some(403),
                Some(403),
                Some(403),
                Some(403),
                Some(403),
                Some(403),
                Some(403),
                Some(403),
            ],
        },
        // Admin writes (they change only the spare hospital and a new doctor).
        case(
            Method::POST,
            "/api/v1/hospitals",
            Some(hospital_body.clone()),
            [401, 403, 403, 403, 403, 403, 403, 403, 403, 201, 403],
        ),
        case(
            Method::PUT,
            format!("/api/v1/hospitals/{spare}"),
            Some(hospital_body),
            [401, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403],
        ),
        case(
            Method::POST,
            format!("/api/v1/hospitals/{spare}/suspend"),
            Some(json!({})),
            [401, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403],
        ),
        case(
            Method::POST,
            format!("/api/v1/hospitals/{spare}/reactivate"),
            Some(json!({})),
            [401, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403],
        ),
        case(
            Method::POST,
            format!("/api/v1/doctors/{}/suspend", nogrant.0),
            Some(json!({})),
            [401, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403],
        ),
        case(
            Method::POST,
            format!("/api/v1/doctors/{}/reactivate", nogrant.0),
            Some(json!({})),
            [401, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403],
        ),
        // Emergencies as each sees them; enrolment; second factors (set up, never confirmed).
        case(
            Method::GET,
            "/api/v1/emergencies",
            None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 403],
        ),
        case(
            Method::POST,
            "/api/v1/admins",
            Some(json!({})),
            [401, 403, 403, 403, 403, 403, 403, 403, 403, 201, 403],
        ),
        case(
            Method::GET,
            "/api/v1/enrolments",
            None,
            [401, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403],
        ),
        case(
            Method::DELETE,
            format!("/api/v1/enrolments/{invite_key}"),
            None,
            [401, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403],
        ),
        case(Method::GET, "/api/v1/enrol/not-a-token", None, [404; 11]),
        case(
            Method::POST,
            "/api/v1/enrol/not-a-token",
            Some(json!({ "username": "dr.sneak", "password": PASSWORD })),
            [404; 11],
        ),
        case(
            Method::POST,
            "/api/v1/me/mfa",
            Some(json!({})),
            [401, 201, 201, 201, 201, 201, 201, 201, 201, 201, 201],
        ),
        // Its code is made wrong for each caller's new secret below (a fixed one is right by
        // chance for one secret in about 330,000).
        case(
            Method::POST,
            "/api/v1/me/mfa/confirm",
            Some(json!({ "code": "000000" })),
            [401; 11],
        ),
        case(
            Method::POST,
            "/api/v1/me/mfa/off",
            Some(json!({ "code": "000000" })),
            [401, 409, 409, 409, 409, 409, 409, 409, 409, 409, 409],
        ),
        // The FHIR API: the same chain decisions, as FHIR resources.
        case(Method::GET, "/fhir/metadata", None, [200; 11]),
        case(Method::GET, "/fhir/Practitioner", None, [200; 11]),
        case(Method::GET, "/fhir/Organization", None, [200; 11]),
        case(
            Method::GET,
            format!("/fhir/Patient/{fhir_patient}"),
            None,
            [401, 200, 404, 200, 404, 404, 404, 404, 200, 403, 403],
        ),
        case(
            Method::GET,
            "/fhir/Patient",
            None,
            [401, 200, 200, 200, 200, 200, 200, 403, 200, 403, 403],
        ),
        case(
            Method::GET,
            format!("/fhir/DocumentReference/{fhir_record}"),
            None,
            [401, 200, 404, 200, 404, 404, 404, 404, 200, 403, 403],
        ),
        case(
            Method::GET,
            format!("/fhir/DocumentReference?patient=Patient/{fhir_patient}"),
            None,
            [401, 200, 403, 200, 200, 200, 200, 403, 200, 403, 403],
        ),
        case(
            Method::GET,
            format!("/fhir/Binary/{fhir_record}"),
            None,
            [401, 200, 404, 200, 404, 404, 404, 404, 200, 403, 403],
        ),
        case(
            Method::GET,
            format!("/fhir/Patient/{fhir_patient}/$everything"),
            None,
            [401, 200, 403, 200, 404, 404, 404, 404, 200, 403, 403],
        ),
        case(
            Method::GET,
            "/fhir/MedicationRequest",
            None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200, 403, 403],
        ),
        case(
            Method::GET,
            format!("/fhir/Observation?patient=Patient/{fhir_patient}"),
            None,
            [401, 200, 403, 200, 200, 200, 200, 403, 200, 403, 403],
        ),
        case(
            Method::GET,
            format!("/fhir/Provenance?target=DocumentReference/{fhir_record}"),
            None,
            [401, 200, 200, 200, 200, 200, 200, 403, 200, 403, 403],
        ),
        case(
            Method::GET,
            format!("/fhir/Provenance/{fhir_record}"),
            None,
            [401, 200, 404, 200, 404, 404, 404, 404, 200, 403, 403],
        ),
        case(
            Method::GET,
            format!("/fhir/Observation/{fhir_observation}"),
            None,
            [401, 200, 404, 200, 404, 404, 404, 404, 200, 403, 403],
        ),
        case(
            Method::GET,
            "/fhir/Consent",
            None,
            [401, 200, 200, 200, 200, 200, 200, 403, 200, 403, 403],
        ),
        case(
            Method::GET,
            "/fhir/AuditEvent",
            None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200, 403, 403],
        ),
        // Research: studies for those who take part; only patients opt in; only the study's
        // researcher exports (asynchronously: without `Prefer: respond-async`, a 400).
        case(
            Method::GET,
            "/api/v1/studies",
            None,
            [401, 200, 200, 403, 403, 403, 403, 403, 403, 200, 200],
        ),
        case(
            Method::POST,
            format!("/api/v1/studies/{study}/opt-in"),
            Some(json!({})),
            [401, 200, 200, 403, 403, 403, 403, 403, 403, 403, 403],
        ),
        case(
            Method::GET,
            format!("/fhir/Group/{study}/$export"),
            None,
            [401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 400],
        ),
        // Emergencies last: they open access. The emergency doctor's is open already, and is
        // not extended by declaring again.
        case(
            Method::POST,
            "/api/v1/emergency",
            Some(json!({ "patient": p, "reason": "collapsed" })),
            [401, 403, 403, 201, 201, 201, 201, 403, 409, 403, 403],
        ),
    ];
    // Adding a doctor needs a fresh user name per caller.
    for (i, expect) in [401u16, 403, 403, 403, 403, 403, 403, 403, 403, 201, 403]
        .into_iter()
        .enumerate()
    {
        let mut expected = [None; 11];
        expected[i] = Some(expect);
        cases.insert(
            cases.len() - 1,
            Case {
                method: Method::POST,
                path: "/api/v1/doctors".into(),
                body: Some(json!({ "username": format!("dr.new{i}"), "password": PASSWORD, "name": "Dr. New", "hospital_id": hospital })),
                expect: expected,
            },
        );
    }

    // The patient ends the emergency doctor's emergency; nobody else may, and then it is over.
    cases.push(case(
        Method::POST,
        format!("/api/v1/emergencies/{emergency_id}/end"),
        Some(json!({})),
        [401, 200, 403, 403, 403, 403, 403, 403, 403, 404, 403],
    ));

    let mut openings = 0;
    let mut prescriptions = 0;
    let mut seen = crate::fhir::Received::default();
    let mut mfa_secrets: [Option<String>; 11] = Default::default();
    for case in &cases {
        for (i, token) in tokens.iter().enumerate() {
            let Some(expected) = case.expect[i] else {
                continue;
            };
            let mut request = case.body.clone();
            if case.path == "/api/v1/me/mfa/confirm"
                && let Some(secret) = &mfa_secrets[i]
            {
                request = Some(json!({ "code": crate::trust::wrong_code(secret) }));
            }
            let (status, body) = t
                .call(case.method.clone(), &case.path, *token, request)
                .await;
            if case.path == "/api/v1/me/mfa" && status.is_success() {
                mfa_secrets[i] = body["secret"].as_str().map(str::to_string);
            }
            assert_eq!(
                status.as_u16(),
                expected,
                "{} {} as {}: {body}",
                case.method,
                case.path,
                WHO[i]
            );
            let text = body.to_string();
            // Every FHIR answer (but a Binary's raw bytes) is validated as R4 at the end.
            if case.path.starts_with("/fhir/") && body.get("resourceType").is_some() {
                seen.keep(&format!("{} as {}", case.path, WHO[i]), &body);
            }
            if !status.is_success() && case.path.starts_with("/fhir/") {
                assert_eq!(
                    body["resourceType"], "OperationOutcome",
                    "{}: {body}",
                    case.path
                );
            } else if !status.is_success() {
                assert!(
                    body["error"]["code"].is_string(),
                    "{} {}: {body}",
                    case.method,
                    case.path
                );
            }
            if !(status.is_success() && MAY_SEE[i]) {
                assert!(
                    !text.contains(SECRET),
                    "{} {} leaked to {}: {text}",
                    case.method,
                    case.path,
                    WHO[i]
                );
            }
            if (case.path.ends_with("/content") || case.path.starts_with("/fhir/Binary/"))
                && status.is_success()
            {
                assert_eq!(body, Value::String(REPORT.into()));
                openings += 1;
            }
            if case.path == "/api/v1/prescriptions"
                && case.method == Method::POST
                && status.is_success()
            {
                prescriptions += 1;
            }
        }
    }

    // Refusals changed nothing: the chain logged exactly the allowed openings, and only the
    // allowed prescriptions exist.
    let (_, audit) = t.get("/api/v1/audit", Some(&patient)).await;
    let opened: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "opened")
        .collect();
    assert_eq!(opened.len(), openings);
    assert_eq!(
        openings, 6,
        "three through the REST API, three through FHIR"
    );
    let emergencies = opened.iter().filter(|e| e["emergency"] == true).count();
    assert_eq!(emergencies, 2);
    let (_, list) = t.get("/api/v1/prescriptions", Some(&patient)).await;
    assert_eq!(
        list["prescriptions"].as_array().unwrap().len(),
        prescriptions
    );
    assert_eq!(prescriptions, 2);
    let (_, list) = t.get("/api/v1/records", Some(&patient)).await;
    assert_eq!(list["records"].as_array().unwrap().len(), 2);
    // The password-change attempts with a wrong current password changed nothing.
    t.login("pauline", PASSWORD).await;
    t.login("dr.granted", PASSWORD).await;
    seen.validate();
}
