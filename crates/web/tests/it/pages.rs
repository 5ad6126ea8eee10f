//! The web pages over HTTP, as a browser without JavaScript would use them: every page of every
//! role renders, forms without their CSRF token are refused and change nothing, a person never
//! sees another role's pages, an anonymous visit goes to login and back, and the security
//! headers are there. (The real-browser walk is in tests/browser.)

use reqwest::{StatusCode, header, redirect::Policy};

use crate::{Backend, PASSWORD, TestApp};

/// A response's status and headers (its body is read separately).
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    headers: header::HeaderMap,
}

impl Head {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn headers(&self) -> &header::HeaderMap {
        &self.headers
    }
}

/// A cookie-keeping client that does not follow redirects, like a browser we can inspect.
pub(crate) struct Browser<'a> {
    t: &'a TestApp,
    http: reqwest::Client,
    pub(crate) csrf: String,
}

impl<'a> Browser<'a> {
    pub(crate) async fn new(t: &'a TestApp) -> Browser<'a> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .build()
            .unwrap();
        let mut b = Browser {
            t,
            http,
            csrf: String::new(),
        };
        b.read_csrf("/login").await;
        b
    }

    /// Takes the form token of the page at `path` (a visitor's, or once logged in the
    /// session's).
    pub(crate) async fn read_csrf(&mut self, path: &str) {
        let (_, html) = self.get(path).await;
        self.csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("{path} has no form: {html}"))
            .to_string();
    }

    /// GETs `path`: its status and headers, and its body.
    pub(crate) async fn get(&self, path: &str) -> (Head, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.t.url))
            .send()
            .await
            .unwrap();
        let head = Head {
            status: response.status(),
            headers: response.headers().clone(),
        };
        (head, response.text().await.unwrap())
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.t.url))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Logs in through the form; the browser then holds the session's form token.
    pub(crate) async fn login(&mut self, user: &str, password: &str) {
        let r = self
            .post(
                "/login",
                &[
                    ("csrf", &self.csrf),
                    ("username", user),
                    ("password", password),
                    ("next", ""),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "login {user}");
        self.read_csrf("/account").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_for_its_role_and_refuses_the_others() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Central", "Lyon").await;
    let (doctor_address, _) = t.add_doctor(&admin, "dr.page", hospital).await;
    let (patient_address, patient) = t.sign_up("paula", "Paula Pages").await;
    let record = t
        .share(&patient, "Knee MRI", "no tear", &[&doctor_address])
        .await;

    let anonymous = Browser::new(&t).await;
    for path in [
        "/",
        "/login",
        "/signup",
        "/hospitals",
        "/hospitals?city=lyon",
    ] {
        let (r, html) = anonymous.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(html.contains("<main id=\"main\">"), "{path}");
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("http"),
            "{csp}"
        );
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    }
    let (r, _) = anonymous.get("/patient/sharing").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[header::LOCATION],
        "/login?next=/patient/sharing"
    );

    let pages: [(&str, &str, Vec<String>); 3] = [
        (
            "paula",
            PASSWORD,
            vec![
                "/patient".into(),
                "/patient/share".into(),
                "/patient/prescriptions".into(),
                "/patient/sharing".into(),
                "/patient/access-log".into(),
                format!("/records/{record}"),
                "/account".into(),
            ],
        ),
        (
            "dr.page",
            PASSWORD,
            vec![
                "/doctor".into(),
                format!("/doctor/patients/{patient_address}"),
                "/doctor/prescriptions".into(),
                "/doctor/openings".into(),
                "/account".into(),
            ],
        ),
        (
            "admin",
            crate::ADMIN_PASSWORD,
            vec![
                "/admin".into(),
                "/admin/hospitals".into(),
                format!("/admin/hospitals/{hospital}"),
                "/admin/doctors".into(),
                "/account".into(),
            ],
        ),
    ];
    let mut own = Vec::new();
    for (user, password, paths) in &pages {
        let mut b = Browser::new(&t).await;
        b.login(user, password).await;
        for path in paths {
            let (r, html) = b.get(path).await;
            assert_eq!(r.status(), StatusCode::OK, "{user} {path}: {html}");
            assert!(
                html.contains(&format!("{user} (")),
                "{user} {path} shows who is logged in"
            );
        }
        own.push((b, paths.clone()));
    }
    // Nobody sees another role's pages by editing the URL.
    for (i, (b, _)) in own.iter().enumerate() {
        for (j, (_, paths)) in own.iter().enumerate() {
            if i == j {
                continue;
            }
            // A record's page is for whoever the chain lets open it (checked below).
            for path in paths
                .iter()
                .filter(|p| !p.starts_with("/account") && !p.starts_with("/records/"))
            {
                let (r, html) = b.get(path).await;
                assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} for another role");
                assert!(
                    !html.contains("Knee MRI") && !html.contains("Paula Pages"),
                    "{path}"
                );
            }
        }
    }
    let (r, _) = own[1].0.get(&format!("/records/{record}")).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the granted doctor may see the record's page"
    );
    let (r, html) = own[2].0.get(&format!("/records/{record}")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "the admin may not");
    assert!(!html.contains("Knee MRI"));
    // The patient's pages show the report with its anchor and verified mark; the doctor's show
    // the patient by name.
    let (_, html) = own[0].0.get("/patient").await;
    assert!(
        html.contains("Knee MRI") && html.contains("✓ verified"),
        "{html}"
    );
    let (_, html) = own[1].0.get("/doctor").await;
    assert!(html.contains("Paula Pages"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_their_csrf_token_are_refused_and_change_nothing() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let mut b = Browser::new(&t).await;
    b.login("admin", crate::ADMIN_PASSWORD).await;
    let fields = [("name", "Forged"), ("city", "Nowhere")];
    let r = b.post("/admin/hospitals", &fields).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = b
        .post(
            "/admin/hospitals",
            &[("csrf", "0".repeat(64).as_str()), ("name", "Forged")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A fresh browser's cookie does not fit another browser's token either.
    let other = Browser::new(&t).await;
    let r = b
        .post(
            "/admin/hospitals",
            &[("csrf", other.csrf.as_str()), ("name", "Forged")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (_, hospitals) = t.get("/api/v1/hospitals", None).await;
    assert_eq!(hospitals["hospitals"].as_array().unwrap().len(), 0);
    // With the token it works, and the answer confirms the transaction.
    let r = b
        .post(
            "/admin/hospitals",
            &[
                ("csrf", b.csrf.as_str()),
                ("name", "Real"),
                ("city", "Lyon"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers()[header::LOCATION].to_str().unwrap().to_string();
    assert!(to.starts_with("/admin/hospitals?tx=0x"), "{to}");
    let (_, html) = b.get(&to).await;
    assert!(
        html.contains("Transaction confirmed") && html.contains("Gas used"),
        "{html}"
    );
    // Another session of the same person has another token: this one does not fit it.
    let mut other = Browser::new(&t).await;
    other.login("admin", crate::ADMIN_PASSWORD).await;
    assert_ne!(other.csrf, b.csrf);
    let r = other
        .post(
            "/admin/hospitals",
            &[("csrf", b.csrf.as_str()), ("name", "Forged"), ("city", "X")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Logging out needs the token too.
    assert_eq!(b.post("/logout", &[]).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(b.get("/admin").await.0.status(), StatusCode::OK);
    // The token is the session's: logged out and in again, the old one is refused.
    let old = b.csrf.clone();
    let r = b.post("/logout", &[("csrf", old.as_str())]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    b.read_csrf("/login").await;
    b.login("admin", crate::ADMIN_PASSWORD).await;
    assert_ne!(b.csrf, old);
    let r = b
        .post(
            "/admin/hospitals",
            &[("csrf", old.as_str()), ("name", "Stale"), ("city", "X")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (_, hospitals) = t.get("/api/v1/hospitals", None).await;
    assert_eq!(hospitals["hospitals"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_returns_to_the_page_asked_for_and_errors_stay_next_to_their_field() {
    let t = TestApp::spawn(Backend::Embedded).await;
    t.sign_up("lena", "Lena Login").await;
    let mut b = Browser::new(&t).await;
    let r = b
        .post(
            "/login",
            &[
                ("csrf", b.csrf.as_str()),
                ("username", "lena"),
                ("password", "wrong password!"),
                ("next", "/patient/sharing"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("wrong user name or password") && html.contains("value=\"lena\""),
        "{html}"
    );
    let r = b
        .post(
            "/login",
            &[
                ("csrf", b.csrf.as_str()),
                ("username", "lena"),
                ("password", PASSWORD),
                ("next", "/patient/sharing"),
            ],
        )
        .await;
    assert_eq!(r.headers()[header::LOCATION], "/patient/sharing");
    // Logged in, the forms carry the session's token: the visitor's one no longer fits.
    let visitor = b.csrf.clone();
    b.read_csrf("/login").await;
    assert_ne!(b.csrf, visitor);
    // Never to another site.
    let r = b
        .post(
            "/login",
            &[
                ("csrf", b.csrf.as_str()),
                ("username", "lena"),
                ("password", PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(r.headers()[header::LOCATION], "/patient");
    // Nor through the login page's wallet button, which goes where the page says.
    for elsewhere in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
    ] {
        let (_, html) = b
            .get(&format!("/login?next={}", urlencoding(elsewhere)))
            .await;
        assert!(!html.contains("evil.example"), "{elsewhere}: {html}");
        assert_eq!(data_next(&html), "/", "{elsewhere}");
    }
    let (_, html) = b.get("/login?next=/patient/sharing").await;
    assert_eq!(data_next(&html), "/patient/sharing");
    // That login made a new session, whose forms have a token of their own.
    b.read_csrf("/signup").await;

    // Sign-up errors are shown next to their field, and nothing is created.
    let r = b
        .post(
            "/signup",
            &[
                ("csrf", b.csrf.as_str()),
                ("username", "Bad Name"),
                ("password", "short"),
                ("password2", "other"),
                ("name", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    for id in ["e-username", "e-password", "e-password2", "e-name"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}: {html}");
    }
    assert!(
        t.app
            .people()
            .account_by_name("bad name")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctors_refused_form_comes_back_with_its_error_and_what_was_typed() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let admin = t.admin().await;
    let hospital = t.add_hospital(&admin, "Central", "Lyon").await;
    let (doctor_address, _) = t.add_doctor(&admin, "dr.form", hospital).await;
    let (patient_address, patient) = t.sign_up("fiona", "Fiona Forms").await;
    t.share(&patient, "Knee MRI", "no tear", &[&doctor_address])
        .await;
    let mut b = Browser::new(&t).await;
    b.login("dr.form", PASSWORD).await;

    // A prescription the domain refuses: the chart again, 400, the error and the lines typed.
    let long_dose = "5 mg ".repeat(50);
    let patient_field = patient_address.to_string();
    let r = b
        .post(
            "/doctor/prescriptions",
            &[
                ("csrf", b.csrf.as_str()),
                ("patient", patient_field.as_str()),
                ("name", "Ibuprofenum"),
                ("dose", long_dose.trim()),
                ("frequency", "twice a day"),
                ("duration", "5 days"),
                ("notes", "after meals"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    assert!(html.contains("too long (200 at most)"), "{html}");
    assert!(
        html.contains("value=\"Ibuprofenum\"")
            && html.contains("value=\"twice a day\"")
            && html.contains(">after meals</textarea>"),
        "what the doctor typed is kept: {html}"
    );
    let (_, listed) = b.get("/doctor/prescriptions").await;
    assert!(!listed.contains("Ibuprofenum"), "nothing was prescribed");

    // An emergency for nobody: the list again, 404, the error and the reason typed.
    let r = b
        .post(
            "/doctor/emergency",
            &[
                ("csrf", b.csrf.as_str()),
                ("patient", "nobody-here"),
                ("reason", "unconscious in the ward"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("no patient with that user name or address")
            && html.contains("value=\"nobody-here\"")
            && html.contains(">unconscious in the ward</textarea>"),
        "{html}"
    );

    // A page does not show text a link put in its address.
    let (r, html) = b.get("/doctor?error=Call%20555-0100%20now").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!html.contains("Call 555-0100"), "{html}");
}

/// Where the login page's wallet button goes on to (its `data-next`, unescaped).
fn data_next(html: &str) -> String {
    let start = html.find("data-next=\"").expect("a data-next attribute") + "data-next=\"".len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].replace("&#x2f;", "/")
}

/// `text` as a query value.
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
