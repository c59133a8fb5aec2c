//! The LoRA adapter registry behind `/v1/load_lora_adapter` and `/v1/unload_lora_adapter`.
//!
//! Messages, error types and status codes follow vLLM's `OpenAIServingModels`. Nothing is
//! read from `lora_path`: any path "loads".

use std::sync::RwLock;

use crate::error::ApiError;

/// One loaded adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoraAdapter {
    /// Name clients use as `model`.
    pub name: String,
    /// Path it was loaded from (the `root` in `/v1/models`).
    pub path: String,
    /// The base model it applies to (the `parent`).
    pub base_model_name: String,
    /// vLLM's integer id (1, 2, ... in load order).
    pub int_id: u32,
}

#[derive(Debug, Default)]
struct Inner {
    adapters: Vec<LoraAdapter>,
    next_id: u32,
}

/// Loaded adapters, in load order.
#[derive(Debug)]
pub struct LoraRegistry {
    enabled: bool,
    base_model_name: String,
    inner: RwLock<Inner>,
}

impl LoraRegistry {
    /// An empty registry; `enabled` mirrors `--enable-lora`.
    pub fn new(enabled: bool, base_model_name: impl Into<String>) -> Self {
        Self {
            enabled,
            base_model_name: base_model_name.into(),
            inner: RwLock::new(Inner::default()),
        }
    }

    /// Whether `--enable-lora` was given.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Loads (or, with `load_inplace`, reloads) an adapter; returns vLLM's success text.
    pub fn load(&self, name: &str, path: &str, load_inplace: bool) -> Result<String, ApiError> {
        if name.is_empty() || path.is_empty() {
            return Err(ApiError::invalid_user_input(
                "Both 'lora_name' and 'lora_path' must be provided.",
            ));
        }
        if !self.enabled {
            return Err(ApiError::bad_request(
                "LoRA is not enabled. Please start the server with --enable-lora to load adapters.",
                None,
            ));
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = inner.adapters.iter_mut().find(|a| a.name == name) {
            if !load_inplace {
                return Err(ApiError::invalid_user_input(format!(
                    "The lora adapter '{name}' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True."
                )));
            }
            existing.path = path.to_string();
        } else {
            inner.next_id += 1;
            let int_id = inner.next_id;
            inner.adapters.push(LoraAdapter {
                name: name.to_string(),
                path: path.to_string(),
                base_model_name: self.base_model_name.clone(),
                int_id,
            });
        }
        Ok(format!(
            "Success: LoRA adapter '{name}' added successfully."
        ))
    }

    /// Unloads an adapter; returns vLLM's success text.
    pub fn unload(&self, name: &str) -> Result<String, ApiError> {
        if name.is_empty() {
            return Err(ApiError::invalid_user_input(
                "'lora_name' needs to be provided to unload a LoRA adapter.",
            ));
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let Some(pos) = inner.adapters.iter().position(|a| a.name == name) else {
            return Err(ApiError::not_found(
                format!("The lora adapter '{name}' cannot be found."),
                None,
            ));
        };
        inner.adapters.remove(pos);
        Ok(format!(
            "Success: LoRA adapter '{name}' removed successfully."
        ))
    }

    /// The adapter called `name`, if loaded.
    pub fn get(&self, name: &str) -> Option<LoraAdapter> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .adapters
            .iter()
            .find(|a| a.name == name)
            .cloned()
    }

    /// All loaded adapters.
    pub fn list(&self) -> Vec<LoraAdapter> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .adapters
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn load_list_unload() {
        let r = LoraRegistry::new(true, "base");
        assert_eq!(
            r.load("sql", "/loras/sql", false).ok().as_deref(),
            Some("Success: LoRA adapter 'sql' added successfully.")
        );
        let a = r.get("sql").expect("loaded");
        assert_eq!((a.base_model_name.as_str(), a.int_id), ("base", 1));
        assert_eq!(
            r.load("sql", "/x", false).err().map(|e| e.status),
            Some(StatusCode::BAD_REQUEST)
        );
        assert!(r.load("sql", "/y", true).is_ok());
        assert_eq!(r.get("sql").map(|a| a.path), Some("/y".to_string()));
        assert_eq!(r.list().len(), 1);
        assert!(r.unload("sql").is_ok());
        assert_eq!(
            r.unload("sql").err().map(|e| e.status),
            Some(StatusCode::NOT_FOUND)
        );
        assert!(r.get("sql").is_none());
    }

    #[test]
    fn disabled_registry_refuses() {
        let r = LoraRegistry::new(false, "base");
        assert_eq!(
            r.load("a", "/a", false).err().map(|e| e.status),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            r.load("", "/a", false).err().map(|e| e.status),
            Some(StatusCode::BAD_REQUEST)
        );
    }
}
