//! The gateway's Prometheus metrics, kept in atomics and written by hand in the text format (no metrics crate on
//! the request path). Model labels only ever hold models a valid key is subscribed to, so their number is bounded
//! by the catalog, not by what clients send.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tollgate_domain::grant::KeyRejection;

use crate::limits::LimitKind;

/// Upper bounds in seconds (vLLM's latency buckets, trimmed).
const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            d.as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

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

#[derive(Debug, Default)]
pub struct ModelMetrics {
    statuses: StatusCounts,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    latency: Histogram,
    ttft: Histogram,
    rate_limited: [AtomicU64; 4],
    upstream_errors: AtomicU64,
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
        self.latency.observe(latency);
        if let Some(t) = ttft {
            self.ttft.observe(t);
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

    /// The Prometheus text exposition; `extra` adds the usage writer's counts.
    pub fn render(&self, usage: &crate::metering::MeterStats, spooled_bytes: u64) -> String {
        let mut out = String::with_capacity(8192);
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<&String> = models.keys().collect();
        names.sort();
        family(
            &mut out,
            "tollgate_gateway_requests",
            "counter",
            "Requests answered, by model and HTTP status.",
        );
        for n in &names {
            for (status, count) in models[*n].statuses.snapshot() {
                let _ = writeln!(
                    out,
                    "tollgate_gateway_requests_total{{model=\"{}\",status=\"{status}\"}} {count}",
                    esc(n)
                );
            }
        }
        family(
            &mut out,
            "tollgate_gateway_tokens",
            "counter",
            "Tokens metered, by model and kind.",
        );
        for n in &names {
            let m = &models[*n];
            for (kind, v) in [
                ("prompt", &m.prompt_tokens),
                ("completion", &m.completion_tokens),
            ] {
                let _ = writeln!(
                    out,
                    "tollgate_gateway_tokens_total{{model=\"{}\",kind=\"{kind}\"}} {}",
                    esc(n),
                    v.load(Ordering::Relaxed)
                );
            }
        }
        family(
            &mut out,
            "tollgate_gateway_rate_limited",
            "counter",
            "Requests refused with 429, by model and limit.",
        );
        for n in &names {
            for k in KINDS {
                let v = models[*n].rate_limited[kind_index(k)].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "tollgate_gateway_rate_limited_total{{model=\"{}\",limit=\"{}\"}} {v}",
                    esc(n),
                    k.label()
                );
            }
        }
        family(
            &mut out,
            "tollgate_gateway_upstream_errors",
            "counter",
            "Engine attempts that failed (connect, timeout, 5xx, cut stream), by model.",
        );
        for n in &names {
            let _ = writeln!(
                out,
                "tollgate_gateway_upstream_errors_total{{model=\"{}\"}} {}",
                esc(n),
                models[*n].upstream_errors.load(Ordering::Relaxed)
            );
        }
        family(
            &mut out,
            "tollgate_gateway_request_duration_seconds",
            "histogram",
            "Time from request to the last byte, by model.",
        );
        for n in &names {
            models[*n].latency.render(
                &mut out,
                "tollgate_gateway_request_duration_seconds",
                &format!("model=\"{}\"", esc(n)),
            );
        }
        family(
            &mut out,
            "tollgate_gateway_time_to_first_token_seconds",
            "histogram",
            "Time from request to the engine's first token, by model.",
        );
        for n in &names {
            models[*n].ttft.render(
                &mut out,
                "tollgate_gateway_time_to_first_token_seconds",
                &format!("model=\"{}\"", esc(n)),
            );
        }
        family(
            &mut out,
            "tollgate_gateway_in_flight_requests",
            "gauge",
            "Requests being served now.",
        );
        let _ = writeln!(
            out,
            "tollgate_gateway_in_flight_requests {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "tollgate_gateway_auth_failures",
            "counter",
            "Requests refused for their API key, by reason.",
        );
        for (r, c) in REJECTIONS.iter().zip(&self.auth_failures) {
            let _ = writeln!(
                out,
                "tollgate_gateway_auth_failures_total{{reason=\"{}\"}} {}",
                format!("{r:?}").to_lowercase(),
                c.load(Ordering::Relaxed)
            );
        }
        family(
            &mut out,
            "tollgate_gateway_bad_requests",
            "counter",
            "Requests refused as malformed or too large.",
        );
        let _ = writeln!(
            out,
            "tollgate_gateway_bad_requests_total {}",
            self.bad_requests.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "tollgate_gateway_usage_records_written",
            "counter",
            "Usage records stored in the database.",
        );
        let _ = writeln!(
            out,
            "tollgate_gateway_usage_records_written_total {}",
            usage.written.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "tollgate_gateway_usage_records_spooled",
            "counter",
            "Usage records written to the disk spool.",
        );
        let _ = writeln!(
            out,
            "tollgate_gateway_usage_records_spooled_total {}",
            usage.spooled.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "tollgate_gateway_usage_records_dropped",
            "counter",
            "Usage records lost because the spool was full.",
        );
        let _ = writeln!(
            out,
            "tollgate_gateway_usage_records_dropped_total {}",
            usage.dropped.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "tollgate_gateway_usage_spool_bytes",
            "gauge",
            "Bytes of usage records waiting on disk.",
        );
        let _ = writeln!(out, "tollgate_gateway_usage_spool_bytes {spooled_bytes}");
        out
    }
}

/// A per-replica series: name, type, help, and its value for a replica.
type ReplicaSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&crate::routes::Replica) -> u64,
);

/// Per replica: whether it is routed to, requests in flight, connections opened (a pool that works opens few).
pub fn render_replicas(out: &mut String, replicas: &[std::sync::Arc<crate::routes::Replica>]) {
    let mut replicas: Vec<_> = replicas.iter().collect();
    replicas.sort_by(|a, b| a.base.cmp(&b.base));
    let series: [ReplicaSeries; 3] = [
        (
            "tollgate_gateway_replica_ready",
            "gauge",
            "1 when the replica answers its probes (or has not been probed yet) and gets requests.",
            |r| u64::from(r.health().routable()),
        ),
        (
            "tollgate_gateway_replica_in_flight_requests",
            "gauge",
            "Requests this gateway has in flight on the replica.",
            |r| r.outstanding(),
        ),
        (
            "tollgate_gateway_engine_connections_opened_total",
            "counter",
            "Connections opened to the replica's engine.",
            |r| r.pool().opened(),
        ),
    ];
    for (name, kind, help, value) in series {
        family(out, name.strip_suffix("_total").unwrap_or(name), kind, help);
        for r in &replicas {
            let _ = writeln!(out, "{name}{{replica=\"{}\"}} {}", esc(&r.base), value(r));
        }
    }
}

/// The `# HELP` and `# TYPE` lines that open a metric family.
/// Where limits are counted: `mode` is 1 for the current one, so an alert can watch `local_share` or `refusing`.
pub fn render_limiter(out: &mut String, status: &crate::LimiterStatus) {
    use crate::LimiterMode::*;
    family(
        out,
        "tollgate_gateway_limiter_mode",
        "gauge",
        "Where rate limits are counted now: in_process, shared (Redis), local_share (Redis unreachable: this replica's share in memory) or refusing (Redis unreachable, failing closed).",
    );
    for mode in [InProcess, Shared, LocalShare, Refusing] {
        let _ = writeln!(
            out,
            "tollgate_gateway_limiter_mode{{mode=\"{}\"}} {}",
            mode.label(),
            u8::from(status.mode == mode)
        );
    }
    family(
        out,
        "tollgate_gateway_limiter_replicas",
        "gauge",
        "Gateway replicas the limits are divided between while Redis is unreachable.",
    );
    let _ = writeln!(out, "tollgate_gateway_limiter_replicas {}", status.replicas);
    family(
        out,
        "tollgate_gateway_limiter_outages",
        "counter",
        "Times the shared rate limiter (Redis) became unreachable.",
    );
    let _ = writeln!(
        out,
        "tollgate_gateway_limiter_outages_total {}",
        status.outages
    );
    family(
        out,
        "tollgate_gateway_limiter_local_admissions",
        "counter",
        "Requests admitted under this replica's local share of the limits while Redis was unreachable.",
    );
    let _ = writeln!(
        out,
        "tollgate_gateway_limiter_local_admissions_total {}",
        status.local_admissions
    );
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let text = m.render(&Default::default(), 0);
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
        let text = m.render(&Default::default(), 0);
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
