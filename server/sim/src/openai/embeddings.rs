//! `POST /v1/embeddings`: deterministic unit vectors.
//!
//! Each input's vector is drawn from a generator seeded by the input text, then scaled to
//! unit length, so equal inputs give equal vectors. `encoding_format: "base64"` (what the
//! `openai` Python client asks for by default) returns little-endian f32 bytes in base64.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::generator::prompt_hash;
use crate::openai::types::{parse_body, EmbeddingRequest};
use crate::openai::wire::now_unix;
use crate::rng::{random_uuid_hex, SplitMix64};
use crate::state::SharedState;
use crate::tokenizer;

/// A deterministic unit vector for `text`.
pub fn embed(text: &str, dim: usize) -> Vec<f32> {
    let mut rng = SplitMix64::new(prompt_hash(text) ^ 0xE3B0_C442_98FC_1C14);
    let mut v: Vec<f32> = (0..dim)
        .map(|_| (rng.unit_f64() * 2.0 - 1.0) as f32)
        .collect();
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
    v
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// What a pooling request (embeddings, rerank, score) does on the engine: fails when a fault says so, else waits
/// the prefill time of its `tokens` and counts them; nothing is decoded.
pub(crate) async fn read_prompt(state: &SharedState, tokens: u64) -> Result<(), ApiError> {
    if state.faults.plan().fail {
        return Err(ApiError::internal(
            "Simulated engine failure (tollgate-sim fault injection: error_rate).",
        ));
    }
    let prefill = state.engine.latency().prefill(tokens);
    if !prefill.is_zero() {
        tokio::time::sleep(prefill).await;
    }
    state
        .metrics
        .prompt_tokens
        .fetch_add(tokens, Ordering::Relaxed);
    Ok(())
}

/// The handler.
pub async fn embeddings(State(state): State<SharedState>, body: Bytes) -> Response {
    match run(&state, &body).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn run(state: &SharedState, body: &[u8]) -> Result<Value, ApiError> {
    let req: EmbeddingRequest = parse_body(body)?;
    let model = state.resolve_model(req.model.as_deref())?;
    let base64_out = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                format!("Unsupported encoding_format: {other}"),
                Some("encoding_format"),
            ));
        }
    };
    let dim = match req.dimensions {
        None => state.config.embedding_dim,
        Some(d) if d >= 1 && (d as usize) <= state.config.embedding_dim => d as usize,
        Some(d) => {
            return Err(ApiError::bad_request(
                format!(
                    "dimensions must be between 1 and {}, got {d}.",
                    state.config.embedding_dim
                ),
                Some("dimensions"),
            ));
        }
    };
    let texts = req.input.into_texts();
    let mut prompt_tokens: u64 = 0;
    for t in &texts {
        let n = tokenizer::count(t) as u64;
        if n > u64::from(state.config.max_model_len) {
            return Err(ApiError::bad_request(
                format!(
                    "This model's maximum context length is {} tokens. However, you requested {n} tokens in the input for \
                     embedding generation. Please reduce the length of the input.",
                    state.config.max_model_len
                ),
                Some("input"),
            ));
        }
        prompt_tokens += n;
    }
    read_prompt(state, prompt_tokens).await?;
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = embed(t, dim);
            let embedding = if base64_out {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64(&bytes))
            } else {
                json!(v)
            };
            json!({"index": i, "object": "embedding", "embedding": embedding})
        })
        .collect();
    Ok(json!({
        "id": format!("embd-{}", random_uuid_hex()),
        "object": "list",
        "created": now_unix(),
        "model": model.response_name,
        "data": data,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens, "completion_tokens": 0, "prompt_tokens_details": null}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_and_deterministic() {
        let a = embed("hello", 384);
        assert_eq!(a.len(), 384);
        let norm: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert_eq!(a, embed("hello", 384));
        assert_ne!(a, embed("world", 384));
    }

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
