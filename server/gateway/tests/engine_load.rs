//! Routing refined by the engines' own load: a replica whose engine reports a queue (traffic from elsewhere) is
//! avoided, though this gateway has nothing in flight on it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use common::*;
use std::time::Duration;
use tollgate_domain::grant::Limits;

#[tokio::test]
async fn a_replica_with_a_queue_reported_by_its_engine_gets_no_new_requests() {
    // One sequence at a time and slow decoding: a few direct streams keep it busy with a queue.
    let mut busy_config = fast_sim();
    busy_config.max_num_seqs = 1;
    busy_config.latency.decode_ms = 20.0;
    let busy = sim(busy_config).await;
    let idle = sim(fast_sim()).await;
    let k = key(1, "sub_load", MODEL, Limits::default());
    let gw = gateway(vec![k.entry.clone()], &routes(&[busy, idle], 0), memory()).await;

    // Other traffic, straight to the busy engine (as another gateway replica's would be).
    let mut others = Vec::new();
    for _ in 0..3 {
        let body = serde_json::json!({ "model": SERVED, "prompt": "x", "max_tokens": 200, "ignore_eos": true });
        let c = client();
        others.push(tokio::spawn(async move {
            let _ = c
                .post(format!("http://{busy}/v1/completions"))
                .json(&body)
                .send()
                .await;
        }));
    }
    // Until the engine reports its queue and the poller has read it.
    let metrics = client();
    for _ in 0..100 {
        let text = metrics
            .get(format!("http://{busy}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if tollgate_gateway::engine_load::EngineLoad::parse(&text).waiting >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let poller = gw.gw.spawn_engine_load_poller(Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(200)).await;

    for i in 0..6 {
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&k.secret)
            .json(&chat_body(&format!("hello {i}"), 4, false))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
    }
    let records = gw.wait_records(6).await;
    let replicas: Vec<&str> = records.iter().map(|r| r.replica.as_str()).collect();
    assert!(
        replicas.iter().all(|r| *r == format!("http://{idle}")),
        "requests went to the engine with a queue: {replicas:?}"
    );
    poller.abort();
    for o in others {
        o.abort();
    }
}

#[tokio::test]
async fn a_request_without_max_tokens_fits_the_context_its_engine_serves() {
    // The catalog says 2048 tokens (`card()`); the engine was started with a 256-token context.
    let mut small = fast_sim();
    small.max_model_len = 256;
    let engine = sim(small).await;
    let k = key(1, "sub_context", MODEL, Limits::default());
    let gw = gateway(vec![k.entry.clone()], &routes(&[engine], 0), memory()).await;
    let without_max_tokens = serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me a long story"}],
    });

    // Before any probe the gateway knows only the catalog's context, and asks for more than the engine serves.
    let refused = gw
        .post_json(&k, "/v1/chat/completions", without_max_tokens.clone())
        .await
        .expect("request");
    assert_eq!(refused.status(), 400);
    let error: serde_json::Value = refused.json().await.expect("json");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("maximum context length is 256")),
        "{error}"
    );

    // The model's card says what a request may use: the catalog's context until the engine's probe says less.
    let max_model_len = || async {
        let card: serde_json::Value = client()
            .get(gw.url(&format!("/v1/models/{MODEL}")))
            .bearer_auth(&k.secret)
            .send()
            .await
            .expect("card")
            .json()
            .await
            .expect("json");
        card["max_model_len"].as_u64()
    };
    assert_eq!(max_model_len().await, Some(2048));
    let poller = gw.gw.spawn_engine_load_poller(Duration::from_millis(50));
    for _ in 0..100 {
        if max_model_len().await != Some(2048) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(max_model_len().await, Some(256));

    let answered = gw
        .post_json(&k, "/v1/chat/completions", without_max_tokens)
        .await
        .expect("request");
    assert_eq!(answered.status(), 200);
    let body: serde_json::Value = answered.json().await.expect("json");
    let usage = &body["usage"];
    let total =
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap();
    assert!(total <= 256, "{usage}");
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "{usage}");
    poller.abort();
}
