//! The OpenAI-compatible API, wire-compatible with vLLM's server.

pub mod chat;
pub mod embeddings;
pub mod models;
pub mod plan;
pub mod respond;
pub mod run;
pub mod score;
pub mod tokenize;
pub mod types;
pub mod wire;
