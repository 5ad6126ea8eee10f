//! The doctor's pages: my patients, a patient's reports (open, download), writing a prescription,
//! declaring an emergency, my prescriptions and my recent openings.

use axum::{
    Form, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use medledger_records::primitives::Address;
use medledger_records::{
    Error, Person,
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
    patients_page(&state, &page, &me, None, context! {}).await
}

/// The list of patients, with a refused form's error (and its status) when there is one.
async fn patients_page(
    state: &ApiState,
    page: &Page,
    me: &Person,
    refused: Option<Error>,
    values: minijinja::Value,
) -> PageResult {
    let list = state
        .app
        .sharing()
        .my_patients(me)
        .await
        .or_page(page, state)?;
    let tx = page.tx_box(state).await;
    let (status, error) = refusal(refused);
    Ok(page.render_status(
        state,
        status,
        "doctor/patients.html",
        context! { patients => v(&list), tx => tx, error => error, values => values, window_hours => state.app.emergency_window().as_secs() / 3600 },
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
    chart_page(&state, &page, &me, patient, None, context! {}).await
}

/// A patient's chart (one view, logged on chain as one transaction before the page is shown),
/// with a refused prescription's error (and its status) when there is one.
async fn chart_page(
    state: &ApiState,
    page: &Page,
    me: &Person,
    patient: Address,
    refused: Option<Error>,
    values: minijinja::Value,
) -> PageResult {
    let chart = state
        .app
        .sharing()
        .patient_chart(me, patient)
        .await
        .or_page(page, state)?;
    let tx = page.tx_box(state).await;
    let (status, error) = refusal(refused);
    Ok(page.render_status(
        state,
        status,
        "doctor/patient.html",
        context! { patient => patient.to_string(), profile => v(&chart.profile), entry => v(&chart.entry),
        records => v(&chart.records), tx => tx, error => error, values => values },
    ))
}

/// What the doctor typed in the emergency form, shown again beside its error.
fn typed(fields: &Fields) -> minijinja::Value {
    context! { patient => field(fields, "patient"), reason => field(fields, "reason") }
}

/// The status a page answers with and the error it shows beside the form: a refusal's (logged
/// as it is answered), or none.
fn refusal(refused: Option<Error>) -> (StatusCode, Option<String>) {
    match refused {
        Some(e) => (crate::error::answered(&e), Some(e.message)),
        None => (StatusCode::OK, None),
    }
}

async fn prescribe(
    State(state): State<ApiState>,
    page: Page,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by(&state, Role::Doctor, &fields)?;
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
    match state.app.reports().prescribe(&me, patient, &body).await {
        Ok((_, tx)) => Ok(after_write(
            &format!("/doctor/patients/{patient}"),
            &tx.hash,
        )),
        // A wallet's call: the page that hands it to the wallet.
        Err(e) if e.wallet.is_some() => Err(page.fail(&state, e)),
        Err(e) => chart_page(&state, &page, &me, patient, Some(e), v(&body)).await,
    }
}

async fn emergency(
    State(state): State<ApiState>,
    page: Page,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by(&state, Role::Doctor, &fields)?;
    let who = field(&fields, "patient").trim();
    // A patient is named by user name or address.
    let patient = match who.parse::<Address>() {
        Ok(a) => a,
        Err(_) => match state
            .app
            .people()
            .account_by_name(who)
            .await
            .or_page(&page, &state)?
        {
            Some(a) if a.role == Role::Patient => a.address,
            _ => {
                let unknown =
                    Error::not_found("there is no patient with that user name or address")
                        .on("patient");
                return patients_page(&state, &page, &me, Some(unknown), typed(&fields)).await;
            }
        },
    };
    match state
        .app
        .emergency()
        .declare_emergency(&me, patient, field(&fields, "reason"))
        .await
    {
        Ok((_, tx)) => Ok(after_write(
            &format!("/doctor/patients/{patient}"),
            &tx.hash,
        )),
        // A wallet's call: the page that hands it to the wallet.
        Err(e) if e.wallet.is_some() => Err(page.fail(&state, e)),
        Err(e) => patients_page(&state, &page, &me, Some(e), typed(&fields)).await,
    }
}

async fn prescriptions(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require(&state, Role::Doctor)?;
    let list = state
        .app
        .reports()
        .prescriptions(&me)
        .await
        .or_page(&page, &state)?;
    Ok(page.render(
        &state,
        "doctor/prescriptions.html",
        context! { prescriptions => v(&list) },
    ))
}

async fn openings(
    State(state): State<ApiState>,
    page: Page,
    axum::extract::Query(q): axum::extract::Query<crate::api::Before>,
) -> PageResult {
    let me = page.require(&state, Role::Doctor)?;
    let before = q.cursor().or_page(&page, &state)?;
    let log = state
        .app
        .audit()
        .audit(&me, before)
        .await
        .or_page(&page, &state)?;
    Ok(page.render(
        &state,
        "doctor/openings.html",
        context! { events => v(&log.events), older => log.older, first => before.is_none() },
    ))
}
