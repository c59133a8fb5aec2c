//! `/metrics` parses as Prometheus text with vLLM's names, and its gauges and counters
//! move under load as vLLM's do.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_carry_vllm_names() {
    let addr = start(fast("facebook/opt-125m")).await;
    let r = http(
        addr,
        "POST",
        "/v1/chat/completions",
        Some(&chat_body("hi", 5, false)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let m = http(addr, "GET", "/metrics", None).await;
    assert!(m
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/plain")));
    let samples = parse_prometheus(&m.body).unwrap_or_else(|e| panic!("{e}"));
    let l = [("model_name", "facebook/opt-125m"), ("engine", "0")];
    for name in [
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_count",
        "vllm:inter_token_latency_seconds_count",
        "vllm:time_per_output_token_seconds_count",
        "vllm:e2e_request_latency_seconds_count",
        "vllm:request_queue_time_seconds_count",
    ] {
        assert!(value(&samples, name, &l).is_some(), "missing {name}");
    }
    assert_eq!(
        value(&samples, "vllm:generation_tokens_total", &l),
        Some(5.0)
    );
    assert_eq!(
        value(
            &samples,
            "vllm:request_success_total",
            &[("finished_reason", "length")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "vllm:time_to_first_token_seconds_count", &l),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "vllm:inter_token_latency_seconds_count", &l),
        Some(4.0)
    );
    assert_eq!(
        value(
            &samples,
            "vllm:e2e_request_latency_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(1.0)
    );
    let prompt = value(&samples, "vllm:prompt_tokens_total", &l).unwrap_or(0.0);
    assert!(prompt > 5.0, "prompt tokens counted: {prompt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_move_under_load() {
    let mut cfg = fast("m");
    cfg.max_num_seqs = 4;
    cfg.latency.decode_ms = 40.0;
    let addr = start(cfg).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        tasks.push(tokio::spawn(async move {
            http(
                addr,
                "POST",
                "/v1/chat/completions",
                Some(&chat_body(&format!("request {i}"), 15, true)),
            )
            .await
        }));
    }
    let (mut max_running, mut max_waiting, mut max_kv) = (0.0f64, 0.0f64, 0.0f64);
    for _ in 0..60 {
        let s = scrape(addr).await;
        max_running = max_running.max(value(&s, "vllm:num_requests_running", &[]).unwrap_or(0.0));
        max_waiting = max_waiting.max(value(&s, "vllm:num_requests_waiting", &[]).unwrap_or(0.0));
        max_kv = max_kv.max(value(&s, "vllm:kv_cache_usage_perc", &[]).unwrap_or(0.0));
        if max_running >= 4.0 && max_waiting >= 1.0 && max_kv > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(max_running, 4.0, "running capped at max_num_seqs");
    assert!(max_waiting >= 1.0, "requests queue beyond max_num_seqs");
    assert!(max_kv > 0.0 && max_kv <= 1.0, "kv usage moves: {max_kv}");
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200);
        assert!(r.body.ends_with("data: [DONE]\n\n"));
    }
    let s = scrape(addr).await;
    assert_eq!(value(&s, "vllm:num_requests_running", &[]), Some(0.0));
    assert_eq!(value(&s, "vllm:num_requests_waiting", &[]), Some(0.0));
    assert_eq!(value(&s, "vllm:kv_cache_usage_perc", &[]), Some(0.0));
    assert_eq!(value(&s, "vllm:generation_tokens_total", &[]), Some(150.0));
    assert_eq!(
        value(
            &s,
            "vllm:request_success_total",
            &[("finished_reason", "length")]
        ),
        Some(10.0)
    );
    let queue_sum = value(&s, "vllm:request_queue_time_seconds_sum", &[]).unwrap_or(0.0);
    assert!(queue_sum > 0.1, "queued requests waited: {queue_sum}");
    // With 4 running, a decode step is slower than at batch 1 only by decode_ms_per_seq;
    // every inter-token gap is at least decode_ms.
    let itl_fast = value(
        &s,
        "vllm:inter_token_latency_seconds_bucket",
        &[("le", "0.025")],
    )
    .unwrap_or(-1.0);
    assert_eq!(itl_fast, 0.0, "no gap shorter than 25 ms at 40 ms/step");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_kv_cache_makes_requests_wait() {
    let mut cfg = fast("m");
    cfg.kv_cache_tokens = 120;
    cfg.latency.decode_ms = 30.0;
    let addr = start(cfg).await;
    // Each request reserves ~20 prompt + 40 output tokens: only two fit in 120.
    let mut tasks = Vec::new();
    for i in 0..4 {
        let body = serde_json::json!({
            "messages": [{"role": "user", "content": format!("kv {i}")}], "max_tokens": 40, "ignore_eos": true
        })
        .to_string();
        tasks.push(tokio::spawn(async move {
            http(addr, "POST", "/v1/chat/completions", Some(&body)).await
        }));
    }
    let mut seen = false;
    for _ in 0..50 {
        let s = scrape(addr).await;
        let running = value(&s, "vllm:num_requests_running", &[]).unwrap_or(0.0);
        let waiting = value(&s, "vllm:num_requests_waiting", &[]).unwrap_or(0.0);
        if (1.0..4.0).contains(&running) && waiting >= 1.0 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen,
        "with a full KV cache, requests wait although max_num_seqs allows more"
    );
    for t in tasks {
        assert_eq!(t.await.expect("task").status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_grows_with_prompt_length() {
    let mut cfg = fast("m");
    cfg.latency.prefill_tokens_per_s = 10_000.0;
    let addr = start(cfg).await;
    let t0 = std::time::Instant::now();
    let r = http(
        addr,
        "POST",
        "/v1/completions",
        Some(r#"{"prompt":"short","max_tokens":1}"#),
    )
    .await;
    let short = t0.elapsed();
    assert_eq!(r.status, 200);
    let long_prompt = "ab ".repeat(1500); // 1501 tokens ("ab", " ab" x 1499, " ") -> 150 ms of prefill
    let body = serde_json::json!({"prompt": long_prompt, "max_tokens": 1}).to_string();
    let t0 = std::time::Instant::now();
    let r = http(addr, "POST", "/v1/completions", Some(&body)).await;
    let long = t0.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        long >= Duration::from_millis(140),
        "long prompt prefill took {long:?}"
    );
    assert!(long > short * 2, "{long:?} vs {short:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_stream_frees_its_slot() {
    let mut cfg = fast("m");
    cfg.latency.decode_ms = 50.0;
    let addr = start(cfg).await;
    let body = chat_body("abort me", 200, true);
    let task =
        tokio::spawn(async move { http(addr, "POST", "/v1/chat/completions", Some(&body)).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        value(&scrape(addr).await, "vllm:num_requests_running", &[]),
        Some(1.0)
    );
    task.abort();
    let mut freed = false;
    for _ in 0..50 {
        let s = scrape(addr).await;
        if value(&s, "vllm:num_requests_running", &[]) == Some(0.0) {
            assert_eq!(
                value(
                    &s,
                    "vllm:request_success_total",
                    &[("finished_reason", "abort")]
                ),
                Some(1.0)
            );
            assert_eq!(value(&s, "vllm:kv_cache_usage_perc", &[]), Some(0.0));
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "client disconnect must free the slot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_prefix_is_served_from_the_prefix_cache() {
    let scrape = |addr| async move {
        let m = http(addr, "GET", "/metrics", None).await;
        let samples = parse_prometheus(&m.body).unwrap_or_else(|e| panic!("{e}"));
        let v = |name: &str| value(&samples, name, &[]).unwrap_or(-1.0);
        (
            v("vllm:prefix_cache_queries_total"),
            v("vllm:prefix_cache_hits_total"),
            v("vllm:prompt_tokens_total"),
            v("vllm:request_params_max_tokens_count"),
        )
    };
    // A system prompt of 20 blocks, then two different questions: the second request finds the 20 blocks cached.
    let system: String = (0..320).map(|i| format!(" w{}", i % 100)).collect();
    let ask = |question: &str| {
        serde_json::json!({"messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
                           "max_tokens": 3})
        .to_string()
    };
    for (caching, expected_hits) in [(true, true), (false, false)] {
        let mut config = fast("m");
        config.prefix_caching = caching;
        let addr = start(config).await;
        let first = http(addr, "POST", "/v1/chat/completions", Some(&ask("First?")))
            .await
            .json();
        let (queries, hits, prompt, asked) = scrape(addr).await;
        assert_eq!(hits, 0.0, "a cold cache");
        assert_eq!(queries, if caching { prompt } else { 0.0 });
        assert_eq!(
            asked, 1.0,
            "vllm:request_params_max_tokens counts each request"
        );
        http(
            addr,
            "POST",
            "/v1/chat/completions",
            Some(&ask("And a second question?")),
        )
        .await;
        let (queries, hits, _, _) = scrape(addr).await;
        let first_prompt = first["usage"]["prompt_tokens"].as_f64().unwrap();
        if expected_hits {
            // At least the system prompt's whole blocks (the template's first line joins them), never the question.
            assert!(
                hits >= 320.0 && hits % 16.0 == 0.0 && hits < first_prompt,
                "{hits} of {first_prompt}"
            );
            assert!(queries > hits);
        } else {
            assert_eq!((queries, hits), (0.0, 0.0), "caching off");
        }
    }
}
