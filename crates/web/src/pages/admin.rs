//! The admin's pages: a dashboard (counts, latest blocks), the hospital directory (add, edit,
//! suspend, reactivate) and the doctors (add, suspend, reactivate).

use axum::{
    Form, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use medledger_records::primitives::Address;
use medledger_records::{
    Error, TxInfo,
    directory::HospitalInput,
    enrolment::{DoctorInvite, NewInvite},
    model::Role,
};
use minijinja::{Value, context};

use super::{
    OrPage, Page, PageResult, after_write,
    public::{Fields, field},
    tx_of, v,
};
use crate::ApiState;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/security", get(security))
        .route("/admin/hospitals", get(hospitals).post(add_hospital))
        .route("/admin/hospitals/{id}", get(hospital).post(update_hospital))
        .route("/admin/hospitals/{id}/{action}", post(set_hospital))
        .route("/admin/doctors", get(doctors).post(add_doctor))
        .route("/admin/admins", post(add_admin))
        .route("/admin/invites/{key}/withdraw", post(withdraw_invite))
        .route("/admin/doctors/{address}/{action}", post(set_doctor))
}

async fn dashboard(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require(&state, Role::Admin)?;
    let (hospitals, doctors, patients) = state
        .app
        .people()
        .directory_counts()
        .await
        .or_page(&page, &state)?;
    let (latest, blocks) = state
        .app
        .explorer()
        .latest_blocks(10)
        .await
        .or_page(&page, &state)?;
    let blocks: Vec<_> = blocks.into_iter().rev().collect();
    let emergencies = state
        .app
        .emergency()
        .emergencies(&me)
        .await
        .or_page(&page, &state)?;
    Ok(page.render(
        &state,
        "admin/dashboard.html",
        context! { hospitals => hospitals, doctors => doctors, patients => patients,
        latest => latest, blocks => v(&blocks), chain_id => state.app.ledger().chain_id(),
        open_emergencies => v(&emergencies), tx => page.tx_box(&state).await },
    ))
}

fn hospital_input(fields: &Fields) -> HospitalInput {
    HospitalInput {
        name: field(fields, "name").to_string(),
        city: field(fields, "city").to_string(),
        address: field(fields, "address").to_string(),
        specialties: field(fields, "specialties").to_string(),
        services: field(fields, "services").to_string(),
        contact: field(fields, "contact").to_string(),
    }
}

fn hospital_values(fields: &Fields) -> Value {
    context! {
        name => field(fields, "name"), city => field(fields, "city"), address => field(fields, "address"),
        specialties => field(fields, "specialties"), services => field(fields, "services"),
        contact => field(fields, "contact"),
    }
}

async fn hospitals_page(
    state: &ApiState,
    page: &Page,
    status: StatusCode,
    values: Value,
    error: Option<String>,
) -> PageResult {
    let list = state
        .app
        .people()
        .hospitals(None, None)
        .await
        .or_page(page, state)?;
    let tx = page.tx_box(state).await;
    Ok(page.render_status(
        state,
        status,
        "admin/hospitals.html",
        context! { hospitals => v(&list), values => values, error => error, tx => tx },
    ))
}

async fn hospitals(State(state): State<ApiState>, page: Page) -> PageResult {
    page.require(&state, Role::Admin)?;
    hospitals_page(&state, &page, StatusCode::OK, context! {}, None).await
}

async fn add_hospital(
    State(state): State<ApiState>,
    page: Page,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by(&state, Role::Admin, &fields)?;
    match state
        .app
        .directory()
        .add_hospital(&me, &hospital_input(&fields))
        .await
    {
        Ok((_, tx)) => Ok(after_write("/admin/hospitals", &tx.hash)),
        // A wallet's call: the page that hands it to the wallet.
        Err(e) if e.wallet.is_some() => Err(page.fail(&state, e)),
        Err(e) => {
            hospitals_page(
                &state,
                &page,
                crate::error::answered(&e),
                hospital_values(&fields),
                Some(e.message),
            )
            .await
        }
    }
}

fn hospital_id(page: &Page, state: &ApiState, raw: &str) -> Result<u64, axum::response::Response> {
    raw.parse()
        .map_err(|_| page.fail(state, Error::invalid("bad hospital id")))
}

async fn hospital(
    State(state): State<ApiState>,
    page: Page,
    Path(raw): Path<String>,
) -> PageResult {
    page.require(&state, Role::Admin)?;
    let id = hospital_id(&page, &state, &raw)?;
    let h = state
        .app
        .people()
        .hospital(id)
        .await
        .or_page(&page, &state)?;
    let tx = page.tx_box(&state).await;
    Ok(page.render(
        &state,
        "admin/hospital.html",
        context! { hospital => v(&h), values => v(&h), tx => tx },
    ))
}

async fn update_hospital(
    State(state): State<ApiState>,
    page: Page,
    Path(raw): Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by(&state, Role::Admin, &fields)?;
    let id = hospital_id(&page, &state, &raw)?;
    match state
        .app
        .directory()
        .update_hospital(&me, id, &hospital_input(&fields))
        .await
    {
        Ok(tx) => Ok(after_write(&format!("/admin/hospitals/{id}"), &tx.hash)),
        // A wallet's call: the page that hands it to the wallet.
        Err(e) if e.wallet.is_some() => Err(page.fail(&state, e)),
        Err(e) => {
            let h = state
                .app
                .people()
                .hospital(id)
                .await
                .or_page(&page, &state)?;
            Ok(page.render_status(
                &state,
                crate::error::answered(&e),
                "admin/hospital.html",
                context! { hospital => v(&h), values => hospital_values(&fields), error => e.message },
            ))
        }
    }
}

async fn set_hospital(
    State(state): State<ApiState>,
    page: Page,
    Path((raw, action)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by(&state, Role::Admin, &fields)?;
    let id = hospital_id(&page, &state, &raw)?;
    let active = match action.as_str() {
        "suspend" => false,
        "reactivate" => true,
        _ => return Err(page.fail(&state, Error::not_found("there is no such action"))),
    };
    let tx = state
        .app
        .directory()
        .set_hospital_active(&me, id, active)
        .await
        .or_page(&page, &state)?;
    Ok(after_write("/admin/hospitals", &tx.hash))
}

async fn doctors_page(
    state: &ApiState,
    page: &Page,
    status: StatusCode,
    extra: Value,
) -> PageResult {
    let me = page.require(state, Role::Admin)?;
    let list = state
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
    let invites = state
        .app
        .enrolment()
        .open_invites(&me)
        .await
        .or_page(page, state)?;
    let names: std::collections::BTreeMap<String, String> = hospitals
        .iter()
        .map(|h| (h.id.to_string(), h.name.clone()))
        .collect();
    // A write just made brings its own confirmation (`extra.tx`); else one from `?tx=`.
    let tx = match extra.get_attr("tx") {
        Ok(tx) if !tx.is_undefined() => Some(tx),
        _ => page.tx_box(state).await,
    };
    Ok(page.render_status(
        state,
        status,
        "admin/doctors.html",
        context! { doctors => v(&list), hospitals => v(&hospitals), hospital_names => names,
        invites => v(&invites), values => context! {}, tx => tx, ..extra },
    ))
}

/// The latest security events: sign-ins made and refused, forged requests refused, second
/// factors changed, emergencies declared, enrolments.
async fn security(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require(&state, Role::Admin)?;
    let events = state
        .app
        .security()
        .recent(&me, 200)
        .await
        .or_page(&page, &state)?;
    Ok(page.render(
        &state,
        "admin/security.html",
        context! { events => v(&events) },
    ))
}

async fn doctors(State(state): State<ApiState>, page: Page) -> PageResult {
    doctors_page(&state, &page, StatusCode::OK, context! {}).await
}

/// The one page that shows a new enrolment link, with the invitation's transaction; the link is
/// never put in a URL (it would stay in the browser's history).
async fn invited(state: &ApiState, page: &Page, invite: NewInvite, tx: TxInfo) -> PageResult {
    let link = context! {
        url => format!("{}/enrol/{}", state.public.origin(), invite.token), role => invite.role, expires_at => invite.expires_at,
    };
    doctors_page(
        state,
        page,
        StatusCode::OK,
        context! { link => link, tx => tx_of(&tx) },
    )
    .await
}

/// Invites a doctor: their directory entry to be, and a one-time enrolment link for them.
async fn add_doctor(
    State(state): State<ApiState>,
    page: Page,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by(&state, Role::Admin, &fields)?;
    let values = context! {
        name => field(&fields, "name"),
        specialty => field(&fields, "specialty"), licence_id => field(&fields, "licence_id"),
        hospital_id => field(&fields, "hospital_id"),
    };
    let Ok(hospital_id) = field(&fields, "hospital_id").parse() else {
        return doctors_page(
            &state,
            &page,
            StatusCode::BAD_REQUEST,
            context! { values => values, error => "choose a hospital" },
        )
        .await;
    };
    let input = DoctorInvite {
        name: field(&fields, "name").to_string(),
        specialty: field(&fields, "specialty").to_string(),
        licence_id: field(&fields, "licence_id").to_string(),
        hospital_id,
    };
    match state.app.enrolment().invite_doctor(&me, &input).await {
        Ok((invite, tx)) => invited(&state, &page, invite, tx).await,
        // A wallet's call: the page that hands it to the wallet.
        Err(e) if e.wallet.is_some() => Err(page.fail(&state, e)),
        Err(e) => {
            doctors_page(
                &state,
                &page,
                crate::error::answered(&e),
                context! { values => values, error => e.message },
            )
            .await
        }
    }
}

/// Invites another admin.
async fn add_admin(
    State(state): State<ApiState>,
    page: Page,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by(&state, Role::Admin, &fields)?;
    let (invite, tx) = state
        .app
        .enrolment()
        .invite_admin(&me)
        .await
        .or_page(&page, &state)?;
    invited(&state, &page, invite, tx).await
}

/// Withdraws an invitation nobody took up.
async fn withdraw_invite(
    State(state): State<ApiState>,
    page: Page,
    Path(raw): Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by(&state, Role::Admin, &fields)?;
    let key: Address = raw
        .parse()
        .map_err(|_| page.fail(&state, Error::invalid("bad invitation key")))?;
    let tx = state
        .app
        .enrolment()
        .withdraw_invite(&me, key)
        .await
        .or_page(&page, &state)?;
    Ok(after_write("/admin/doctors", &tx.hash))
}

async fn set_doctor(
    State(state): State<ApiState>,
    page: Page,
    Path((raw, action)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by(&state, Role::Admin, &fields)?;
    let account: Address = raw
        .parse()
        .map_err(|_| page.fail(&state, Error::invalid("bad doctor address")))?;
    let active = match action.as_str() {
        "suspend" => false,
        "reactivate" => true,
        _ => return Err(page.fail(&state, Error::not_found("there is no such action"))),
    };
    let tx = state
        .app
        .directory()
        .set_doctor_active(&me, account, active)
        .await
        .or_page(&page, &state)?;
    Ok(after_write("/admin/doctors", &tx.hash))
}
