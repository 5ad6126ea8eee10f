//! The security log as HTTP sees it: each event recorded with the client it came from
//! (`client.rs`), its outcome the domain error's code. The log itself: `medledger_records::security`.

use std::net::IpAddr;

use medledger_records::security::Event;

use crate::ApiState;

/// Records `event` of `who` from `client`: `ok`, or the refusal's code.
pub(crate) async fn note<T>(
    state: &ApiState,
    event: (Event, Event),
    who: &str,
    client: Option<IpAddr>,
    result: &Result<T, medledger_records::Error>,
) {
    let (done, refused) = event;
    match result {
        Ok(_) => state.app.security().record(done, who, client, "ok").await,
        Err(e) => {
            // Only refusals of the person; a failure of the server is not a security event.
            if e.kind.code() != "internal" && e.kind.code() != "unavailable" {
                state
                    .app
                    .security()
                    .record(refused, who, client, e.kind.code())
                    .await
            }
        }
    }
}
