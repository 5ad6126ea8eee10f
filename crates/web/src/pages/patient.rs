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
    Error, Kind,
    model::{Purpose, RecordKind, Role},
    reports::{NewReport, parse_record_id},
    sharing::GrantInput,
};
use minijinja::context;

use super::{
    OrPage, Page, PageResult, after_write,
    public::{Fields, field},
    v,
};
use crate::ApiState;

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
        Some(p) => Purpose::parse(p).or_page(&page, &state)?,
        None => Purpose::Treatment,
    };
    let view = state
        .app
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
    let me = page.require_any()?;
    page.check_csrf(Some(field(&fields, "csrf")))
        .or_page(&page, &state)?;
    let id = parse_record_id(&id).or_page(&page, &state)?;
    let purpose = match field(&fields, "purpose") {
        "" => Purpose::Treatment,
        p => Purpose::parse(p).or_page(&page, &state)?,
    };
    let opened = state
        .app
        .open_record(&me, id, purpose)
        .await
        .or_page(&page, &state)?;
    Ok(crate::api::attachment(&id, opened))
}

async fn share_context(state: &ApiState) -> minijinja::Value {
    let doctors = state.app.doctors(None).await.unwrap_or_default();
    let hospitals = state.app.hospitals(None, None).await.unwrap_or_default();
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
async fn share(State(state): State<ApiState>, page: Page, mut form: Multipart) -> PageResult {
    let me = page.require(&state, Role::Patient)?;
    let limit = state.app.max_upload_bytes();
    let mut fields: Fields = Vec::new();
    let mut file = Vec::new();
    let mut too_large = false;
    loop {
        let next = form.next_field().await;
        let mut f = match next {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                too_large = true;
                break;
            }
            Err(e) => return Err(page.fail(&state, Error::invalid(e.body_text()))),
        };
        let name = f.name().unwrap_or_default().to_string();
        if name == "file" {
            loop {
                match f.chunk().await {
                    Ok(Some(chunk)) if !too_large => {
                        if file.len() + chunk.len() > limit {
                            too_large = true;
                            file.clear();
                        } else {
                            file.extend_from_slice(&chunk);
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        too_large = true;
                        break;
                    }
                }
            }
        } else if let Ok(text) = f.text().await {
            fields.push((name, text));
        }
    }
    let values = context! {
        title => field(&fields, "title"), kind => field(&fields, "kind"), date => field(&fields, "date"),
        notes => field(&fields, "notes"), purpose => field(&fields, "purpose"),
        expires_in_days => field(&fields, "expires_in_days"), hospital_id => field(&fields, "hospital_id"),
    };
    let rerender = |status: StatusCode,
                    errors: std::collections::BTreeMap<&'static str, String>,
                    error: Option<String>| {
        let state = state.clone();
        let page = &page;
        let values = values.clone();
        async move {
            let choices = share_context(&state).await;
            page.render_status(
                &state,
                status,
                "patient/share.html",
                context! { values => values, errors => errors, error => error, ..choices },
            )
        }
    };
    if let Err(e) = page.check_csrf(Some(field(&fields, "csrf"))) {
        return Err(page.fail(&state, e));
    }
    let mut errors = std::collections::BTreeMap::new();
    if too_large {
        errors.insert(
            "file",
            format!(
                "the file is larger than the {} MiB limit",
                limit / (1024 * 1024)
            ),
        );
        return Err(rerender(StatusCode::PAYLOAD_TOO_LARGE, errors, None).await);
    }
    if file.is_empty() {
        errors.insert("file", "choose a file to share".to_string());
    }
    if field(&fields, "title").trim().is_empty() {
        errors.insert("title", "a title is required".to_string());
    }
    let kind = match RecordKind::parse(field(&fields, "kind")) {
        Ok(k) => k,
        Err(e) => {
            errors.insert("kind", e.message);
            RecordKind::Report
        }
    };
    let days: u64 = match field(&fields, "expires_in_days").parse() {
        Ok(d) if (1..=3650).contains(&d) => d,
        _ => {
            errors.insert(
                "expires_in_days",
                "a number of days between 1 and 3650".to_string(),
            );
            30
        }
    };
    if !errors.is_empty() {
        return Err(rerender(StatusCode::BAD_REQUEST, errors, None).await);
    }
    let doctors: Vec<_> = fields
        .iter()
        .filter(|(k, v)| k == "doctor" && !v.is_empty())
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let hospital: Option<u64> = field(&fields, "hospital_id")
        .parse()
        .ok()
        .filter(|h| *h > 0);
    let report = NewReport {
        title: field(&fields, "title").to_string(),
        kind,
        date: field(&fields, "date").to_string(),
        notes: field(&fields, "notes").to_string(),
        bytes: file,
    };
    let (view, tx) = match state.app.share_report(&me, report).await {
        Ok(done) => done,
        Err(e) => {
            let status = crate::error::status_of(e.kind);
            let mut errors = std::collections::BTreeMap::new();
            let top = match e.kind {
                Kind::UnsupportedType | Kind::TooLarge | Kind::Invalid
                    if e.message.contains("file") =>
                {
                    errors.insert("file", e.message);
                    None
                }
                _ => Some(e.message),
            };
            return Err(rerender(status, errors, top).await);
        }
    };
    let purpose = match field(&fields, "purpose") {
        "research" => "research",
        _ => "treatment",
    };
    let grant = |doctor, hospital_id| GrantInput {
        doctor,
        hospital_id,
        scope: "records".into(),
        kinds: Vec::new(),
        record_ids: vec![view.id],
        purpose: purpose.into(),
        expires_at: None,
        expires_in_days: Some(days),
    };
    let mut last = tx.hash;
    for d in doctors {
        last = state
            .app
            .grant(&me, &grant(Some(d), None))
            .await
            .or_page(&page, &state)?
            .1
            .hash;
    }
    if let Some(h) = hospital {
        last = state
            .app
            .grant(&me, &grant(None, Some(h)))
            .await
            .or_page(&page, &state)?
            .1
            .hash;
    }
    Ok(after_write("/patient", &last))
}

async fn prescriptions(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require(&state, Role::Patient)?;
    let list = state.app.prescriptions(&me).await.or_page(&page, &state)?;
    let mut doctors = std::collections::BTreeMap::new();
    for p in &list {
        if let Ok(d) = state.app.doctor(p.doctor).await {
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
    let grants = state.app.grants(me).await.or_page(page, state)?;
    let doctors = state.app.doctors(None).await.or_page(page, state)?;
    let hospitals = state.app.hospitals(None, None).await.or_page(page, state)?;
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
    let me = page.require(&state, Role::Patient)?;
    page.check_csrf(Some(field(&fields, "csrf")))
        .or_page(&page, &state)?;
    let (doctor, hospital_id) = match field(&fields, "grantee").split_once(':') {
        Some(("doctor", a)) => (a.parse().ok(), None),
        Some(("hospital", h)) => (None, h.parse().ok()),
        _ => (None, None),
    };
    let input = GrantInput {
        doctor,
        hospital_id,
        scope: field(&fields, "scope").to_string(),
        kinds: fields
            .iter()
            .filter(|(k, _)| k == "kind")
            .map(|(_, v)| v.clone())
            .collect(),
        record_ids: Vec::new(),
        purpose: field(&fields, "purpose").to_string(),
        expires_at: None,
        expires_in_days: field(&fields, "expires_in_days").parse().ok(),
    };
    match state.app.grant(&me, &input).await {
        Ok((_, tx)) => Ok(after_write("/patient/sharing", &tx.hash)),
        Err(e) => {
            sharing_page(
                &state,
                &page,
                &me,
                crate::error::status_of(e.kind),
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
    let me = page.require(&state, Role::Patient)?;
    page.check_csrf(Some(field(&fields, "csrf")))
        .or_page(&page, &state)?;
    let id: u64 = id
        .parse()
        .map_err(|_| page.fail(&state, Error::invalid("bad grant id")))?;
    let tx = state.app.revoke(&me, id).await.or_page(&page, &state)?;
    Ok(after_write("/patient/sharing", &tx.hash))
}

async fn access_log(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require(&state, Role::Patient)?;
    let mut events = state.app.audit(&me).await.or_page(&page, &state)?;
    events.reverse();
    Ok(page.render(
        &state,
        "patient/access_log.html",
        context! { events => v(&events) },
    ))
}
