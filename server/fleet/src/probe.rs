//! What the controller reads from each engine: `/health` (is it serving), and from `/metrics` how busy it is
//! (vLLM's running and waiting requests, KV-cache usage, finished requests).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Load {
    pub running: f64,
    pub waiting: f64,
    pub kv_cache: f64,
    /// `vllm:request_success_total`, summed: when it moves, requests were served.
    pub finished: f64,
}

impl Load {
    /// Reads vLLM's series (summed over the engine's models) from its metrics text.
    pub fn parse(text: &str) -> Self {
        let mut load = Self::default();
        for s in tollgate_metrics::parse::samples(text).filter(|s| s.value.is_finite()) {
            match s.name {
                "vllm:num_requests_running" => load.running += s.value.max(0.0),
                "vllm:num_requests_waiting" => load.waiting += s.value.max(0.0),
                "vllm:kv_cache_usage_perc" | "vllm:gpu_cache_usage_perc" => {
                    load.kv_cache = load.kv_cache.max(s.value.clamp(0.0, 1.0))
                }
                "vllm:request_success_total" => load.finished += s.value.max(0.0),
                _ => {}
            }
        }
        load
    }

    pub fn busy(&self) -> f64 {
        self.running + self.waiting
    }
}

#[derive(Clone)]
pub struct Prober {
    http: reqwest::Client,
}

impl Prober {
    pub fn new(timeout: Duration) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .no_proxy()
                .build()
                .unwrap_or_default(),
        }
    }

    /// True when `GET /health` answers 200.
    pub async fn healthy(&self, base_url: &str) -> bool {
        matches!(
            self.http.get(format!("{base_url}/health")).send().await,
            Ok(r) if r.status().is_success()
        )
    }

    /// The engine's load, or None when its metrics cannot be read.
    pub async fn load(&self, base_url: &str) -> Option<Load> {
        let r = self
            .http
            .get(format!("{base_url}/metrics"))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        let text = r.text().await.ok()?;
        Some(Load::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_is_read_from_vllm_metrics() {
        let text = "# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name=\"m\"} 3.0
vllm:num_requests_waiting{model_name=\"m\"} 2.0
vllm:kv_cache_usage_perc{model_name=\"m\"} 0.5
vllm:request_success_total{model_name=\"m\",finished_reason=\"stop\"} 4.0
vllm:request_success_total{model_name=\"m\",finished_reason=\"length\"} 1.0
";
        let l = Load::parse(text);
        assert_eq!(
            (l.running, l.waiting, l.kv_cache, l.finished),
            (3.0, 2.0, 0.5, 5.0)
        );
        assert_eq!(l.busy(), 5.0);
    }
}
