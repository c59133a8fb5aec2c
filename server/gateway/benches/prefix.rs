//! Prefix affinity against least-load replica choice: a multi-turn chat workload through the gateway over 4
//! simulated replicas with prefix caching, once with each choice (fresh engines each time). Prints the engines'
//! prefix cache hit rate (`vllm:prefix_cache_hits` / `queries`, in tokens) and the time to first token the client
//! saw.
//!
//! `cargo bench -p tollgate-gateway --bench prefix` (`BENCH_CONVERSATIONS`, default 24; `BENCH_TURNS`, 6;
//! `BENCH_SYSTEM_PROMPTS`, 4). Each conversation starts with one of the system prompts (about 500 tokens), then
//! adds a question (about 150 tokens: a pasted snippet) and its answer (up to 32 tokens) per turn, as a chat client
//! resends its history; the conversations run at once. The engines prefill 5,000 tokens/s (a 1,000-token prefill
//! takes 200 ms) and decode 2 ms per token.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tollgate_domain::grant::Limits;
use tollgate_gateway::GatewayConfig;
use tollgate_sim::latency::LatencyModel;

mod common;

const MODEL: &str = "bench-model";
const REPLICAS: usize = 4;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let conversations = env("BENCH_CONVERSATIONS", 24);
    let turns = env("BENCH_TURNS", 6);
    let systems = env("BENCH_SYSTEM_PROMPTS", 4).max(1);
    println!(
        "{conversations} conversations of {turns} turns, {systems} system prompts, over {REPLICAS} replicas:"
    );
    for (label, factor) in [("least load", 0.0), ("prefix affinity", 1.25)] {
        rt.block_on(run(label, factor, conversations, turns, systems));
    }
}

async fn run(label: &str, factor: f64, conversations: usize, turns: usize, systems: usize) {
    let mut engines = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..REPLICAS {
        let mut config = tollgate_sim::SimConfig::new(MODEL);
        config.max_model_len = 32_768;
        config.latency = LatencyModel {
            prefill_tokens_per_s: 5000.0,
            decode_ms: 2.0,
            decode_ms_per_seq: 0.0,
        };
        let state = tollgate_sim::start(config);
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        urls.push(format!("http://{}", l.local_addr().expect("addr")));
        tokio::spawn(tollgate_sim::serve_state(state.clone(), l));
        engines.push(state);
    }
    let common::Bench { gw, auth, db } = common::gateway(
        MODEL,
        urls,
        Limits::default(),
        GatewayConfig {
            prefix_affinity: factor,
            ..GatewayConfig::default()
        },
    )
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, tollgate_gateway::router(gw))
            .await
            .expect("serve")
    });
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();

    let started = Instant::now();
    let tasks: Vec<_> = (0..conversations)
        .map(|c| {
            let (client, auth) = (client.clone(), auth.clone());
            let system = system_prompt(c % systems);
            tokio::spawn(async move {
                let mut messages = vec![serde_json::json!({"role": "system", "content": system})];
                let mut ttfts = Vec::with_capacity(turns);
                for t in 0..turns {
                    messages.push(serde_json::json!({"role": "user", "content": question(c, t)}));
                    let body = serde_json::json!({"model": MODEL, "messages": messages, "max_tokens": 32, "stream": true});
                    let req = http::Request::post(format!("http://{addr}/v1/chat/completions"))
                        .header("authorization", auth.as_str())
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body.to_string())))
                        .expect("request");
                    let sent = Instant::now();
                    let mut res = client.request(req).await.expect("gateway");
                    assert_eq!(res.status(), 200);
                    let mut first = None;
                    let mut text = Vec::new();
                    while let Some(frame) = res.body_mut().frame().await {
                        if let Ok(data) = frame.expect("body").into_data() {
                            first.get_or_insert_with(|| sent.elapsed());
                            text.extend_from_slice(&data);
                        }
                    }
                    ttfts.push(first.unwrap_or_default());
                    messages.push(serde_json::json!({"role": "assistant", "content": answer(&text)}));
                }
                ttfts
            })
        })
        .collect();
    let mut ttfts: Vec<Duration> = Vec::new();
    for t in tasks {
        ttfts.extend(t.await.expect("conversation"));
    }
    let elapsed = started.elapsed();
    ttfts.sort();
    let pct = |p: f64| ttfts[((ttfts.len() as f64 - 1.0) * p).round() as usize];
    let mean = ttfts.iter().sum::<Duration>() / ttfts.len().max(1) as u32;
    let (mut hits, mut queries) = (0u64, 0u64);
    for e in &engines {
        hits += e.metrics.prefix_cache_hits.load(Ordering::Relaxed);
        queries += e.metrics.prefix_cache_queries.load(Ordering::Relaxed);
    }
    println!(
        "  {label:<16} cache hits {:5.1}% of {queries} prompt tokens; time to first token p50 {:6.1} ms, p95 {:6.1} ms, mean {:6.1} ms; {} requests in {:.1} s",
        100.0 * hits as f64 / queries.max(1) as f64,
        ms(pct(0.5)),
        ms(pct(0.95)),
        ms(mean),
        ttfts.len(),
        elapsed.as_secs_f64(),
    );
    let _ = db.cleanup().await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// About 500 tokens of the simulator's tokenizer (words of up to 4 bytes), different for each `i`.
fn system_prompt(i: usize) -> String {
    let mut s = format!("You are assistant number {i}. Follow these rules.");
    for w in 0..500 {
        s.push_str(&format!(" r{}", (w * 7 + i * 13) % 97));
    }
    s
}

/// Turn `t` of conversation `c`: about 150 tokens, its own.
fn question(c: usize, t: usize) -> String {
    let mut s = format!("Conversation {c}, turn {t}: what does this do?");
    for w in 0..140 {
        s.push_str(&format!(" q{}", (w * 11 + c * 17 + t * 5) % 89));
    }
    s
}

/// The streamed answer's text (the `content` deltas), to send back as the assistant's turn.
fn answer(sse: &[u8]) -> String {
    String::from_utf8_lossy(sse)
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}
