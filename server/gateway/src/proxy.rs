//! The request path for the three generation endpoints: key, body, model, limits, engine, answer. No database
//! access: keys and routes come from their in-memory snapshots. A request the portal authorized (the playground:
//! a signed-in user, no key) enters with its grant already resolved and takes the same path after the key.

use crate::auth::presented_key;
use crate::error::GatewayError;
use crate::gateway::{Gateway, Inner};
use crate::ids;
use crate::inflight::{Inflight, Origin};
use crate::limits::guard::AdmitGuard;
use crate::limits::{headers as rate_headers, window, window_reset_ms, LimitError, Seen, Ticket};
use crate::model_name::ModelRename;
use crate::request::{self, Endpoint};
use crate::routes::{Availability, ModelTarget};
use crate::sse::{usage_of_body, SseScanner};
use crate::stream::ProxyBody;
use crate::upstream::{self, Answer};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate_domain::grant::{Grant, KeyEntry};

pub async fn handle(gw: Gateway, endpoint: Endpoint, headers: HeaderMap, body: Body) -> Response {
    respond(gw, endpoint, headers, body, None).await
}

/// Serves a request under `grant`, which the caller resolved and authorized (the portal's playground) instead of
/// an API key: limits, routing, metering (as playground traffic, no key id) and the answer's headers are the key
/// path's own.
pub async fn handle_granted(
    gw: Gateway,
    endpoint: Endpoint,
    grant: Arc<Grant>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(gw, endpoint, headers, body, Some(grant)).await
}

async fn respond(
    gw: Gateway,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
    granted: Option<Arc<Grant>>,
) -> Response {
    let started = Instant::now();
    let request_id = ids::request_id(&gw.inner.ids, &headers);
    let request_id_header = HeaderValue::from_str(&request_id).ok();
    let mut response = serve(
        &gw.inner, endpoint, &headers, body, started, request_id, granted,
    )
    .await;
    if let Some(v) = request_id_header {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

async fn serve(
    gw: &Arc<Inner>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Body,
    started: Instant,
    request_id: String,
    granted: Option<Arc<Grant>>,
) -> Response {
    let now = tollgate_store::now_millis();
    // A key of several models brings its other grants (one shared list); the request's model picks one.
    let (grant, origin, others) = match granted {
        None => {
            let snapshot = gw.keys.load();
            match snapshot.resolve(presented_key(headers), tollgate_domain::time::Millis(now)) {
                Ok((entry, grant)) => (
                    grant.clone(),
                    Origin::Key(entry.key_id.clone()),
                    (!entry.also.is_empty()).then(|| entry.also.clone()),
                ),
                Err(rejection) => {
                    gw.metrics.auth_failure(rejection);
                    return GatewayError::Auth(rejection).response(endpoint.dialect());
                }
            }
        }
        Some(grant) if grant.active => (grant, Origin::Playground, None),
        Some(_) => return GatewayError::Suspended.response(endpoint.dialect()),
    };
    let mut inflight = Inflight::new(
        gw.clone(),
        grant,
        origin,
        request_id,
        endpoint,
        started,
        now,
    );
    match forward(gw, &mut inflight, others, endpoint, headers, body, now).await {
        Ok((
            Answer::Whole {
                status,
                content_type,
                body,
            },
            rate,
            rename,
        )) => {
            inflight.usage = usage_of_body(&body);
            let body = match &rename {
                Some(r) => r.body(body),
                None => body,
            };
            inflight.finish(status.as_u16());
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            if let Some(ct) = content_type {
                headers.insert(header::CONTENT_TYPE, ct);
            }
            rate.apply(headers);
            response
        }
        Ok((
            Answer::Stream {
                status,
                content_type,
                first,
                rest,
            },
            rate,
            rename,
        )) => {
            inflight.status = status.as_u16();
            let (wants_chunk, wants_continuous) = inflight.stream_wishes;
            let scanner = SseScanner::new(wants_chunk, wants_continuous)
                .dialect(endpoint.dialect())
                .renaming(rename);
            let body = ProxyBody::new(first, rest, scanner, inflight, gw.config.idle_timeout);
            let mut response = (status, Body::new(body)).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                content_type.unwrap_or(HeaderValue::from_static("text/event-stream")),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            rate.apply(headers);
            response
        }
        Err(e) => {
            if let GatewayError::RateLimited { kind, .. } = &e {
                inflight.metrics.rate_limited(*kind);
                inflight.refused_by = Some(*kind);
            }
            if matches!(
                e,
                GatewayError::BadRequest(_) | GatewayError::TooLarge { .. }
            ) {
                gw.metrics.bad_request();
            }
            inflight.finish(e.status().as_u16());
            e.response(endpoint.dialect())
        }
    }
}

/// Reads and checks the request, admits it against the limits and gets the engine's answer, with the rate-limit
/// headers for the client and what puts the client's model name back in the answer.
async fn forward(
    gw: &Inner,
    inflight: &mut Inflight,
    others: Option<Arc<[Arc<Grant>]>>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Body,
    mut now: i64,
) -> Result<(Answer, RateHeaders, Option<Arc<ModelRename>>), GatewayError> {
    let bytes = read_body(body, headers, gw.config.body_limit).await?;
    let req = request::parse(endpoint, &bytes).map_err(GatewayError::BadRequest)?;
    if req.model != inflight.grant().model {
        // Another model the key covers: that subscription's limits and usage apply.
        let other = others
            .as_deref()
            .and_then(|o| KeyEntry::grant_for(inflight.grant(), o, &req.model))
            .cloned();
        match other {
            Some(g) => inflight.switch_grant(g),
            None => return Err(GatewayError::ModelNotFound(req.model.into_owned())),
        }
    }
    let grant = inflight.grant().clone();
    if !grant.active {
        return Err(GatewayError::Suspended);
    }
    let target = gw.routes.load().get(&grant.model).cloned();
    let availability = target
        .as_ref()
        .map_or(Availability::Unavailable, |t| t.availability());
    let target = match (target, availability) {
        (Some(t), Availability::Ready) => t,
        (_, Availability::Starting) => {
            let t = wait_for_replica(gw, &grant.model).await?;
            // Admitted as of now, after the wait, not as of its arrival.
            now = tollgate_store::now_millis();
            t
        }
        _ => {
            return Err(GatewayError::NoReplica {
                model: grant.model.clone(),
                starting: false,
            })
        }
    };
    let prompt_estimate = window::estimate_prompt_tokens(req.prompt_bytes);
    // What the request may generate: nothing on the pooling endpoints (embeddings, rerank, score); else its
    // max_tokens, or the default within what the model's context leaves.
    let max_tokens = match (endpoint.generates(), req.max_tokens) {
        (false, _) => Some(0),
        (true, Some(n)) => Some(n),
        (true, None) => {
            // The catalog's context, or the engines' own when they serve less (`--max-model-len`): an engine
            // refuses a max_tokens that does not fit its context.
            let catalog = gw
                .keys
                .load()
                .model_card(&grant.model)
                .map_or(0, |card| card.context_length);
            let context = window::least_known(catalog, target.context_limit());
            Some(window::default_completion(
                gw.config.default_max_tokens,
                context,
                prompt_estimate,
            ))
        }
    };
    let reserve = if endpoint.is_free() {
        0
    } else {
        window::reservation(
            prompt_estimate,
            max_tokens,
            req.choices,
            gw.config.default_max_tokens,
            gw.config.max_completion_reservation,
            &grant.limits,
        )
    };
    let window_ms = gw.limiter.window_ms();
    let reset_ms = window_reset_ms(now, window_ms);
    let ticket = Ticket::new(
        gw.ids.next("rsv_"),
        &grant.subscription_id,
        reserve,
        now,
        window_ms,
    );
    // The guard settles the admission if this future is dropped while it is in flight (the client left).
    let (ticket, seen) = match AdmitGuard::new(&gw.limiter, ticket)
        .admit(&grant.limits, now)
        .await
    {
        Ok(admitted) => admitted,
        Err(LimitError::Refused {
            kind,
            seen,
            retry_after_ms,
        }) => {
            return Err(GatewayError::RateLimited {
                kind,
                retry_after_ms,
                limits: grant.limits,
                seen,
                reset_ms,
            })
        }
        Err(LimitError::Unavailable(e)) => {
            // The outage itself is logged once, where it is noticed (`limits/failover.rs`), not once per request.
            tracing::debug!(error = %e, "the rate limiter is unreachable");
            return Err(GatewayError::LimiterUnavailable);
        }
    };
    inflight.ticket = Some(ticket);
    let rate = RateHeaders {
        limits: grant.limits,
        seen,
        reset_ms,
    };
    inflight.streamed = req.stream;
    inflight.stream_wishes = (req.wants_usage_chunk, req.wants_continuous_usage);
    // The engine is held to the completion tokens reserved, so a request never uses more than it was admitted for.
    let budget = endpoint
        .generates()
        .then(|| window::completion_budget(reserve, prompt_estimate, req.choices));
    // vLLM's scheduling priority means nothing to a request that is not scheduled.
    let priority = grant.priority.filter(|_| !endpoint.is_free());
    let upstream_body = Bytes::from(req.upstream_body(&target.served_name, budget, priority));
    let stream = req.stream;
    let prefix = req.prefix_key;
    drop(req);
    let rename = target.rename.clone();
    let outgoing = upstream::Outgoing {
        endpoint,
        body: upstream_body,
        stream,
        rename: rename.as_deref(),
        prefix,
    };
    let answer = upstream::send(gw, inflight, &target, outgoing).await?;
    Ok((answer, rate, rename))
}

/// Holds a request for a model whose replicas are starting (or that is scaled to zero, which the wake hook tells
/// the fleet) until a route table with a ready replica is swapped in, for at most the wake wait. Held requests are
/// not admitted yet: nothing is reserved against their limits while they wait, and each is sent once, after. When
/// too many are held already, or the wait runs out, the client is told to retry (503 with `Retry-After`).
async fn wait_for_replica(gw: &Inner, model: &str) -> Result<Arc<ModelTarget>, GatewayError> {
    let starting = || GatewayError::NoReplica {
        model: model.to_string(),
        starting: true,
    };
    let _held = HeldSlot::take(gw.held_for(model), gw.config.wake_queue).ok_or_else(starting)?;
    let mut swaps = gw.route_swaps.subscribe();
    let deadline = tokio::time::Instant::now() + gw.config.wake_wait;
    loop {
        if let Some(wake) = gw.wake.get() {
            wake(model);
        }
        match gw.routes.load().get(model).map(|t| (t.availability(), t)) {
            Some((Availability::Ready, t)) => return Ok(t.clone()),
            Some((Availability::Starting, _)) => {}
            _ => {
                return Err(GatewayError::NoReplica {
                    model: model.to_string(),
                    starting: false,
                })
            }
        }
        // Woken by the next route swap; every few seconds the wake hook is told again, in case the fleet forgot.
        let until = deadline.min(tokio::time::Instant::now() + Duration::from_secs(5));
        match tokio::time::timeout_at(until, swaps.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(starting()),
            Err(_) if tokio::time::Instant::now() >= deadline => return Err(starting()),
            Err(_) => {}
        }
    }
}

/// One of a model's bounded places for held requests, given back on drop.
struct HeldSlot(Arc<std::sync::atomic::AtomicUsize>);

impl HeldSlot {
    fn take(count: Arc<std::sync::atomic::AtomicUsize>, max: usize) -> Option<Self> {
        let before = count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let slot = Self(count);
        (before < max).then_some(slot)
    }
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// What the `x-ratelimit-*` headers of an answer say, written straight into the response's headers (no map built
/// and merged per request).
struct RateHeaders {
    limits: tollgate_domain::grant::Limits,
    seen: Seen,
    reset_ms: i64,
}

impl RateHeaders {
    fn apply(&self, headers: &mut HeaderMap) {
        rate_headers::apply(headers, &self.limits, self.seen, self.reset_ms);
    }
}

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::TooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(GatewayError::TooLarge { limit })
        }
        Err(_) => Err(GatewayError::BadRequest(request::Invalid {
            message: "The request body could not be read.".into(),
            param: None,
        })),
    }
}
