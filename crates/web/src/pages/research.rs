//! The research pages: a patient's studies (opt in, withdraw: their own transactions), the
//! researcher's studies and exports (started here, followed with their progress, downloaded as
//! NDJSON), and the admin's researchers and studies (invite, register on chain).

use axum::response::IntoResponse;
use axum::{
    Form, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use medledger_records::{
    Error, Kind,
    model::{Role, days_from_civil},
    primitives::Address,
    research::{Choice, NewStudy, STUDY_DATA},
};
use minijinja::context;

use super::{
    OrPage, Page, PageResult, after_write,
    public::{Fields, field},
    tx_of, v,
};
use crate::ApiState;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/patient/studies", get(patient_studies))
        .route("/patient/studies/{id}/opt-in", post(opt_in))
        .route("/patient/studies/{id}/withdraw", post(withdraw))
        .route("/researcher", get(researcher))
        .route("/researcher/studies/{id}/export", post(export))
        .route("/admin/research", get(admin))
        .route("/admin/researchers", post(invite))
        .route("/admin/studies", post(register))
}

fn study_id(page: &Page, state: &ApiState, raw: &str) -> Result<u64, axum::response::Response> {
    raw.parse()
        .map_err(|_| page.fail(state, Error::invalid("bad study id")))
}

async fn patient_studies(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require(&state, Role::Patient)?;
    let studies = state
        .app
        .research()
        .studies(&me)
        .await
        .or_page(&page, &state)?;
    let tx = page.tx_box(&state).await;
    Ok(page.render(
        &state,
        "patient/studies.html",
        context! { studies => v(&studies), tx => tx },
    ))
}

async fn opt_in(
    State(state): State<ApiState>,
    page: Page,
    Path(raw): Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult {
    take_part(&state, &page, &raw, &fields, Choice::Join).await
}

async fn withdraw(
    State(state): State<ApiState>,
    page: Page,
    Path(raw): Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult {
    take_part(&state, &page, &raw, &fields, Choice::Leave).await
}

async fn take_part(
    state: &ApiState,
    page: &Page,
    raw: &str,
    fields: &Fields,
    choice: Choice,
) -> PageResult {
    let me = page.submitted_by(state, Role::Patient, fields)?;
    let id = study_id(page, state, raw)?;
    let tx = state
        .app
        .research()
        .take_part(&me, id, choice)
        .await
        .or_page(page, state)?;
    Ok(after_write("/patient/studies", &tx.hash))
}

async fn researcher(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require(&state, Role::Researcher)?;
    let studies = state
        .app
        .research()
        .studies(&me)
        .await
        .or_page(&page, &state)?;
    let exports = state
        .app
        .research()
        .exports(&me)
        .await
        .or_page(&page, &state)?;
    let running = exports.iter().any(|e| e.state == "running");
    Ok(page.render(
        &state,
        "researcher.html",
        context! { studies => v(&studies), exports => v(&exports), running => running },
    ))
}

async fn export(
    State(state): State<ApiState>,
    page: Page,
    Path(raw): Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by(&state, Role::Researcher, &fields)?;
    let id = study_id(&page, &state, &raw)?;
    state
        .app
        .research()
        .start_export(&me, id)
        .await
        .or_page(&page, &state)?;
    Ok(axum::response::Redirect::to("/researcher").into_response())
}

/// The admin's page, with a new link or a refused form's error when there is one.
async fn admin_page(
    state: &ApiState,
    page: &Page,
    status: StatusCode,
    extra: minijinja::Value,
) -> PageResult {
    let me = page.require(state, Role::Admin)?;
    let researchers = state
        .app
        .research()
        .researchers(&me)
        .await
        .or_page(page, state)?;
    let studies = state
        .app
        .research()
        .studies(&me)
        .await
        .or_page(page, state)?;
    Ok(page.render_status(
        state,
        status,
        "admin/research.html",
        context! { researchers => v(&researchers), studies => v(&studies), data => STUDY_DATA, ..extra },
    ))
}

async fn admin(State(state): State<ApiState>, page: Page) -> PageResult {
    let tx = page.tx_box(&state).await;
    admin_page(&state, &page, StatusCode::OK, context! { tx => tx }).await
}

async fn invite(
    State(state): State<ApiState>,
    page: Page,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by(&state, Role::Admin, &fields)?;
    match state
        .app
        .enrolment()
        .invite_researcher(&me, field(&fields, "name"))
        .await
    {
        Ok((invite, tx)) => {
            let link = context! {
                url => format!("{}/enrol/{}", state.public.origin(), invite.token), role => invite.role, expires_at => invite.expires_at,
            };
            admin_page(
                &state,
                &page,
                StatusCode::OK,
                context! { link => link, tx => tx_of(&tx) },
            )
            .await
        }
        Err(e) => refused(&state, &page, e, &fields).await,
    }
}

async fn register(
    State(state): State<ApiState>,
    page: Page,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by(&state, Role::Admin, &fields)?;
    let study = (|| -> Result<NewStudy, Error> {
        let researcher: Address = field(&fields, "researcher")
            .parse()
            .map_err(|_| Error::invalid("choose a researcher").on("researcher"))?;
        let ends = field(&fields, "ends_on");
        if !medledger_records::directory::is_iso_date(ends) {
            return Err(Error::invalid("the end date must look like 2027-06-30").on("ends_on"));
        }
        let number = |r: std::ops::Range<usize>| ends[r].parse::<i64>().unwrap_or_default();
        let days = days_from_civil(number(0..4), number(5..7), number(8..10));
        Ok(NewStudy {
            researcher,
            title: field(&fields, "title").to_string(),
            description: field(&fields, "description").to_string(),
            data: fields
                .iter()
                .filter(|(k, _)| k == "data")
                .map(|(_, v)| v.clone())
                .collect(),
            ends_at: (days * 86_400).max(0) as u64,
        })
    })();
    let result = match study {
        Ok(study) => state.app.research().register_study(&me, &study).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((_, tx)) => Ok(after_write("/admin/research", &tx.hash)),
        Err(e) => refused(&state, &page, e, &fields).await,
    }
}

/// The admin's page again, with the refusal beside the form and what was typed.
async fn refused(state: &ApiState, page: &Page, e: Error, fields: &Fields) -> PageResult {
    if e.kind == Kind::Internal || e.kind == Kind::Unavailable || e.wallet.is_some() {
        return Err(page.fail(state, e));
    }
    let status = crate::error::answered(&e);
    let values = context! {
        name => field(fields, "name"), title => field(fields, "title"),
        description => field(fields, "description"), ends_on => field(fields, "ends_on"),
    };
    admin_page(
        state,
        page,
        status,
        context! { error => e.message, error_field => e.field, values => values },
    )
    .await
}
