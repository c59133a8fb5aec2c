//! The simulator's own admin API (not part of vLLM's):
//! `GET /sim/faults`, `POST /sim/faults` (replace fault settings; `"exit": true` ends the engine),
//! `GET /sim/state` (scheduler snapshot, readiness and settings, as JSON).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::faults::FaultUpdate;
use crate::openai::types::parse_body;
use crate::state::SharedState;

/// The fault settings in force.
pub async fn get_faults(State(state): State<SharedState>) -> Json<Value> {
    Json(json!(state.faults.get()))
}

/// Replaces the fault settings; with `exit`, the engine ends ~50 ms after answering.
pub async fn set_faults(State(state): State<SharedState>, body: Bytes) -> Response {
    let update: FaultUpdate = match parse_body(if body.is_empty() { b"{}" } else { &body }) {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let settings = update.settings();
    if let Err(msg) = settings.validate() {
        return ApiError::invalid_body(msg).into_response();
    }
    state.faults.set(settings.clone());
    if update.exit {
        schedule_exit(
            state.clone(),
            Duration::from_millis(50),
            update.exit_code.unwrap_or(1),
        );
    }
    Json(json!({"faults": settings, "exiting": update.exit})).into_response()
}

/// Ends the engine after `delay` (the simulated crash): `serve` returns the status, which the binary exits with.
pub fn schedule_exit(state: SharedState, delay: Duration, code: i32) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        eprintln!("tollgate-sim: exiting with status {code} (fault injection)");
        state.exit(code);
    });
}

/// Scheduler snapshot and readiness.
pub async fn sim_state(State(state): State<SharedState>) -> Json<Value> {
    let s = state.engine.snapshot();
    let l = state.config.latency;
    Json(json!({
        "ready": state.is_ready(),
        "running_requests": s.running_requests,
        "running_seqs": s.running_seqs,
        "waiting_requests": s.waiting_requests,
        "kv_cache_tokens_held": s.kv_held,
        "kv_cache_tokens": s.kv_capacity,
        "kv_cache_usage": s.kv_usage(),
        "max_num_seqs": state.config.max_num_seqs,
        "max_model_len": state.config.max_model_len,
        "latency": {"prefill_tokens_per_s": l.prefill_tokens_per_s, "decode_ms": l.decode_ms, "decode_ms_per_seq": l.decode_ms_per_seq},
        "faults": state.faults.get(),
    }))
}
