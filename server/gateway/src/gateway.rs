//! The gateway's shared state, built once: keys and routes (both swapped whole while requests run), the limiter,
//! the usage meter and metrics. Connections to the engines are pooled per replica (`routes::Replica`).

use crate::config::GatewayConfig;
use crate::ids::IdGen;
use crate::limits::Limiter;
use crate::metering::{Meter, MeteringConfig, UsageStore};
use crate::metrics::Metrics;
use crate::routes::{ReplicaRegistry, RouteTable, Routes};
use arc_swap::ArcSwap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock};
use tollgate_domain::grant::KeySnapshot;

/// Told which model a held request waits for.
pub type WakeHook = Arc<dyn Fn(&str) + Send + Sync>;
/// Writes more series into `/metrics`.
pub type MetricsHook = Arc<dyn Fn(&mut tollgate_metrics::Exposition) + Send + Sync>;

/// What a gateway is made of.
pub struct GatewayParts {
    pub config: GatewayConfig,
    /// The key snapshot, shared with whoever refreshes it (the catalog's `KeyDirectoryRefresher`).
    pub keys: Arc<ArcSwap<KeySnapshot>>,
    /// `MemoryLimiter` for one replica, `RedisLimiter` for several.
    pub limiter: Arc<dyn Limiter>,
    /// Where usage records go: a `tollgate_store::Store`.
    pub usage: Arc<dyn UsageStore>,
    pub metering: MeteringConfig,
}

/// A handle to the gateway; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: GatewayConfig,
    pub keys: Arc<ArcSwap<KeySnapshot>>,
    pub routes: ArcSwap<RouteTable>,
    pub registry: ReplicaRegistry,
    pub limiter: Arc<dyn Limiter>,
    pub meter: Meter,
    pub metrics: Metrics,
    pub ids: IdGen,
    /// Rotates the starting point among equally loaded replicas.
    pub rotation: AtomicUsize,
    /// Route tables are built and swapped in under this lock, so two publishers cannot store them out of order.
    pub swap_order: Mutex<()>,
    /// Moves on every route swap: requests held for a starting model wait on it.
    pub route_swaps: tokio::sync::watch::Sender<u64>,
    /// Requests held now, per model, waiting for it to start: each model has its own bound, so one that cannot
    /// start does not fill the queue for the others.
    pub held: Mutex<std::collections::HashMap<String, Arc<AtomicUsize>>>,
    /// Told which model a held request waits for (the fleet wakes a model scaled to zero).
    pub wake: OnceLock<WakeHook>,
    /// Adds series of other parts of the server (the fleet controller's) to `/metrics`.
    pub extra_metrics: OnceLock<MetricsHook>,
}

impl Inner {
    /// The count of requests held for `model` (made on first use; only held requests take this lock).
    pub(crate) fn held_for(&self, model: &str) -> Arc<AtomicUsize> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(model.to_string())
            .or_default()
            .clone()
    }
}

impl Gateway {
    /// Builds the gateway and starts its usage writer (so call it inside the Tokio runtime). Routes start empty.
    pub fn new(parts: GatewayParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                meter: Meter::start(parts.usage, parts.metering),
                config: parts.config,
                keys: parts.keys,
                routes: ArcSwap::from_pointee(RouteTable::default()),
                registry: ReplicaRegistry::default(),
                limiter: parts.limiter,
                metrics: Metrics::default(),
                ids: IdGen::new(),
                rotation: AtomicUsize::new(0),
                swap_order: Mutex::new(()),
                route_swaps: tokio::sync::watch::Sender::new(0),
                held: Mutex::default(),
                wake: OnceLock::new(),
                extra_metrics: OnceLock::new(),
            }),
        }
    }

    /// Swaps in a new key snapshot (requests in flight finish with the one they started with).
    pub fn replace_keys(&self, snapshot: KeySnapshot) {
        self.inner.keys.store(Arc::new(snapshot));
    }

    /// The shared snapshot handle, for a refresher that publishes into it directly.
    pub fn keys(&self) -> Arc<ArcSwap<KeySnapshot>> {
        self.inner.keys.clone()
    }

    /// The grant of a live subscription in the current snapshot (None: not active or suspended, or not published
    /// yet), for a request the portal authorized without a key.
    pub fn grant_of(&self, subscription_id: &str) -> Option<Arc<tollgate_domain::grant::Grant>> {
        self.inner.keys.load().grant_of(subscription_id).cloned()
    }

    /// Serves a request under `grant` instead of an API key: the portal's playground, after checking that the
    /// signed-in user may use the subscription (`Catalog::playground_subscription`). Limits, routing, the
    /// rate-limit headers and the streamed answer are those of a key's request; the usage record has source
    /// `playground` and no key id. A suspended grant answers 403.
    pub async fn serve_granted(
        &self,
        endpoint: crate::request::Endpoint,
        grant: Arc<tollgate_domain::grant::Grant>,
        headers: http::HeaderMap,
        body: axum::body::Body,
    ) -> axum::response::Response {
        crate::proxy::handle_granted(self.clone(), endpoint, grant, headers, body).await
    }

    /// Swaps in a new routing table. Built and stored under one lock, so the last table built is the one that
    /// stays; requests waiting for a starting model are told.
    pub fn replace_routes(&self, routes: &Routes) {
        let _order = self
            .inner
            .swap_order
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.inner
            .routes
            .store(Arc::new(self.inner.registry.build(routes)));
        self.inner
            .route_swaps
            .send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether each routed model can answer now, from the current routes (for the portal's badges; not the
    /// request path). Models not listed are unavailable.
    pub fn serving(&self) -> Vec<(String, tollgate_domain::fleet::Serving)> {
        use crate::routes::Availability;
        use tollgate_domain::fleet::Serving;
        self.inner
            .routes
            .load()
            .iter()
            .map(|(model, target)| {
                let serving = match target.availability() {
                    Availability::Ready => Serving::Ready,
                    Availability::Starting if target.wakeable && target.starting == 0 => {
                        Serving::Idle
                    }
                    Availability::Starting => Serving::Starting,
                    Availability::Unavailable => Serving::Unavailable,
                };
                (model.clone(), serving)
            })
            .collect()
    }

    /// Calls `wake(model)` when a request is held for a model with no ready replica (once per request; the
    /// callee rate-limits). Set once, at start.
    pub fn on_wake(&self, wake: WakeHook) {
        let _ = self.inner.wake.set(wake);
    }

    /// Adds other series to `/metrics`. Set once, at start.
    pub fn add_metrics(
        &self,
        render: Arc<dyn Fn(&mut tollgate_metrics::Exposition) + Send + Sync>,
    ) {
        let _ = self.inner.extra_metrics.set(render);
    }

    pub fn limiter(&self) -> &Arc<dyn Limiter> {
        &self.inner.limiter
    }

    /// Where limits are counted now (shared, or local shares during a Redis outage), for `/readyz`.
    pub fn limiter_status(&self) -> crate::LimiterStatus {
        self.inner.limiter.status()
    }

    /// Prometheus text for `/metrics`.
    pub fn metrics_text(&self) -> String {
        let mut x = tollgate_metrics::Exposition::new(tollgate_metrics::Floats::Shortest);
        self.inner.metrics.render(
            &mut x,
            self.inner.meter.stats(),
            self.inner.meter.spooled_bytes(),
        );
        crate::metrics::render_replicas(&mut x, &self.inner.registry.replicas());
        crate::metrics::render_limiter(&mut x, &self.inner.limiter.status());
        if let Some(extra) = self.inner.extra_metrics.get() {
            extra(&mut x);
        }
        x.finish()
    }

    /// Writes every usage record handed over so far (or spools it) and retries the spool. Call at shutdown after
    /// the listener has drained, and whenever a test needs records in the database.
    pub async fn flush_usage(&self) {
        self.inner.meter.flush().await;
    }

    /// Seeds the monthly quotas with this month's usage from the database (call once at start). Returns how many
    /// subscriptions had usage.
    pub async fn load_month_to_date(&self, store: &tollgate_store::Store) -> Result<usize, String> {
        crate::limits::failover::seed_months(self.inner.limiter.as_ref(), store).await
    }
}
