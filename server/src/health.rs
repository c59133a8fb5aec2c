//! Liveness and readiness probes for orchestrators and load balancers.

use crate::state::AppState;
use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;
use tollgate_gateway::{LimiterMode, LimiterStatus};

/// Alive: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// What `/readyz` reports.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ready`, or `not_ready` with status 503.
    pub status: &'static str,
    /// `up` or `unreachable`. Without it nothing can sign in or change; the gateway itself keeps serving.
    pub database: &'static str,
    /// Where rate limits are counted: `mode` is `in_process`, `shared` (Redis), `local_share` (Redis unreachable:
    /// this replica's share of every limit, in memory) or `refusing` (Redis unreachable, failing closed).
    pub limiter: LimiterStatus,
}

/// Ready: the database answers and the gateway admits requests (a limiter that fails closed while Redis is away
/// does not). A Redis outage under local limits is reported but still ready: requests are served.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = match state.store.ping().await {
        Ok(()) => "up",
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            "unreachable"
        }
    };
    let limiter = state.gateway.limiter_status();
    let ready = database == "up" && limiter.mode != LimiterMode::Refusing;
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        database,
        limiter,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
