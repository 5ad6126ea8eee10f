//! patient pages.

use axum::Router;

use crate::ApiState;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
}
