//! Operational endpoints: `/health`, `/version`, `/metrics`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::config::VLLM_COMPAT_VERSION;
use crate::state::SharedState;

/// 200 with an empty body once the model is loaded, 503 before.
pub async fn health(State(state): State<SharedState>) -> StatusCode {
    if state.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `{"version": "..."}`.
pub async fn version() -> Json<Value> {
    Json(json!({"version": VLLM_COMPAT_VERSION}))
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<SharedState>) -> Response {
    let text = state.metrics.render(&state.engine.snapshot());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
