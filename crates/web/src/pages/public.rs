//! Pages anyone may see: home, login and logout, patient sign-up, the hospital directory, and
//! one's own account (address, balance, fees spent, password, keystore).

use axum::{
    Form, Router,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use medledger_records::{
    Error,
    directory::{PatientSignup, Profile},
    model::Role,
};
use minijinja::context;

use super::{OrPage, Page, PageResult, after_write, safe_next, session_token, v};
use crate::{ApiState, session};

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/signup", get(signup_form).post(signup))
        .route("/hospitals", get(hospitals))
        .route("/account", get(account))
        .route("/account/password", post(change_password))
        .route("/emergencies/{id}/end", post(end_emergency))
        .route("/account/mfa", post(start_mfa))
        .route("/account/sessions/{id}/end", post(end_session))
        .route("/account/mfa/confirm", post(confirm_mfa))
        .route("/enrol/{token}", get(enrol_form).post(enrol))
}

/// The account page: who I am, my fees, my key, my password and my second factor.
async fn account_page(
    state: &ApiState,
    page: &Page,
    me: &medledger_records::Person,
    status: StatusCode,
    extra: minijinja::Value,
) -> PageResult {
    let balance = state
        .app
        .ledger()
        .balance(me.address)
        .await
        .or_page(page, state)?;
    let funded = state
        .app
        .accounts()
        .funded_wei(me)
        .await
        .or_page(page, state)?;
    let spent = funded.saturating_sub(balance);
    let tx = page.tx_box(state).await;
    let sessions = state
        .app
        .sessions()
        .sessions_of(me, page.session_token().unwrap_or_default())
        .await
        .or_page(page, state)?;
    let mfa_on = state
        .app
        .second_factors()
        .second_factor_on(me)
        .await
        .or_page(page, state)?;
    Ok(page.render_status(
        state,
        status,
        "account.html",
        context! {
            address => me.address.to_string(),
            balance => balance.to_string(),
            funded => funded.to_string(),
            spent => spent.to_string(),
            chain_id => state.app.ledger().chain_id(),
            chain_name => format!("medledger (chain {})", state.app.ledger().chain_id()),
            rpc_url => state.wallet_rpc_url.clone(),
            moved => page.query.contains_key("moved"),
            sessions => v(&sessions),
            session_ended => page.query.contains_key("ended"),
            changed => page.query.contains_key("changed"),
            mfa_on => mfa_on,
            mfa_required => state.app.second_factors().second_factor_required(me.role),
            mfa_notice => page.query.get("mfa").cloned(),
            tx => tx,
            ..extra
        },
    ))
}

/// Ends one of the person's sessions (another device, a forgotten browser).
async fn end_session(
    State(state): State<ApiState>,
    page: Page,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by_anyone(&state, &fields)?;
    state
        .app
        .sessions()
        .end_session_of(&me, &id)
        .await
        .or_page(&page, &state)?;
    Ok(Redirect::to("/account?ended=1").into_response())
}

/// Starts a second factor: the page shows the secret to add to an authenticator app.
async fn start_mfa(
    State(state): State<ApiState>,
    page: Page,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by_anyone(&state, &fields)?;
    let setup = state
        .app
        .second_factors()
        .start_second_factor(&me, Some(field(&fields, "current_code")))
        .await
        .or_page(&page, &state)?;
    account_page(
        &state,
        &page,
        &me,
        StatusCode::OK,
        context! { setup => v(&setup) },
    )
    .await
}

async fn confirm_mfa(
    State(state): State<ApiState>,
    page: Page,
    headers: axum::http::HeaderMap,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by_anyone(&state, &fields)?;
    let token = session_token(&headers, state.secure_cookies).unwrap_or_default();
    match state
        .app
        .second_factors()
        .confirm_second_factor(&me, field(&fields, "code"), &token)
        .await
    {
        Ok(()) => {
            state
                .app
                .sessions()
                .lift_session_restriction(&token)
                .await
                .or_page(&page, &state)?;
            Ok(Redirect::to("/account?mfa=on").into_response())
        }
        Err(e) => {
            let status = crate::error::answered(&e);
            account_page(
                &state,
                &page,
                &me,
                status,
                context! { mfa_error => e.message },
            )
            .await
        }
    }
}

async fn enrol_form(
    State(state): State<ApiState>,
    page: Page,
    Path(token): Path<String>,
) -> PageResult {
    let invite = state
        .app
        .enrolment()
        .link(&token)
        .await
        .or_page(&page, &state)?;
    Ok(page.render(
        &state,
        "enrol.html",
        context! { invite => v(&invite), token => token, values => context! {} },
    ))
}

/// The link's holder chooses their user name and password; their key is made now.
async fn enrol(
    State(state): State<ApiState>,
    page: Page,
    Path(token): Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult {
    page.submitted(&state, &fields)?;
    let invite = state
        .app
        .enrolment()
        .link(&token)
        .await
        .or_page(&page, &state)?;
    let username = field(&fields, "username").trim();
    let password = field(&fields, "password");
    let values = context! { username => username };
    let failed = |status: StatusCode, message: String| {
        page.render_status(
            &state,
            status,
            "enrol.html",
            context! { invite => v(&invite), token => token.clone(), values => values.clone(), error => message },
        )
    };
    if password != field(&fields, "password2") {
        return Ok(failed(
            StatusCode::BAD_REQUEST,
            "the two passwords differ".into(),
        ));
    }
    match state
        .app
        .enrolment()
        .enrol(&token, username, password)
        .await
    {
        Ok(_) => Ok(Redirect::to("/login?enrolled=1").into_response()),
        Err(e) => Ok(failed(crate::error::answered(&e), e.message)),
    }
}

/// A patient (on any of their pages) or an admin (on the dashboard) ends an emergency.
async fn end_emergency(
    State(state): State<ApiState>,
    page: Page,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by_anyone(&state, &fields)?;
    let id: u64 = id
        .parse()
        .map_err(|_| page.fail(&state, Error::invalid("bad emergency id")))?;
    let tx = state
        .app
        .emergency()
        .end_emergency(&me, id)
        .await
        .or_page(&page, &state)?;
    let back = if me.role == Role::Admin {
        "/admin"
    } else {
        "/patient"
    };
    Ok(super::after_write(back, &tx.hash))
}

/// A submitted form's fields (repeated names kept).
pub(crate) type Fields = Vec<(String, String)>;

pub(crate) fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

fn home_of(role: Role) -> &'static str {
    match role {
        Role::Admin => "/admin",
        Role::Doctor => "/doctor",
        Role::Researcher => "/researcher",
        _ => "/patient",
    }
}

async fn home(State(state): State<ApiState>, page: Page) -> Response {
    page.render(&state, "home.html", context! {})
}

async fn login_form(State(state): State<ApiState>, page: Page) -> Response {
    // Only a path on this site: the form and the wallet's button go on to it after sign-in.
    let next = safe_next(page.query.get("next").map(String::as_str));
    let enrolled = page.query.contains_key("enrolled");
    page.render(
        &state,
        "login.html",
        context! { next => next, enrolled => enrolled },
    )
}

async fn login(State(state): State<ApiState>, page: Page, Form(fields): Form<Fields>) -> Response {
    let username = field(&fields, "username").trim().to_string();
    let next = safe_next(Some(field(&fields, "next")));
    if let Err(refused) = page.submitted(&state, &fields) {
        return refused;
    }
    let code = Some(field(&fields, "code"));
    match state
        .app
        .accounts()
        .login_with(&username, field(&fields, "password"), code)
        .await
    {
        Ok(person) => {
            let to = match person.must_set_up_second_factor {
                true => "/account?mfa=required".to_string(),
                false => next.unwrap_or_else(|| home_of(person.role).to_string()),
            };
            let token = match state.app.sessions().start_session(&person).await {
                Ok(token) => token,
                Err(e) => return page.fail(&state, e),
            };
            let mut response = Redirect::to(&to).into_response();
            if let Ok(v) = HeaderValue::from_str(&session::cookie(&token, state.secure_cookies)) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        Err(e) => page.render_status(
            &state,
            crate::error::answered(&e),
            "login.html",
            context! { error => e.message, username => username, next => next,
            code_needed => e.kind == medledger_records::Kind::SecondFactorRequired },
        ),
    }
}

async fn logout(
    State(state): State<ApiState>,
    page: Page,
    headers: axum::http::HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    if let Err(refused) = page.submitted(&state, &fields) {
        return refused;
    }
    if let Some(token) = session_token(&headers, state.secure_cookies)
        && let Err(e) = state.app.sessions().end_session(&token).await
    {
        return page.fail(&state, e);
    }
    (
        [(
            header::SET_COOKIE,
            session::clear_cookie(state.secure_cookies),
        )],
        Redirect::to("/"),
    )
        .into_response()
}

async fn signup_form(State(state): State<ApiState>, page: Page) -> Response {
    page.render(&state, "signup.html", context! { values => context! {} })
}

async fn signup(
    State(state): State<ApiState>,
    page: Page,
    client: crate::client::ClientAddr,
    Form(fields): Form<Fields>,
) -> Response {
    if let Err(refused) = page.submitted(&state, &fields) {
        return refused;
    }
    let values = context! {
        username => field(&fields, "username"),
        name => field(&fields, "name"),
        date_of_birth => field(&fields, "date_of_birth"),
        contact => field(&fields, "contact"),
    };
    let password = field(&fields, "password");
    let mut errors = std::collections::BTreeMap::new();
    if password != field(&fields, "password2") {
        errors.insert("password2", "the two passwords differ".to_string());
    }
    if let Err(e) = medledger_records::accounts::check_password(password) {
        errors.insert("password", e.message);
    }
    if let Err(e) = medledger_records::accounts::check_username(field(&fields, "username")) {
        errors.insert("username", e.message);
    }
    if field(&fields, "name").trim().is_empty() {
        errors.insert("name", "your name is required".into());
    }
    if !errors.is_empty() {
        return page.render_status(
            &state,
            StatusCode::BAD_REQUEST,
            "signup.html",
            context! { values => values, errors => errors },
        );
    }
    let signup = PatientSignup {
        username: field(&fields, "username").to_string(),
        password: password.to_string(),
        wallet: None,
        profile: Profile {
            name: field(&fields, "name").trim().to_string(),
            date_of_birth: field(&fields, "date_of_birth").to_string(),
            contact: field(&fields, "contact").trim().to_string(),
        },
    };
    let tx = match state
        .app
        .directory()
        .sign_up_patient_from(&signup, client.0)
        .await
    {
        Ok((_, tx)) => tx,
        Err(e) => {
            let status = crate::error::answered(&e);
            return page.render_status(
                &state,
                status,
                "signup.html",
                context! { values => values, error => e.message },
            );
        }
    };
    let Ok(person) = state.app.accounts().login(&signup.username, password).await else {
        return Redirect::to("/login").into_response();
    };
    let token = match state.app.sessions().start_session(&person).await {
        Ok(token) => token,
        Err(e) => return page.fail(&state, e),
    };
    let mut response = after_write("/patient", &tx.hash);
    if let Ok(v) = HeaderValue::from_str(&session::cookie(&token, state.secure_cookies)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

async fn hospitals(State(state): State<ApiState>, page: Page) -> PageResult {
    let city = page
        .query
        .get("city")
        .filter(|c| !c.trim().is_empty())
        .cloned();
    let specialty = page
        .query
        .get("specialty")
        .filter(|c| !c.trim().is_empty())
        .cloned();
    let list = state
        .app
        .people()
        .hospitals(city.as_deref(), specialty.as_deref())
        .await
        .or_page(&page, &state)?;
    Ok(page.render(
        &state,
        "hospitals.html",
        context! { hospitals => v(&list), city => city, specialty => specialty },
    ))
}

async fn account(State(state): State<ApiState>, page: Page) -> PageResult {
    let me = page.require_any()?;
    account_page(&state, &page, &me, StatusCode::OK, context! {}).await
}

async fn change_password(
    State(state): State<ApiState>,
    page: Page,
    headers: axum::http::HeaderMap,
    Form(fields): Form<Fields>,
) -> PageResult {
    let me = page.submitted_by_anyone(&state, &fields)?;
    let new = field(&fields, "new_password");
    let mut errors = std::collections::BTreeMap::new();
    if new != field(&fields, "new_password2") {
        errors.insert("new_password2", "the two passwords differ".to_string());
    } else if let Err(e) = state
        .app
        .accounts()
        .change_password(&me, field(&fields, "current_password"), new)
        .await
    {
        let name = if e.kind == medledger_records::Kind::Forbidden {
            "current_password"
        } else {
            "new_password"
        };
        errors.insert(name, e.message);
    }
    if !errors.is_empty() {
        let balance = state
            .app
            .ledger()
            .balance(me.address)
            .await
            .unwrap_or_default();
        return Err(page.render_status(
            &state,
            StatusCode::BAD_REQUEST,
            "account.html",
            context! { address => me.address.to_string(), balance => balance.to_string(),
                       funded => "0", spent => "0", chain_id => state.app.ledger().chain_id(), errors => errors },
        ));
    }
    if let Some(token) = session_token(&headers, state.secure_cookies) {
        state
            .app
            .sessions()
            .end_other_sessions(me.id, &token)
            .await
            .or_page(&page, &state)?;
    }
    Ok(Redirect::to("/account?changed=1").into_response())
}
