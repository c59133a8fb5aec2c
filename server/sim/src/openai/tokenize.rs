//! `POST /tokenize` and `POST /detokenize` with the simulator's tokenizer
//! (see `tokenizer.rs` for the rule).

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::openai::plan::render_chat;
use crate::openai::types::{parse_body, DetokenizeRequest, TokenizeRequest};
use crate::state::SharedState;
use crate::tokenizer;

/// Tokenizes a prompt or chat messages (rendered with the chat template).
pub async fn tokenize(State(state): State<SharedState>, body: Bytes) -> Response {
    let result = (|| {
        let req: TokenizeRequest = parse_body(&body)?;
        state.resolve_model(req.model.as_deref())?;
        let text = match (&req.prompt, &req.messages) {
            (Some(p), _) => p.clone(),
            (None, Some(m)) => render_chat(m),
            (None, None) => {
                return Err(ApiError::invalid_body(
                    "Either 'prompt' or 'messages' must be provided.",
                ))
            }
        };
        let tokens = tokenizer::encode(&text);
        let token_strs = req
            .return_token_strs
            .then(|| tokenizer::tokens(&text).collect::<Vec<_>>());
        Ok(json!({
            "count": tokens.len(), "max_model_len": state.config.max_model_len, "tokens": tokens, "token_strs": token_strs
        }))
    })();
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Turns token ids back into text.
pub async fn detokenize(State(state): State<SharedState>, body: Bytes) -> Response {
    let result = parse_body::<DetokenizeRequest>(&body).and_then(|req| {
        state.resolve_model(req.model.as_deref())?;
        Ok(json!({"prompt": tokenizer::decode(&req.tokens)}))
    });
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
