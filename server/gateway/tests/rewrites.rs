//! What the gateway changes on the way up and back: the engine is held to the completion tokens reserved when the
//! client set no cap; answers and stream chunks name the API model, not the engine's served name; an engine's
//! refusal reaches the client as our error body, in the client's terms.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use common::*;
use serde_json::{json, Value};
use tollgate_domain::grant::Limits;
use tollgate_gateway::GatewayConfig;

fn bearer(k: &TestKey) -> String {
    format!("Bearer {}", k.secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_max_tokens_the_engine_is_held_to_the_reserved_budget() {
    // An engine whose answers run long unless told otherwise.
    let mut verbose = fast_sim();
    verbose.min_output_tokens = 400;
    verbose.max_output_tokens = 400;
    let engine = sim(verbose).await;
    let k = key(90, "sub_budget", MODEL, Limits::default());
    let config = GatewayConfig {
        default_max_tokens: 20,
        ..GatewayConfig::default()
    };
    let g = one_engine_gateway(&k, engine, config).await;
    for stream in [false, true] {
        let mut body = chat_body("tell me everything", 0, stream);
        body.as_object_mut().unwrap().remove("max_tokens");
        let r = client()
            .post(g.url("/v1/chat/completions"))
            .header("authorization", bearer(&k))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await.unwrap();
    }
    let records = g.wait_records(2).await;
    for r in &records {
        // The prompt estimate errs high, so the budget is at least the default completion.
        assert!(
            r.completion_tokens > 0 && r.completion_tokens <= 20,
            "{} completion tokens",
            r.completion_tokens
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_chunks_name_the_api_model() {
    let engine = sim(fast_sim()).await;
    let k = key(91, "sub_names", MODEL, Limits::default());
    let g = gateway(vec![k.entry.clone()], &routes(&[engine], 0), memory()).await;
    let c = client();
    let r = c
        .post(g.url("/v1/chat/completions"))
        .header("authorization", bearer(&k))
        .json(&chat_body("hi", 4, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["model"], MODEL);
    let r = c
        .post(g.url("/v1/completions"))
        .header("authorization", bearer(&k))
        .json(
            &json!({"model": MODEL, "prompt": "hi", "max_tokens": 4, "stream": true,
                      "stream_options": {"include_usage": true}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains(SERVED), "{text}");
    let chunks: Vec<Value> = sse_data(&text)
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.len() > 2);
    assert!(chunks.iter().all(|c| c["model"] == MODEL), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_refusal_is_our_error_body_in_the_clients_terms() {
    // The engine serves another name than the route says, so it refuses with 404 naming the served model.
    let engine = sim(tollgate_sim::SimConfig::new("other/model").zero_latency()).await;
    let k = key(92, "sub_refused", MODEL, Limits::default());
    let g = gateway(vec![k.entry.clone()], &routes(&[engine], 0), memory()).await;
    let r = client()
        .post(g.url("/v1/chat/completions"))
        .header("authorization", bearer(&k))
        .json(&chat_body("hi", 4, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        format!("The model `{MODEL}` does not exist.")
    );
    assert_eq!(body["error"]["code"], "engine_refused");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"].get("param").is_some());
}
