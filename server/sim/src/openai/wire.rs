//! Response bodies of chat and completions, byte for byte in vLLM's shape.
//!
//! Streaming chunks are written by hand from a prefix computed once per request
//! (`data: {"id":…,"object":…,"created":…,"model":…,"choices":[`), so a token costs one
//! small buffer and no JSON tree. Field order and presence follow vLLM's pydantic models
//! serialised with `exclude_unset` (chunks) and in full (non-streaming responses).

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::generator::{Completion, ToolCall};
use crate::openai::plan::Plan;

/// Chat or text completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completion,
}

/// Seconds since the epoch (vLLM's `created`).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The usage object.
pub fn usage_json(prompt: u32, completion: u32) -> String {
    format!(
        "{{\"prompt_tokens\":{prompt},\"total_tokens\":{},\"completion_tokens\":{completion}}}",
        u64::from(prompt) + u64::from(completion)
    )
}

/// Formats the SSE chunks of one streaming request.
pub struct ChunkWriter {
    api: Api,
    prefix: String,
}

impl ChunkWriter {
    /// A writer for a response with this id and model.
    pub fn new(api: Api, id: &str, created: u64, model: &str) -> Self {
        let object = match api {
            Api::Chat => "chat.completion.chunk",
            Api::Completion => "text_completion",
        };
        let mut prefix = String::with_capacity(128 + model.len());
        let _ = write!(
            prefix,
            "data: {{\"id\":\"{id}\",\"object\":\"{object}\",\"created\":{created},\"model\":"
        );
        push_json_str(&mut prefix, model);
        prefix.push_str(",\"choices\":[");
        Self { api, prefix }
    }

    /// The first chunk of a chat choice: `{"role":"assistant","content":""}`.
    pub fn role_chunk(&self, out: &mut String, index: usize, usage: Option<&str>) {
        out.push_str(&self.prefix);
        let _ = write!(out, "{{\"index\":{index},\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}]");
        self.close(out, usage);
    }

    /// A token chunk; `finish` is set on a choice's last token.
    pub fn token_chunk(
        &self,
        out: &mut String,
        index: usize,
        text: &str,
        finish: Option<(&str, Option<&str>)>,
        usage: Option<&str>,
    ) {
        out.push_str(&self.prefix);
        let _ = write!(out, "{{\"index\":{index},");
        match self.api {
            Api::Chat => {
                out.push_str("\"delta\":{\"content\":");
                push_json_str(out, text);
                out.push_str("},\"logprobs\":null,");
            }
            Api::Completion => {
                out.push_str("\"text\":");
                push_json_str(out, text);
                out.push_str(",\"logprobs\":null,");
            }
        }
        match finish {
            Some((reason, stop_reason)) => {
                let _ = write!(out, "\"finish_reason\":\"{reason}\",\"stop_reason\":");
                match stop_reason {
                    Some(s) => push_json_str(out, s),
                    None => out.push_str("null"),
                }
                out.push_str("}]");
            }
            None if self.api == Api::Completion => {
                out.push_str("\"finish_reason\":null,\"stop_reason\":null}]")
            }
            None => out.push_str("\"finish_reason\":null}]"),
        }
        self.close(out, usage);
    }

    /// A chunk of a tool call's arguments, as vLLM streams them: the first names the call (`call` is set:
    /// id, type and function name), later ones carry only the next fragment of `arguments`.
    pub fn tool_chunk(
        &self,
        out: &mut String,
        index: usize,
        call: Option<&ToolCall>,
        arguments: &str,
        finish: Option<&str>,
        usage: Option<&str>,
    ) {
        out.push_str(&self.prefix);
        let _ = write!(out, "{{\"index\":{index},\"delta\":{{\"tool_calls\":[{{");
        if let Some(c) = call {
            out.push_str("\"id\":");
            push_json_str(out, &c.id);
            out.push_str(",\"type\":\"function\",\"index\":0,\"function\":{\"name\":");
            push_json_str(out, &c.name);
            out.push(',');
        } else {
            out.push_str("\"index\":0,\"function\":{");
        }
        out.push_str("\"arguments\":");
        push_json_str(out, arguments);
        out.push_str("}}]},\"logprobs\":null,");
        match finish {
            Some(reason) => {
                let _ = write!(
                    out,
                    "\"finish_reason\":\"{reason}\",\"stop_reason\":null}}]"
                );
            }
            None => out.push_str("\"finish_reason\":null}]"),
        }
        self.close(out, usage);
    }

    /// The final usage chunk (`choices: []`).
    pub fn usage_chunk(&self, out: &mut String, usage: &str) {
        out.push_str(&self.prefix);
        out.push(']');
        self.close(out, Some(usage));
    }

    fn close(&self, out: &mut String, usage: Option<&str>) {
        if let Some(u) = usage {
            out.push_str(",\"usage\":");
            out.push_str(u);
        }
        out.push_str("}\n\n");
    }
}

/// The `data: [DONE]` terminator.
pub const DONE: &str = "data: [DONE]\n\n";

fn finish_fields(c: &Completion) -> (Value, Value) {
    (
        json!(c.finish_reason.as_str()),
        c.stop_reason.as_ref().map_or(Value::Null, |s| json!(s)),
    )
}

fn usage_value(plan: &Plan) -> Value {
    let (p, c) = (plan.prompt_tokens, plan.completion_tokens());
    json!({"prompt_tokens": p, "total_tokens": u64::from(p) + u64::from(c), "completion_tokens": c, "prompt_tokens_details": null})
}

/// A non-streaming chat completion.
pub fn chat_response(id: &str, created: u64, plan: &Plan) -> Value {
    let choices: Vec<Value> = plan
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (finish, stop) = finish_fields(c);
            let (content, calls) = match &c.tool_call {
                Some(call) => (
                    Value::Null,
                    json!([{"id": call.id, "type": "function", "function": {"name": call.name, "arguments": c.text}}]),
                ),
                None => (json!(c.text), json!([])),
            };
            json!({
                "index": i,
                "message": {
                    "role": "assistant", "content": content, "refusal": null, "annotations": null, "audio": null,
                    "function_call": null, "tool_calls": calls, "reasoning_content": null
                },
                "logprobs": null, "finish_reason": finish, "stop_reason": stop
            })
        })
        .collect();
    json!({
        "id": id, "object": "chat.completion", "created": created, "model": plan.model.response_name,
        "choices": choices, "service_tier": null, "system_fingerprint": null, "usage": usage_value(plan),
        "prompt_logprobs": null, "kv_transfer_params": null
    })
}

/// A non-streaming text completion.
pub fn completion_response(id: &str, created: u64, plan: &Plan) -> Value {
    let choices: Vec<Value> = plan
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (finish, stop) = finish_fields(c);
            json!({
                "index": i, "text": c.text, "logprobs": null, "finish_reason": finish, "stop_reason": stop,
                "prompt_logprobs": null
            })
        })
        .collect();
    json!({
        "id": id, "object": "text_completion", "created": created, "model": plan.model.response_name,
        "choices": choices, "service_tier": null, "system_fingerprint": null, "usage": usage_value(plan),
        "kv_transfer_params": null
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunk: &str) -> Value {
        let body = chunk
            .strip_prefix("data: ")
            .and_then(|s| s.strip_suffix("\n\n"))
            .expect("sse framing");
        serde_json::from_str(body).expect("valid json")
    }

    #[test]
    fn chat_chunks_are_valid_json_in_vllm_shape() {
        let w = ChunkWriter::new(Api::Chat, "chatcmpl-1", 7, "m\"x");
        let mut s = String::new();
        w.role_chunk(&mut s, 0, None);
        assert_eq!(
            parse(&s),
            json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m\"x",
                   "choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]})
        );
        s.clear();
        w.token_chunk(
            &mut s,
            1,
            " a\n\"b\"\u{1}",
            Some(("stop", Some("."))),
            Some(&usage_json(3, 4)),
        );
        let v = parse(&s);
        assert_eq!(v["choices"][0]["delta"]["content"], " a\n\"b\"\u{1}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["choices"][0]["stop_reason"], ".");
        assert_eq!(v["usage"]["total_tokens"], 7);
        s.clear();
        w.usage_chunk(&mut s, &usage_json(3, 4));
        let v = parse(&s);
        assert_eq!(v["choices"], json!([]));
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens":3,"total_tokens":7,"completion_tokens":4})
        );
    }

    #[test]
    fn tool_call_chunks_name_the_call_once_then_carry_arguments() {
        let w = ChunkWriter::new(Api::Chat, "chatcmpl-1", 7, "m");
        let call = ToolCall {
            id: "chatcmpl-tool-1".into(),
            name: "get \"weather\"".into(),
        };
        let mut s = String::new();
        w.tool_chunk(&mut s, 0, Some(&call), "{\"", None, None);
        assert_eq!(
            parse(&s)["choices"][0]["delta"],
            json!({"tool_calls":[{"id":"chatcmpl-tool-1","type":"function","index":0,
                   "function":{"name":"get \"weather\"","arguments":"{\""}}]})
        );
        s.clear();
        w.tool_chunk(
            &mut s,
            1,
            None,
            "}",
            Some("tool_calls"),
            Some(&usage_json(1, 2)),
        );
        let v = parse(&s);
        assert_eq!(
            v["choices"][0]["delta"],
            json!({"tool_calls":[{"index":0,"function":{"arguments":"}"}}]})
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["usage"]["total_tokens"], 3);
    }

    #[test]
    fn completion_chunks_carry_text_and_stop_reason() {
        let w = ChunkWriter::new(Api::Completion, "cmpl-1", 7, "m");
        let mut s = String::new();
        w.token_chunk(&mut s, 0, "hi", None, None);
        assert_eq!(
            parse(&s)["choices"][0],
            json!({"index":0,"text":"hi","logprobs":null,"finish_reason":null,"stop_reason":null})
        );
    }
}
