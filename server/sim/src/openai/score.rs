//! `POST /v1/rerank` (also `/rerank`, `/v2/rerank`) and `POST /v1/score` (also `/score`), vLLM's APIs for
//! reranker and cross-encoder models, enough of their wire format for clients and the gateway's metering.
//!
//! A pair's score is the share of the query's distinct tokens that the document holds (0 to 1), so a document
//! that repeats the query ranks first and the order is deterministic. Usage counts the tokens of every pair
//! (query plus document), as a cross-encoder reads them; rerank answers carry only `total_tokens`, as vLLM's do.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::openai::embeddings::read_prompt;
use crate::openai::types::parse_body;
use crate::openai::wire::now_unix;
use crate::rng::random_uuid_hex;
use crate::state::SharedState;
use crate::tokenizer;

/// `POST /v1/rerank`.
#[derive(Debug, Deserialize)]
struct RerankRequest {
    model: Option<String>,
    query: String,
    documents: Vec<Document>,
    /// Only the best `top_n` (0 or absent: all).
    #[serde(default)]
    top_n: Option<usize>,
    #[serde(default = "yes")]
    return_documents: bool,
}

fn yes() -> bool {
    true
}

/// A document as text, or as `{"text": ...}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Document {
    Text(String),
    Object { text: String },
}

impl Document {
    fn text(&self) -> &str {
        match self {
            Self::Text(t) | Self::Object { text: t } => t,
        }
    }
}

/// `POST /v1/score`: one `text_1` against one or more `text_2` (or pairwise lists of equal length).
#[derive(Debug, Deserialize)]
struct ScoreRequest {
    model: Option<String>,
    text_1: OneOrMany,
    text_2: OneOrMany,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// How much of `query`'s vocabulary `doc` holds, 0 to 1.
pub fn relevance(query: &str, doc: &str) -> f64 {
    let wanted: HashSet<&str> = tokenizer::tokens(query).map(str::trim).collect();
    if wanted.is_empty() {
        return 0.0;
    }
    let held: HashSet<&str> = tokenizer::tokens(doc).map(str::trim).collect();
    wanted.intersection(&held).count() as f64 / wanted.len() as f64
}

fn pair_tokens(a: &str, b: &str) -> u64 {
    (tokenizer::count(a) + tokenizer::count(b)) as u64
}

fn check_len(state: &SharedState, tokens: u64, param: &str) -> Result<(), ApiError> {
    let max = u64::from(state.config.max_model_len);
    if tokens > max {
        return Err(ApiError::bad_request(
            format!("This model's maximum context length is {max} tokens. However, a pair holds {tokens} tokens."),
            Some(param),
        ));
    }
    Ok(())
}

pub async fn rerank(State(state): State<SharedState>, body: Bytes) -> Response {
    match run_rerank(&state, &body).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn run_rerank(state: &SharedState, body: &[u8]) -> Result<Value, ApiError> {
    let req: RerankRequest = parse_body(body)?;
    let model = state.resolve_model(req.model.as_deref())?;
    let mut tokens = 0;
    for d in &req.documents {
        let n = pair_tokens(&req.query, d.text());
        check_len(state, n, "documents")?;
        tokens += n;
    }
    read_prompt(state, tokens).await?;
    let mut results: Vec<(usize, f64)> = req
        .documents
        .iter()
        .enumerate()
        .map(|(i, d)| (i, relevance(&req.query, d.text())))
        .collect();
    // Best first; equal scores keep the documents' order.
    results.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if let Some(n) = req.top_n.filter(|n| *n > 0) {
        results.truncate(n);
    }
    let results: Vec<Value> = results
        .into_iter()
        .map(|(i, score)| {
            let document = req
                .return_documents
                .then(|| json!({"text": req.documents[i].text()}));
            json!({"index": i, "document": document, "relevance_score": score})
        })
        .collect();
    Ok(json!({
        "id": format!("rerank-{}", random_uuid_hex()),
        "model": model.response_name,
        "usage": {"total_tokens": tokens},
        "results": results,
    }))
}

pub async fn score(State(state): State<SharedState>, body: Bytes) -> Response {
    match run_score(&state, &body).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn run_score(state: &SharedState, body: &[u8]) -> Result<Value, ApiError> {
    let req: ScoreRequest = parse_body(body)?;
    let model = state.resolve_model(req.model.as_deref())?;
    let (firsts, seconds) = (req.text_1.into_vec(), req.text_2.into_vec());
    let pairs: Vec<(&str, &str)> = match (firsts.len(), seconds.len()) {
        (1, _) => seconds
            .iter()
            .map(|b| (firsts[0].as_str(), b.as_str()))
            .collect(),
        (n, m) if n == m => firsts
            .iter()
            .zip(&seconds)
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect(),
        (n, m) => {
            return Err(ApiError::bad_request(
                format!(
                "text_1 ({n} texts) and text_2 ({m} texts) must have one text or the same number."
            ),
                Some("text_2"),
            ))
        }
    };
    let mut tokens = 0;
    for (a, b) in &pairs {
        let n = pair_tokens(a, b);
        check_len(state, n, "text_2")?;
        tokens += n;
    }
    read_prompt(state, tokens).await?;
    let data: Vec<Value> = pairs
        .iter()
        .enumerate()
        .map(|(i, (a, b))| json!({"index": i, "object": "score", "score": relevance(a, b)}))
        .collect();
    Ok(json!({
        "id": format!("score-{}", random_uuid_hex()),
        "object": "list",
        "created": now_unix(),
        "model": model.response_name,
        "data": data,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0, "prompt_tokens_details": null},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_holding_the_query_scores_highest() {
        let q = "fast gpu inference";
        assert_eq!(relevance(q, "fast gpu inference servers"), 1.0);
        let partial = relevance(q, "gpu prices");
        assert!(partial > 0.0 && partial < 1.0, "{partial}");
        assert_eq!(relevance(q, "a recipe for soup"), 0.0);
        assert_eq!(relevance("", "anything"), 0.0);
    }
}
