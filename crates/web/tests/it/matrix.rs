//! The access matrix: every route the web router serves (the REST API, FHIR and the pages) x
//! twelve kinds of caller (anonymous, the patient, another patient, a doctor granted single
//! records, a doctor granted all records, with an expired grant, with a revoked grant, without
//! one, a suspended doctor, a doctor in an emergency, the admin, a researcher), asserting the
//! status, which of the patient's sealed fields each answer shows (every field carries its own
//! marker), and that refusals changed nothing. A test reads the route table from the source and
//! fails on any route the matrix has no case for.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use medledger_records::{
    limits::Limit,
    research::deidentify::{DEFAULT_ZIP3_TABLE, SafeHarbor},
};
use reqwest::{Method, StatusCode, header, multipart, redirect::Policy};
use serde_json::{Value, json};

use crate::{Backend, PASSWORD, TestApp};

const ANONYMOUS: usize = 0;
const PATIENT: usize = 1;
const OTHER_PATIENT: usize = 2;
/// Granted single records (`share_with` makes a grant of scope `records`).
const RECORDS_GRANTEE: usize = 3;
/// Granted all records for treatment.
const ALL_GRANTEE: usize = 4;
const EXPIRED: usize = 5;
const REVOKED: usize = 6;
const NO_GRANT: usize = 7;
const SUSPENDED: usize = 8;
const EMERGENCY: usize = 9;
const ADMIN: usize = 10;
const RESEARCHER: usize = 11;
const CALLERS: usize = 12;

const WHO: [&str; CALLERS] = [
    "anonymous",
    "patient",
    "other patient",
    "single-record grantee",
    "all-records grantee",
    "expired grant",
    "revoked grant",
    "no grant",
    "suspended doctor",
    "emergency doctor",
    "admin",
    "researcher",
];

const PATIENTS: &[usize] = &[PATIENT, OTHER_PATIENT];
/// The doctors whose account is active (the suspended one is not).
const ACTIVE_DOCTORS: &[usize] = &[
    RECORDS_GRANTEE,
    ALL_GRANTEE,
    EXPIRED,
    REVOKED,
    NO_GRANT,
    EMERGENCY,
];
const DOCTORS: &[usize] = &[
    RECORDS_GRANTEE,
    ALL_GRANTEE,
    EXPIRED,
    REVOKED,
    NO_GRANT,
    SUSPENDED,
    EMERGENCY,
];
/// Those the chain lets open the shared report and read the bundle: the patient, both
/// grantees, the emergency doctor.
const READERS: &[usize] = &[PATIENT, RECORDS_GRANTEE, ALL_GRANTEE, EMERGENCY];
/// Doctors with some live access to the patient (a grant of any scope, or the emergency).
const TREATING: &[usize] = &[RECORDS_GRANTEE, ALL_GRANTEE, EMERGENCY];

// Each sealed field of the fixture carries its own marker.
const NAME: &str = "SECRET-NAME";
/// The date of birth: a date nothing else in the fixture has.
const DATE_OF_BIRTH: &str = "1901-02-03";
const CONTACT: &str = "SECRET-CONTACT";
const TITLE: &str = "SECRET-TITLE";
const NOTES: &str = "SECRET-NOTES";
const LAB_VALUE: &str = "SECRET-LAB-VALUE";
const OBSERVATION: &str = "SECRET-OBSERVATION";
const MEDICATION: &str = "SECRET-MEDICATION";
const REASON: &str = "SECRET-REASON";
const MARKERS: [&str; 9] = [
    NAME,
    DATE_OF_BIRTH,
    CONTACT,
    TITLE,
    NOTES,
    LAB_VALUE,
    OBSERVATION,
    MEDICATION,
    REASON,
];
/// Every marker but the date of birth contains this: what is left of it once the markers a
/// caller may see are taken out is a field nobody named.
const SECRET: &str = "SECRET";
const REPORT: &str = "SECRET-LAB-VALUE potassium 4.2 mmol/L";
/// A visitor's CSRF token (a page's double-submit cookie and field): 64 characters.
const VISITOR_CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// What each kind of caller may ever be shown of the patient. The patient sees all of their own.
/// A grant of single records (scope `records`) shows the records it covers (the report and the
/// bundle), the name and the date of birth, never the contact (`Consent.profileAccess`) nor the
/// prescription, which it does not cover. A grant of all records shows every record and the
/// whole profile. The emergency shows the patient's data to its doctor, and its reason to its
/// author (that doctor) and to the patient only. Nobody else sees any of it: another patient,
/// expired, revoked, missing or suspended grants, admins and researchers.
fn may_see(who: usize) -> &'static [&'static str] {
    match who {
        PATIENT | EMERGENCY => &MARKERS,
        RECORDS_GRANTEE => &[NAME, DATE_OF_BIRTH, TITLE, NOTES, LAB_VALUE, OBSERVATION],
        ALL_GRANTEE => &[
            NAME,
            DATE_OF_BIRTH,
            CONTACT,
            TITLE,
            NOTES,
            LAB_VALUE,
            OBSERVATION,
            MEDICATION,
        ],
        _ => &[],
    }
}

/// What a request carries.
enum Body {
    Empty,
    /// JSON; `{caller}` in it becomes the caller's number (fresh names per caller).
    Json(Value),
    /// A page's form; the caller's CSRF token is added (and, for a visitor, its cookie).
    Form(Vec<(&'static str, String)>),
    /// A multipart form, with an optional file (name, contents); a page's gets the CSRF token.
    Multipart(
        Vec<(&'static str, String)>,
        Option<(&'static str, &'static str)>,
    ),
}

struct Case {
    method: Method,
    path: String,
    body: Body,
    headers: Vec<(&'static str, &'static str)>,
    /// The expected status for each of `WHO`; `None` skips (tested elsewhere).
    expect: [Option<u16>; CALLERS],
    /// What must be in a caller's answer (besides what they may see, which bounds it).
    shows: Vec<(usize, Vec<String>)>,
    /// What must be in nobody's answer (besides the markers).
    hides: Vec<String>,
}

impl Case {
    fn new(method: Method, path: impl Into<String>, body: Body, expect: [u16; CALLERS]) -> Case {
        Case {
            method,
            path: path.into(),
            body,
            headers: Vec::new(),
            expect: expect.map(Some),
            shows: Vec::new(),
            hides: Vec::new(),
        }
    }

    /// The answers of `who` must contain each of `what`.
    fn shows(mut self, who: &[usize], what: &[&str]) -> Case {
        for w in who {
            self.shows
                .push((*w, what.iter().map(|s| s.to_string()).collect()));
        }
        self
    }

    /// Nobody's answer may contain any of `what`.
    fn hides(mut self, what: &[&str]) -> Case {
        self.hides.extend(what.iter().map(|s| s.to_string()));
        self
    }

    /// A header every caller's request carries.
    fn header(mut self, name: &'static str, value: &'static str) -> Case {
        self.headers.push((name, value));
        self
    }

    /// `who` is not asked here (tested elsewhere).
    fn skip(mut self, who: usize) -> Case {
        self.expect[who] = None;
        self
    }
}

fn get(path: impl Into<String>, expect: [u16; CALLERS]) -> Case {
    Case::new(Method::GET, path, Body::Empty, expect)
}

fn post(path: impl Into<String>, body: Value, expect: [u16; CALLERS]) -> Case {
    Case::new(Method::POST, path, Body::Json(body), expect)
}

/// A page's form, posted with the caller's CSRF token.
fn form(path: impl Into<String>, fields: &[(&'static str, &str)], expect: [u16; CALLERS]) -> Case {
    let fields = fields.iter().map(|(k, v)| (*k, v.to_string())).collect();
    Case::new(Method::POST, path, Body::Form(fields), expect)
}

/// Everyone alike.
fn everyone(status: u16) -> [u16; CALLERS] {
    [status; CALLERS]
}

/// `yes` for `who`, `no` for every other logged-in caller, `anonymous` for a visitor.
fn only(anonymous: u16, who: &[usize], yes: u16, no: u16) -> [u16; CALLERS] {
    let mut out = [no; CALLERS];
    out[ANONYMOUS] = anonymous;
    for w in who {
        out[*w] = yes;
    }
    out
}

/// `expect`, with `status` for each of `who` instead (the exceptions).
fn but(mut expect: [u16; CALLERS], who: &[usize], status: u16) -> [u16; CALLERS] {
    for w in who {
        expect[*w] = status;
    }
    expect
}

/// What the cases are written from: the ids, addresses and keys of the fixture.
struct Fixture {
    patient: String,
    record: String,
    prescription: String,
    /// The FHIR id of the bundle's Observation.
    observation: String,
    hospital: u64,
    spare: u64,
    records_doctor: String,
    nogrant_doctor: String,
    /// A doctor with no part in anything, for the admin's page to suspend.
    spare_doctor: String,
    researcher: String,
    /// The single-record grantee's grant.
    records_grant: u64,
    /// The all-records grantee's grant.
    all_grant: u64,
    /// A grant to a hospital with no doctors, which the patient's page revokes.
    spare_grant: u64,
    emergency: u64,
    /// The emergency's declaration.
    tx: String,
    /// An invitation the API withdraws, one the admin's page withdraws, one whose link is read.
    invite_key: String,
    spare_invite_key: String,
    enrol_token: String,
    /// The study patients opt in to and out of.
    study: u64,
    /// The study of the researcher's own export.
    export_study: u64,
    /// The researcher's own export, and another researcher's.
    export: String,
    others_export: String,
    now: u64,
}

impl Fixture {
    /// Values of the right shapes, for reading the cases without running them.
    fn placeholder() -> Fixture {
        let address = format!("0x{}", "11".repeat(20));
        let hash = format!("0x{}", "22".repeat(32));
        Fixture {
            patient: address.clone(),
            record: hash.clone(),
            prescription: hash.clone(),
            observation: format!("{}-2", "22".repeat(28)),
            hospital: 1,
            spare: 2,
            records_doctor: address.clone(),
            nogrant_doctor: address.clone(),
            spare_doctor: address.clone(),
            researcher: address.clone(),
            records_grant: 1,
            all_grant: 2,
            spare_grant: 3,
            emergency: 1,
            tx: hash,
            invite_key: address.clone(),
            spare_invite_key: address,
            enrol_token: "token".into(),
            study: 1,
            export_study: 2,
            export: "export".into(),
            others_export: "other".into(),
            now: 0,
        }
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

/// Every route the router serves has a case in the matrix, and every case asks a route the
/// router serves (a mistyped path would otherwise meet the fallback and pass as a 404).
#[test]
fn every_route_the_router_serves_is_in_the_matrix() {
    let routes = routes_served();
    // The reader found the table (156 routes today): an empty or tiny set means it broke.
    assert!(routes.len() > 150, "only {} routes read", routes.len());
    let mut covered = BTreeSet::new();
    let mut strays = Vec::new();
    for case in cases(&Fixture::placeholder()) {
        assert!(
            case.expect.iter().any(Option::is_some),
            "{} {} asks nobody",
            case.method,
            case.path
        );
        match route_of(&routes, case.method.as_str(), &case.path) {
            Some(route) => {
                covered.insert(route.clone());
            }
            None => strays.push(format!("{} {}", case.method, case.path)),
        }
    }
    assert!(strays.is_empty(), "cases that no route serves: {strays:#?}");
    let missing: Vec<String> = routes
        .difference(&covered)
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(
        missing.is_empty(),
        "the matrix has no case for {} routes: {missing:#?}",
        missing.len()
    );
}

/// The reader of the route table sees what it must: a route of each kind of declaration.
#[test]
fn the_route_reader_reads_every_kind_of_declaration() {
    let routes = routes_served();
    for (method, path) in [
        // Two methods on one route, one of them behind a layer.
        ("POST", "/api/v1/records"),
        ("GET", "/api/v1/records"),
        ("DELETE", "/api/v1/writes/{id}"),
        // A method router built by a function of the crate.
        ("GET", "/fhir/Condition/{id}"),
        ("GET", "/fhir/{*rest}"),
        // Pages, in their own files.
        ("POST", "/patient/share"),
        ("GET", "/explorer/address/{addr}"),
        ("GET", "/.well-known/smart-configuration"),
        ("GET", "/static/app.css"),
    ] {
        assert!(
            routes.contains(&(method.to_string(), path.to_string())),
            "{method} {path} not read: {routes:#?}"
        );
    }
    assert!(!routes.iter().any(|(_, p)| p.contains("PATH")));
    // The router's own ranking: a static segment wins over a parameter, which wins over the
    // catch-all.
    let set = |list: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        list.iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect()
    };
    let table = set(&[
        ("GET", "/fhir/Patient"),
        ("GET", "/fhir/Patient/{id}"),
        ("GET", "/fhir/Patient/{id}/$everything"),
        ("GET", "/fhir/{*rest}"),
    ]);
    for (path, route) in [
        ("/fhir/Patient", "/fhir/Patient"),
        ("/fhir/Patient?name=x", "/fhir/Patient"),
        ("/fhir/Patient/ab", "/fhir/Patient/{id}"),
        (
            "/fhir/Patient/ab/$everything",
            "/fhir/Patient/{id}/$everything",
        ),
        ("/fhir/Nothing/here", "/fhir/{*rest}"),
    ] {
        assert_eq!(
            route_of(&table, "GET", path).map(|r| r.1.as_str()),
            Some(route),
            "{path}"
        );
    }
    assert_eq!(route_of(&table, "POST", "/fhir/Patient"), None);
}

/// The routes the web router serves, as (METHOD, path) read from every `.route("PATH", …)` in
/// crates/web/src: the methods its method router names (`get(…)`, `.post(…)`, …), directly or in
/// the body of the crate's own function that builds it (`clinical::search_route`).
fn routes_served() -> BTreeSet<(String, String)> {
    let sources: Vec<(PathBuf, String)> =
        rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
            .into_iter()
            .map(|file| {
                let text = std::fs::read_to_string(&file).unwrap();
                // Comments may quote a declaration; only code counts.
                let code: String = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                (file, code)
            })
            .collect();
    for (file, code) in &sources {
        // Routes declared any other way would escape this reader: it must learn them first.
        for other in [
            ".nest(",
            ".nest_service(",
            ".route_service(",
            ".fallback_service(",
            "MethodFilter",
            "routing::any",
            "routing::on",
        ] {
            assert!(
                !code.contains(other),
                "{}: {other} is a way of serving routes this reader does not follow",
                file.display()
            );
        }
        for line in code.lines().filter(|l| l.contains("routing::{")) {
            assert!(
                !line.contains(" any") && !line.contains("{any") && !line.contains(" on,"),
                "{}: {line}: a method router this reader does not follow",
                file.display()
            );
        }
    }
    let mut out = BTreeSet::new();
    for (file, code) in &sources {
        let mut from = 0;
        while let Some(at) = code[from..].find(".route(") {
            let start = from + at + ".route".len();
            let inside = in_parentheses(&code[start..]);
            let path = inside
                .split('"')
                .nth(1)
                .unwrap_or_else(|| panic!("{}: a route without a path: {inside}", file.display()));
            let router = &inside[inside.find(',').unwrap() + 1..];
            let methods = methods_of(router, &sources);
            assert!(
                !methods.is_empty(),
                "{}: no method found for {path} in {router}",
                file.display()
            );
            for method in methods {
                out.insert((method, path.to_string()));
            }
            from = start;
        }
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// What is between the parenthesis that opens `text` and the one that closes it (string
/// literals skipped).
fn in_parentheses(text: &str) -> &str {
    assert!(text.starts_with('('), "{text}");
    let (mut depth, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        if quoted {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => {
                depth -= 1;
                if depth == 0 {
                    return &text[1..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced: {text}")
}

/// The HTTP methods a method-router expression names: `get(…)`, `.post(…)`; a call of one of
/// the crate's functions that returns a `MethodRouter` counts with the methods of its body.
fn methods_of(router: &str, sources: &[(PathBuf, String)]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for name in called(router) {
        if ["get", "post", "put", "delete", "patch", "head", "options"].contains(&name.as_str()) {
            out.insert(name.to_uppercase());
            continue;
        }
        for (_, code) in sources {
            let Some(at) = code.find(&format!("fn {name}(")) else {
                continue;
            };
            let body = &code[at..];
            let open = body.find('{').unwrap();
            if body[..open].contains("MethodRouter") {
                let inner = in_parentheses(&format!("({})", in_braces(&body[open..]))).to_string();
                out.extend(methods_of(&inner, sources));
            }
        }
    }
    out
}

/// What is between the brace that opens `text` and the one that closes it.
fn in_braces(text: &str) -> &str {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[1..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced: {text}")
}

/// The names of the functions and methods `code` calls (`name(`), outside string literals.
fn called(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut name = String::new();
    let mut quoted = false;
    for c in code.chars() {
        if c == '"' {
            quoted = !quoted;
            name.clear();
        } else if quoted {
        } else if c.is_alphanumeric() || c == '_' {
            name.push(c);
        } else {
            if c == '(' && !name.is_empty() {
                out.push(name.clone());
            }
            name.clear();
        }
    }
    out
}

/// The route that serves `method` `path` (its query aside), ranked as the router ranks
/// them: segment by segment, a static segment before a parameter before the catch-all.
fn route_of<'a>(
    routes: &'a BTreeSet<(String, String)>,
    method: &str,
    path: &str,
) -> Option<&'a (String, String)> {
    let path = path.split('?').next().unwrap();
    let segments: Vec<&str> = path.split('/').collect();
    let best = routes
        .iter()
        .filter_map(|(_, pattern)| rank(pattern, &segments).map(|r| (r, pattern)))
        .min()?
        .1;
    routes.get(&(method.to_string(), best.clone()))
}

/// How a route's pattern matches `segments` (0 static, 1 parameter, 2 catch-all, per segment),
/// or `None`.
fn rank(pattern: &str, segments: &[&str]) -> Option<Vec<u8>> {
    let parts: Vec<&str> = pattern.split('/').collect();
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if part.starts_with("{*") {
            let rest = segments.get(i..)?;
            return (rest.iter().any(|s| !s.is_empty())).then(|| {
                out.push(2);
                out
            });
        }
        let segment = segments.get(i)?;
        if part.starts_with('{') && part.ends_with('}') {
            if segment.is_empty() {
                return None;
            }
            out.push(1);
        } else if part == segment {
            out.push(0);
        } else {
            return None;
        }
    }
    (parts.len() == segments.len()).then_some(out)
}

/// Signs a patient up with the profile given; returns their address and a session token.
async fn sign_up(
    t: &TestApp,
    username: &str,
    name: &str,
    born: &str,
    contact: &str,
) -> (String, String) {
    let (status, body) = t
        .post(
            "/api/v1/patients",
            None,
            json!({ "username": username, "password": PASSWORD, "name": name,
                    "date_of_birth": born, "contact": contact }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let address = body["address"].as_str().unwrap().to_string();
    (address, t.login(username, PASSWORD).await)
}

/// A FHIR Bundle of a female patient's one coded Observation (`value` its value element).
fn bundle(value: Value) -> Vec<u8> {
    let mut observation = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
        "subject": {"reference": "urn:uuid:p"}});
    for (k, v) in value.as_object().unwrap() {
        observation[k] = v.clone();
    }
    serde_json::to_vec(
        &json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "gender": "female"}},
            {"resource": observation},
        ]}),
    )
    .unwrap()
}

/// Starts `study`'s export as `researcher` and waits (bounded) until it is done; its id.
async fn export(t: &TestApp, researcher: &str, study: u64) -> String {
    let started = t
        .http
        .get(format!("{}/fhir/Group/{study}/$export", t.url))
        .bearer_auth(researcher)
        .header("prefer", "respond-async")
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = started.headers()["content-location"].to_str().unwrap();
    let id = location.rsplit('/').next().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = t
            .http
            .get(format!("{}/fhir/bulkstatus/{id}", t.url))
            .bearer_auth(researcher)
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::OK => return id,
            StatusCode::ACCEPTED => {}
            other => panic!("export {id}: {other}: {}", r.text().await.unwrap()),
        }
        assert!(
            Instant::now() < deadline,
            "export {id} did not finish within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The patient's data, the grants and the emergency every case is asked against, and each
/// caller's session token.
async fn fixture(t: &TestApp) -> (Fixture, [Option<String>; CALLERS]) {
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Central", "Lyon").await;
    let spare = t.add_hospital(&admin, "Spare", "Nice").await;
    let mut doctors = Vec::new();
    for name in [
        "granted",
        "all",
        "expired",
        "revoked",
        "nogrant",
        "suspended",
        "emergency",
        "spare",
    ] {
        doctors.push(t.add_doctor(&admin, &format!("dr.{name}"), hospital).await);
    }
    let [
        granted,
        all,
        expired,
        revoked,
        nogrant,
        suspended,
        emergency,
        spare_doctor,
    ] = &doctors[..]
    else {
        unreachable!()
    };
    let (patient_address, patient) = sign_up(
        t,
        "pauline",
        "Pauline SECRET-NAME",
        DATE_OF_BIRTH,
        "SECRET-CONTACT +33 6 00 00 00 00",
    )
    .await;
    // The other patient was born before 1935 too: with the patient, a research group of two.
    let (_, other) = sign_up(t, "oscar", "Oscar Other", "1902-05-06", "+33 6 11 11 11 11").await;

    // The report, shared with three doctors through `share_with`: each gets a grant of scope
    // `records` covering it alone.
    let mut fields = vec![
        ("title", "SECRET-TITLE lipid panel"),
        ("kind", "report"),
        ("date", "2026-11-20"),
        ("notes", "SECRET-NOTES fasting"),
    ];
    for d in [&granted.0, &revoked.0, &suspended.0] {
        fields.push(("share_with", d));
    }
    let (status, body) = t
        .upload(
            Some(&patient),
            &fields,
            Some(("scan.txt", REPORT.as_bytes().to_vec())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let record = body["id"].as_str().unwrap().to_string();
    // A FHIR Bundle shared with two of them: its Observation is searchable through /fhir.
    let mut fields = vec![("title", "Labs bundle"), ("kind", "report")];
    for d in [&granted.0, &suspended.0] {
        fields.push(("share_with", d));
    }
    let (status, body) = t
        .upload(
            Some(&patient),
            &fields,
            Some((
                "labs.json",
                bundle(json!({ "valueString": "SECRET-OBSERVATION 4.2" })),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let observation = format!("{}-2", &body["id"].as_str().unwrap()[2..58]);
    // The other patient's bundle, shared with nobody, for the research export.
    let (status, body) = t
        .upload(
            Some(&other),
            &[("title", "Labs"), ("kind", "report")],
            Some((
                "labs.json",
                bundle(json!({ "valueQuantity": { "value": 4.0, "unit": "mmol/L" } })),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let now = t.app.ledger().now().await.unwrap();
    let patient_token = patient.as_str();
    let grant = |body: Value| async move {
        let (status, body) = t.post("/api/v1/grants", Some(patient_token), body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_u64().unwrap()
    };
    grant(json!({ "doctor": expired.0, "scope": "all", "purpose": "treatment", "expires_at": now + 60 }))
        .await;
    let all_grant = grant(
        json!({ "doctor": all.0, "scope": "all", "purpose": "treatment", "expires_in_days": 30 }),
    )
    .await;
    // The spare hospital has no doctor: its grant opens nothing to anyone.
    let spare_grant = grant(
        json!({ "hospital_id": spare, "scope": "all", "purpose": "treatment", "expires_in_days": 30 }),
    )
    .await;
    let (_, grants) = t.get("/api/v1/grants", Some(&patient)).await;
    let grant_of = |doctor: &str| {
        let grant = grants["grants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| {
                g["doctor"]
                    .as_str()
                    .is_some_and(|d| d.eq_ignore_ascii_case(doctor))
            })
            .unwrap();
        assert_eq!(grant["scope"], "records", "{grant}");
        grant["id"].as_u64().unwrap()
    };
    let records_grant = grant_of(&granted.0);
    let (status, _) = t
        .call(
            Method::DELETE,
            &format!("/api/v1/grants/{}", grant_of(&revoked.0)),
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A prescription by the all-records grantee (a treatment grant lets them prescribe).
    let (status, body) = t
        .post(
            "/api/v1/prescriptions",
            Some(&all.1),
            json!({ "patient": patient_address,
                    "medications": [{ "name": "SECRET-MEDICATION amoxicillin", "dose": "500 mg" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let prescription = body["id"].as_str().unwrap().to_string();
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
            json!({ "patient": patient_address, "reason": "SECRET-REASON unconscious on arrival" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        !body.to_string().contains(SECRET),
        "the reason stays off the answer: {body}"
    );
    let emergency_id = body["id"].as_u64().unwrap();
    let tx = body["transaction"]["hash"].as_str().unwrap().to_string();
    let invite = |name: &str| {
        let admin = admin.clone();
        let name = name.to_string();
        async move {
            let (status, invitation) = t
                .post(
                    "/api/v1/doctors",
                    Some(&admin),
                    json!({ "name": name, "hospital_id": hospital }),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{invitation}");
            invitation
        }
    };
    let invite_key = invite("Dr. Invited").await["invite_key"]
        .as_str()
        .unwrap()
        .to_string();
    let spare_invite_key = invite("Dr. Spare").await["invite_key"]
        .as_str()
        .unwrap()
        .to_string();
    let enrol_token = t
        .path_of(
            invite("Dr. Linked").await["enrolment_url"]
                .as_str()
                .unwrap(),
        )
        .trim_start_matches("/enrol/")
        .to_string();
    t.advance(120).await; // the expired grant lapses

    // Research: a study to opt in to; the researcher's own export and another researcher's,
    // both of the two patients, both done before the matrix asks for them.
    let (researcher_address, researcher) = t.add_researcher(&admin, "dr.science").await;
    let (others_address, others) = t.add_researcher(&admin, "dr.elsewhere").await;
    let study = t.add_study(&admin, &researcher_address, 30).await["id"]
        .as_u64()
        .unwrap();
    let export_study = t.add_study(&admin, &researcher_address, 30).await["id"]
        .as_u64()
        .unwrap();
    let others_study = t.add_study(&admin, &others_address, 30).await["id"]
        .as_u64()
        .unwrap();
    for token in [&patient, &other] {
        for s in [export_study, others_study] {
            let (status, body) = t
                .post(
                    &format!("/api/v1/studies/{s}/opt-in"),
                    Some(token),
                    json!({}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    let own_export = export(t, &researcher, export_study).await;
    let others_export = export(t, &others, others_study).await;
    // Its own researcher gets the other export's file: the matrix's 404 for ours is not about
    // a file that does not exist.
    let (status, file) = t
        .get(
            &format!("/fhir/bulkfiles/{others_export}/Observation.ndjson"),
            Some(&others),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert!(file.to_string().contains("2823-3"), "{file}");

    let tokens = [
        None,
        Some(patient),
        Some(other),
        Some(granted.1.clone()),
        Some(all.1.clone()),
        Some(expired.1.clone()),
        Some(revoked.1.clone()),
        Some(nogrant.1.clone()),
        Some(suspended.1.clone()),
        Some(emergency.1.clone()),
        Some(admin),
        Some(researcher),
    ];
    let fixture = Fixture {
        patient: patient_address,
        record,
        prescription,
        observation,
        hospital,
        spare,
        records_doctor: granted.0.clone(),
        nogrant_doctor: nogrant.0.clone(),
        spare_doctor: spare_doctor.0.clone(),
        researcher: researcher_address,
        records_grant,
        all_grant,
        spare_grant,
        emergency: emergency_id,
        tx,
        invite_key,
        spare_invite_key,
        enrol_token,
        study,
        export_study,
        export: own_export,
        others_export,
        now,
    };
    (fixture, tokens)
}

/// Every case, in the order they run (some change what later ones find: emergencies last).
fn cases(f: &Fixture) -> Vec<Case> {
    let p = &f.patient;
    let record = &f.record;
    let fhir_patient = p.trim_start_matches("0x").to_lowercase();
    let fhir_record = record.trim_start_matches("0x");
    let fhir_doctor = f.records_doctor.trim_start_matches("0x").to_lowercase();
    let medication_request = format!("{}-1", &f.prescription[2..58]);
    let hospital = f.hospital;
    let spare = f.spare;
    let prescription =
        json!({ "patient": p, "medications": [{ "name": "Amoxicillin", "dose": "500 mg" }] });
    let hospital_body = json!({ "name": "Spare", "city": "Nice" });
    let ok = 200;
    let mut cases = vec![
        // ---- Public: the directory, the documents, the explorer, the static files.
        get("/healthz", everyone(ok)),
        get("/api/v1/openapi.json", everyone(ok)),
        get("/api/v1/hospitals", everyone(ok)),
        get(format!("/api/v1/hospitals/{hospital}"), everyone(ok)),
        get("/api/v1/doctors", everyone(ok)),
        get(
            format!("/api/v1/doctors/{}", f.records_doctor),
            everyone(ok),
        ),
        get("/static/app.css", everyone(ok)),
        get("/static/app.js", everyone(ok)),
        get("/", everyone(ok)),
        get("/hospitals", everyone(ok)),
        // The ledger explorer shows what the chain holds, which is nobody's data.
        get("/explorer", everyone(ok)),
        get(format!("/explorer/search?q={}", f.tx), everyone(303)),
        get("/explorer/block/1", everyone(ok)),
        get(format!("/explorer/tx/{}", f.tx), everyone(ok)),
        get(format!("/explorer/address/{p}"), everyone(ok)),
        get("/explorer/contracts", everyone(ok)),
        get("/fhir/metadata", everyone(ok)),
        get("/fhir/.well-known/smart-configuration", everyone(ok)),
        get("/.well-known/smart-configuration", everyone(ok)),
        get("/fhir/Practitioner", everyone(ok)),
        get(format!("/fhir/Practitioner/{fhir_doctor}"), everyone(ok)),
        get("/fhir/PractitionerRole", everyone(ok)),
        get(
            format!("/fhir/PractitionerRole/{fhir_doctor}"),
            everyone(ok),
        ),
        get("/fhir/Organization", everyone(ok)),
        get(format!("/fhir/Organization/{hospital}"), everyone(ok)),
        get("/fhir/Nothing/here", everyone(404)),
        // ---- One's own account.
        get("/api/v1/me", only(401, &[], ok, ok)),
        get("/api/v1/me/keystore", only(401, &[], ok, ok)),
        // One's own sessions; nobody ends a session that is not theirs (a made-up handle).
        get("/api/v1/me/sessions", only(401, &[], 0, ok)),
        Case::new(
            Method::DELETE,
            "/api/v1/me/sessions/00000000000000000000000000000000",
            Body::Empty,
            only(401, &[], 0, 404),
        ),
        post(
            "/api/v1/me/password",
            json!({ "current_password": "not the password", "new_password": "another long password" }),
            only(401, &[], 0, 403),
        ),
        // Logging in is the same for anyone (the other patient's account, which a session
        // more does not change).
        post(
            "/api/v1/auth/login",
            json!({ "username": "oscar", "password": PASSWORD }),
            everyone(ok),
        ),
        // Signing up is open to anyone, under a fresh name each.
        post(
            "/api/v1/patients",
            json!({ "username": "new.patient{caller}", "password": PASSWORD, "name": "New Patient",
                    "date_of_birth": "1990-01-01", "contact": "" }),
            everyone(201),
        ),
        // Wallets: a nonce for anyone who names the account it is for; a sign-in or a move with no signed message is refused
        // as bad input; nobody completes or cancels a write that is not their wallet's. Write 1,
        // the journal's first, is a custodial write: no wallet waits on it, not even its
        // sender's, and a custodial account is told there is no such write.
        post(
            "/api/v1/auth/siwe/nonce",
            json!({ "address": "0x00000000000000000000000000000000000000a1" }),
            everyone(201),
        ),
        post("/api/v1/auth/siwe/nonce", json!({}), everyone(422)),
        post(
            "/api/v1/auth/siwe",
            json!({ "message": "sign me in", "signature": "0x00", "key_signature": "0x00" }),
            everyone(400),
        ),
        post(
            "/api/v1/me/wallet",
            json!({ "message": "move me", "signature": "0x00", "key_signature": "0x00" }),
            only(401, &[], 0, 400),
        ),
        post(
            "/api/v1/writes/1",
            json!({ "tx_hash": format!("0x{}", "00".repeat(32)) }),
            only(401, &[], 0, 404),
        ),
        Case::new(
            Method::DELETE,
            "/api/v1/writes/1",
            Body::Empty,
            only(401, &[], 0, 404),
        ),
        // ---- The record: the chain decides.
        get(
            format!("/api/v1/records/{record}"),
            only(401, READERS, ok, 403),
        )
        .shows(READERS, &[TITLE, NOTES]),
        get(
            format!("/api/v1/records/{record}/content"),
            only(401, READERS, ok, 403),
        ),
        // The prescription is a record the single-record grant does not cover; a grant of all
        // records and the emergency do.
        get(
            format!("/api/v1/records/{}/content", f.prescription),
            only(401, &[PATIENT, ALL_GRANTEE, EMERGENCY], ok, 403),
        )
        .shows(&[PATIENT, ALL_GRANTEE, EMERGENCY], &[MEDICATION]),
        // Emergency access is for treatment only, and so are both grants.
        get(
            format!("/api/v1/records/{record}?purpose=research"),
            only(401, &[PATIENT], ok, 403),
        ),
        get("/api/v1/records", only(401, PATIENTS, ok, 403)),
        // A doctor's list of a patient's records: empty for those without access (who learn
        // nothing by it), refused to the suspended doctor.
        get(
            format!("/api/v1/records?patient={p}"),
            only(401, ACTIVE_DOCTORS, ok, 403),
        ),
        get("/api/v1/patients", only(401, ACTIVE_DOCTORS, ok, 403))
            .shows(TREATING, &[NAME, DATE_OF_BIRTH]),
        get(
            "/api/v1/grants",
            but(only(401, ACTIVE_DOCTORS, ok, 403), PATIENTS, ok),
        ),
        get(
            "/api/v1/prescriptions",
            but(only(401, DOCTORS, ok, 403), PATIENTS, ok),
        )
        .shows(&[PATIENT, ALL_GRANTEE], &[MEDICATION]),
        get(
            "/api/v1/audit",
            but(only(401, DOCTORS, ok, 403), PATIENTS, ok),
        ),
        post(
            "/api/v1/prescriptions",
            prescription,
            only(401, TREATING, 201, 403),
        ),
        Case::new(
            Method::DELETE,
            format!("/api/v1/grants/{}", f.records_grant),
            Body::Empty,
            only(401, &[], 0, 403),
        )
        .skip(PATIENT),
        post(
            "/api/v1/grants",
            json!({ "doctor": f.nogrant_doctor, "scope": "all", "expires_in_days": 1 }),
            only(401, &[OTHER_PATIENT], 201, 403),
        )
        .skip(PATIENT),
        // Sharing a report: each patient their own, nobody else.
        Case::new(
            Method::POST,
            "/api/v1/records",
            Body::Multipart(
                vec![
                    ("title", "Matrix upload".into()),
                    ("kind", "report".into()),
                    ("notes", "plain".into()),
                ],
                Some(("note.txt", "a plain note")),
            ),
            only(401, PATIENTS, 201, 403),
        ),
        // ---- Admin writes (they change only the spare hospital and doctors and invitations
        // of no consequence).
        post(
            "/api/v1/hospitals",
            hospital_body.clone(),
            only(401, &[ADMIN], 201, 403),
        ),
        Case::new(
            Method::PUT,
            format!("/api/v1/hospitals/{spare}"),
            Body::Json(hospital_body),
            only(401, &[ADMIN], ok, 403),
        ),
        post(
            format!("/api/v1/hospitals/{spare}/suspend"),
            json!({}),
            only(401, &[ADMIN], ok, 403),
        ),
        post(
            format!("/api/v1/hospitals/{spare}/reactivate"),
            json!({}),
            only(401, &[ADMIN], ok, 403),
        ),
        post(
            format!("/api/v1/doctors/{}/suspend", f.nogrant_doctor),
            json!({}),
            only(401, &[ADMIN], ok, 403),
        ),
        post(
            format!("/api/v1/doctors/{}/reactivate", f.nogrant_doctor),
            json!({}),
            only(401, &[ADMIN], ok, 403),
        ),
        // Inviting a doctor, under a fresh user name per caller.
        post(
            "/api/v1/doctors",
            json!({ "username": "dr.new{caller}", "password": PASSWORD, "name": "Dr. New", "hospital_id": hospital }),
            only(401, &[ADMIN], 201, 403),
        ),
        post(
            "/api/v1/researchers",
            json!({ "name": "Prof. New" }),
            only(401, &[ADMIN], 201, 403),
        ),
        get(
            "/api/v1/researchers",
            only(401, &[ADMIN, RESEARCHER], ok, 403),
        ),
        post(
            "/api/v1/studies",
            json!({ "researcher": f.researcher, "title": "Another study", "description": "",
                    "data": ["Observation"], "ends_at": f.now + 30 * 86_400 }),
            only(401, &[ADMIN], 201, 403),
        ),
        // ---- Emergencies as each sees them: the reason only by its author and the patient;
        // the admin sees that there is one.
        get(
            "/api/v1/emergencies",
            but(only(401, &[], ok, ok), &[RESEARCHER], 403),
        )
        .shows(&[PATIENT, EMERGENCY], &[REASON])
        .shows(&[ADMIN], &[p.as_str()]),
        // ---- Enrolment (invitations, links) and second factors (set up, never confirmed).
        post("/api/v1/admins", json!({}), only(401, &[ADMIN], 201, 403)),
        get("/api/v1/enrolments", only(401, &[ADMIN], ok, 403)),
        get("/api/v1/security-events", only(401, &[ADMIN], ok, 403)),
        Case::new(
            Method::DELETE,
            format!("/api/v1/enrolments/{}", f.invite_key),
            Body::Empty,
            only(401, &[ADMIN], ok, 403),
        ),
        get("/api/v1/enrol/not-a-token", everyone(404)),
        // A link's holder, whoever they are, reads what it invites to.
        get(format!("/api/v1/enrol/{}", f.enrol_token), everyone(ok)),
        post(
            "/api/v1/enrol/not-a-token",
            json!({ "username": "dr.sneak", "password": PASSWORD }),
            everyone(404),
        ),
        post("/api/v1/me/mfa", json!({}), only(401, &[], 0, 201)),
        // Its code is made wrong for each caller's new secret below (a fixed one is right by
        // chance for one secret in about 330,000).
        post(
            "/api/v1/me/mfa/confirm",
            json!({ "code": "000000" }),
            everyone(401),
        ),
        post(
            "/api/v1/me/mfa/off",
            json!({ "code": "000000" }),
            only(401, &[], 0, 409),
        ),
        // ---- The FHIR API: the same chain decisions, as FHIR resources.
        get(
            format!("/fhir/Patient/{fhir_patient}"),
            but(only(401, READERS, ok, 404), &[ADMIN, RESEARCHER], 403),
        )
        .shows(
            &[PATIENT, ALL_GRANTEE, EMERGENCY],
            &[NAME, DATE_OF_BIRTH, CONTACT],
        )
        .shows(&[RECORDS_GRANTEE], &[NAME, DATE_OF_BIRTH]),
        get(
            "/fhir/Patient",
            but(only(401, ACTIVE_DOCTORS, ok, 403), PATIENTS, ok),
        ),
        get(
            format!("/fhir/DocumentReference/{fhir_record}"),
            but(only(401, READERS, ok, 404), &[ADMIN, RESEARCHER], 403),
        )
        .shows(READERS, &[TITLE]),
        get(
            format!("/fhir/DocumentReference?patient=Patient/{fhir_patient}"),
            but(only(401, ACTIVE_DOCTORS, ok, 403), &[PATIENT], ok),
        ),
        get(
            format!("/fhir/Binary/{fhir_record}"),
            but(only(401, READERS, ok, 404), &[ADMIN, RESEARCHER], 403),
        ),
        get(
            format!("/fhir/Patient/{fhir_patient}/$everything"),
            but(
                only(401, READERS, ok, 404),
                &[OTHER_PATIENT, ADMIN, RESEARCHER],
                403,
            ),
        ),
        get(
            "/fhir/MedicationRequest",
            but(only(401, DOCTORS, ok, 403), PATIENTS, ok),
        )
        .shows(&[PATIENT, ALL_GRANTEE], &[MEDICATION]),
        // A prescription's line: the patient's and its author's (a doctor reads the
        // prescriptions they wrote here, as in the REST API).
        get(
            format!("/fhir/MedicationRequest/{medication_request}"),
            but(
                only(401, &[PATIENT, ALL_GRANTEE], ok, 404),
                &[ADMIN, RESEARCHER],
                403,
            ),
        )
        .shows(&[PATIENT, ALL_GRANTEE], &[MEDICATION]),
        get(
            format!("/fhir/Observation?patient=Patient/{fhir_patient}"),
            but(only(401, ACTIVE_DOCTORS, ok, 403), &[PATIENT], ok),
        )
        .shows(READERS, &[OBSERVATION]),
        get(
            format!("/fhir/Observation/{}", f.observation),
            but(only(401, READERS, ok, 404), &[ADMIN, RESEARCHER], 403),
        )
        .shows(READERS, &[OBSERVATION]),
        get(
            format!("/fhir/Provenance?target=DocumentReference/{fhir_record}"),
            but(only(401, ACTIVE_DOCTORS, ok, 403), PATIENTS, ok),
        ),
        get(
            format!("/fhir/Provenance/{fhir_record}"),
            but(only(401, READERS, ok, 404), &[ADMIN, RESEARCHER], 403),
        ),
        get(
            "/fhir/Consent",
            but(only(401, ACTIVE_DOCTORS, ok, 403), PATIENTS, ok),
        ),
        // A grant as a Consent: the patient's and its grantee's.
        get(
            format!("/fhir/Consent/{}", f.all_grant),
            but(
                only(401, &[PATIENT, ALL_GRANTEE], ok, 404),
                &[ADMIN, RESEARCHER, SUSPENDED],
                403,
            ),
        ),
        get(
            "/fhir/AuditEvent",
            but(only(401, DOCTORS, ok, 403), PATIENTS, ok),
        ),
    ];
    // The other types a shared bundle may hold, searched and read as the Observation is (the
    // bundle has none of them, and its Observation is not one).
    for kind in [
        "Condition",
        "MedicationStatement",
        "Encounter",
        "DiagnosticReport",
        "Procedure",
        "Immunization",
        "AllergyIntolerance",
        "CarePlan",
    ] {
        cases.push(get(
            format!("/fhir/{kind}?patient=Patient/{fhir_patient}"),
            but(only(401, ACTIVE_DOCTORS, ok, 403), &[PATIENT], ok),
        ));
        cases.push(get(
            format!("/fhir/{kind}/{}", f.observation),
            but(only(401, &[], 0, 404), &[ADMIN, RESEARCHER], 403),
        ));
    }
    let (export, others) = (&f.export, &f.others_export);
    cases.extend([
        // ---- Research: studies for those who take part; only patients opt in and out; only
        // a study's researcher exports (asynchronously: without `Prefer: respond-async`, a
        // 400), and only they read its status and files: another researcher's are not found.
        get(
            "/api/v1/studies",
            but(only(401, PATIENTS, ok, 403), &[ADMIN, RESEARCHER], ok),
        ),
        get(
            format!("/api/v1/studies/{}", f.study),
            but(only(401, PATIENTS, ok, 403), &[ADMIN, RESEARCHER], ok),
        ),
        post(
            format!("/api/v1/studies/{}/opt-in", f.study),
            json!({}),
            only(401, PATIENTS, ok, 403),
        ),
        post(
            format!("/api/v1/studies/{}/withdraw", f.study),
            json!({}),
            only(401, PATIENTS, ok, 403),
        ),
        get(
            format!("/fhir/Group/{}/$export", f.study),
            only(401, &[RESEARCHER], 400, 403),
        ),
        get(
            format!("/fhir/Group/{}/$export", f.study),
            only(401, &[RESEARCHER], 202, 403),
        )
        .header("prefer", "respond-async"),
        get(
            format!("/fhir/bulkstatus/{export}"),
            only(401, &[RESEARCHER], ok, 403),
        )
        .shows(&[RESEARCHER], &["transactionTime", "Observation.ndjson"]),
        get(
            format!("/fhir/bulkstatus/{others}"),
            only(401, &[RESEARCHER], 404, 403),
        )
        .hides(&["transactionTime", "files_hash", "ndjson"]),
        get(
            format!("/fhir/bulkfiles/{export}/Observation.ndjson"),
            only(401, &[RESEARCHER], ok, 403),
        )
        .shows(&[RESEARCHER], &["2823-3"]),
        get(
            format!("/fhir/bulkfiles/{others}/Observation.ndjson"),
            only(401, &[RESEARCHER], 404, 403),
        )
        .hides(&["2823-3"]),
    ]);
    cases.extend(page_cases(f));
    cases.extend([
        // ---- Emergencies last: they open access. The emergency doctor's is open already,
        // and is not extended by declaring again. The one the single-record grantee declares
        // here is the next of the contract's numbers.
        post(
            "/api/v1/emergency",
            json!({ "patient": p, "reason": "collapsed" }),
            but(only(401, ACTIVE_DOCTORS, 201, 403), &[EMERGENCY], 409),
        ),
        // The patient ends that one through the page; the admin comes too late for it.
        form(
            format!("/emergencies/{}/end", f.emergency + 1),
            &[],
            but(only(303, &[PATIENT], 303, 403), &[ADMIN], 404),
        ),
        // The patient ends the emergency doctor's emergency; nobody else may, and then it is
        // over.
        post(
            format!("/api/v1/emergencies/{}/end", f.emergency),
            json!({}),
            but(only(401, &[PATIENT], ok, 403), &[ADMIN], 404),
        ),
        // Every session ends last.
        post("/api/v1/auth/logout", json!({}), only(401, &[], 0, 204)),
    ]);
    cases
}

/// The pages: each role's, with the forms posted with a valid CSRF token and, where success
/// would change what later cases find, with what the page refuses for its own role (a refused
/// form is shown again with its status) — the role is checked before.
fn page_cases(f: &Fixture) -> Vec<Case> {
    let p = &f.patient;
    let record = &f.record;
    let ok = 200;
    // A chart, like the REST API's list of a patient's records, is empty for an active doctor
    // without access (who learns nothing by it), and refused to the suspended one.
    let doctor_page = |path: String| get(path, only(303, ACTIVE_DOCTORS, ok, 403));
    vec![
        // ---- Anyone's.
        get("/login", everyone(ok)),
        // Logging in as the other patient: the same for anyone.
        form(
            "/login",
            &[("username", "oscar"), ("password", PASSWORD), ("next", "")],
            everyone(303),
        ),
        // The page's logout ends the session of the cookie; these callers hold theirs as a
        // bearer token, which stays.
        form("/logout", &[], everyone(303)),
        get("/signup", everyone(ok)),
        form(
            "/signup",
            &[
                ("username", "new.page{caller}"),
                ("password", PASSWORD),
                ("password2", "a different password"),
                ("name", "New Patient"),
            ],
            everyone(400),
        ),
        get(format!("/enrol/{}", f.enrol_token), everyone(ok)),
        form(
            format!("/enrol/{}", f.enrol_token),
            &[
                ("username", "dr.linked{caller}"),
                ("password", PASSWORD),
                ("password2", "a different password"),
            ],
            everyone(400),
        ),
        get("/account", only(303, &[], 0, ok)),
        form(
            "/account/password",
            &[
                ("current_password", "not the password"),
                ("new_password", "another long password"),
                ("new_password2", "another long password"),
            ],
            only(303, &[], 0, 400),
        ),
        form("/account/mfa", &[], only(303, &[], 0, ok)),
        form(
            "/account/sessions/00000000000000000000000000000000/end",
            &[],
            only(303, &[], 0, 404),
        ),
        // A code that is no code is never right.
        form(
            "/account/mfa/confirm",
            &[("code", "not-a-code")],
            only(303, &[], 0, 401),
        ),
        // ---- The patient's.
        get("/patient", only(303, PATIENTS, ok, 403)).shows(&[PATIENT], &[TITLE]),
        get(format!("/records/{record}"), only(303, READERS, ok, 403))
            .shows(READERS, &[TITLE, NOTES]),
        form(
            format!("/records/{record}/download"),
            &[],
            only(303, READERS, ok, 403),
        ),
        get("/patient/share", only(303, PATIENTS, ok, 403)),
        // A share without its file.
        Case::new(
            Method::POST,
            "/patient/share",
            Body::Multipart(
                vec![("title", "No file".into()), ("kind", "report".into())],
                None,
            ),
            only(303, PATIENTS, 400, 403),
        ),
        get("/patient/prescriptions", only(303, PATIENTS, ok, 403))
            .shows(&[PATIENT], &[MEDICATION]),
        get("/patient/sharing", only(303, PATIENTS, ok, 403)),
        form(
            "/patient/grants",
            &[
                ("grantee", &format!("doctor:{}", f.nogrant_doctor)),
                ("scope", "everything"),
                ("purpose", "treatment"),
            ],
            only(303, PATIENTS, 400, 403),
        ),
        // The patient revokes the grant to the hospital without doctors; it is nobody else's.
        form(
            format!("/patient/grants/{}/revoke", f.spare_grant),
            &[],
            only(303, &[PATIENT], 303, 403),
        ),
        get("/patient/access-log", only(303, PATIENTS, ok, 403)),
        get("/patient/trends", only(303, PATIENTS, ok, 403)),
        get("/patient/studies", only(303, PATIENTS, ok, 403)),
        form(
            format!("/patient/studies/{}/opt-in", f.study),
            &[],
            only(303, PATIENTS, 303, 403),
        ),
        form(
            format!("/patient/studies/{}/withdraw", f.study),
            &[],
            only(303, PATIENTS, 303, 403),
        ),
        // ---- The doctor's: the chart shows the profile as `profileAccess` allows, the contact
        // only to a doctor granted more than single records (or in an emergency).
        get("/doctor", only(303, ACTIVE_DOCTORS, ok, 403)),
        doctor_page(format!("/doctor/patients/{p}"))
            .shows(&[RECORDS_GRANTEE], &[NAME, DATE_OF_BIRTH])
            .shows(&[ALL_GRANTEE, EMERGENCY], &[NAME, DATE_OF_BIRTH, CONTACT]),
        doctor_page(format!("/doctor/patients/{p}/trends")),
        get("/doctor/prescriptions", only(303, DOCTORS, ok, 403))
            .shows(&[ALL_GRANTEE], &[MEDICATION]),
        // A prescription without a line: refused as such to every active doctor (before the
        // chain is asked whether they may treat), beside the chart they may see.
        form(
            "/doctor/prescriptions",
            &[("patient", p.as_str()), ("notes", "")],
            only(303, ACTIVE_DOCTORS, 400, 403),
        ),
        // An emergency without a reason.
        form(
            "/doctor/emergency",
            &[("patient", p.as_str()), ("reason", "")],
            only(303, ACTIVE_DOCTORS, 400, 403),
        ),
        get("/doctor/openings", only(303, DOCTORS, ok, 403)),
        // ---- The admin's.
        get("/admin", only(303, &[ADMIN], ok, 403)),
        get("/admin/security", only(303, &[ADMIN], ok, 403)),
        get("/admin/hospitals", only(303, &[ADMIN], ok, 403)),
        // A hospital without a name.
        form(
            "/admin/hospitals",
            &[("name", ""), ("city", "Nice")],
            only(303, &[ADMIN], 400, 403),
        ),
        get(
            format!("/admin/hospitals/{}", f.spare),
            only(303, &[ADMIN], ok, 403),
        ),
        form(
            format!("/admin/hospitals/{}", f.spare),
            &[("name", ""), ("city", "Nice")],
            only(303, &[ADMIN], 400, 403),
        ),
        form(
            format!("/admin/hospitals/{}/suspend", f.spare),
            &[],
            only(303, &[ADMIN], 303, 403),
        ),
        get("/admin/doctors", only(303, &[ADMIN], ok, 403)),
        // A doctor without a hospital.
        form(
            "/admin/doctors",
            &[("name", "Dr. Nowhere")],
            only(303, &[ADMIN], 400, 403),
        ),
        form(
            format!("/admin/doctors/{}/suspend", f.spare_doctor),
            &[],
            only(303, &[ADMIN], 303, 403),
        ),
        form("/admin/admins", &[], only(303, &[ADMIN], ok, 403)),
        form(
            format!("/admin/invites/{}/withdraw", f.spare_invite_key),
            &[],
            only(303, &[ADMIN], 303, 403),
        ),
        get("/admin/research", only(303, &[ADMIN], ok, 403)),
        // A researcher without a name, a study without a researcher.
        form(
            "/admin/researchers",
            &[("name", "")],
            only(303, &[ADMIN], 400, 403),
        ),
        form(
            "/admin/studies",
            &[
                ("researcher", "nobody"),
                ("title", "T"),
                ("ends_on", "2099-01-01"),
            ],
            only(303, &[ADMIN], 400, 403),
        ),
        // ---- The researcher's (a new export of their own study runs on past the matrix).
        get("/researcher", only(303, &[RESEARCHER], ok, 403)),
        form(
            format!("/researcher/studies/{}/export", f.export_study),
            &[],
            only(303, &[RESEARCHER], 303, 403),
        ),
    ]
}

/// An answer as the matrix reads it.
struct Answer {
    status: StatusCode,
    /// The JSON body, or the text as a JSON string.
    body: Value,
    text: String,
    location: Option<String>,
}

/// Sends `case` as caller `caller` (with `token`); `json` replaces a JSON body.
async fn send(
    t: &TestApp,
    http: &reqwest::Client,
    case: &Case,
    caller: usize,
    token: Option<&str>,
    json: Option<Value>,
) -> Answer {
    let mut request = http.request(case.method.clone(), format!("{}{}", t.url, case.path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in &case.headers {
        request = request.header(*name, *value);
    }
    let mine = |s: &str| s.replace("{caller}", &caller.to_string());
    // A page checks a logged-in person's form against their session's form token, and a
    // visitor's against the cookie it set.
    let page = !case.path.starts_with("/api/");
    let csrf = token.map_or_else(
        || VISITOR_CSRF.to_string(),
        medledger_records::sessions::form_token,
    );
    if page && token.is_none() {
        request = request.header(header::COOKIE, format!("medledger_csrf={VISITOR_CSRF}"));
    }
    match &case.body {
        Body::Empty => {}
        Body::Json(value) => {
            let value =
                json.unwrap_or_else(|| serde_json::from_str(&mine(&value.to_string())).unwrap());
            request = request.json(&value);
        }
        Body::Form(fields) => {
            let mut pairs: Vec<(String, String)> = fields
                .iter()
                .map(|(k, v)| (k.to_string(), mine(v)))
                .collect();
            pairs.push(("csrf".into(), csrf));
            request = request.form(&pairs);
        }
        Body::Multipart(fields, file) => {
            let mut parts = multipart::Form::new();
            for (k, v) in fields {
                parts = parts.text(k.to_string(), mine(v));
            }
            if page {
                parts = parts.text("csrf", csrf);
            }
            if let Some((name, contents)) = file {
                parts = parts.part(
                    "file",
                    multipart::Part::bytes(contents.as_bytes().to_vec()).file_name(*name),
                );
            }
            request = request.multipart(parts);
        }
    }
    let response = match request.send().await {
        Ok(response) => response,
        // A request that did not answer in time: what the chain had then, for whoever reads
        // the failure (Ganache has been seen leaving a transaction unmined under load).
        Err(e) => {
            let ask = |method: &'static str, params: Value| async move {
                let answer = t
                    .http
                    .post(&t.chain_url)
                    .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }))
                    .send()
                    .await;
                match answer {
                    Ok(a) => a.text().await.unwrap_or_default(),
                    Err(e) => format!("{method} failed: {e}"),
                }
            };
            // The latest block's transactions, with their receipts as the node gives them.
            let latest: Value =
                serde_json::from_str(&ask("eth_getBlockByNumber", json!(["latest", false])).await)
                    .unwrap_or_default();
            let mut mined = String::new();
            for hash in latest["result"]["transactions"]
                .as_array()
                .into_iter()
                .flatten()
            {
                mined.push_str(&format!(
                    "\n  {hash}: {} receipt {}",
                    ask("eth_getTransactionByHash", json!([hash])).await,
                    ask("eth_getTransactionReceipt", json!([hash])).await
                ));
            }
            panic!(
                "{} {} as {}: no answer ({e:?}); the server's open writes: {:?}; the chain then: latest block {}; pending block {}; txpool {}; the latest block's transactions:{mined}",
                case.method,
                case.path,
                WHO[caller],
                t.app.open_writes().await,
                ask("eth_blockNumber", json!([])).await,
                ask("eth_getBlockByNumber", json!(["pending", false])).await,
                ask("txpool_content", json!([])).await,
            )
        }
    };
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_string);
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
    Answer {
        status,
        body,
        text,
        location,
    }
}

/// Where a route belongs: the REST API, FHIR, or the pages.
#[derive(PartialEq)]
enum Surface {
    Api,
    Fhir,
    Page,
}

fn surface(path: &str) -> Surface {
    if path.starts_with("/api/") || path == "/healthz" {
        Surface::Api
    } else if path.starts_with("/fhir/") || path.starts_with("/.well-known/") {
        Surface::Fhir
    } else {
        Surface::Page
    }
}

/// Up to 150 characters either side of `needle` in `text` (its start, without it).
fn around(text: &str, needle: &str) -> String {
    let at = text.find(needle).unwrap_or(0);
    let mut start = at.saturating_sub(150);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + needle.len() + 150).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    text[start..end].replace('\n', " ")
}

/// The markers `text` shows beyond `allowed`, each with where it is: a named one, or any other
/// `SECRET` left once the allowed ones are taken out.
fn leaks(text: &str, allowed: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = MARKERS
        .iter()
        .filter(|m| !allowed.contains(m) && text.contains(**m))
        .map(|m| format!("{m} (…{}…)", around(text, m)))
        .collect();
    let rest = allowed
        .iter()
        .fold(text.to_string(), |rest, m| rest.replace(m, ""));
    if out.is_empty() && rest.contains(SECRET) {
        out.push(format!("an unnamed {SECRET} (…{}…)", around(&rest, SECRET)));
    }
    out
}

async fn matrix(backend: Backend) {
    let (t, _) = TestApp::spawn_configured(crate::defaults(backend), false, |config| {
        // Two patients make a research group (the smallest k Safe Harbor allows), so the
        // fixture's exports have files to ask for; each caller signs up one patient more.
        config.safe_harbor = SafeHarbor::from_table(DEFAULT_ZIP3_TABLE, 2).unwrap();
        config.limits.sign_ups_per_client = Limit::per_hour(100);
    })
    .await;
    let (f, tokens) = fixture(&t).await;
    let cases = cases(&f);
    // Redirects are answers here (a page sends a visitor to the login page).
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();

    let mut failures = Vec::new();
    let mut openings = 0;
    let mut emergency_openings = 0;
    let mut prescriptions = 0;
    let mut seen = crate::fhir::Received::default();
    let mut mfa_secrets: [Option<String>; CALLERS] = Default::default();
    for case in &cases {
        for (i, token) in tokens.iter().enumerate() {
            let Some(expected) = case.expect[i] else {
                continue;
            };
            let mut json = None;
            if case.path == "/api/v1/me/mfa/confirm"
                && let Some(secret) = &mfa_secrets[i]
            {
                json = Some(json!({ "code": crate::trust::wrong_code(secret) }));
            }
            let answer = send(&t, &http, case, i, token.as_deref(), json).await;
            let (status, body, text) = (answer.status, &answer.body, &answer.text);
            let what = format!("{} {} as {}", case.method, case.path, WHO[i]);
            if case.path == "/api/v1/me/mfa" && status.is_success() {
                mfa_secrets[i] = body["secret"].as_str().map(str::to_string);
            }
            if status.as_u16() != expected {
                failures.push(format!(
                    "{what}: {status}, not {expected}: {}",
                    around(text, "")
                ));
            }
            // What the answer shows: within what the caller may see, and a refusal nothing (but
            // a page, whose layout shows a patient their own emergencies, and which shows a
            // refused form again on the caller's own page).
            let surface = surface(&case.path);
            let allowed: &[&str] = if status.is_success()
                || status.is_redirection()
                || (surface == Surface::Page
                    && (i == PATIENT || [400, 409, 422].contains(&status.as_u16())))
            {
                may_see(i)
            } else {
                &[]
            };
            for leak in leaks(text, allowed) {
                failures.push(format!("{what} ({status}) shows {leak}"));
            }
            for (who, needles) in &case.shows {
                for needle in needles.iter().filter(|_| *who == i) {
                    if !text.contains(needle.as_str()) {
                        failures.push(format!(
                            "{what} ({status}) does not show {needle}: {}",
                            around(text, "")
                        ));
                    }
                }
            }
            for needle in case.hides.iter().filter(|n| text.contains(n.as_str())) {
                failures.push(format!(
                    "{what} ({status}) shows {needle}: {}",
                    around(text, needle)
                ));
            }
            // Every FHIR answer (but a Binary's raw bytes) is validated as R4 at the end.
            if surface == Surface::Fhir && body.get("resourceType").is_some() {
                seen.keep(&what, body);
            }
            if !status.is_success() && !status.is_redirection() {
                let shaped = match surface {
                    Surface::Fhir => body["resourceType"] == "OperationOutcome",
                    Surface::Api => body["error"]["code"].is_string(),
                    // A page's refusal is a page (the error page, or the form again).
                    Surface::Page => text.contains("<main id=\"main\">"),
                };
                if !shaped {
                    failures.push(format!("{what}: a refusal of the wrong shape: {text}"));
                }
            }
            // A visitor is sent to log in, and back here after.
            if surface == Surface::Page
                && i == ANONYMOUS
                && status == StatusCode::SEE_OTHER
                && !["/login", "/logout"].contains(&case.path.as_str())
                && !case.path.starts_with("/explorer/search")
                && !answer
                    .location
                    .as_deref()
                    .is_some_and(|l| l.starts_with("/login?next="))
            {
                failures.push(format!("{what}: sent to {:?}", answer.location));
            }
            let path = case.path.as_str();
            if (path.ends_with("/content")
                || path.ends_with("/download")
                || path.starts_with("/fhir/Binary/"))
                && status.is_success()
            {
                if path.contains(f.record.trim_start_matches("0x"))
                    && *body != Value::String(REPORT.into())
                {
                    failures.push(format!("{what}: opened {body}"));
                }
                openings += 1;
                emergency_openings += usize::from(i == EMERGENCY);
            }
            if path == "/api/v1/prescriptions" && case.method == Method::POST && status.is_success()
            {
                prescriptions += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Refusals changed nothing: the chain logged exactly the allowed openings, and only the
    // allowed prescriptions and reports exist. (Every session ended with the last case.)
    let patient = t.login("pauline", PASSWORD).await;
    // The log comes a page at a time, the most recent first: every page, to its end.
    let mut events = Vec::new();
    let mut page = Some("/api/v1/audit".to_string());
    while let Some(path) = page {
        let (status, audit) = t.get(&path, Some(&patient)).await;
        assert_eq!(status, StatusCode::OK, "{audit}");
        events.extend(audit["events"].as_array().unwrap().iter().cloned());
        page = audit["next"].as_str().map(str::to_string);
        assert!(events.len() < 100_000, "the log does not end");
    }
    let opened: Vec<&Value> = events.iter().filter(|e| e["action"] == "opened").collect();
    assert_eq!(opened.len(), openings);
    assert_eq!(
        openings, 15,
        "four readers of the report, each through the REST API, FHIR and the page, and three of the prescription"
    );
    let emergencies = opened.iter().filter(|e| e["emergency"] == true).count();
    assert_eq!(emergencies, emergency_openings);
    assert_eq!(emergencies, 4);
    let (_, list) = t.get("/api/v1/prescriptions", Some(&patient)).await;
    assert_eq!(
        list["prescriptions"].as_array().unwrap().len(),
        prescriptions + 1,
        "the fixture's, and those the matrix let doctors write: {list}"
    );
    assert_eq!(prescriptions, 3);
    let (_, list) = t.get("/api/v1/records", Some(&patient)).await;
    assert_eq!(
        list["records"].as_array().unwrap().len(),
        3,
        "the report, the bundle, and the one shared through the API: {list}"
    );
    // The password-change attempts with a wrong current password changed nothing.
    t.login("dr.granted", PASSWORD).await;
    seen.validate();
}
