//! One request from the moment its key is accepted: whatever way it ends (answered, refused, failed, or abandoned
//! by the client, when its future or body is dropped), dropping this settles its reservation, updates the metrics
//! and emits its one usage record. Everything happens in `Drop`, so no path can skip it or do it twice.

use crate::gateway::Inner;
use crate::limits::{window::LimitKind, Ticket};
use crate::metering::{UsageRecord, UsageSource};
use crate::metrics::ModelMetrics;
use crate::request::Endpoint;
use crate::routes::{Lease, Replica};
use crate::sse::Usage;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate_domain::grant::Grant;

/// The status recorded for a client that left before any answer (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// Who a request is served for: the holder of an API key, or a signed-in user in the portal's playground, whose
/// grant the portal resolved (no key).
pub enum Origin {
    Key(String),
    Playground,
}

pub struct Inflight {
    gw: Arc<Inner>,
    grant: Arc<Grant>,
    origin: Origin,
    request_id: String,
    endpoint: Endpoint,
    started: Instant,
    at_ms: i64,
    pub metrics: Arc<ModelMetrics>,
    pub ticket: Option<Ticket>,
    /// The replica now serving the request (replaced on a retry).
    pub lease: Option<Lease>,
    last_replica: Option<Arc<Replica>>,
    /// 0 until an answer is decided.
    pub status: u16,
    pub usage: Option<Usage>,
    pub ttft: Option<Duration>,
    pub streamed: bool,
    /// What a streaming client asked about usage: (the final usage chunk, usage on every chunk).
    pub stream_wishes: (bool, bool),
    /// The limit that refused the request, when one did (kept with its usage record).
    pub refused_by: Option<LimitKind>,
    /// When the limiter last heard this request is still running (see `keep_slot`).
    slot_kept: Instant,
    finished: bool,
}

impl Inflight {
    pub(crate) fn new(
        gw: Arc<Inner>,
        grant: Arc<Grant>,
        origin: Origin,
        request_id: String,
        endpoint: Endpoint,
        started: Instant,
        at_ms: i64,
    ) -> Self {
        gw.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        let metrics = gw.metrics.model(&grant.model);
        Self {
            gw,
            grant,
            origin,
            request_id,
            endpoint,
            started,
            at_ms,
            metrics,
            ticket: None,
            lease: None,
            last_replica: None,
            status: 0,
            usage: None,
            ttft: None,
            streamed: false,
            stream_wishes: (false, false),
            refused_by: None,
            slot_kept: started,
            finished: false,
        }
    }

    pub fn grant(&self) -> &Arc<Grant> {
        &self.grant
    }

    /// Serves the request under another grant of its key (the subscription of the model it asked for), before
    /// anything was reserved or metered under the first.
    pub fn switch_grant(&mut self, grant: Arc<Grant>) {
        self.metrics = self.gw.metrics.model(&grant.model);
        self.grant = grant;
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Moves the request to `replica` (the previous lease, if any, ends).
    pub fn serve_on(&mut self, replica: &Arc<Replica>) {
        self.lease = Some(replica.lease());
        self.last_replica = Some(replica.clone());
    }

    /// A stream can outlive the limiter's lease on its concurrency slot (Redis): as its chunks flow, the slot is
    /// refreshed every so often, so it is neither lost under a running stream nor held forever by a lost one.
    pub fn keep_slot(&mut self) {
        let (Some(ticket), Some(every)) = (&self.ticket, self.gw.limiter.refresh_every_ms()) else {
            return;
        };
        if self.slot_kept.elapsed() >= Duration::from_millis(every.max(0) as u64) {
            self.slot_kept = Instant::now();
            self.gw
                .limiter
                .refresh(ticket, tollgate_store::now_millis());
        }
    }

    /// The request ended as the gateway intended (answered, refused or failed), not abandoned by the client.
    pub fn finish(mut self, status: u16) {
        self.status = status;
        self.finished = true;
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        let client_disconnected = !self.finished;
        let status = if self.status == 0 {
            CLIENT_CLOSED
        } else {
            self.status
        };
        let usage = self.usage.unwrap_or_default();
        if let Some(ticket) = self.ticket.take() {
            self.gw.limiter.settle(ticket, usage.total());
        }
        let latency = self.started.elapsed();
        self.metrics.finished(
            status,
            usage.prompt_tokens,
            usage.completion_tokens,
            latency,
            self.ttft,
        );
        self.gw.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(
            request_id = %self.request_id, status, client_disconnected,
            prompt_tokens = usage.prompt_tokens, completion_tokens = usage.completion_tokens,
            "gateway request finished"
        );
        let g = &*self.grant;
        let (key_id, source) = match std::mem::replace(&mut self.origin, Origin::Playground) {
            Origin::Key(id) => (Some(id), UsageSource::Key),
            Origin::Playground => (None, UsageSource::Playground),
        };
        self.gw.meter.record(UsageRecord {
            id: self.gw.ids.next("usg_"),
            request_id: std::mem::take(&mut self.request_id),
            at: self.at_ms,
            tenant_id: g.tenant_id.clone(),
            team_id: g.team_id.clone(),
            subscription_id: g.subscription_id.clone(),
            key_id,
            model: g.model.clone(),
            replica: self
                .last_replica
                .as_ref()
                .map(|r| r.base.clone())
                .unwrap_or_default(),
            endpoint: self.endpoint.name().to_string(),
            status,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            latency_ms: latency.as_millis() as u64,
            ttft_ms: self.ttft.map(|t| t.as_millis() as u64),
            streamed: self.streamed,
            client_disconnected,
            source,
            refusal: self
                .refused_by
                .map(|k| k.label().to_string())
                .unwrap_or_default(),
        });
    }
}
