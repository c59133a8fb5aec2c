//! Tollgate's OpenAI-compatible gateway: `POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings`,
//! `/v1/rerank`, `/v1/score`, Anthropic's `/v1/messages`, OpenAI's `/v1/responses`, vLLM's `/tokenize` and
//! `/detokenize`, and `GET /v1/models`, authorized by API key from an in-memory snapshot, held to each subscription's limits,
//! routed over engine replicas, and metered: one usage record per request, written in batches off the request path.
//!
//! ```ignore
//! let gw = Gateway::new(GatewayParts { config, keys, limiter, usage: Arc::new(store), metering });
//! gw.replace_routes(&routes);
//! let app = axum::Router::new().merge(tollgate_gateway::router(gw.clone()));
//! // ... at shutdown, after the listener drained:
//! gw.flush_usage().await;
//! ```

pub mod affinity;
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

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use request::Endpoint;

/// The gateway's routes, with their `/v1` prefix (and vLLM's `/tokenize`, `/detokenize` at the root): merge them into
/// the server's router (no session or CSRF layers: these requests carry API keys, not cookies).
pub fn router(gw: Gateway) -> Router {
    Router::new()
        .route("/v1/chat/completions", proxied(Endpoint::Chat))
        .route("/v1/completions", proxied(Endpoint::Completions))
        .route("/v1/embeddings", proxied(Endpoint::Embeddings))
        .route("/tokenize", proxied(Endpoint::Tokenize))
        .route("/detokenize", proxied(Endpoint::Detokenize))
        .route("/v1/rerank", proxied(Endpoint::Rerank))
        .route("/v2/rerank", proxied(Endpoint::Rerank))
        .route("/v1/score", proxied(Endpoint::Score))
        .route("/v1/messages", proxied(Endpoint::Messages))
        .route("/v1/responses", proxied(Endpoint::Responses))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::one))
        .with_state(gw)
}

/// `GET /metrics` with the gateway's series, for a server that has no metrics route of its own yet.
pub fn metrics_router(gw: Gateway) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(gw)
}

/// `POST` of a request the gateway proxies to `endpoint` on an engine. Takes the request whole: axum's `HeaderMap`
/// extractor would copy the headers.
fn proxied(endpoint: Endpoint) -> MethodRouter<Gateway> {
    post(
        move |State(gw): State<Gateway>, request: axum::extract::Request| {
            let (parts, body) = request.into_parts();
            proxy::handle(gw, endpoint, parts.headers, body)
        },
    )
}

async fn metrics(State(gw): State<Gateway>) -> Response {
    use axum::response::IntoResponse;
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        gw.metrics_text(),
    )
        .into_response()
}
