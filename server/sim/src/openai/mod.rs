//! The OpenAI-compatible API, wire-compatible with vLLM's server.

pub mod chat;
pub mod embeddings;
pub mod events;
pub mod messages;
pub mod models;
pub mod output;
pub mod plan;
pub mod respond;
pub mod responses;
pub mod run;
pub mod score;
pub mod tokenize;
pub mod types;
pub mod wire;
