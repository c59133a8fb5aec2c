//! `POST /v1/messages`: Anthropic's Messages API, as vLLM serves it. The request becomes a chat plan (system
//! prompt, messages and their content blocks rendered with the chat template, tools counted as prompt), so answers,
//! tool calls and latency are the chat endpoint's; the answer is written in Anthropic's shapes: a `message` with
//! `text` and `tool_use` blocks, or the event stream `message_start`, `content_block_*`, `message_delta` (with the
//! output tokens) and `message_stop`. Errors use Anthropic's body `{"type": "error", "error": {"type", "message"}}`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::generator::{Completion, FinishReason};
use crate::openai::events::{self, event, Events};
use crate::openai::output::{tool_with, Choice, Rules, Shape};
use crate::openai::plan::{self, Plan, Prompt};
use crate::openai::run::Run;
use crate::openai::types::{parse_body, Sampling, StopParam};
use crate::rng::random_uuid_hex;
use crate::state::SharedState;

/// The request, as far as the simulator acts on it.
#[derive(Debug, Deserialize)]
struct MessagesRequest {
    model: Option<String>,
    max_tokens: Option<i64>,
    messages: Vec<Message>,
    system: Option<Value>,
    stop_sequences: Option<Vec<String>>,
    stream: Option<bool>,
    temperature: Option<f64>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    content: Value,
}

/// The text a content value holds: a string, or blocks (`text`, `tool_use` input, `tool_result` content).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => b
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                Some("tool_use") => b.get("input").map(Value::to_string).unwrap_or_default(),
                Some("tool_result") => b.get("content").map(text_of).unwrap_or_default(),
                _ => String::new(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn is_tool_result(m: &Message) -> bool {
    m.content.as_array().is_some_and(|blocks| {
        !blocks.is_empty()
            && blocks
                .iter()
                .all(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
    })
}

/// `POST /v1/messages`.
pub async fn messages(State(state): State<SharedState>, body: Bytes) -> Response {
    let plan = (|| {
        let req: MessagesRequest = parse_body(&body)?;
        let model = state.resolve_model(req.model.as_deref())?;
        let max_tokens = req
            .max_tokens
            .ok_or_else(|| ApiError::invalid_body("max_tokens: Field required"))?;
        let tools = req
            .tools
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|t| tool_with(t, "input_schema"))
            .collect::<Result<Vec<_>, _>>()?;
        let choice = match req
            .tool_choice
            .as_ref()
            .and_then(|c| c.get("type"))
            .and_then(Value::as_str)
        {
            None if tools.is_empty() => Choice::None,
            None | Some("auto") => Choice::Auto,
            Some("any") => Choice::Required,
            Some("none") => Choice::None,
            Some("tool") => Choice::Named(
                req.tool_choice
                    .as_ref()
                    .and_then(|c| c.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
            Some(other) => {
                return Err(ApiError::bad_request(
                    format!("tool_choice.type must be auto, any, tool or none, not '{other}'."),
                    Some("tool_choice"),
                ))
            }
        };
        let user_waits = req
            .messages
            .last()
            .is_some_and(|m| m.role == "user" && !is_tool_result(m));
        let rules = Rules::new(tools, choice, Shape::Text, user_waits)?;
        let system = req.system.as_ref().map(text_of);
        let turns: Vec<(String, String)> = req
            .messages
            .iter()
            .map(|m| (m.role.clone(), text_of(&m.content)))
            .collect();
        let text = plan::render_turns(
            req.tools.as_deref(),
            system.as_deref(),
            turns.iter().map(|(r, t)| (r.as_str(), t.as_str())),
        );
        let sampling = Sampling {
            model: req.model,
            stop: req.stop_sequences.map(StopParam::Many),
            temperature: req.temperature,
            stream: req.stream,
            ..Sampling::default()
        };
        plan::build(
            &state,
            model,
            vec![Prompt::new(text)],
            sampling,
            Some(max_tokens),
            Some(&rules),
        )
    })();
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => return anthropic_error(&e),
    };
    if plan.faults.fail {
        return anthropic_error(&ApiError::internal(
            "Simulated engine failure (tollgate-sim fault injection: error_rate).",
        ));
    }
    let id = format!("msg_{}", random_uuid_hex());
    let mut run = Run::new(state, plan);
    if run.plan.stream {
        return events::stream(run, MessageEvents { id });
    }
    if !run.run_to_end().await {
        return cut();
    }
    Json(message(&id, &run.plan)).into_response()
}

fn cut() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "connection cut").into_response()
}

/// Anthropic's error body, with its error type for the status.
pub fn anthropic_error(e: &ApiError) -> Response {
    let kind = match e.status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": e.message}});
    (e.status, Json(body)).into_response()
}

/// `end_turn`, `max_tokens`, `stop_sequence` or `tool_use`.
fn stop_reason(c: &Completion) -> &'static str {
    match (c.finish_reason, &c.tool_call, &c.stop_reason) {
        (FinishReason::Length, _, _) => "max_tokens",
        (_, Some(_), _) => "tool_use",
        (_, None, Some(_)) => "stop_sequence",
        _ => "end_turn",
    }
}

fn block(c: &Completion) -> Value {
    match &c.tool_call {
        Some(call) => {
            let input: Value = serde_json::from_str(&c.text).unwrap_or_else(|_| json!({}));
            json!({"type": "tool_use", "id": tool_use_id(&call.id), "name": call.name, "input": input})
        }
        None => json!({"type": "text", "text": c.text}),
    }
}

/// `toolu_…`: Anthropic's spelling of a tool call's id.
fn tool_use_id(id: &str) -> String {
    format!("toolu_{}", id.rsplit('-').next().unwrap_or(id))
}

fn message(id: &str, plan: &Plan) -> Value {
    let (content, stop, stop_sequence) = match plan.choices.first() {
        Some(c) => (vec![block(c)], stop_reason(c), c.stop_reason.clone()),
        None => (Vec::new(), "end_turn", None),
    };
    json!({
        "id": id, "type": "message", "role": "assistant", "model": plan.model.response_name,
        "content": content, "stop_reason": stop, "stop_sequence": stop_sequence,
        "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": plan.completion_tokens()}
    })
}

struct MessageEvents {
    id: String,
}

impl Events for MessageEvents {
    fn open(&mut self, plan: &Plan, out: &mut String) {
        let start = json!({"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": plan.model.response_name,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": 0}
        }});
        event(out, "message_start", &start);
        let block = match plan.choices.first().and_then(|c| c.tool_call.as_ref()) {
            Some(call) => {
                json!({"type": "tool_use", "id": tool_use_id(&call.id), "name": call.name, "input": {}})
            }
            None => json!({"type": "text", "text": ""}),
        };
        event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": block}),
        );
        event(out, "ping", &json!({"type": "ping"}));
    }

    fn token(&mut self, plan: &Plan, step: usize, out: &mut String) {
        let Some(c) = plan.choices.first() else {
            return;
        };
        let piece = c.token_text(step);
        let delta = match c.tool_call {
            Some(_) => json!({"type": "input_json_delta", "partial_json": piece}),
            None => json!({"type": "text_delta", "text": piece}),
        };
        event(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        );
    }

    fn close(&mut self, plan: &Plan, out: &mut String) {
        event(
            out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        );
        let (stop, sequence) = plan.choices.first().map_or(("end_turn", None), |c| {
            (stop_reason(c), c.stop_reason.clone())
        });
        event(
            out,
            "message_delta",
            &json!({"type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": sequence},
            "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": plan.completion_tokens()}}),
        );
        event(out, "message_stop", &json!({"type": "message_stop"}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_blocks_read_as_text() {
        let v = json!([{"type": "text", "text": "a"}, {"type": "tool_result", "tool_use_id": "t",
                        "content": [{"type": "text", "text": "b"}]}, {"type": "image"}]);
        assert_eq!(text_of(&v), "a\nb\n");
        assert!(is_tool_result(&Message {
            role: "user".into(),
            content: json!([{"type": "tool_result"}])
        }));
        assert!(!is_tool_result(&Message {
            role: "user".into(),
            content: json!("hi")
        }));
    }

    #[test]
    fn stop_reasons() {
        let mut c = Completion::of_text("x".into(), 5, FinishReason::Stop);
        assert_eq!(stop_reason(&c), "end_turn");
        c.stop_reason = Some("END".into());
        assert_eq!(stop_reason(&c), "stop_sequence");
        let cut = Completion::of_text("one two three".into(), 1, FinishReason::Stop);
        assert_eq!(stop_reason(&cut), "max_tokens");
        assert_eq!(tool_use_id("chatcmpl-tool-abc"), "toolu_abc");
    }
}
