//! tollgate-sim: a vLLM-compatible inference engine simulator.
//!
//! It answers vLLM's OpenAI-compatible API on the wire (chat, completions, embeddings,
//! models, tokenize, LoRA, metrics) with deterministic text and a latency, queue and
//! KV-cache model, so the platform can be developed and tested without GPUs.
//!
//! Embed it: `let state = AppState::new(SimConfig::new("m").zero_latency());` then
//! `router(state)`, or `serve(config, listener)` on a bound listener.

pub mod admin;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod faults;
pub mod generator;
pub mod latency;
pub mod lora;
pub mod metrics;
pub mod openai;
pub mod ops;
pub mod prefix_cache;
pub mod rng;
pub mod state;
pub mod structured;
pub mod tokenizer;

use std::io;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::net::TcpListener;

pub use config::SimConfig;
pub use state::{AppState, SharedState};

use crate::error::ApiError;

/// All routes of the simulator.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/health", get(ops::health))
        .route("/version", get(ops::version))
        .route("/metrics", get(ops::metrics))
        .route("/v1/models", get(openai::models::list_models))
        .route("/v1/chat/completions", post(openai::chat::chat_completions))
        .route("/v1/completions", post(openai::chat::completions))
        .route("/v1/messages", post(openai::messages::messages))
        .route("/v1/responses", post(openai::responses::responses))
        .route("/v1/embeddings", post(openai::embeddings::embeddings))
        .route("/tokenize", post(openai::tokenize::tokenize))
        .route("/detokenize", post(openai::tokenize::detokenize))
        .route("/v1/rerank", post(openai::score::rerank))
        .route("/v2/rerank", post(openai::score::rerank))
        .route("/rerank", post(openai::score::rerank))
        .route("/v1/score", post(openai::score::score))
        .route("/score", post(openai::score::score))
        .route("/v1/load_lora_adapter", post(openai::models::load_lora))
        .route("/v1/unload_lora_adapter", post(openai::models::unload_lora))
        .route(
            "/sim/faults",
            get(admin::get_faults).post(admin::set_faults),
        )
        .route("/sim/state", get(admin::sim_state))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"detail": "Not Found"})),
    )
        .into_response()
}

/// Readiness and API-key checks, as vLLM's server applies them.
async fn gate(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    if state.exited() {
        // A crashed engine answers nothing more: connections kept alive from before the exit are closed.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONNECTION, "close")],
            Json(serde_json::json!({"detail": "engine exited"})),
        )
            .into_response();
    }
    let path = req.uri().path();
    let always_open =
        path == "/health" || path == "/metrics" || path == "/version" || path.starts_with("/sim/");
    if !state.is_ready() && !always_open {
        return ApiError::loading().into_response();
    }
    if let Some(key) = &state.config.api_key {
        if path.starts_with("/v1") {
            let ok = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.strip_prefix("Bearer ").is_some_and(|t| t == key));
            if !ok {
                return (
                    StatusCode::UNAUTHORIZED,
                    Json(serde_json::json!({"error": "Unauthorized"})),
                )
                    .into_response();
            }
        }
    }
    next.run(req).await
}

/// Builds the state, starts the load timer and serves on `listener` until the exit fault ends the engine
/// (returning its status) or the future is dropped.
pub async fn serve(config: SimConfig, listener: TcpListener) -> io::Result<i32> {
    serve_state(start(config), listener).await
}

/// Serves an already built state (see `start`), so an embedding can keep a handle on it.
pub async fn serve_state(state: SharedState, listener: TcpListener) -> io::Result<i32> {
    // Streams write one small chunk per token: without TCP_NODELAY, Nagle's algorithm and
    // delayed ACKs would hold each chunk back for up to 40 ms.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = router(state.clone());
    tokio::select! {
        r = axum::serve(listener, app) => r.map(|()| 0),
        code = state.exited_with() => Ok(code),
    }
}

/// Builds the state and starts its timers (model load, scheduled exit); returns it.
pub fn start(config: SimConfig) -> SharedState {
    let load_time = config.load_time;
    let exit_after = config.exit_after;
    let state = AppState::new(config);
    if !state.is_ready() {
        let s = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(load_time).await;
            s.set_ready();
        });
    }
    if let Some(after) = exit_after {
        admin::schedule_exit(state.clone(), after, 1);
    }
    state
}
