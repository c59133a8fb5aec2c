//! Shared state of one simulator instance and model-name resolution.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::SimConfig;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::faults::Faults;
use crate::lora::LoraRegistry;
use crate::metrics::Metrics;

/// Everything the handlers share.
pub struct AppState {
    /// The settings it was started with.
    pub config: SimConfig,
    /// The scheduler model.
    pub engine: Arc<Engine>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Live fault settings.
    pub faults: Faults,
    /// Loaded LoRA adapters.
    pub lora: LoraRegistry,
    /// Prompt blocks kept for reuse (empty and unused when prefix caching is off).
    pub prefix_cache: crate::prefix_cache::PrefixCache,
    ready: AtomicBool,
    /// Set by the exit fault: the status the simulated engine "crashes" with. `serve` returns it; the binary
    /// exits with it, an embedding (the fleet's simulator driver) sees its engine end.
    exit: tokio::sync::watch::Sender<Option<i32>>,
}

/// Shared handle to the state.
pub type SharedState = Arc<AppState>;

/// The model a request resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// The `model` written in responses: the primary served name, or the adapter's name.
    pub response_name: String,
    /// The adapter, when the request named one.
    pub lora: Option<String>,
}

impl AppState {
    /// State for `config`; ready at once unless a load time is configured.
    pub fn new(config: SimConfig) -> SharedState {
        let engine = Engine::new(config.max_num_seqs, config.kv_cache_tokens, config.latency);
        let metrics = Metrics::new(
            config.primary_name(),
            config.max_model_len,
            config.enable_lora,
        )
        .with_max_loras(config.max_loras.max(1));
        let lora = LoraRegistry::new(config.enable_lora, config.primary_name());
        for (name, path) in &config.lora_modules {
            // Static adapters are loaded before serving; a duplicate name just reloads.
            let _ = lora.load(name, path, true);
        }
        let faults = Faults::new(config.faults.clone());
        let ready = AtomicBool::new(config.load_time.is_zero());
        let prefix_cache = crate::prefix_cache::PrefixCache::new(if config.prefix_caching {
            config.kv_cache_tokens
        } else {
            0
        });
        Arc::new(Self {
            config,
            engine,
            metrics,
            faults,
            lora,
            prefix_cache,
            ready,
            exit: tokio::sync::watch::Sender::new(None),
        })
    }

    /// Ends the simulated engine with `code`: `serve` returns, and streams in progress are cut.
    pub fn exit(&self, code: i32) {
        self.exit.send_replace(Some(code));
    }

    /// Whether the engine has "crashed" (streams stop at their next token).
    pub fn exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Waits until the engine exits; returns its status.
    pub async fn exited_with(&self) -> i32 {
        let mut rx = self.exit.subscribe();
        loop {
            if let Some(code) = *rx.borrow_and_update() {
                return code;
            }
            if rx.changed().await.is_err() {
                return 1;
            }
        }
    }

    /// Whether the simulated model has finished loading.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Marks the model as loaded.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Resolves a request's `model` field as vLLM does: absent means the base model; a
    /// served name or a loaded adapter is accepted; anything else is 404.
    pub fn resolve_model(&self, requested: Option<&str>) -> Result<ResolvedModel, ApiError> {
        let base = || ResolvedModel {
            response_name: self.config.primary_name().to_string(),
            lora: None,
        };
        match requested {
            None | Some("") => Ok(base()),
            Some(name) if self.config.served_model_names.iter().any(|n| n == name) => Ok(base()),
            Some(name) => match self.lora.get(name) {
                Some(a) => Ok(ResolvedModel {
                    response_name: a.name.clone(),
                    lora: Some(a.name),
                }),
                None => Err(ApiError::model_not_found(name)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_base_aliases_and_adapters() {
        let mut c = SimConfig::new("facebook/opt-125m");
        c.served_model_names = vec!["opt".into(), "opt-alias".into()];
        c.enable_lora = true;
        c.lora_modules = vec![("sql".into(), "/loras/sql".into())];
        let s = AppState::new(c);
        assert_eq!(
            s.resolve_model(None)
                .map(|m| m.response_name)
                .ok()
                .as_deref(),
            Some("opt")
        );
        assert_eq!(
            s.resolve_model(Some("opt-alias"))
                .map(|m| m.response_name)
                .ok()
                .as_deref(),
            Some("opt")
        );
        assert_eq!(
            s.resolve_model(Some("sql"))
                .map(|m| m.lora)
                .ok()
                .flatten()
                .as_deref(),
            Some("sql")
        );
        assert_eq!(
            s.resolve_model(Some("facebook/opt-125m"))
                .err()
                .map(|e| e.status.as_u16()),
            Some(404)
        );
        assert!(s.is_ready());
    }
}
