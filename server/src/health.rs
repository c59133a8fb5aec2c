//! Liveness and readiness probes for orchestrators and load balancers.

use crate::state::AppState;
use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;
use tollgate_gateway::LimiterMode;

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
    pub limiter: LimiterReport,
}

#[derive(Debug, Serialize)]
pub struct LimiterReport {
    /// `in_process`, `shared` (Redis), `local_share` (Redis unreachable: this replica's share of every limit, in
    /// memory) or `refusing` (Redis unreachable and configured to fail closed).
    pub mode: &'static str,
    /// Replicas the limits are divided between while Redis is unreachable.
    pub replicas: u32,
    /// Since when (epoch ms) Redis has been unreachable, while it is.
    pub redis_down_since_ms: Option<i64>,
    pub outages: u64,
    pub local_admissions: u64,
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
        limiter: LimiterReport {
            mode: limiter.mode.label(),
            replicas: limiter.replicas,
            redis_down_since_ms: limiter.down_since_ms,
            outages: limiter.outages,
            local_admissions: limiter.local_admissions,
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
