//! The gateway's settings, with the defaults a single server uses.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body accepted (413 above).
    pub body_limit: usize,
    /// Connecting to an engine.
    pub connect_timeout: Duration,
    /// From sending a streaming request to its first token; a replica that misses it is skipped for the next.
    pub first_token_timeout: Duration,
    /// Longest silence between two chunks of a stream.
    pub idle_timeout: Duration,
    /// A whole non-streaming request.
    pub request_timeout: Duration,
    /// Replicas tried per request (connect errors, 5xx and timeouts before the first byte move to the next).
    pub max_attempts: usize,
    /// Completion tokens reserved when a request sets no `max_tokens`.
    pub default_max_tokens: u64,
    /// No reservation exceeds this (settlement charges the real count either way).
    pub max_reservation: u64,
    /// Largest engine response read whole (non-streaming answers and error bodies).
    pub max_response_bytes: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            body_limit: 4 << 20,
            connect_timeout: Duration::from_secs(2),
            first_token_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(600),
            max_attempts: 3,
            default_max_tokens: 4096,
            max_reservation: 32_768,
            max_response_bytes: 64 << 20,
        }
    }
}
