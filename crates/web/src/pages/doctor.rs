//! The doctor's pages: my patients, a patient's reports (open, download), writing a prescription,
//! declaring an emergency, my prescriptions and my recent openings.

use axum::{
    Form, Router,
    extract::{Path, State},
    response::IntoResponse,
    routing::{get, post},
};
use medledger_records::primitives::Address;
use medledger_records::{
    Error,
    model::Role,
    reports::{Medication, PrescriptionBody},
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
        .route("/doctor", get(patients))
        .route("/doctor/patients/{address}", get(patient))
        .route("/doctor/prescriptions", get(prescriptions).post(prescribe))
        .route("/doctor/emergency", post(emergency))
        .route("/doctor/openings", get(openings))
}

async fn patients(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require(&state, Role::Doctor)?;
    let list = state.app.my_patients(&me).await.or_page(&page, &state)?;
    let tx = page.tx_box(&state).await;
    let error = page.query.get("error").cloned();
    Ok(page.render(
        &state,
        "doctor/patients.html",
        context! { patients => v(&list), tx => tx, error => error, window_hours => state.app.emergency_window().as_secs() / 3600 },
    ))
}

fn address(page: &Page, state: &ApiState, raw: &str) -> Result<Address, axum::response::Response> {
    raw.trim()
        .parse()
        .map_err(|_| page.fail(state, Error::invalid("that is not an account address")))
}

async fn patient(State(state): State<ApiState>, page: Page, Path(raw): Path<String>) -> PageResult {
    let me = page.require(&state, Role::Doctor)?;
    let patient = address(&page, &state, &raw)?;
    // One view, logged on chain as one transaction before the page is shown.
    let chart = state
        .app
        .patient_chart(&me, patient)
        .await
        .or_page(&page, &state)?;
    let tx = page.tx_box(&state).await;
    Ok(page.render(
        &state,
        "doctor/patient.html",
        context! { patient => patient.to_string(), profile => v(&chart.profile), entry => v(&chart.entry),
        records => v(&chart.records), tx => tx, error => page.query.get("error").cloned() },
    ))
}

async fn prescribe(
    State(state): State<ApiState>,
    page: Page,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.require(&state, Role::Doctor)?;
    page.check_csrf(Some(field(&fields, "csrf")))
        .or_page(&page, &state)?;
    let patient = address(&page, &state, field(&fields, "patient"))?;
    // The form repeats name/dose/frequency/duration per line; blank lines are skipped.
    let column = |name: &str| -> Vec<String> {
        fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .collect()
    };
    let (names, doses, freqs, durations) = (
        column("name"),
        column("dose"),
        column("frequency"),
        column("duration"),
    );
    let medications = names
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.is_empty())
        .map(|(i, n)| Medication {
            name: n.clone(),
            dose: doses.get(i).cloned().unwrap_or_default(),
            frequency: freqs.get(i).cloned().unwrap_or_default(),
            duration: durations.get(i).cloned().unwrap_or_default(),
        })
        .collect();
    let body = PrescriptionBody {
        medications,
        notes: field(&fields, "notes").trim().to_string(),
    };
    let back = format!("/doctor/patients/{patient}");
    match state.app.prescribe(&me, patient, &body).await {
        Ok((_, tx)) => Ok(after_write(&back, &tx.hash)),
        Err(e) => Ok(back_with_error(&back, &e)),
    }
}

async fn emergency(
    State(state): State<ApiState>,
    page: Page,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.require(&state, Role::Doctor)?;
    page.check_csrf(Some(field(&fields, "csrf")))
        .or_page(&page, &state)?;
    let who = field(&fields, "patient").trim();
    // A patient is named by user name or address.
    let patient = match who.parse::<Address>() {
        Ok(a) => a,
        Err(_) => match state
            .app
            .account_by_name(who)
            .await
            .or_page(&page, &state)?
        {
            Some(a) if a.role == Role::Patient => a.address,
            _ => {
                return Ok(back_with_error(
                    "/doctor",
                    &Error::not_found("there is no patient with that user name or address"),
                ));
            }
        },
    };
    match state
        .app
        .declare_emergency(&me, patient, field(&fields, "reason"))
        .await
    {
        Ok((_, tx)) => Ok(after_write(
            &format!("/doctor/patients/{patient}"),
            &tx.hash,
        )),
        Err(e) => Ok(back_with_error("/doctor", &e)),
    }
}

async fn prescriptions(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require(&state, Role::Doctor)?;
    let list = state.app.prescriptions(&me).await.or_page(&page, &state)?;
    Ok(page.render(
        &state,
        "doctor/prescriptions.html",
        context! { prescriptions => v(&list) },
    ))
}

async fn openings(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require(&state, Role::Doctor)?;
    let mut events = state.app.audit(&me).await.or_page(&page, &state)?;
    events.reverse();
    Ok(page.render(
        &state,
        "doctor/openings.html",
        context! { events => v(&events) },
    ))
}

/// Back to the page a form was on, with the refusal shown there (`?error=`).
fn back_with_error(to: &str, e: &Error) -> axum::response::Response {
    crate::error::log(e);
    axum::response::Redirect::to(&format!("{to}?error={}", super::urlencode(&e.message)))
        .into_response()
}
