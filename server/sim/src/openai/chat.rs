//! `POST /v1/chat/completions` and `POST /v1/completions`.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::openai::output::Rules;
use crate::openai::plan::{self, Prompt};
use crate::openai::respond::respond;
use crate::openai::types::{parse_body, ChatRequest, CompletionRequest};
use crate::openai::wire::Api;
use crate::state::SharedState;

/// Chat completions.
pub async fn chat_completions(State(state): State<SharedState>, body: Bytes) -> Response {
    let plan = (|| {
        let req: ChatRequest = parse_body(&body)?;
        let model = state.resolve_model(req.sampling.model.as_deref())?;
        let rules = Rules::of(&req)?;
        let mut text = plan::tools_header(req.tools.as_deref());
        text.push_str(&plan::render_chat(&req.messages));
        let max_tokens = req.max_completion_tokens.or(req.sampling.max_tokens);
        plan::build(
            &state,
            model,
            vec![Prompt::new(text)],
            req.sampling,
            max_tokens,
            Some(&rules),
        )
    })();
    match plan {
        Ok(plan) => respond(state, Api::Chat, plan).await,
        Err(e) => e.into_response(),
    }
}

/// Text completions.
pub async fn completions(State(state): State<SharedState>, body: Bytes) -> Response {
    let plan = (|| {
        let req: CompletionRequest = parse_body(&body)?;
        let model = state.resolve_model(req.sampling.model.as_deref())?;
        let prompts: Vec<Prompt> = req
            .prompt
            .into_texts()
            .into_iter()
            .map(Prompt::new)
            .collect();
        if prompts.is_empty() {
            return Err(ApiError::bad_request(
                "Prompt cannot be empty",
                Some("prompt"),
            ));
        }
        let max_tokens = req.sampling.max_tokens.or(Some(16));
        plan::build(&state, model, prompts, req.sampling, max_tokens, None)
    })();
    match plan {
        Ok(plan) => respond(state, Api::Completion, plan).await,
        Err(e) => e.into_response(),
    }
}
