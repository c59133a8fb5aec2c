//! Tollgate's OpenAI-compatible gateway: `POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings` and
//! `GET /v1/models`, authorized by API key from an in-memory snapshot, held to each subscription's limits,
//! routed over engine replicas, and metered: one usage record per request, written in batches off the request path.
//!
//! ```ignore
//! let gw = Gateway::new(GatewayParts { config, keys, limiter, usage: Arc::new(store), metering });
//! gw.replace_routes(&routes);
//! let app = axum::Router::new().merge(tollgate_gateway::router(gw.clone()));
//! // ... at shutdown, after the listener drained:
//! gw.flush_usage().await;
//! ```

pub mod auth;
pub mod config;
pub mod engine_conn;
pub mod engine_error;
pub mod engine_load;
pub mod error;
mod gateway;
pub mod ids;
mod inflight;
pub mod limits;
pub mod listener;
pub mod metering;
pub mod metrics;
pub mod model_name;
mod models;
pub mod peers;
mod proxy;
pub mod request;
pub mod routes;
pub mod sse;
mod stream;
mod upstream;

pub use config::GatewayConfig;
pub use gateway::{Gateway, GatewayParts};
pub use limits::failover::{FailoverLimiter, FailoverOptions};
pub use limits::redis::RedisOptions;
pub use limits::{memory::MemoryLimiter, redis::RedisLimiter, Limiter, LimiterMode, LimiterStatus};
pub use metering::{Meter, MeteringConfig, UsageRecord, UsageStore};
pub use routes::{ModelRoute, Routes};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::HeaderMap;
use request::Endpoint;

/// The gateway's routes, with their `/v1` prefix: merge them into the server's router (no session or CSRF layers:
/// these requests carry API keys, not cookies).
pub fn router(gw: Gateway) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/v1/rerank", post(rerank))
        .route("/v2/rerank", post(rerank))
        .route("/v1/score", post(score))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::one))
        .with_state(gw)
}

/// `GET /metrics` with the gateway's series, for a server that has no metrics route of its own yet.
pub fn metrics_router(gw: Gateway) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(gw)
}

async fn chat(State(gw): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    proxy::handle(gw, Endpoint::Chat, headers, body).await
}

async fn completions(State(gw): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    proxy::handle(gw, Endpoint::Completions, headers, body).await
}

async fn embeddings(State(gw): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    proxy::handle(gw, Endpoint::Embeddings, headers, body).await
}

async fn tokenize(State(gw): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    proxy::handle(gw, Endpoint::Tokenize, headers, body).await
}

async fn detokenize(State(gw): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    proxy::handle(gw, Endpoint::Detokenize, headers, body).await
}

async fn rerank(State(gw): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    proxy::handle(gw, Endpoint::Rerank, headers, body).await
}

async fn score(State(gw): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    proxy::handle(gw, Endpoint::Score, headers, body).await
}

async fn metrics(State(gw): State<Gateway>) -> Response {
    use axum::response::IntoResponse;
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        gw.metrics_text(),
    )
        .into_response()
}
