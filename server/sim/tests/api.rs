//! Wire behaviour of the OpenAI-compatible API, checked over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completion_shape_and_determinism() {
    let addr = start(fast("facebook/opt-125m")).await;
    let body = json!({"model": "facebook/opt-125m", "messages": [{"role": "user", "content": "Hello"}], "seed": 7}).to_string();
    let a = http(addr, "POST", "/v1/chat/completions", Some(&body)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert!(v["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("chatcmpl-") && id.len() == 9 + 32));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "facebook/opt-125m");
    assert!(v["created"].as_u64().is_some());
    assert_eq!(v["system_fingerprint"], Value::Null);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let usage = &v["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap_or(0)
                + usage["completion_tokens"].as_u64().unwrap_or(0)
        )
    );
    let b = http(addr, "POST", "/v1/chat/completions", Some(&body))
        .await
        .json();
    assert_eq!(
        v["choices"][0]["message"]["content"], b["choices"][0]["message"]["content"],
        "same prompt + seed = same text"
    );
    assert_ne!(v["id"], b["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_with_usage_and_n() {
    let addr = start(fast("m")).await;
    let body = json!({
        "messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 4, "n": 2, "stream": true,
        "stream_options": {"include_usage": true}
    })
    .to_string();
    let r = http(addr, "POST", "/v1/chat/completions", Some(&body)).await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/event-stream")));
    assert!(r.complete);
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk json"))
        .collect();
    let usage = chunks.last().expect("usage chunk");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 8);
    let mut text = [String::new(), String::new()];
    let mut finish = [None, None];
    for c in &chunks[..chunks.len() - 1] {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert!(c.get("usage").is_none(), "usage only on the last chunk");
        let ch = &c["choices"][0];
        let i = ch["index"].as_u64().expect("index") as usize;
        text[i].push_str(ch["delta"]["content"].as_str().unwrap_or(""));
        if let Some(f) = ch["finish_reason"].as_str() {
            finish[i] = Some(f.to_string());
        }
    }
    assert_eq!(
        finish,
        [Some("length".to_string()), Some("length".to_string())]
    );
    assert_ne!(text[0], text[1], "n choices differ");
    let ids: std::collections::HashSet<&str> =
        chunks.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "one id per stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_stop_and_batch() {
    let addr = start(fast("m")).await;
    let r = http(
        addr,
        "POST",
        "/v1/completions",
        Some(r#"{"prompt":"Once upon a time","max_tokens":200,"stop":["."]}"#),
    )
    .await;
    let v = r.json();
    assert_eq!(v["object"], "text_completion");
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("cmpl-")));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["choices"][0]["stop_reason"], ".");
    assert!(!v["choices"][0]["text"]
        .as_str()
        .unwrap_or(".")
        .contains('.'));
    let r = http(
        addr,
        "POST",
        "/v1/completions",
        Some(r#"{"prompt":["a","b"],"max_tokens":3,"n":2}"#),
    )
    .await
    .json();
    assert_eq!(r["choices"].as_array().map(Vec::len), Some(4));
    assert_eq!(r["usage"]["completion_tokens"], 12);
    // Default max_tokens for completions is 16, as in vLLM.
    let r = http(
        addr,
        "POST",
        "/v1/completions",
        Some(r#"{"prompt":"x","ignore_eos":true}"#),
    )
    .await
    .json();
    assert_eq!(r["usage"]["completion_tokens"], 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_use_vllm_body_and_status() {
    let mut cfg = fast("m");
    cfg.max_model_len = 64;
    let addr = start(cfg).await;
    let r = http(
        addr,
        "POST",
        "/v1/chat/completions",
        Some(&json!({"model": "gpt-4", "messages": []}).to_string()),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"error": {"message": "The model `gpt-4` does not exist.", "type": "NotFoundError", "param": "model", "code": 404}})
    );
    let long = json!({"prompt": "word ".repeat(100)}).to_string();
    let r = http(addr, "POST", "/v1/completions", Some(&long)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "BadRequestError");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("maximum context length is 64 tokens"));
    let r = http(
        addr,
        "POST",
        "/v1/chat/completions",
        Some("{\"messages\": ["),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], 400);
    let r = http(addr, "GET", "/v1/nothing", None).await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_and_dynamic_lora() {
    let mut cfg = fast("facebook/opt-125m");
    cfg.served_model_names = vec!["opt".into()];
    cfg.enable_lora = true;
    let addr = start(cfg).await;
    let r = http(
        addr,
        "POST",
        "/v1/load_lora_adapter",
        Some(r#"{"lora_name":"sql","lora_path":"/adapters/sql"}"#),
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "Success: LoRA adapter 'sql' added successfully.")
    );
    let again = http(
        addr,
        "POST",
        "/v1/load_lora_adapter",
        Some(r#"{"lora_name":"sql","lora_path":"/adapters/sql"}"#),
    )
    .await;
    assert_eq!(again.status, 400);
    let models = http(addr, "GET", "/v1/models", None).await.json();
    let data = models["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(data.len(), 2);
    assert_eq!(
        (data[0]["id"].as_str(), data[0]["root"].as_str()),
        (Some("opt"), Some("facebook/opt-125m"))
    );
    assert_eq!(data[0]["max_model_len"], 2048);
    assert_eq!(
        (
            data[1]["id"].as_str(),
            data[1]["parent"].as_str(),
            data[1]["root"].as_str()
        ),
        (Some("sql"), Some("opt"), Some("/adapters/sql"))
    );
    let body =
        json!({"model": "sql", "messages": [{"role": "user", "content": "q"}], "max_tokens": 2})
            .to_string();
    let r = http(addr, "POST", "/v1/chat/completions", Some(&body)).await;
    assert_eq!(r.json()["model"], "sql");
    let s = scrape(addr).await;
    assert!(s.iter().any(|x| x.name == "vllm:lora_requests_info"));
    let r = http(
        addr,
        "POST",
        "/v1/unload_lora_adapter",
        Some(r#"{"lora_name":"sql"}"#),
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "Success: LoRA adapter 'sql' removed successfully.")
    );
    let r = http(addr, "POST", "/v1/chat/completions", Some(&body)).await;
    assert_eq!(r.status, 404);
    let r = http(
        addr,
        "POST",
        "/v1/unload_lora_adapter",
        Some(r#"{"lora_name":"sql"}"#),
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenize_embeddings_version_health() {
    let addr = start(fast("m")).await;
    let t = http(
        addr,
        "POST",
        "/tokenize",
        Some(r#"{"model":"m","prompt":"Hello, world!"}"#),
    )
    .await
    .json();
    assert_eq!(t["count"], 6);
    assert_eq!(t["max_model_len"], 2048);
    let d = http(
        addr,
        "POST",
        "/detokenize",
        Some(&json!({"model": "m", "tokens": t["tokens"]}).to_string()),
    )
    .await
    .json();
    assert_eq!(d["prompt"], "Hello, world!");
    let e = http(
        addr,
        "POST",
        "/v1/embeddings",
        Some(r#"{"input":["a","b"],"encoding_format":"float"}"#),
    )
    .await
    .json();
    assert_eq!(e["object"], "list");
    assert_eq!(e["data"].as_array().map(Vec::len), Some(2));
    let v: Vec<f64> = serde_json::from_value(e["data"][0]["embedding"].clone()).expect("floats");
    assert_eq!(v.len(), 768);
    assert!((v.iter().map(|x| x * x).sum::<f64>().sqrt() - 1.0).abs() < 1e-3);
    assert!(http(addr, "GET", "/version", None).await.json()["version"].is_string());
    let h = http(addr, "GET", "/health", None).await;
    assert_eq!((h.status, h.body.as_str()), (200, ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_then_ready() {
    let mut cfg = fast("m");
    cfg.load_time = Duration::from_millis(400);
    let addr = start(cfg).await;
    assert_eq!(http(addr, "GET", "/health", None).await.status, 503);
    assert_eq!(
        http(addr, "POST", "/v1/completions", Some(r#"{"prompt":"x"}"#))
            .await
            .status,
        503
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(http(addr, "GET", "/health", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_protects_v1() {
    let mut cfg = fast("m");
    cfg.api_key = Some("secret".into());
    let addr = start(cfg).await;
    assert_eq!(http(addr, "GET", "/v1/models", None).await.status, 401);
    let ok = http_with(
        addr,
        "GET",
        "/v1/models",
        None,
        &[("Authorization", "Bearer secret")],
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(http(addr, "GET", "/health", None).await.status, 200);
}

#[test]
fn binary_accepts_the_vllm_serve_command_line() {
    let bin = Binary::start(&[
        "serve",
        "facebook/opt-125m",
        "--served-model-name",
        "opt",
        "--max-model-len",
        "1024",
        "--max-num-seqs",
        "8",
        "--tensor-parallel-size",
        "1",
        "--enable-lora",
        "--gpu-memory-utilization",
        "0.9",
        "--dtype=auto",
        "--enforce-eager",
        "--sim-zero-latency",
    ]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let models = rt
        .block_on(http(bin.addr, "GET", "/v1/models", None))
        .json();
    assert_eq!(models["data"][0]["id"], "opt");
    assert_eq!(models["data"][0]["max_model_len"], 1024);
}

/// `(event name, data)` of each event of a named-event stream.
fn named_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|ev| {
            let (name, data) = ev.strip_prefix("event: ")?.split_once("\ndata: ")?;
            Some((
                name.to_string(),
                serde_json::from_str(data).expect("json data"),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_streamed_and_not() {
    let addr = start(fast("m")).await;
    let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 3}}, "required": ["n"]}}}]);
    let body = json!({"messages": [{"role": "user", "content": "Go"}], "tools": tools}).to_string();
    let v = http(addr, "POST", "/v1/chat/completions", Some(&body))
        .await
        .json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "f");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!((1..=3).contains(&args["n"].as_i64().unwrap()), "{args}");
    assert_eq!(
        v["usage"]["completion_tokens"].as_u64().unwrap() as usize,
        tollgate_sim::tokenizer::count(call["function"]["arguments"].as_str().unwrap())
    );

    let body =
        json!({"messages": [{"role": "user", "content": "Go"}], "tools": tools, "stream": true})
            .to_string();
    let r = http(addr, "POST", "/v1/chat/completions", Some(&body)).await;
    let chunks: Vec<Value> = r
        .sse_data()
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert!(calls[0]["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("chatcmpl-tool-")));
    assert!(calls[1..].iter().all(|c| c.get("id").is_none()));
    let joined: String = calls
        .iter()
        .map(|c| c["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(
        joined,
        call["function"]["arguments"].as_str().unwrap(),
        "same prompt, same arguments"
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_messages_streamed_and_not() {
    let addr = start(fast("m")).await;
    let body = json!({"model": "m", "max_tokens": 8, "system": "Be brief.",
                      "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]})
    .to_string();
    let v = http(addr, "POST", "/v1/messages", Some(&body)).await.json();
    assert_eq!(v["type"], "message");
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("msg_")));
    assert!(v["content"][0]["text"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    let output = v["usage"]["output_tokens"].as_u64().unwrap();
    assert!(output <= 8 && v["usage"]["input_tokens"].as_u64().unwrap() > 5);
    assert!(["end_turn", "max_tokens"].contains(&v["stop_reason"].as_str().unwrap()));

    let body = json!({"model": "m", "max_tokens": 8, "system": "Be brief", "stream": true,
                      "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]})
    .to_string();
    let r = http(addr, "POST", "/v1/messages", Some(&body)).await;
    let events = named_events(&r.body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let deltas = names
        .iter()
        .filter(|n| **n == "content_block_delta")
        .count() as u64;
    assert_eq!(
        events[events.len() - 2].1["usage"]["output_tokens"].as_u64(),
        Some(deltas)
    );
    assert!(events.iter().all(|(n, d)| d["type"] == n.as_str()));

    let bad = http(
        addr,
        "POST",
        "/v1/messages",
        Some(r#"{"model":"m","messages":[]}"#),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["type"], "error");
    assert_eq!(bad.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_streamed_and_not() {
    let addr = start(fast("m")).await;
    let body = json!({"model": "m", "input": "Hi", "max_output_tokens": 3}).to_string();
    let v = http(addr, "POST", "/v1/responses", Some(&body))
        .await
        .json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "incomplete", "3 tokens cut the answer: {v}");
    assert_eq!(v["usage"]["output_tokens"], 3);
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");

    let body = json!({"model": "m", "input": [{"role": "user", "content": "Hi"}], "stream": true,
                      "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object",
                      "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}}})
    .to_string();
    let r = http(addr, "POST", "/v1/responses", Some(&body)).await;
    let events = named_events(&r.body);
    assert_eq!(events[0].0, "response.created");
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "response.completed");
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap().to_string())
        .collect();
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert!(parsed["ok"].is_boolean(), "{parsed}");
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        text.as_str()
    );
    let seq: Vec<u64> = events
        .iter()
        .map(|(_, d)| d["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(seq.windows(2).all(|w| w[1] == w[0] + 1));
}
