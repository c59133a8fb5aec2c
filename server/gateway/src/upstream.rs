//! Sending a request to an engine: pick the least-loaded replica, and move to another when connecting fails, the
//! engine answers 5xx, or nothing arrives in time, as long as nothing has been sent to the client. For streams
//! that holds until the first chunk, which is awaited here before the client gets its headers.

use crate::affinity;
use crate::engine_conn::{EngineBody, SendError};
use crate::engine_error;
use crate::error::GatewayError;
use crate::gateway::Inner;
use crate::inflight::Inflight;
use crate::model_name::ModelRename;
use crate::request::Endpoint;
use crate::routes::{choose, ModelTarget, Replica};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt, Limited};
use std::sync::atomic::Ordering;
use tokio::time::{timeout_at, Instant};

/// What the engine answered.
pub enum Answer {
    /// A complete body (non-streaming success).
    Whole {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
    /// A stream whose first chunk has arrived.
    Stream {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        first: Bytes,
        rest: EngineBody,
    },
}

enum Attempt {
    Done(Answer),
    /// Failed before anything reached the client: another replica may be tried.
    Retry(GatewayError),
    /// The engine refused the request itself (4xx): final.
    Refused(GatewayError),
}

/// What is sent to whichever replica serves the request.
pub struct Outgoing<'a> {
    pub endpoint: Endpoint,
    pub body: Bytes,
    pub stream: bool,
    /// Puts the client's model name back in an engine's refusal.
    pub rename: Option<&'a ModelRename>,
    /// The request's prefix key, for prefix affinity (`affinity.rs`).
    pub prefix: Option<u64>,
}

pub async fn send(
    gw: &Inner,
    inflight: &mut Inflight,
    target: &ModelTarget,
    out: Outgoing<'_>,
) -> Result<Answer, GatewayError> {
    let n = target.replicas.len();
    let attempts = gw.config.max_attempts.clamp(1, n.max(1));
    let start = gw.rotation.fetch_add(1, Ordering::Relaxed);
    // Each attempt gets its own wait for the first byte, so a replica that hangs leaves time for the next one; the
    // request timeout bounds them all.
    let overall = Instant::from_std(inflight.started()) + gw.config.request_timeout;
    let first_byte = if out.stream {
        gw.config.first_token_timeout
    } else {
        gw.config.first_byte_timeout
    };
    let skip_unhealthy = target.skip_unhealthy();
    let mut tried: Vec<usize> = Vec::with_capacity(attempts);
    let mut last = GatewayError::UpstreamUnavailable;
    while tried.len() < attempts {
        let load = |i: usize| {
            let r = &target.replicas[i];
            (!skip_unhealthy || r.health().routable()).then(|| r.load())
        };
        let chosen = match out.prefix {
            Some(key) if gw.config.prefix_affinity > 0.0 => affinity::choose(
                n,
                load,
                |i| target.replicas[i].affinity,
                &tried,
                key,
                gw.config.prefix_affinity,
            ),
            _ => choose(n, load, &tried, start),
        };
        let Some(i) = chosen else {
            break;
        };
        tried.push(i);
        let replica = &target.replicas[i];
        inflight.serve_on(replica);
        let deadline = overall.min(Instant::now() + first_byte);
        match attempt(gw, inflight, replica, &out, deadline, overall).await {
            Attempt::Done(answer) => return Ok(answer),
            Attempt::Refused(e) => return Err(e),
            Attempt::Retry(e) => {
                inflight.metrics.upstream_error();
                tracing::warn!(request_id = %inflight.request_id(), replica = %replica.base, error = ?e, "engine attempt failed before the first byte");
                last = e;
                if Instant::now() >= overall {
                    break;
                }
            }
        }
    }
    Err(last)
}

async fn attempt(
    gw: &Inner,
    inflight: &mut Inflight,
    replica: &Replica,
    out: &Outgoing<'_>,
    deadline: Instant,
    overall: Instant,
) -> Attempt {
    let Ok(request_id) = HeaderValue::from_str(inflight.request_id()) else {
        return Attempt::Retry(GatewayError::UpstreamUnavailable);
    };
    let sent = replica.post(out.endpoint, &out.body, &request_id, &gw.config);
    let response = match timeout_at(deadline, sent).await {
        Err(_) => return Attempt::Retry(GatewayError::UpstreamTimeout),
        Ok(Err(SendError::ConnectTimeout)) => return Attempt::Retry(GatewayError::UpstreamTimeout),
        Ok(Err(_)) => return Attempt::Retry(GatewayError::UpstreamUnavailable),
        Ok(Ok(r)) => r,
    };
    let (status, content_type) = (response.status, response.content_type);
    if status.is_server_error() {
        return Attempt::Retry(GatewayError::UpstreamUnavailable);
    }
    let mut incoming = response.body;
    if !status.is_success() {
        // The engine's own refusal (a prompt too long, say): its message, in the client's terms, in our error body.
        return match read_whole(gw, incoming, deadline).await {
            Ok(body) => Attempt::Refused(GatewayError::EngineRefused {
                status,
                message: engine_error::message(&body, out.rename),
            }),
            Err(e) => Attempt::Retry(e),
        };
    }
    if !out.stream {
        // The answer has started: the rest of it may take until the request's own deadline.
        return match read_whole(gw, incoming, overall).await {
            Ok(body) => Attempt::Done(Answer::Whole {
                status,
                content_type,
                body,
            }),
            Err(e) => Attempt::Retry(e),
        };
    }
    loop {
        match timeout_at(deadline, incoming.frame()).await {
            Err(_) => return Attempt::Retry(GatewayError::UpstreamTimeout),
            Ok(None) | Ok(Some(Err(_))) => {
                return Attempt::Retry(GatewayError::UpstreamUnavailable)
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(first) = frame.into_data() {
                    if first.is_empty() {
                        continue;
                    }
                    inflight.ttft = Some(inflight.started().elapsed());
                    return Attempt::Done(Answer::Stream {
                        status,
                        content_type,
                        first,
                        rest: incoming,
                    });
                }
            }
        }
    }
}

async fn read_whole(
    gw: &Inner,
    body: EngineBody,
    deadline: Instant,
) -> Result<Bytes, GatewayError> {
    match timeout_at(
        deadline,
        Limited::new(body, gw.config.max_response_bytes).collect(),
    )
    .await
    {
        Err(_) => Err(GatewayError::UpstreamTimeout),
        Ok(Err(_)) => Err(GatewayError::UpstreamUnavailable),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}
