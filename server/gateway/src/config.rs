//! The gateway's settings, with the defaults a single server uses.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body accepted (413 above).
    pub body_limit: usize,
    /// Connecting to an engine.
    pub connect_timeout: Duration,
    /// Per attempt, from sending a streaming request to its first token; a replica that misses it is left for the
    /// next one.
    pub first_token_timeout: Duration,
    /// Per attempt, from sending a non-streaming request to the engine's answer starting; a replica that misses it
    /// is left for the next one. vLLM starts a non-streaming answer only once it has generated it all, so this
    /// bounds one whole generation, and must leave room for the longest legitimate one.
    pub first_byte_timeout: Duration,
    /// Longest silence between two chunks of a stream.
    pub idle_timeout: Duration,
    /// Everything before the client gets an answer, all attempts together: a whole non-streaming request, and the
    /// wait for a stream's first token. No attempt's deadline goes past it.
    pub request_timeout: Duration,
    /// How long an idle pooled connection to an engine is kept. Below the engine's own keep-alive (uvicorn closes
    /// idle connections after 5 s), so the gateway never sends on a connection the engine is closing.
    pub pool_idle_timeout: Duration,
    /// Replicas tried per request (connect errors, 5xx and timeouts before the first byte move to the next).
    pub max_attempts: usize,
    /// Completion tokens reserved when a request sets no `max_tokens` (never more than the model's context length
    /// leaves after the prompt: `limits::window::default_completion`).
    pub default_max_tokens: u64,
    /// The most completion tokens one request reserves (all choices together), whatever its `max_tokens`; the
    /// engine is then told it may generate that many. The prompt estimate comes on top: capping it too would leave
    /// a long prompt no room to answer. Settlement charges the real count either way.
    pub max_completion_reservation: u64,
    /// Largest engine response read whole (non-streaming answers and error bodies).
    pub max_response_bytes: usize,
    /// How long a request waits for a model that is starting (or waking from zero) before it is answered 503 with
    /// `Retry-After`.
    pub wake_wait: Duration,
    /// Requests held at most per model while it starts; more are answered 503 with `Retry-After` at once.
    pub wake_queue: usize,
    /// Prefix affinity (`affinity.rs`): requests whose prompts begin alike go to the same replica while its load
    /// stays within this factor of the replicas' mean; 0 sends each request to the least loaded replica.
    pub prefix_affinity: f64,
    /// Whom `https://` engines are trusted by: the system's roots, and a configured CA.
    pub engine_tls: crate::engine_conn::EngineTls,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            body_limit: 4 << 20,
            connect_timeout: Duration::from_secs(2),
            first_token_timeout: Duration::from_secs(60),
            first_byte_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(600),
            pool_idle_timeout: Duration::from_secs(4),
            max_attempts: 3,
            default_max_tokens: 4096,
            max_completion_reservation: 32_768,
            max_response_bytes: 64 << 20,
            wake_wait: Duration::from_secs(60),
            wake_queue: 256,
            prefix_affinity: 1.25,
            engine_tls: crate::engine_conn::EngineTls::default(),
        }
    }
}
