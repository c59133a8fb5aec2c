//! Routing refined by the engines' own view of their load. Every few seconds the gateway reads each replica's
//! Prometheus `/metrics` (vLLM's names) and records, per replica, how much load the engine reports beyond what this
//! gateway has in flight there: requests waiting in its queue, and a penalty as its KV cache fills. Other gateway
//! replicas' traffic shows up this way too. The same read is the health probe: a replica that does not answer is
//! not routed to (`routes::Health`) until it does, and a model whose replicas have never answered is "starting".
//! An engine that answers `/metrics` with an error status (it has none) is probed on `/health` instead.

use crate::gateway::Gateway;
use crate::routes::{Health, Replica};
use http_body_util::{BodyExt, Limited};
use std::time::Duration;

/// What the engine reports, from its metrics text.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EngineLoad {
    pub waiting: f64,
    /// KV-cache usage, 0..1.
    pub kv_cache: f64,
}

impl EngineLoad {
    /// Reads vLLM's gauges (summed over engines and models in one process) with the text format's parser
    /// (`tollgate_metrics::parse`), so a sample's timestamp is not taken for its value and a malformed line is
    /// skipped, not half read. Values that are not finite are skipped too.
    pub fn parse(metrics: &str) -> Self {
        let mut load = Self::default();
        for s in tollgate_metrics::parse::samples(metrics).filter(|s| s.value.is_finite()) {
            match s.name {
                "vllm:num_requests_waiting" => load.waiting += s.value.max(0.0),
                "vllm:kv_cache_usage_perc" => {
                    load.kv_cache = load.kv_cache.max(s.value.clamp(0.0, 1.0))
                }
                _ => {}
            }
        }
        load
    }

    /// The extra load replica choice adds: one per waiting request, and up to 4 more as the KV cache goes from
    /// 80% to full (new sequences there wait for cache, or preempt others).
    pub fn penalty(self) -> u64 {
        let kv = ((self.kv_cache - 0.8).max(0.0) / 0.2 * 4.0).round();
        (self.waiting.round() + kv).min(1_000_000.0) as u64
    }
}

/// The longest context an engine's `/v1/models` answer says it serves: the least `max_model_len` of its models
/// (adapters name none). None when no model names one, or the answer is not a model list.
pub fn served_context(models: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct List {
        data: Vec<Card>,
    }
    #[derive(serde::Deserialize)]
    struct Card {
        #[serde(default)]
        max_model_len: Option<u64>,
    }
    let list: List = serde_json::from_slice(models).ok()?;
    list.data
        .iter()
        .filter_map(|c| c.max_model_len)
        .filter(|&n| n > 0)
        .min()
}

impl Gateway {
    /// Polls every replica's `/metrics` every `interval` until the returned task is aborted.
    pub fn spawn_engine_load_poller(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let gw = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // All at once: an engine that hangs must not delay the others' probes.
                let mut probes = tokio::task::JoinSet::new();
                for replica in gw.inner.registry.replicas() {
                    let gw = gw.clone();
                    probes.spawn(async move { gw.probe(&replica, interval).await });
                }
                while probes.join_next().await.is_some() {}
            }
        })
    }

    /// Reads one replica's load from its engine, which is also its health probe.
    async fn probe(&self, replica: &Replica, interval: Duration) {
        replica.pool().sweep(self.inner.config.pool_idle_timeout);
        let load = self.engine_load(replica, interval).await;
        if let Some(load) = load {
            replica.set_reported_load(load.penalty());
        }
        let (before, after) = replica.probed(load.is_some());
        // What context the engine serves, read once it answers (again: a restarted engine may serve another).
        if after == Health::Ready && (before != Health::Ready || replica.context_limit() == 0) {
            if let Some(tokens) = self.engine_context(replica, interval).await {
                replica.set_context_limit(tokens);
            }
        }
        match (before, after) {
            (Health::Ready, Health::Down) => {
                tracing::warn!(replica = %replica.base, "engine stopped answering; not routing to it while another does")
            }
            (Health::Starting | Health::Down, Health::Ready) => {
                tracing::info!(replica = %replica.base, "engine ready");
                // Requests held for this model look again now.
                self.inner
                    .route_swaps
                    .send_modify(|n| *n = n.wrapping_add(1));
            }
            (Health::Unprobed, Health::Starting) => {
                tracing::info!(replica = %replica.base, "engine not answering yet; waiting for it to start")
            }
            _ => {}
        }
    }

    /// The engine's `max_model_len` from its `/v1/models` (vLLM's, SGLang's and the simulator's model cards);
    /// None when it names none or does not answer.
    async fn engine_context(&self, replica: &Replica, timeout: Duration) -> Option<u64> {
        let fetch = async {
            let resp = replica.get("/v1/models", &self.inner.config).await.ok()?;
            if !resp.status.is_success() {
                return None;
            }
            let body = Limited::new(resp.body, 4 << 20)
                .collect()
                .await
                .ok()?
                .to_bytes();
            served_context(&body)
        };
        tokio::time::timeout(timeout, fetch).await.ok().flatten()
    }

    async fn engine_load(&self, replica: &Replica, timeout: Duration) -> Option<EngineLoad> {
        let fetch = async {
            let resp = replica.get("/metrics", &self.inner.config).await.ok()?;
            if !resp.status.is_success() {
                // An engine without metrics (llama.cpp's server without --metrics, an API behind a proxy) is
                // healthy while `/health` answers; its load beyond this gateway's own requests is unknown.
                drop(resp);
                let health = replica.get("/health", &self.inner.config).await.ok()?;
                return health.status.is_success().then(EngineLoad::default);
            }
            let body = Limited::new(resp.body, 4 << 20)
                .collect()
                .await
                .ok()?
                .to_bytes();
            Some(EngineLoad::parse(std::str::from_utf8(&body).ok()?))
        };
        tokio::time::timeout(timeout, fetch).await.ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::{served_context, EngineLoad};

    #[test]
    fn the_served_context_is_read_from_the_model_list() {
        let vllm = br#"{"object":"list","data":[
            {"id":"m","object":"model","root":"org/m","parent":null,"max_model_len":4096,"permission":[]},
            {"id":"adapter","object":"model","root":"/a","parent":"m","max_model_len":null,"permission":[]}]}"#;
        assert_eq!(served_context(vllm), Some(4096));
        assert_eq!(
            served_context(br#"{"data":[{"max_model_len":8192},{"max_model_len":2048}]}"#),
            Some(2048)
        );
        // A server whose cards name no length (llama.cpp's, a hosted API), or not a list at all.
        assert_eq!(served_context(br#"{"data":[{"id":"m"}]}"#), None);
        assert_eq!(served_context(br#"{"data":[{"max_model_len":0}]}"#), None);
        assert_eq!(served_context(b"<html>"), None);
        assert_eq!(served_context(br#"{"data":[{"max_model_len":-1}]}"#), None);
    }

    const VLLM: &str = r#"# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="0",model_name="m"} 64.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.9
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.9
"#;

    #[test]
    fn reads_vllm_gauges() {
        let l = EngineLoad::parse(VLLM);
        assert_eq!(
            l,
            EngineLoad {
                waiting: 3.0,
                kv_cache: 0.9
            }
        );
        assert_eq!(l.penalty(), 3 + 2);
    }

    #[test]
    fn an_idle_engine_adds_nothing_and_garbage_is_ignored() {
        assert_eq!(
            EngineLoad::parse("vllm:num_requests_waiting{} 0\nvllm:kv_cache_usage_perc 0.3\n")
                .penalty(),
            0
        );
        for junk in [
            "",
            "vllm:num_requests_waiting NaN",
            "vllm:num_requests_waiting -5",
            "{{{",
            "vllm:kv_cache_usage_perc 7",
        ] {
            assert!(EngineLoad::parse(junk).penalty() <= 4, "{junk}");
        }
    }

    #[test]
    fn a_timestamp_is_not_read_as_the_value() {
        // Before the parser, the last token was the value: here a timestamp, millions of waiting requests.
        let l = EngineLoad::parse(
            "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 2 1712345678901\n\
             vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.5 1712345678901\n",
        );
        assert_eq!(
            l,
            EngineLoad {
                waiting: 2.0,
                kv_cache: 0.5
            }
        );
    }

    #[test]
    fn label_values_with_spaces_braces_and_quotes_are_read() {
        let l = EngineLoad::parse(concat!(
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n",
            "# TYPE vllm:num_requests_waiting gauge\n",
            "\n",
            "vllm:num_requests_waiting{model_name=\"my } \\\"model\\\", v2\",engine=\"0\"} 4.0\n",
            "vllm:num_requests_waiting{model_name=\"other\",engine=\"1\"} 1.0\n",
            "vllm:num_requests_waiting{model_name=\"broken} 9.0\n",
            "vllm:num_requests_waiting{model_name=\"x\"} NaN\n",
            "vllm:kv_cache_usage_perc{model_name=\"x\"} +Inf\n",
        ));
        assert_eq!(
            l,
            EngineLoad {
                waiting: 5.0,
                kv_cache: 0.0
            }
        );
    }
}
