//! Each fault mode, set at run time through `/sim/faults` and at start-up through flags.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

async fn set_faults(addr: std::net::SocketAddr, body: serde_json::Value) {
    let r = http(addr, "POST", "/sim/faults", Some(&body.to_string())).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoint_round_trips_and_validates() {
    let addr = start(fast("m")).await;
    set_faults(
        addr,
        json!({"error_rate": 0.25, "cut_after_tokens": 3, "stall_ms": 10}),
    )
    .await;
    let r = http(addr, "GET", "/sim/faults", None).await;
    assert_eq!(
        r.json(),
        json!({"error_rate": 0.25, "cut_after_tokens": 3, "stall_ms": 10, "stall_after_tokens": 0})
    );
    let bad = http(addr, "POST", "/sim/faults", Some(r#"{"error_rate": 7}"#)).await;
    assert_eq!(bad.status, 400);
    let typo = http(addr, "POST", "/sim/faults", Some(r#"{"eror_rate": 1}"#)).await;
    assert_eq!(typo.status, 400);
    set_faults(addr, json!({})).await;
    let r = http(addr, "GET", "/sim/faults", None).await;
    assert_eq!(r.json()["cut_after_tokens"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_fails_requests_with_500() {
    let addr = start(fast("m")).await;
    set_faults(addr, json!({"error_rate": 1.0})).await;
    for path in ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"] {
        let body = match path {
            "/v1/chat/completions" => chat_body("x", 3, true),
            "/v1/completions" => r#"{"prompt":"x"}"#.to_string(),
            _ => r#"{"input":"x"}"#.to_string(),
        };
        let r = http(addr, "POST", path, Some(&body)).await;
        assert_eq!(r.status, 500, "{path}");
        let v = r.json();
        assert_eq!(v["error"]["type"], "InternalServerError");
        assert_eq!(v["error"]["code"], 500);
    }
    set_faults(addr, json!({"error_rate": 0.5})).await;
    let mut failed = 0;
    for _ in 0..200 {
        let r = http(
            addr,
            "POST",
            "/v1/completions",
            Some(r#"{"prompt":"x","max_tokens":1}"#),
        )
        .await;
        if r.status == 500 {
            failed += 1;
        } else {
            assert_eq!(r.status, 200);
        }
    }
    assert!(
        (50..=150).contains(&failed),
        "about half fail: {failed}/200"
    );
    // Health and models are not affected.
    assert_eq!(http(addr, "GET", "/health", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_after_tokens_drops_the_stream() {
    let addr = start(fast("m")).await;
    set_faults(addr, json!({"cut_after_tokens": 3})).await;
    let r = http(
        addr,
        "POST",
        "/v1/chat/completions",
        Some(&chat_body("cut", 20, true)),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(!r.complete, "chunked body must not be terminated");
    let data = r.sse_data();
    assert!(!data.iter().any(|d| d == "[DONE]"), "no [DONE] after a cut");
    let contents: Vec<String> = data
        .iter()
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        contents.len(),
        3,
        "exactly 3 tokens before the cut: {contents:?}"
    );
    // Non-streaming requests are cut too.
    let r = http(
        addr,
        "POST",
        "/v1/completions",
        Some(r#"{"prompt":"x","max_tokens":10}"#),
    )
    .await;
    assert!(!r.complete, "non-streaming body cut");
    // The cut request counts as aborted and frees its slot.
    let s = scrape(addr).await;
    assert_eq!(value(&s, "vllm:num_requests_running", &[]), Some(0.0));
    assert_eq!(
        value(
            &s,
            "vllm:request_success_total",
            &[("finished_reason", "abort")]
        ),
        Some(2.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_pauses_generation() {
    let addr = start(fast("m")).await;
    set_faults(addr, json!({"stall_ms": 300})).await;
    let t0 = Instant::now();
    let r = http(
        addr,
        "POST",
        "/v1/chat/completions",
        Some(&chat_body("stall", 5, false)),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        t0.elapsed() >= Duration::from_millis(290),
        "stalled {:?}",
        t0.elapsed()
    );
    let s = scrape(addr).await;
    let ttft_fast = value(
        &s,
        "vllm:time_to_first_token_seconds_bucket",
        &[("le", "0.25")],
    )
    .unwrap_or(-1.0);
    assert_eq!(ttft_fast, 0.0, "stall before the first token shows in TTFT");
    set_faults(addr, json!({"stall_ms": 300, "stall_after_tokens": 2})).await;
    let r = http(
        addr,
        "POST",
        "/v1/chat/completions",
        Some(&chat_body("stall", 5, true)),
    )
    .await;
    assert!(r.body.ends_with("data: [DONE]\n\n"));
    let s = scrape(addr).await;
    let itl_slow = value(
        &s,
        "vllm:inter_token_latency_seconds_bucket",
        &[("le", "0.2")],
    );
    let itl_all = value(&s, "vllm:inter_token_latency_seconds_count", &[]);
    assert!(
        itl_slow < itl_all,
        "a mid-stream stall shows as one long inter-token gap"
    );
}

#[test]
fn exit_at_run_time_ends_the_process() {
    let mut bin = Binary::start(&["m", "--sim-zero-latency"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr = bin.addr;
    let r = rt.block_on(http(
        addr,
        "POST",
        "/sim/faults",
        Some(r#"{"exit": true, "exit_code": 3}"#),
    ));
    assert_eq!(r.status, 200);
    assert_eq!(bin.wait_exit(Duration::from_secs(5)), Some(3));
}

#[test]
fn faults_from_flags() {
    let mut bin = Binary::start(&[
        "m",
        "--sim-zero-latency",
        "--sim-fault-error-rate",
        "1",
        "--sim-fault-exit-after-ms",
        "1500",
    ]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let r = rt.block_on(http(
        bin.addr,
        "POST",
        "/v1/completions",
        Some(r#"{"prompt":"x"}"#),
    ));
    assert_eq!(r.status, 500);
    assert_eq!(
        bin.wait_exit(Duration::from_secs(10)),
        Some(1),
        "exits by itself after 1.5 s"
    );
}
