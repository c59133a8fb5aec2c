//! The simulator's settings as plain data.
//!
//! `cli.rs` fills this from flags and environment variables; tests and other crates
//! that embed the simulator build it directly (`SimConfig::new("m").zero_latency()`).

use std::time::Duration;

use crate::faults::FaultSettings;
use crate::latency::LatencyModel;

/// The vLLM version the simulator reports on `GET /version`.
pub const VLLM_COMPAT_VERSION: &str = "0.11.0";

/// Everything the simulator needs to run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The model path or Hugging Face id (vLLM's positional `MODEL`); the `root` in `/v1/models`.
    pub model: String,
    /// Names the model answers to; the first one is used in responses and metric labels.
    pub served_model_names: Vec<String>,
    /// Context window: prompt plus output tokens must fit in it.
    pub max_model_len: u32,
    /// At most this many sequences run at once; the rest wait.
    pub max_num_seqs: u32,
    /// Accepted for vLLM compatibility; only reported.
    pub tensor_parallel_size: u32,
    /// Whether LoRA adapters may be loaded.
    pub enable_lora: bool,
    /// Reported as `max_lora` in `vllm:lora_requests_info`.
    pub max_loras: u32,
    /// Adapters loaded at start-up: (name, path).
    pub lora_modules: Vec<(String, String)>,
    /// If set, `/v1/*` requires `Authorization: Bearer <key>` (as `vllm serve --api-key`).
    pub api_key: Option<String>,
    /// Prefill and decode speed.
    pub latency: LatencyModel,
    /// KV-cache capacity in tokens.
    pub kv_cache_tokens: u64,
    /// Automatic prefix caching (`prefix_cache.rs`); on by default, as in vLLM V1.
    pub prefix_caching: bool,
    /// Simulated model-load time before `/health` answers 200.
    pub load_time: Duration,
    /// Dimension of `/v1/embeddings` vectors.
    pub embedding_dim: usize,
    /// Natural output length range (the "model" ends its answer after a sentence once
    /// it has produced at least a length drawn from this range).
    pub min_output_tokens: u32,
    /// Upper end of the natural output length range.
    pub max_output_tokens: u32,
    /// Faults active from the start.
    pub faults: FaultSettings,
    /// If set, the process exits with status 1 this long after start-up (a crash).
    pub exit_after: Option<Duration>,
}

impl SimConfig {
    /// Defaults that look like a small model on one GPU.
    pub fn new(model: impl Into<String>) -> Self {
        let model = model.into();
        Self {
            served_model_names: vec![model.clone()],
            model,
            max_model_len: 2048,
            max_num_seqs: 256,
            tensor_parallel_size: 1,
            enable_lora: false,
            max_loras: 1,
            lora_modules: Vec::new(),
            api_key: None,
            latency: LatencyModel::default(),
            kv_cache_tokens: 131_072,
            prefix_caching: true,
            load_time: Duration::ZERO,
            embedding_dim: 768,
            min_output_tokens: 16,
            max_output_tokens: 128,
            faults: FaultSettings::default(),
            exit_after: None,
        }
    }

    /// No simulated time at all: instant prefill, decode and load.
    pub fn zero_latency(mut self) -> Self {
        self.latency = LatencyModel::zero();
        self.load_time = Duration::ZERO;
        self
    }

    /// The name used in responses and metric labels.
    pub fn primary_name(&self) -> &str {
        self.served_model_names
            .first()
            .map(String::as_str)
            .unwrap_or(&self.model)
    }
}
