//! The web pages, rendered on the server (minijinja templates in `web/templates`), per role:
//! home and login, patient, doctor, admin, and the ledger explorer. Shared here: the template
//! environment, the browser session (cookie) with a redirect to login, CSRF tokens (double-submit
//! cookie), the security headers of every page, and the transaction confirmation box.

// Page handlers fail with a rendered page (an axum `Response`): boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod admin;
mod doctor;
mod explorer;
mod patient;
mod public;
mod research;
mod trends;

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use medledger_records::primitives::{B256, U256};
use medledger_records::{Error, Kind, Person, emergency::EmergencyView, model::Role};
use minijinja::{Environment, Value, context};
use rand::{RngCore, rngs::OsRng};

use crate::{
    ApiState,
    session::{self, token_of},
};

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

macro_rules! templates {
    ($env:ident, $($name:literal),* $(,)?) => {
        $( $env.add_template($name, include_str!(concat!("../../templates/", $name)))
            .expect(concat!("template ", $name, " parses")); )*
    };
}

impl Templates {
    /// Loads every template (they are compiled into the binary; a syntax error fails the build's
    /// tests, not a user's request).
    pub fn load() -> Templates {
        let mut env = Environment::new();
        templates!(
            env,
            "base.html",
            "macros.html",
            "home.html",
            "login.html",
            "signup.html",
            "error.html",
            "wallet.html",
            "hospitals.html",
            "account.html",
            "enrol.html",
            "patient/records.html",
            "patient/record.html",
            "patient/share.html",
            "patient/prescriptions.html",
            "patient/sharing.html",
            "patient/access_log.html",
            "doctor/patients.html",
            "doctor/patient.html",
            "doctor/openings.html",
            "doctor/prescriptions.html",
            "trends.html",
            "patient/studies.html",
            "researcher.html",
            "admin/research.html",
            "admin/dashboard.html",
            "admin/hospitals.html",
            "admin/hospital.html",
            "admin/doctors.html",
            "admin/security.html",
            "explorer/index.html",
            "explorer/block.html",
            "explorer/tx.html",
            "explorer/address.html",
            "explorer/contracts.html",
        );
        env.add_filter("eth", format_eth);
        env.add_filter("short", short);
        env.add_filter("datetime", datetime);
        Templates { env }
    }
}

/// Wei (a decimal string or number) as ether with up to 6 decimals.
fn format_eth(value: Value) -> String {
    let wei: U256 = value.to_string().parse().unwrap_or_default();
    let unit = U256::from(10u64).pow(U256::from(12u64));
    let micro = wei / unit;
    let whole = micro / U256::from(1_000_000u64);
    let frac = (micro % U256::from(1_000_000u64)).to::<u64>();
    format!("{whole}.{frac:06} ETH")
}

/// 0x1234…abcd.
fn short(value: Value) -> String {
    let s = value.to_string();
    if s.len() > 14 {
        format!("{}…{}", &s[..8], &s[s.len() - 4..])
    } else {
        s
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`.
fn datetime(value: Value) -> String {
    medledger_records::model::utc_datetime(value.to_string().parse().unwrap_or(0))
}

/// Any serializable value, for a template.
pub(crate) fn v(value: &impl serde::Serialize) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// The cookie of a visitor's forms (login, sign-up, enrolment): a double-submit token. A
/// logged-in person's forms carry a token derived from their session instead
/// (`sessions::form_token`), which every app server checks without storing anything.
pub(crate) fn csrf_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-medledger_csrf"
    } else {
        "medledger_csrf"
    }
}

/// What every page template gets: who is logged in, the CSRF token, the current path.
pub(crate) struct Page {
    pub(crate) person: Option<Arc<Person>>,
    pub(crate) csrf: String,
    /// A fresh CSRF cookie to set, when the browser had none.
    new_csrf: bool,
    pub(crate) path: String,
    pub(crate) query: HashMap<String, String>,
    /// Where a wallet's page goes once its transaction completed the write: back here for a
    /// read (a GET, asked again), or for a form, the page it was posted from.
    after_wallet: String,
    /// For a patient: the emergencies open on them, or ended within a week, shown on every
    /// page; `Err` when the ledger could not be asked.
    emergencies: Result<Vec<EmergencyView>, String>,
    /// The session must set up a second factor before anything else.
    restricted: bool,
    /// The session's token (for the account page's list of sessions, to mark this one).
    session_token: Option<String>,
}

/// The pages a session that must first set up a second factor may open.
const SETUP_PAGES: [&str; 4] = [
    "/account",
    "/account/mfa",
    "/account/mfa/confirm",
    "/logout",
];

impl FromRequestParts<ApiState> for Page {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Page, Response> {
        let token = token_of(parts, state.secure_cookies);
        let session = match &token {
            Some(token) => match state.app.sessions().session(token).await {
                Ok(session) => session,
                Err(e) => {
                    // The page is shown as to a visitor; what failed is logged.
                    crate::error::log(&e);
                    None
                }
            },
            None => None,
        };
        let (csrf, new_csrf) = match (&session, &token) {
            (Some(_), Some(token)) => (medledger_records::sessions::form_token(token), false),
            _ => match cookie(&parts.headers, csrf_cookie(state.secure_cookies)) {
                Some(c) if c.len() == 64 => (c, false),
                _ => {
                    let mut bytes = [0u8; 32];
                    OsRng.fill_bytes(&mut bytes);
                    (hex::encode(bytes), true)
                }
            },
        };
        let session_token = session.as_ref().and(token.clone());
        let (person, restricted) = match session {
            Some(s) => (Some(s.person), s.restricted),
            None => (None, false),
        };
        let query = parts
            .uri
            .query()
            .map(|q| {
                url_pairs(q)
                    .into_iter()
                    .collect::<HashMap<String, String>>()
            })
            .unwrap_or_default();
        let emergencies = match &person {
            Some(p) if p.role == Role::Patient => state
                .app
                .emergency()
                .emergencies(p)
                .await
                .map_err(|e| e.message),
            _ => Ok(Vec::new()),
        };
        let after_wallet = if parts.method == axum::http::Method::GET {
            parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_string(), |p| p.to_string())
        } else {
            referer_path(&parts.headers).unwrap_or_else(|| "/".to_string())
        };
        Ok(Page {
            person,
            csrf,
            new_csrf,
            path: parts.uri.path().to_string(),
            after_wallet,
            query,
            emergencies,
            restricted,
            session_token,
        })
    }
}

/// The local path (and query) of the page a form was posted from, from `Referer`: only this
/// site's own (the browser sends the full URL; the host is the request's own `Host`).
fn referer_path(headers: &HeaderMap) -> Option<String> {
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let rest = referer
        .strip_prefix("http://")
        .or_else(|| referer.strip_prefix("https://"))?;
    let path = rest.strip_prefix(host)?;
    safe_next(Some(path))
}

/// Decodes `a=1&b=x%20y` (application/x-www-form-urlencoded).
pub(crate) fn url_pairs(query: &str) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}").parse().unwrap_or_default(),
    )
    .map(|q| q.0)
    .unwrap_or_default()
}

/// The value of cookie `name`.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

impl Page {
    /// The logged-in person with `role`, or a redirect to the login page (and back here after),
    /// or a refusal for another role.
    pub(crate) fn require(&self, state: &ApiState, role: Role) -> Result<Arc<Person>, Response> {
        self.setup_first()?;
        match &self.person {
            Some(p) if p.role == role => Ok(p.clone()),
            Some(_) => Err(self.fail(
                state,
                Error::forbidden(
                    "this page belongs to another role; log in with the right account",
                ),
            )),
            None => {
                Err(Redirect::to(&format!("/login?next={}", urlencode(&self.path))).into_response())
            }
        }
    }

    /// A session that must set up its second factor goes to the account page first.
    fn setup_first(&self) -> Result<(), Response> {
        if self.restricted && !SETUP_PAGES.contains(&self.path.as_str()) {
            return Err(Redirect::to("/account?mfa=required").into_response());
        }
        Ok(())
    }

    /// The logged-in person of any role, or a redirect to login.
    pub(crate) fn require_any(&self) -> Result<Arc<Person>, Response> {
        self.setup_first()?;
        match &self.person {
            Some(p) => Ok(p.clone()),
            None => {
                Err(Redirect::to(&format!("/login?next={}", urlencode(&self.path))).into_response())
            }
        }
    }

    /// A form posted by someone in `role`: who they are, once the form's CSRF token matches.
    pub(crate) fn submitted_by(
        &self,
        state: &ApiState,
        role: Role,
        fields: &public::Fields,
    ) -> Result<Arc<Person>, Response> {
        let me = self.require(state, role)?;
        self.submitted(state, fields)?;
        Ok(me)
    }

    /// A form posted by anyone logged in: who they are, once the form's CSRF token matches.
    pub(crate) fn submitted_by_anyone(
        &self,
        state: &ApiState,
        fields: &public::Fields,
    ) -> Result<Arc<Person>, Response> {
        let me = self.require_any()?;
        self.submitted(state, fields)?;
        Ok(me)
    }

    /// Whether a posted form carries this browser's CSRF token (the error page if not).
    pub(crate) fn submitted(
        &self,
        state: &ApiState,
        fields: &public::Fields,
    ) -> Result<(), Response> {
        self.check_csrf(Some(public::field(fields, "csrf")))
            .map_err(|e| self.fail(state, e))
    }

    /// Renders `template` with `ctx` plus the page basics.
    pub(crate) fn render(&self, state: &ApiState, template: &str, ctx: Value) -> Response {
        self.render_status(state, StatusCode::OK, template, ctx)
    }

    pub(crate) fn render_status(
        &self,
        state: &ApiState,
        status: StatusCode,
        template: &str,
        ctx: Value,
    ) -> Response {
        let me = self.person.as_ref().map(|p| {
            context! { username => p.username.clone(), role => p.role.as_str(), address => p.address.to_string(), mode => p.signer.mode() }
        });
        let (emergencies, emergencies_unknown) = match &self.emergencies {
            Ok(list) => (v(list), None),
            Err(why) => (v(&Vec::<EmergencyView>::new()), Some(why.clone())),
        };
        let full = context! {
            me => me,
            csrf => self.csrf.clone(),
            path => self.path.clone(),
            emergencies => emergencies,
            emergencies_unknown => emergencies_unknown,
            ..ctx
        };
        let html = state
            .templates
            .env
            .get_template(template)
            .and_then(|t| t.render(full));
        let mut response = match html {
            Ok(html) => (status, axum::response::Html(html)).into_response(),
            Err(e) => {
                tracing::error!("rendering {template}: {e:#}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be rendered",
                )
                    .into_response()
            }
        };
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
            ),
        );
        if self.new_csrf {
            let secure = if state.secure_cookies { "; Secure" } else { "" };
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
                csrf_cookie(state.secure_cookies),
                self.csrf
            )) {
                headers.append(header::SET_COOKIE, v);
            }
        }
        response
    }

    /// Renders the error page (with the layout) for a domain error.
    pub(crate) fn fail(&self, state: &ApiState, e: Error) -> Response {
        if e.kind == Kind::Unauthenticated {
            return Redirect::to(&format!("/login?next={}", urlencode(&self.path))).into_response();
        }
        if let Some(prepared) = &e.wallet {
            return self.wallet_confirmation(state, prepared, &self.after_wallet);
        }
        self.render_status(
            state,
            crate::error::answered(&e),
            "error.html",
            context! { message => e.message, code => e.kind.code() },
        )
    }

    /// `fail`, where a call prepared for the wallet goes on to `next` once it is done (not to
    /// the page the form was on).
    pub(crate) fn fail_towards(&self, state: &ApiState, e: Error, next: &str) -> Response {
        match &e.wallet {
            Some(prepared) => self.wallet_confirmation(state, prepared, next),
            None => self.fail(state, e),
        }
    }

    /// The page that hands a prepared call to the person's wallet (`static/app.js` asks the
    /// wallet to send it, hands its hash back, then goes on to `next`).
    fn wallet_confirmation(
        &self,
        state: &ApiState,
        prepared: &medledger_records::journal::PreparedWrite,
        next: &str,
    ) -> Response {
        let contracts = state.app.contracts();
        let contract = [
            (contracts.registry, "Registry"),
            (contracts.records, "Records"),
            (contracts.consent, "Consent"),
            (contracts.research, "Research"),
        ]
        .into_iter()
        .find_map(|(a, name)| (a == prepared.to).then_some(name))
        .unwrap_or("contract");
        self.render_status(
            state,
            StatusCode::ACCEPTED,
            "wallet.html",
            context! {
                prepared => v(prepared),
                contract => contract,
                next => next,
            },
        )
    }

    /// Checks the form's CSRF token: against the session's form token, or for a visitor the
    /// cookie (double submit).
    /// The token of the session the page is shown in, if any.
    pub(crate) fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }

    pub(crate) fn check_csrf(&self, submitted: Option<&str>) -> Result<(), Error> {
        match submitted {
            Some(t)
                if !self.new_csrf
                    && crate::session::constant_eq(t.as_bytes(), self.csrf.as_bytes()) =>
            {
                Ok(())
            }
            _ => Err(Error::forbidden(
                "this form has expired or did not come from this site; reload the page and try again",
            )),
        }
    }

    /// The confirmation box of a transaction named by `?tx=` (after a write).
    pub(crate) async fn tx_box(&self, state: &ApiState) -> Option<Value> {
        let hash: B256 = self.query.get("tx")?.parse().ok()?;
        let (tx, ok) = state.app.explorer().transaction_info(hash).await.ok()??;
        let mut shown = tx_of(&tx);
        if !ok {
            shown = context! { ok => false, ..shown };
        }
        Some(shown)
    }
}

/// The confirmation box of a write just made (what `tx_box` shows after a redirect).
pub(crate) fn tx_of(tx: &medledger_records::TxInfo) -> Value {
    context! {
        hash => tx.hash.to_string(),
        block => tx.block_number,
        gas_used => tx.gas_used,
        gas_price => tx.effective_gas_price.to_string(),
        fee => tx.fee_wei.to_string(),
        ok => true,
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where to go after a write: `to`, with the transaction to confirm.
pub(crate) fn after_write(to: &str, tx: &B256) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}tx={tx}")).into_response()
}

/// A local path to return to after login (never another site).
pub(crate) fn safe_next(next: Option<&str>) -> Option<String> {
    let n = next?;
    (n.starts_with('/') && !n.starts_with("//") && !n.contains('\\')).then(|| n.to_string())
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/app.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/app.js"),
    )
        .into_response()
}

/// Every page route.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/static/app.css", get(css))
        .route("/static/app.js", get(js))
        .merge(public::router())
        .merge(patient::router())
        .merge(doctor::router())
        .merge(admin::router())
        .merge(explorer::router())
        .merge(trends::router())
        .merge(research::router())
}

/// A page-handler's result: a page, or a redirect/error page already rendered.
pub(crate) type PageResult = Result<Response, Response>;

/// Shorthand for mapping a domain error into a rendered error page.
pub(crate) trait OrPage<T> {
    fn or_page(self, page: &Page, state: &ApiState) -> Result<T, Response>;
}

impl<T> OrPage<T> for Result<T, Error> {
    fn or_page(self, page: &Page, state: &ApiState) -> Result<T, Response> {
        self.map_err(|e| page.fail(state, e))
    }
}

/// Reads the session token, to end it at logout.
pub(crate) fn session_token(headers: &HeaderMap, secure: bool) -> Option<String> {
    cookie(headers, session::cookie_name(secure))
}
