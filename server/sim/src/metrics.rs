//! Prometheus metrics with vLLM's names, labels and buckets, written by `tollgate-metrics` (floats as vLLM's
//! Python client writes them: `1.0`).
//!
//! Names follow vLLM's V1 `PrometheusStatLogger` (`vllm/v1/metrics/loggers.py`): gauges
//! `vllm:num_requests_running`, `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc`
//! (and the deprecated `vllm:gpu_cache_usage_perc`); counters `vllm:prompt_tokens_total`,
//! `vllm:generation_tokens_total`, `vllm:request_success_total{finished_reason}`; histograms
//! `vllm:time_to_first_token_seconds`, `vllm:inter_token_latency_seconds` (and the older
//! `vllm:time_per_output_token_seconds`), `vllm:e2e_request_latency_seconds`,
//! `vllm:request_queue_time_seconds` and the per-request token-count histograms. Every
//! series carries `model_name` and `engine="0"`. Recording is lock-free (atomics).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tollgate_metrics::{Exposition, Floats, Histogram, Kind, Labels};

use crate::engine::Snapshot;

const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
const REQUEST_LATENCY_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// Builds vLLM's 1-2-5 bucket series up to `max` (as `build_1_2_5_buckets`).
pub fn buckets_1_2_5(max: u32) -> Vec<f64> {
    let mut out = Vec::new();
    let mut scale = 1u64;
    loop {
        for m in [1u64, 2, 5] {
            let v = m * scale;
            if v > u64::from(max) {
                return out;
            }
            out.push(v as f64);
        }
        scale *= 10;
    }
}

/// Finish reasons counted by `vllm:request_success_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Natural end or stop string.
    Stop,
    /// Hit `max_tokens`.
    Length,
    /// Client went away or the request was cut.
    Abort,
}

/// Per-adapter running and waiting counts, for `vllm:lora_requests_info`.
#[derive(Default)]
struct LoraLoad {
    running: BTreeMap<String, u32>,
    waiting: BTreeMap<String, u32>,
}

/// All metrics of one simulated engine.
pub struct Metrics {
    labels: Labels,
    lora_enabled: bool,
    max_loras: u32,
    /// Prefill tokens processed.
    pub prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub generation_tokens: AtomicU64,
    success: [AtomicU64; 3],
    /// Time to first token.
    pub ttft: Histogram,
    /// Time between tokens.
    pub itl: Histogram,
    /// End-to-end request latency.
    pub e2e: Histogram,
    /// Time spent waiting for admission.
    pub queue: Histogram,
    /// Time spent in prefill.
    pub prefill: Histogram,
    /// Time spent decoding.
    pub decode: Histogram,
    /// Prompt tokens per request.
    pub request_prompt_tokens: Histogram,
    /// Generated tokens per request.
    pub request_generation_tokens: Histogram,
    /// Prompt tokens looked up in the prefix cache.
    pub prefix_cache_queries: AtomicU64,
    /// Prompt tokens found in the prefix cache.
    pub prefix_cache_hits: AtomicU64,
    /// The `max_tokens` each request asked for (or was given).
    pub request_params_max_tokens: Histogram,
    lora: Mutex<LoraLoad>,
}

impl Metrics {
    /// Metrics labelled with `model_name`.
    pub fn new(model_name: &str, max_model_len: u32, lora_enabled: bool) -> Self {
        let token_buckets = buckets_1_2_5(max_model_len);
        Self {
            labels: Labels::new()
                .with("model_name", model_name)
                .with("engine", "0"),
            lora_enabled,
            max_loras: 1,
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            success: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(REQUEST_LATENCY_BUCKETS),
            queue: Histogram::new(REQUEST_LATENCY_BUCKETS),
            prefill: Histogram::new(REQUEST_LATENCY_BUCKETS),
            decode: Histogram::new(REQUEST_LATENCY_BUCKETS),
            request_prompt_tokens: Histogram::new(&token_buckets),
            request_generation_tokens: Histogram::new(&token_buckets),
            prefix_cache_queries: AtomicU64::new(0),
            prefix_cache_hits: AtomicU64::new(0),
            request_params_max_tokens: Histogram::new(&token_buckets),
            lora: Mutex::new(LoraLoad::default()),
        }
    }

    /// Counts one finished sequence.
    pub fn finished(&self, reason: Finished) {
        let i = match reason {
            Finished::Stop => 0,
            Finished::Length => 1,
            Finished::Abort => 2,
        };
        self.success[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Finished sequences with this reason so far.
    pub fn finished_count(&self, reason: Finished) -> u64 {
        let i = match reason {
            Finished::Stop => 0,
            Finished::Length => 1,
            Finished::Abort => 2,
        };
        self.success[i].load(Ordering::Relaxed)
    }

    /// Moves an adapter's request between waiting (`+1`/`-1`) and running counts.
    pub fn lora_change(&self, adapter: &str, waiting_delta: i32, running_delta: i32) {
        if !self.lora_enabled {
            return;
        }
        let mut guard = self.lora.lock().unwrap_or_else(|e| e.into_inner());
        let l = &mut *guard;
        for (map, delta) in [
            (&mut l.waiting, waiting_delta),
            (&mut l.running, running_delta),
        ] {
            if delta == 0 {
                continue;
            }
            let v = map.entry(adapter.to_string()).or_insert(0);
            *v = v.saturating_add_signed(delta);
            if *v == 0 {
                map.remove(adapter);
            }
        }
    }

    /// Renders the Prometheus text exposition.
    pub fn render(&self, s: &Snapshot) -> String {
        let mut x = Exposition::new(Floats::Python);
        let l = &self.labels;
        let gauges: [(&str, &str, f64); 4] = [
            (
                "vllm:num_requests_running",
                "Number of requests in model execution batches.",
                f64::from(s.running_requests),
            ),
            (
                "vllm:num_requests_waiting",
                "Number of requests waiting to be processed.",
                f64::from(s.waiting_requests),
            ),
            (
                "vllm:kv_cache_usage_perc",
                "KV-cache usage. 1 means 100 percent usage.",
                s.kv_usage(),
            ),
            (
                "vllm:gpu_cache_usage_perc",
                "GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
                s.kv_usage(),
            ),
        ];
        for (name, help, v) in gauges {
            x.family(name, Kind::Gauge, help);
            x.sample(name, l, v);
        }
        let counters: [(&str, &str, u64); 5] = [
            (
                "vllm:prefix_cache_queries",
                "Prefix cache queries, in terms of number of queried tokens.",
                self.prefix_cache_queries.load(Ordering::Relaxed),
            ),
            (
                "vllm:prefix_cache_hits",
                "Prefix cache hits, in terms of number of cached tokens.",
                self.prefix_cache_hits.load(Ordering::Relaxed),
            ),
            (
                "vllm:num_preemptions",
                "Cumulative number of preemption from the engine.",
                0,
            ),
            (
                "vllm:prompt_tokens",
                "Number of prefill tokens processed.",
                self.prompt_tokens.load(Ordering::Relaxed),
            ),
            (
                "vllm:generation_tokens",
                "Number of generation tokens processed.",
                self.generation_tokens.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            x.family(name, Kind::Counter, help);
            x.sample(&format!("{name}_total"), l, v as f64);
        }
        x.family(
            "vllm:request_success",
            Kind::Counter,
            "Count of successfully processed requests.",
        );
        for (i, reason) in ["stop", "length", "abort"].iter().enumerate() {
            x.sample(
                "vllm:request_success_total",
                &l.clone().with("finished_reason", reason),
                self.success[i].load(Ordering::Relaxed) as f64,
            );
        }
        let hists: [(&str, &str, &Histogram); 10] = [
            ("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", &self.request_params_max_tokens),
            ("vllm:request_prompt_tokens", "Number of prefill tokens processed.", &self.request_prompt_tokens),
            ("vllm:request_generation_tokens", "Number of generation tokens processed.", &self.request_generation_tokens),
            ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", &self.ttft),
            ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", &self.itl),
            (
                "vllm:time_per_output_token_seconds",
                "Histogram of time per output token in seconds.DEPRECATED: Use vllm:inter_token_latency_seconds instead.",
                &self.itl,
            ),
            ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", &self.e2e),
            ("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", &self.queue),
            ("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", &self.prefill),
            ("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", &self.decode),
        ];
        for (name, help, h) in hists {
            x.family(name, Kind::Histogram, help);
            x.histogram(name, l, h);
        }
        if self.lora_enabled {
            let lora = self.lora.lock().unwrap_or_else(|e| e.into_inner());
            let names = |m: &BTreeMap<String, u32>| m.keys().cloned().collect::<Vec<_>>().join(",");
            x.family(
                "vllm:lora_requests_info",
                Kind::Gauge,
                "Running stats on lora requests.",
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            x.sample(
                "vllm:lora_requests_info",
                &Labels::new()
                    .with("max_lora", self.max_loras)
                    .with("running_lora_adapters", names(&lora.running))
                    .with("waiting_lora_adapters", names(&lora.waiting)),
                now,
            );
        }
        x.finish()
    }

    /// Sets the `max_lora` label value.
    pub fn with_max_loras(mut self, max_loras: u32) -> Self {
        self.max_loras = max_loras;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot {
            running_requests: 3,
            running_seqs: 3,
            waiting_requests: 2,
            kv_held: 50,
            kv_capacity: 200,
        }
    }

    #[test]
    fn one_two_five_buckets() {
        assert_eq!(
            buckets_1_2_5(100),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
    }

    #[test]
    fn renders_vllm_names_and_labels() {
        let m = Metrics::new("my \"model\"", 2048, false);
        m.prompt_tokens.fetch_add(12, Ordering::Relaxed);
        m.finished(Finished::Length);
        let text = m.render(&snap());
        let l = r#"model_name="my \"model\"",engine="0""#;
        for line in [
            format!("vllm:num_requests_running{{{l}}} 3.0"),
            format!("vllm:num_requests_waiting{{{l}}} 2.0"),
            format!("vllm:kv_cache_usage_perc{{{l}}} 0.25"),
            format!("vllm:prompt_tokens_total{{{l}}} 12.0"),
            format!("vllm:request_success_total{{{l},finished_reason=\"length\"}} 1.0"),
            "# TYPE vllm:time_to_first_token_seconds histogram".to_string(),
            "# TYPE vllm:inter_token_latency_seconds histogram".to_string(),
            "# TYPE vllm:e2e_request_latency_seconds histogram".to_string(),
            format!("vllm:e2e_request_latency_seconds_bucket{{{l},le=\"1.0\"}} 0"),
            format!("vllm:e2e_request_latency_seconds_bucket{{{l},le=\"+Inf\"}} 0"),
            format!("vllm:e2e_request_latency_seconds_sum{{{l}}} 0.0"),
        ] {
            assert!(
                text.lines().any(|x| x == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("lora_requests_info"));
    }

    #[test]
    fn lora_info_lists_adapters() {
        let m = Metrics::new("m", 128, true).with_max_loras(4);
        m.lora_change("a1", 1, 0);
        m.lora_change("a1", -1, 1);
        m.lora_change("b2", 1, 0);
        let text = m.render(&snap());
        assert!(
            text.contains(r#"max_lora="4",running_lora_adapters="a1",waiting_lora_adapters="b2""#),
            "{text}"
        );
        m.lora_change("a1", 0, -1);
        assert!(m.render(&snap()).contains(r#"running_lora_adapters="""#));
    }
}
