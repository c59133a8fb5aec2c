//! `POST /v1/responses`: OpenAI's Responses API, as vLLM serves it. `input` (a string or items: messages, function
//! calls and their outputs) and `instructions` become a chat plan, so answers, tool calls and latency are the chat
//! endpoint's; `text.format` with a JSON schema gives structured output. The answer is a `response` with `message`
//! or `function_call` output items and `usage` (`input_tokens`, `output_tokens`), or the event stream
//! `response.created` … `response.output_text.delta` (or `response.function_call_arguments.delta`) …
//! `response.completed`, each event with its `sequence_number`.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::generator::{Completion, FinishReason};
use crate::openai::events::{self, event, Events};
use crate::openai::output::{json_schema, tool_with, Choice, Rules, Shape};
use crate::openai::plan::{self, Plan, Prompt};
use crate::openai::run::Run;
use crate::openai::types::{parse_body, Sampling};
use crate::openai::wire::now_unix;
use crate::rng::random_uuid_hex;
use crate::state::SharedState;

#[derive(Debug, Deserialize)]
struct ResponsesRequest {
    model: Option<String>,
    input: Value,
    instructions: Option<String>,
    max_output_tokens: Option<i64>,
    stream: Option<bool>,
    temperature: Option<f64>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    text: Option<Value>,
}

/// The text of an item's `content`: a string or parts with `text`.
fn content_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// (role, text) of an input item.
fn item(v: &Value) -> (String, String) {
    match v.get("type").and_then(Value::as_str) {
        Some("function_call") => (
            "assistant".into(),
            v.get("arguments")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        Some("function_call_output") => (
            "tool".into(),
            match v.get("output") {
                Some(Value::String(s)) => s.clone(),
                other => content_text(other),
            },
        ),
        _ => (
            v.get("role")
                .and_then(Value::as_str)
                .unwrap_or("user")
                .to_string(),
            content_text(v.get("content")),
        ),
    }
}

fn rules(req: &ResponsesRequest, user_waits: bool) -> Result<Rules, ApiError> {
    let tools = req
        .tools
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|t| t.get("type").and_then(Value::as_str).unwrap_or("function") == "function")
        .map(|t| tool_with(t, "parameters"))
        .collect::<Result<Vec<_>, _>>()?;
    let choice = match &req.tool_choice {
        None | Some(Value::Null) if tools.is_empty() => Choice::None,
        None | Some(Value::Null) => Choice::Auto,
        Some(Value::String(s)) if s == "none" => Choice::None,
        Some(Value::String(s)) if s == "required" => Choice::Required,
        Some(Value::String(_)) => Choice::Auto,
        Some(v) => Choice::Named(
            v.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
    };
    let format = match req.text.as_ref().and_then(|t| t.get("format")) {
        Some(f) => match f.get("type").and_then(Value::as_str) {
            Some("json_schema") => Shape::Json(f.get("schema").and_then(json_schema)),
            Some("json_object") => Shape::Json(None),
            _ => Shape::Text,
        },
        None => Shape::Text,
    };
    Rules::new(tools, choice, format, user_waits)
}

/// `POST /v1/responses`.
pub async fn responses(State(state): State<SharedState>, body: Bytes) -> Response {
    let plan = (|| {
        let req: ResponsesRequest = parse_body(&body)?;
        let model = state.resolve_model(req.model.as_deref())?;
        let items: Vec<(String, String)> = match &req.input {
            Value::String(s) => vec![("user".into(), s.clone())],
            Value::Array(items) => items.iter().map(item).collect(),
            _ => {
                return Err(ApiError::bad_request(
                    "input must be a string or a list of items.",
                    Some("input"),
                ))
            }
        };
        let user_waits = items.last().is_some_and(|(role, _)| role == "user");
        let rules = rules(&req, user_waits)?;
        let text = plan::render_turns(
            req.tools.as_deref(),
            req.instructions.as_deref(),
            items.iter().map(|(r, t)| (r.as_str(), t.as_str())),
        );
        let sampling = Sampling {
            model: req.model.clone(),
            temperature: req.temperature,
            stream: req.stream,
            ..Sampling::default()
        };
        plan::build(
            &state,
            model,
            vec![Prompt::new(text)],
            sampling,
            req.max_output_tokens,
            Some(&rules),
        )
    })();
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => return e.into_response(),
    };
    if plan.faults.fail {
        return ApiError::internal(
            "Simulated engine failure (tollgate-sim fault injection: error_rate).",
        )
        .into_response();
    }
    let ids = Ids {
        response: format!("resp_{}", random_uuid_hex()),
        item: format!("msg_{}", random_uuid_hex()),
        created: now_unix(),
    };
    let mut run = Run::new(state, plan);
    if run.plan.stream {
        return events::stream(run, ResponseEvents { ids, seq: 0 });
    }
    if !run.run_to_end().await {
        return ApiError::internal("tollgate-sim fault injection: connection cut").into_response();
    }
    Json(response(&ids, &run.plan, true)).into_response()
}

struct Ids {
    response: String,
    item: String,
    created: u64,
}

fn output_item(ids: &Ids, c: &Completion, done: bool) -> Value {
    let status = if done { "completed" } else { "in_progress" };
    match &c.tool_call {
        Some(call) => json!({
            "type": "function_call", "id": format!("fc_{}", &ids.item[4..]), "call_id": call.id,
            "name": call.name, "arguments": if done { c.text.as_str() } else { "" }, "status": status
        }),
        None => json!({
            "type": "message", "id": ids.item, "status": status, "role": "assistant",
            "content": if done { json!([text_part(&c.text)]) } else { json!([]) }
        }),
    }
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// The whole response object; `done`: as it ends (else as it starts, with no output or usage yet).
fn response(ids: &Ids, plan: &Plan, done: bool) -> Value {
    let cut = plan
        .choices
        .first()
        .is_some_and(|c| c.finish_reason == FinishReason::Length);
    let (status, incomplete) = match (done, cut) {
        (false, _) => ("in_progress", Value::Null),
        (true, true) => ("incomplete", json!({"reason": "max_output_tokens"})),
        (true, false) => ("completed", Value::Null),
    };
    let output: Vec<Value> = if done {
        plan.choices
            .first()
            .map(|c| output_item(ids, c, true))
            .into_iter()
            .collect()
    } else {
        Vec::new()
    };
    let usage = if done {
        let (i, o) = (plan.prompt_tokens, plan.completion_tokens());
        json!({"input_tokens": i, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": o,
               "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": u64::from(i) + u64::from(o)})
    } else {
        Value::Null
    };
    json!({
        "id": ids.response, "object": "response", "created_at": ids.created, "status": status,
        "error": null, "incomplete_details": incomplete, "instructions": null, "max_output_tokens": plan.max_tokens,
        "model": plan.model.response_name, "output": output, "parallel_tool_calls": true, "temperature": 1.0,
        "tool_choice": "auto", "tools": [], "top_p": 1.0, "usage": usage, "metadata": {}
    })
}

struct ResponseEvents {
    ids: Ids,
    seq: u64,
}

impl ResponseEvents {
    fn send(&mut self, out: &mut String, name: &str, mut data: Value) {
        data["type"] = json!(name);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        event(out, name, &data);
    }
}

impl Events for ResponseEvents {
    fn open(&mut self, plan: &Plan, out: &mut String) {
        let r = response(&self.ids, plan, false);
        self.send(out, "response.created", json!({"response": r}));
        self.send(out, "response.in_progress", json!({"response": r}));
        let Some(c) = plan.choices.first() else {
            return;
        };
        let item = output_item(&self.ids, c, false);
        self.send(
            out,
            "response.output_item.added",
            json!({"output_index": 0, "item": item}),
        );
        if c.tool_call.is_none() {
            self.send(
                out,
                "response.content_part.added",
                json!({"item_id": self.ids.item, "output_index": 0,
                "content_index": 0, "part": text_part("")}),
            );
        }
    }

    fn token(&mut self, plan: &Plan, step: usize, out: &mut String) {
        let Some(c) = plan.choices.first() else {
            return;
        };
        let delta = c.token_text(step);
        match c.tool_call {
            Some(_) => {
                let id = format!("fc_{}", &self.ids.item[4..]);
                self.send(
                    out,
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": 0, "delta": delta}),
                );
            }
            None => {
                let id = self.ids.item.clone();
                self.send(
                    out,
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": 0,
                    "content_index": 0, "delta": delta, "logprobs": []}),
                );
            }
        }
    }

    fn close(&mut self, plan: &Plan, out: &mut String) {
        if let Some(c) = plan.choices.first() {
            let item = output_item(&self.ids, c, true);
            match c.tool_call {
                Some(_) => {
                    let id = format!("fc_{}", &self.ids.item[4..]);
                    self.send(
                        out,
                        "response.function_call_arguments.done",
                        json!({"item_id": id, "output_index": 0, "arguments": c.text}),
                    );
                }
                None => {
                    let id = self.ids.item.clone();
                    self.send(
                        out,
                        "response.output_text.done",
                        json!({"item_id": id, "output_index": 0,
                        "content_index": 0, "text": c.text, "logprobs": []}),
                    );
                    self.send(
                        out,
                        "response.content_part.done",
                        json!({"item_id": id, "output_index": 0,
                        "content_index": 0, "part": text_part(&c.text)}),
                    );
                }
            }
            self.send(
                out,
                "response.output_item.done",
                json!({"output_index": 0, "item": item}),
            );
        }
        let r = response(&self.ids, plan, true);
        let name = if r["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.send(out, name, json!({"response": r}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_items_read_as_turns() {
        assert_eq!(
            item(&json!({"role": "user", "content": "hi"})),
            ("user".into(), "hi".into())
        );
        assert_eq!(
            item(
                &json!({"type": "message", "role": "system", "content": [{"type": "input_text", "text": "be"}]})
            ),
            ("system".into(), "be".into())
        );
        assert_eq!(
            item(&json!({"type": "function_call_output", "call_id": "c", "output": "4 degrees"})),
            ("tool".into(), "4 degrees".into())
        );
        assert_eq!(
            item(&json!({"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}))
                .0,
            "assistant"
        );
    }
}
