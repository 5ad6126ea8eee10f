//! The patient's pages: my reports (with anchor and integrity), share a report, a report, my
//! prescriptions, sharing (grants and revocation), and the access log. Also the download form
//! every role uses to open a record.

use axum::{
    Form, Router,
    extract::{Multipart, Path, State},
    http::StatusCode,
    routing::{get, post},
};
use medledger_records::accounts::address_key;
use medledger_records::{
    Error,
    model::{Purpose, Role},
    reports::parse_record_id,
    sharing::GrantInput,
};
use minijinja::context;

use super::{
    OrPage, Page, PageResult, after_write,
    public::{Fields, field},
    v,
};
use crate::{ApiState, forms::ShareForm};

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/patient", get(records))
        .route("/records/{id}", get(record))
        .route("/patient/share", get(share_form).post(share))
        .route("/patient/prescriptions", get(prescriptions))
        .route("/patient/sharing", get(sharing))
        .route("/patient/grants", post(grant))
        .route("/patient/grants/{id}/revoke", post(revoke))
        .route("/patient/access-log", get(access_log))
        .route("/records/{id}/download", post(download))
}

async fn records(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require(&state, Role::Patient)?;
    // The verified mark comes from a fresh check of each blob against its anchor.
    let list = state
        .app
        .reports()
        .my_records(&me, true)
        .await
        .or_page(&page, &state)?;
    let tx = page.tx_box(&state).await;
    Ok(page.render(
        &state,
        "patient/records.html",
        context! { records => v(&list), tx => tx },
    ))
}

async fn record(State(state): State<ApiState>, page: Page, Path(id): Path<String>) -> PageResult {
    let me = page.require_any()?;
    let id = parse_record_id(&id).or_page(&page, &state)?;
    let purpose = match page.query.get("purpose") {
        Some(p) => p.parse::<Purpose>().or_page(&page, &state)?,
        None => Purpose::Treatment,
    };
    let view = state
        .app
        .reports()
        .record(&me, id, purpose)
        .await
        .or_page(&page, &state)?;
    Ok(page.render(
        &state,
        "patient/record.html",
        context! { record => v(&view), purpose => purpose.as_str() },
    ))
}

/// Opens a record for download: a POST (it writes the opening to the chain) with a CSRF token.
async fn download(
    State(state): State<ApiState>,
    page: Page,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by_anyone(&state, &fields)?;
    let id = parse_record_id(&id).or_page(&page, &state)?;
    let purpose = match field(&fields, "purpose") {
        "" => Purpose::Treatment,
        p => p.parse::<Purpose>().or_page(&page, &state)?,
    };
    let opened = state
        .app
        .reports()
        .open_record(&me, id, purpose)
        .await
        .or_page(&page, &state)?;
    Ok(crate::api::attachment(&id, opened))
}

async fn share_context(state: &ApiState) -> minijinja::Value {
    let doctors = state.app.people().doctors(None).await.unwrap_or_default();
    let hospitals = state
        .app
        .people()
        .hospitals(None, None)
        .await
        .unwrap_or_default();
    context! { doctors => v(&doctors), hospitals => v(&hospitals) }
}

async fn share_form(State(state): State<ApiState>, page: Page) -> PageResult {
    page.require(&state, Role::Patient)?;
    let choices = share_context(&state).await;
    Ok(page.render(
        &state,
        "patient/share.html",
        context! { values => context! { kind => "report", expires_in_days => "30", purpose => "treatment" }, ..choices },
    ))
}

/// The share form: the file and its fields, and optionally doctors or a hospital to share with.
/// Read as the API reads it and shared by the same domain operation; a failure is shown next to
/// the field it concerns.
async fn share(State(state): State<ApiState>, page: Page, form: Multipart) -> PageResult {
    let me = page.require(&state, Role::Patient)?;
    let read = ShareForm::read(form, state.app.max_upload_bytes()).await;
    let (values, csrf) = match &read {
        Ok(form) => {
            let f = |k| form.field(k);
            let values = context! {
                title => f("title"), kind => f("kind"), date => f("date"),
                notes => f("notes"), purpose => f("purpose"),
                expires_in_days => f("expires_in_days"), hospital_id => f("hospital_id"),
            };
            (values, f("csrf").to_string())
        }
        Err(_) => (context! {}, String::new()),
    };
    let rerender = |e: Error| {
        let state = state.clone();
        let page = &page;
        let values = values.clone();
        async move {
            if e.wallet.is_some() {
                return page.fail_towards(&state, e, "/patient");
            }
            let status = crate::error::answered(&e);
            let mut errors = std::collections::BTreeMap::new();
            let top = match e.field {
                Some(field) => {
                    errors.insert(field, e.message);
                    None
                }
                None => Some(e.message),
            };
            let choices = share_context(&state).await;
            page.render_status(
                &state,
                status,
                "patient/share.html",
                context! { values => values, errors => errors, error => top, ..choices },
            )
        }
    };
    let form = match read {
        Ok(form) => form,
        Err(e) => return Err(rerender(e).await),
    };
    page.check_csrf(Some(&csrf)).or_page(&page, &state)?;
    let shared = match form.request() {
        Ok((report, with)) => {
            state
                .app
                .sharing()
                .share_report_with(&me, report, &with)
                .await
        }
        Err(e) => Err(e),
    };
    match shared {
        Ok(shared) => {
            let last = shared.grants.last().map_or(&shared.tx, |(_, tx)| tx);
            Ok(after_write("/patient", &last.hash))
        }
        Err(e) => Err(rerender(e).await),
    }
}

async fn prescriptions(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require(&state, Role::Patient)?;
    let list = state
        .app
        .reports()
        .prescriptions(&me)
        .await
        .or_page(&page, &state)?;
    let mut doctors = std::collections::BTreeMap::new();
    for p in &list {
        if let Ok(d) = state.app.people().doctor(p.doctor).await {
            doctors.insert(address_key(p.doctor), d.name);
        }
    }
    Ok(page.render(
        &state,
        "patient/prescriptions.html",
        context! { prescriptions => v(&list), doctors => doctors },
    ))
}

async fn sharing(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require(&state, Role::Patient)?;
    sharing_page(&state, &page, &me, StatusCode::OK, None).await
}

async fn sharing_page(
    state: &ApiState,
    page: &Page,
    me: &medledger_records::Person,
    status: StatusCode,
    error: Option<String>,
) -> PageResult {
    let grants = state.app.sharing().grants(me).await.or_page(page, state)?;
    let doctors = state
        .app
        .people()
        .doctors(None)
        .await
        .or_page(page, state)?;
    let hospitals = state
        .app
        .people()
        .hospitals(None, None)
        .await
        .or_page(page, state)?;
    let names: std::collections::BTreeMap<String, String> = doctors
        .iter()
        .map(|d| (address_key(d.address), d.name.clone()))
        .collect();
    let hospital_names: std::collections::BTreeMap<String, String> = hospitals
        .iter()
        .map(|h| (h.id.to_string(), h.name.clone()))
        .collect();
    let tx = page.tx_box(state).await;
    Ok(page.render_status(
        state,
        status,
        "patient/sharing.html",
        context! { grants => v(&grants), doctors => v(&doctors), hospitals => v(&hospitals),
        names => names, hospital_names => hospital_names, error => error, tx => tx },
    ))
}

async fn grant(
    State(state): State<ApiState>,
    page: Page,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by(&state, Role::Patient, &fields)?;
    let (doctor, hospital_id) = match field(&fields, "grantee").split_once(':') {
        Some(("doctor", a)) => (a.parse().ok(), None),
        Some(("hospital", h)) => (None, h.parse().ok()),
        _ => (None, None),
    };
    let words = || -> Result<_, Error> {
        let scope = field(&fields, "scope")
            .parse()
            .map_err(|e: Error| e.on("scope"))?;
        let purpose = field(&fields, "purpose")
            .parse()
            .map_err(|e: Error| e.on("purpose"))?;
        let kinds = fields
            .iter()
            .filter(|(k, _)| k == "kind")
            .map(|(_, v)| v.parse())
            .collect::<Result<Vec<_>, Error>>()
            .map_err(|e| e.on("kind"))?;
        Ok((scope, purpose, kinds))
    };
    let (scope, purpose, kinds) = match words() {
        Ok(w) => w,
        Err(e) => {
            let status = crate::error::answered(&e);
            return sharing_page(&state, &page, &me, status, Some(e.message)).await;
        }
    };
    let input = GrantInput {
        doctor,
        hospital_id,
        scope,
        kinds,
        record_ids: Vec::new(),
        purpose,
        expires_at: None,
        expires_in_days: field(&fields, "expires_in_days").parse().ok(),
    };
    match state.app.sharing().grant(&me, &input).await {
        Ok((_, tx)) => Ok(after_write("/patient/sharing", &tx.hash)),
        // A wallet's call: the page that hands it to the wallet.
        Err(e) if e.wallet.is_some() => Err(page.fail(&state, e)),
        Err(e) => {
            sharing_page(
                &state,
                &page,
                &me,
                crate::error::answered(&e),
                Some(e.message),
            )
            .await
        }
    }
}

async fn revoke(
    State(state): State<ApiState>,
    page: Page,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by(&state, Role::Patient, &fields)?;
    let id: u64 = id
        .parse()
        .map_err(|_| page.fail(&state, Error::invalid("bad grant id")))?;
    let tx = state
        .app
        .sharing()
        .revoke(&me, id)
        .await
        .or_page(&page, &state)?;
    Ok(after_write("/patient/sharing", &tx.hash))
}

async fn access_log(
    State(state): State<ApiState>,
    page: Page,
    axum::extract::Query(q): axum::extract::Query<crate::api::Before>,
) -> PageResult {
    let me = page.require(&state, Role::Patient)?;
    let before = q.cursor().or_page(&page, &state)?;
    let log = state
        .app
        .audit()
        .audit(&me, before)
        .await
        .or_page(&page, &state)?;
    Ok(page.render(
        &state,
        "patient/access_log.html",
        context! { events => v(&log.events), older => log.older, first => before.is_none() },
    ))
}
