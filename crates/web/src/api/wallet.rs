//! Bring your own wallet over HTTP: Sign-In with Ethereum (a nonce, then the signed message),
//! completing or cancelling a write prepared for the wallet, and moving a custodial account to
//! the person's own wallet. Wallet sign-up and enrolment answer here too (202: a session and
//! the registration for the wallet to send).

use axum::{
    extract::{FromRequestParts, Path, State},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use medledger_records::{
    Error, Kind, Person,
    primitives::{Address, B256},
    wallet::{Site, WalletLogin, WalletProof},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    ApiState, Json,
    error::{ApiError, ApiResult},
    session::{self, Auth},
};

/// The site a sign-in is for: this deployment's public origin (`--public-url`), and only when
/// the request was addressed to it. A request sent with another `Host` (a phishing site relaying
/// its visitor's signature) is refused before anything is looked at.
pub(crate) struct SiteOf(pub(crate) Site);

impl FromRequestParts<ApiState> for SiteOf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<SiteOf, ApiError> {
        let site = WalletSite::from_request_parts(parts, state).await?;
        Ok(SiteOf(site.checked(state).await?))
    }
}

/// The site, checked only when a wallet's signature is in the request (a sign-up or an
/// enrolment with a password needs no site: its `Host` decides nothing).
pub(crate) struct WalletSite {
    refused: Option<(String, String)>,
    client: Option<std::net::IpAddr>,
}

impl FromRequestParts<ApiState> for WalletSite {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<WalletSite, ApiError> {
        let crate::client::ClientAddr(client) =
            crate::client::ClientAddr::from_request_parts(parts, state)
                .await
                .unwrap_or(crate::client::ClientAddr(None));
        let refused = state.public.addressed_by(&parts.headers).err().map(|why| {
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (why, host)
        });
        Ok(WalletSite { refused, client })
    }
}

impl WalletSite {
    /// The public site, or the refusal of a request addressed to another host (logged).
    pub(crate) async fn checked(self, state: &ApiState) -> Result<Site, ApiError> {
        if let Some((why, host)) = self.refused {
            state
                .app
                .security()
                .record(
                    medledger_records::security::Event::ForgedRequestRefused,
                    &format!("a sign-in addressed to {host}"),
                    self.client,
                    "invalid",
                )
                .await;
            return Err(ApiError::new(Kind::Invalid, why));
        }
        Ok(Site {
            origin: state.public.origin().to_string(),
            domain: state.public.host().to_string(),
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct NonceRequest {
    /// The account that will sign in: the nonce signs in only that one.
    address: Address,
}

/// `POST /api/v1/auth/siwe/nonce` with `{"address": "0x…"}`: a single-use nonce for that
/// account, the whole message to sign and the key message.
pub(crate) async fn nonce(
    State(state): State<ApiState>,
    SiteOf(site): SiteOf,
    Json(request): Json<NonceRequest>,
) -> ApiResult<Response> {
    let challenge = state
        .app
        .wallet()
        .siwe_challenge(&site, request.address)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(challenge)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct SignIn {
    #[serde(flatten)]
    proof: WalletProof,
    #[serde(default)]
    code: Option<String>,
}

/// `POST /api/v1/auth/siwe`: a session for the wallet account the signed message proves.
pub(crate) async fn sign_in(
    State(state): State<ApiState>,
    crate::client::ClientAddr(client): crate::client::ClientAddr,
    SiteOf(site): SiteOf,
    Json(body): Json<SignIn>,
) -> ApiResult<Response> {
    let person = async {
        let login = state.app.wallet().verify_wallet(&body.proof, &site).await?;
        state
            .app
            .wallet()
            .wallet_login(login, body.code.as_deref())
            .await
    }
    .await;
    // Who: the account the message names (its second line), as far as it is one.
    let who = body.proof.message.lines().nth(1).unwrap_or_default();
    let who: String = who
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(42)
        .collect();
    crate::security::note(
        &state,
        (
            medledger_records::security::Event::SignedIn,
            medledger_records::security::Event::SignInRefused,
        ),
        &who,
        client,
        &person,
    )
    .await;
    let person = person?;
    session_answer(&state, &person, StatusCode::OK, json!({})).await
}

/// A new session for `person`: its token in `extra` (and as the cookie), with who they are.
pub(crate) async fn session_answer(
    state: &ApiState,
    person: &Person,
    status: StatusCode,
    mut extra: Value,
) -> ApiResult<Response> {
    let token = state.app.sessions().start_session(person).await?;
    extra["username"] = json!(person.username);
    extra["role"] = json!(person.role.as_str());
    extra["address"] = json!(person.address);
    extra["mode"] = json!(person.signer.mode());
    extra["idle_timeout_seconds"] = json!(state.app.session_idle().as_secs());
    extra["must_set_up_second_factor"] = json!(person.must_set_up_second_factor);
    // The CSRF token of the new session, for a page's script that goes on with its cookie.
    extra["csrf"] = json!(medledger_records::sessions::form_token(&token));
    extra["token"] = json!(token);
    Ok((
        status,
        [(
            header::SET_COOKIE,
            session::cookie(&token, state.secure_cookies),
        )],
        axum::Json(extra),
    )
        .into_response())
}

/// The answer to a wallet's sign-up or enrolment, whose registration `outcome` prepared for
/// the wallet: 202, a session to complete it with, and the call to send.
pub(crate) async fn registration_prepared<T>(
    state: &ApiState,
    login: WalletLogin,
    outcome: medledger_records::Result<T>,
) -> ApiResult<Response> {
    let prepared = match outcome {
        Err(Error {
            kind: Kind::WalletSignature,
            wallet: Some(prepared),
            ..
        }) => prepared,
        Err(e) => return Err(e.into()),
        Ok(_) => {
            return Err(Error::internal("wallet registration", "sent without the wallet").into());
        }
    };
    let person = state.app.wallet().wallet_newcomer(login).await?;
    let complete = format!("/api/v1/writes/{}", prepared.id);
    session_answer(
        state,
        &person,
        StatusCode::ACCEPTED,
        json!({
            "message": "your account is stored: send its registration from your wallet, then hand its hash to `complete`",
            "wallet": prepared,
            "complete": complete,
        }),
    )
    .await
}

fn write_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| super::bad_param("write id"))
}

#[derive(Deserialize)]
pub(crate) struct Completion {
    tx_hash: B256,
}

/// `POST /api/v1/writes/{id}`: the hash of the transaction the wallet sent for prepared write
/// `id`. Once it is exactly the prepared call and mined, the write completes.
pub(crate) async fn complete(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<Completion>,
) -> ApiResult<Response> {
    let tx = state
        .app
        .complete_write(&auth.person, write_id(&id)?, body.tx_hash)
        .await?;
    Ok(super::written(
        StatusCode::OK,
        json!({ "write": id, "state": "done" }),
        &tx,
    ))
}

/// `DELETE /api/v1/writes/{id}`: the wallet refused to sign prepared write `id`; what was
/// stored for it goes.
pub(crate) async fn cancel(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.app.cancel_write(&auth.person, write_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/me/wallet`: moves the custodial account to the wallet that signed in with
/// the same account; its keystore and password are deleted, every session ends and the
/// wallet's starts.
pub(crate) async fn move_to_wallet(
    State(state): State<ApiState>,
    SiteOf(site): SiteOf,
    auth: Auth,
    Json(proof): Json<WalletProof>,
) -> ApiResult<Response> {
    let login = state.app.wallet().verify_wallet(&proof, &site).await?;
    let person = state
        .app
        .wallet()
        .move_to_wallet(&auth.person, login)
        .await?;
    session_answer(&state, &person, StatusCode::OK, json!({ "moved": true })).await
}
