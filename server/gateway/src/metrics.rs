//! The gateway's Prometheus metrics, kept in atomics and written in the text format by `tollgate-metrics` (which
//! says why no metrics crate is on the request path). Model labels only ever hold models a valid key is
//! subscribed to, so their number is bounded by the catalog, not by what clients send.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tollgate_domain::grant::KeyRejection;
use tollgate_metrics::{Exposition, Histogram, Kind, Labels};

use crate::limits::LimitKind;

/// Upper bounds in seconds (vLLM's latency buckets, trimmed).
const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// Requests by HTTP status: an atomic per status in 100..=599 (every status an answer can have), a locked map for
/// anything else.
#[derive(Debug)]
struct StatusCounts {
    common: Box<[AtomicU64]>,
    other: Mutex<BTreeMap<u16, u64>>,
}

const FIRST_STATUS: u16 = 100;
const COMMON_STATUSES: usize = 500;

impl Default for StatusCounts {
    fn default() -> Self {
        Self {
            common: (0..COMMON_STATUSES).map(|_| AtomicU64::new(0)).collect(),
            other: Mutex::default(),
        }
    }
}

impl StatusCounts {
    fn add(&self, status: u16) {
        match self
            .common
            .get(usize::from(status.wrapping_sub(FIRST_STATUS)))
        {
            Some(c) if status >= FIRST_STATUS => {
                c.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                *self
                    .other
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(status)
                    .or_default() += 1;
            }
        }
    }

    /// The statuses seen so far, in order, with their counts.
    fn snapshot(&self) -> BTreeMap<u16, u64> {
        let mut all = self.other.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (i, c) in self.common.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                all.insert(FIRST_STATUS + i as u16, n);
            }
        }
        all
    }
}

#[derive(Debug)]
pub struct ModelMetrics {
    statuses: StatusCounts,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    latency: Histogram,
    ttft: Histogram,
    rate_limited: [AtomicU64; 4],
    upstream_errors: AtomicU64,
}

impl Default for ModelMetrics {
    fn default() -> Self {
        Self {
            statuses: StatusCounts::default(),
            prompt_tokens: AtomicU64::default(),
            completion_tokens: AtomicU64::default(),
            latency: Histogram::new(&BUCKETS),
            ttft: Histogram::new(&BUCKETS),
            rate_limited: Default::default(),
            upstream_errors: AtomicU64::default(),
        }
    }
}

impl ModelMetrics {
    pub fn finished(
        &self,
        status: u16,
        prompt: u64,
        completion: u64,
        latency: Duration,
        ttft: Option<Duration>,
    ) {
        self.statuses.add(status);
        self.prompt_tokens.fetch_add(prompt, Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(completion, Ordering::Relaxed);
        self.latency.observe_duration(latency);
        if let Some(t) = ttft {
            self.ttft.observe_duration(t);
        }
    }

    pub fn rate_limited(&self, kind: LimitKind) {
        self.rate_limited[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
    }
}

fn kind_index(kind: LimitKind) -> usize {
    match kind {
        LimitKind::Concurrency => 0,
        LimitKind::Requests => 1,
        LimitKind::Tokens => 2,
        LimitKind::Monthly => 3,
    }
}

const KINDS: [LimitKind; 4] = [
    LimitKind::Concurrency,
    LimitKind::Requests,
    LimitKind::Tokens,
    LimitKind::Monthly,
];

const REJECTIONS: [KeyRejection; 5] = [
    KeyRejection::Missing,
    KeyRejection::Invalid,
    KeyRejection::Expired,
    KeyRejection::Revoked,
    KeyRejection::Suspended,
];

#[derive(Debug, Default)]
pub struct Metrics {
    models: RwLock<HashMap<String, Arc<ModelMetrics>>>,
    pub in_flight: AtomicI64,
    auth_failures: [AtomicU64; 5],
    bad_requests: AtomicU64,
}

impl Metrics {
    pub fn model(&self, model: &str) -> Arc<ModelMetrics> {
        if let Some(m) = self
            .models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(model)
        {
            return m.clone();
        }
        self.models
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(model.to_owned())
            .or_default()
            .clone()
    }

    pub fn auth_failure(&self, r: KeyRejection) {
        if let Some(i) = REJECTIONS.iter().position(|x| *x == r) {
            self.auth_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn bad_request(&self) {
        self.bad_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the gateway's series, with the usage writer's counts.
    pub fn render(
        &self,
        x: &mut Exposition,
        usage: &crate::metering::MeterStats,
        spooled_bytes: u64,
    ) {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<(&String, Labels)> = models
            .keys()
            .map(|n| (n, Labels::new().with("model", n)))
            .collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        x.family(
            "tollgate_gateway_requests",
            Kind::Counter,
            "Requests answered, by model and HTTP status.",
        );
        for (n, model) in &names {
            for (status, count) in models[*n].statuses.snapshot() {
                x.sample(
                    "tollgate_gateway_requests_total",
                    &model.clone().with("status", status),
                    count,
                );
            }
        }
        x.family(
            "tollgate_gateway_tokens",
            Kind::Counter,
            "Tokens metered, by model and kind.",
        );
        for (n, model) in &names {
            let m = &models[*n];
            for (kind, v) in [
                ("prompt", &m.prompt_tokens),
                ("completion", &m.completion_tokens),
            ] {
                x.sample(
                    "tollgate_gateway_tokens_total",
                    &model.clone().with("kind", kind),
                    v.load(Ordering::Relaxed),
                );
            }
        }
        x.family(
            "tollgate_gateway_rate_limited",
            Kind::Counter,
            "Requests refused with 429, by model and limit.",
        );
        for (n, model) in &names {
            for k in KINDS {
                x.sample(
                    "tollgate_gateway_rate_limited_total",
                    &model.clone().with("limit", k.label()),
                    models[*n].rate_limited[kind_index(k)].load(Ordering::Relaxed),
                );
            }
        }
        x.family(
            "tollgate_gateway_upstream_errors",
            Kind::Counter,
            "Engine attempts that failed (connect, timeout, 5xx, cut stream), by model.",
        );
        for (n, model) in &names {
            x.sample(
                "tollgate_gateway_upstream_errors_total",
                model,
                models[*n].upstream_errors.load(Ordering::Relaxed),
            );
        }
        x.family(
            "tollgate_gateway_request_duration_seconds",
            Kind::Histogram,
            "Time from request to the last byte, by model.",
        );
        for (n, model) in &names {
            x.histogram(
                "tollgate_gateway_request_duration_seconds",
                model,
                &models[*n].latency,
            );
        }
        x.family(
            "tollgate_gateway_time_to_first_token_seconds",
            Kind::Histogram,
            "Time from request to the engine's first token, by model.",
        );
        for (n, model) in &names {
            x.histogram(
                "tollgate_gateway_time_to_first_token_seconds",
                model,
                &models[*n].ttft,
            );
        }
        let none = Labels::new();
        x.family(
            "tollgate_gateway_in_flight_requests",
            Kind::Gauge,
            "Requests being served now.",
        );
        x.sample(
            "tollgate_gateway_in_flight_requests",
            &none,
            self.in_flight.load(Ordering::Relaxed),
        );
        x.family(
            "tollgate_gateway_auth_failures",
            Kind::Counter,
            "Requests refused for their API key, by reason.",
        );
        for (r, c) in REJECTIONS.iter().zip(&self.auth_failures) {
            x.sample(
                "tollgate_gateway_auth_failures_total",
                &Labels::new().with("reason", format!("{r:?}").to_lowercase()),
                c.load(Ordering::Relaxed),
            );
        }
        let counters: [(&str, &str, &AtomicU64); 4] = [
            (
                "tollgate_gateway_bad_requests",
                "Requests refused as malformed or too large.",
                &self.bad_requests,
            ),
            (
                "tollgate_gateway_usage_records_written",
                "Usage records stored in the database.",
                &usage.written,
            ),
            (
                "tollgate_gateway_usage_records_spooled",
                "Usage records written to the disk spool.",
                &usage.spooled,
            ),
            (
                "tollgate_gateway_usage_records_dropped",
                "Usage records lost because the spool was full.",
                &usage.dropped,
            ),
        ];
        for (name, help, v) in counters {
            x.family(name, Kind::Counter, help);
            x.sample(&format!("{name}_total"), &none, v.load(Ordering::Relaxed));
        }
        x.family(
            "tollgate_gateway_usage_spool_bytes",
            Kind::Gauge,
            "Bytes of usage records waiting on disk.",
        );
        x.sample("tollgate_gateway_usage_spool_bytes", &none, spooled_bytes);
    }
}

/// A per-replica series: name, type, help, and its value for a replica.
type ReplicaSeries = (
    &'static str,
    Kind,
    &'static str,
    fn(&crate::routes::Replica) -> u64,
);

/// Per replica: whether it is routed to, requests in flight, connections opened (a pool that works opens few).
pub fn render_replicas(x: &mut Exposition, replicas: &[std::sync::Arc<crate::routes::Replica>]) {
    let mut replicas: Vec<_> = replicas.iter().collect();
    replicas.sort_by(|a, b| a.base.cmp(&b.base));
    let series: [ReplicaSeries; 3] = [
        (
            "tollgate_gateway_replica_ready",
            Kind::Gauge,
            "1 when the replica answers its probes (or has not been probed yet) and gets requests.",
            |r| u64::from(r.health().routable()),
        ),
        (
            "tollgate_gateway_replica_in_flight_requests",
            Kind::Gauge,
            "Requests this gateway has in flight on the replica.",
            |r| r.outstanding(),
        ),
        (
            "tollgate_gateway_engine_connections_opened_total",
            Kind::Counter,
            "Connections opened to the replica's engine.",
            |r| r.pool().opened(),
        ),
    ];
    for (name, kind, help, value) in series {
        x.family(name.strip_suffix("_total").unwrap_or(name), kind, help);
        for r in &replicas {
            x.sample(name, &Labels::new().with("replica", &r.base), value(r));
        }
    }
}

/// Where limits are counted: `mode` is 1 for the current one, so an alert can watch `local_share` or `refusing`.
pub fn render_limiter(x: &mut Exposition, status: &crate::LimiterStatus) {
    use crate::LimiterMode::*;
    x.family(
        "tollgate_gateway_limiter_mode",
        Kind::Gauge,
        "Where rate limits are counted now: in_process, shared (Redis), local_share (Redis unreachable: this replica's share in memory) or refusing (Redis unreachable, failing closed).",
    );
    for mode in [InProcess, Shared, LocalShare, Refusing] {
        x.sample(
            "tollgate_gateway_limiter_mode",
            &Labels::new().with("mode", mode.label()),
            u64::from(status.mode == mode),
        );
    }
    let none = Labels::new();
    x.family(
        "tollgate_gateway_limiter_replicas",
        Kind::Gauge,
        "Gateway replicas the limits are divided between while Redis is unreachable.",
    );
    x.sample("tollgate_gateway_limiter_replicas", &none, status.replicas);
    x.family(
        "tollgate_gateway_limiter_outages",
        Kind::Counter,
        "Times the shared rate limiter (Redis) became unreachable.",
    );
    x.sample(
        "tollgate_gateway_limiter_outages_total",
        &none,
        status.outages,
    );
    x.family(
        "tollgate_gateway_limiter_local_admissions",
        Kind::Counter,
        "Requests admitted under this replica's local share of the limits while Redis was unreachable.",
    );
    x.sample(
        "tollgate_gateway_limiter_local_admissions_total",
        &none,
        status.local_admissions,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_metrics::Floats;

    impl Metrics {
        fn text(&self) -> String {
            let mut x = Exposition::new(Floats::Shortest);
            self.render(&mut x, &Default::default(), 0);
            x.finish()
        }
    }

    #[test]
    fn the_exposition_holds_what_was_counted() {
        let m = Metrics::default();
        let llama = m.model("llama");
        llama.finished(
            200,
            10,
            5,
            Duration::from_millis(30),
            Some(Duration::from_millis(3)),
        );
        llama.finished(200, 1, 1, Duration::from_millis(2), None);
        llama.rate_limited(LimitKind::Tokens);
        m.model("we\"ird")
            .finished(502, 0, 0, Duration::from_secs(500), None);
        m.auth_failure(KeyRejection::Revoked);
        let text = m.text();
        assert!(
            text.contains("tollgate_gateway_requests_total{model=\"llama\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("tollgate_gateway_tokens_total{model=\"llama\",kind=\"prompt\"} 11"));
        assert!(text
            .contains("tollgate_gateway_rate_limited_total{model=\"llama\",limit=\"tokens\"} 1"));
        assert!(text.contains(
            "tollgate_gateway_request_duration_seconds_bucket{model=\"llama\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "tollgate_gateway_request_duration_seconds_bucket{model=\"llama\",le=\"+Inf\"} 2"
        ));
        assert!(
            text.contains("tollgate_gateway_time_to_first_token_seconds_count{model=\"llama\"} 1")
        );
        assert!(text.contains("model=\"we\\\"ird\""));
        // Beyond the last bucket: only +Inf counts it.
        assert!(text.contains(
            "tollgate_gateway_request_duration_seconds_bucket{model=\"we\\\"ird\",le=\"120\"} 0"
        ));
        assert!(text.contains("tollgate_gateway_auth_failures_total{reason=\"revoked\"} 1"));
    }

    #[test]
    fn statuses_are_counted_and_listed_in_order_whatever_their_range() {
        let m = Metrics::default();
        let model = m.model("m");
        for status in [499, 200, 99, 600, 200, 100, 599, 0] {
            model.finished(status, 0, 0, Duration::from_millis(1), None);
        }
        let text = m.text();
        let seen: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("tollgate_gateway_requests_total{"))
            .collect();
        let want: Vec<String> = [
            (0, 1),
            (99, 1),
            (100, 1),
            (200, 2),
            (499, 1),
            (599, 1),
            (600, 1),
        ]
        .iter()
        .map(|(s, n)| format!("tollgate_gateway_requests_total{{model=\"m\",status=\"{s}\"}} {n}"))
        .collect();
        assert_eq!(seen, want);
    }
}
