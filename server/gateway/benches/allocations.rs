//! Heap allocations the gateway adds per request: the same requests sent straight to the engine simulator and
//! through the gateway's own listener (key, limits, routing, usage scanning and metering on), counted by a global
//! allocator over the whole process; the difference is the gateway's share (its background writer included, which
//! is where a request's usage record ends up, and the client's parsing of the headers the gateway adds: hyper's
//! client allocates a name for each header it does not know, such as the `x-ratelimit-*` ones).
//!
//! `cargo bench -p tollgate-gateway --bench allocations` (`BENCH_REQUESTS`, default 20000).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tollgate_domain::grant::Limits;
use tollgate_gateway::GatewayConfig;

/// The system allocator, counting (the workspace forbids `unsafe`, so the counting wrapper is a crate's).
#[global_allocator]
static COUNTING: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations (reallocations included) and bytes asked for so far.
fn counted() -> (u64, u64) {
    let s = COUNTING.stats();
    (
        (s.allocations + s.reallocations) as u64,
        (s.bytes_allocated + s.bytes_reallocated.max(0) as usize) as u64,
    )
}

const MODEL: &str = "bench-model";

fn main() {
    let requests = common::env("BENCH_REQUESTS", 20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let engine = l.local_addr().unwrap();
        tokio::spawn(tollgate_sim::serve(
            tollgate_sim::SimConfig::new(MODEL).zero_latency(),
            l,
        ));
        let limits = Limits {
            requests_per_minute: Some(u32::MAX),
            tokens_per_minute: Some(u32::MAX),
            max_concurrent: Some(100_000),
            monthly_tokens: Some(u64::MAX / 2),
        };
        let bench = common::gateway(
            MODEL,
            vec![format!("http://{engine}")],
            limits,
            GatewayConfig::default(),
        )
        .await;
        let (gateway, _task) = tollgate_gateway::listener::serve_per_core(
            ([127, 0, 0, 1], 0).into(),
            1,
            tollgate_gateway::router(bench.gw.clone()),
            std::future::pending(),
        )
        .await
        .unwrap();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(connector);
        println!("tollgate-gateway heap allocations per request, {requests} requests one at a time, whole process counted");
        for stream in [false, true] {
            let body = Bytes::from(
                serde_json::json!({
                    "model": MODEL, "messages": [{"role": "user", "content": "Say something short."}],
                    "max_tokens": 16, "ignore_eos": true, "stream": stream,
                })
                .to_string(),
            );
            let mut per = Vec::new();
            for (target, auth) in [(engine, None), (gateway, Some(bench.auth.as_str()))] {
                let send = |n: u64| {
                    let (client, body) = (&client, &body);
                    async move {
                        for _ in 0..n {
                            send(client, target, auth, body.clone()).await;
                        }
                    }
                };
                send(200).await; // connections, pools, caches
                bench.gw.flush_usage().await;
                let (a0, b0) = counted();
                send(requests).await;
                // The usage records of these requests are written before counting stops.
                bench.gw.flush_usage().await;
                let (a1, b1) = counted();
                per.push(((a1 - a0) as f64 / requests as f64, (b1 - b0) as f64 / requests as f64));
            }
            let kind = if stream { "streams" } else { "non-streaming" };
            println!(
                "  {kind:13}  direct {:6.1} allocations ({:7.0} bytes)   through the gateway {:6.1} ({:7.0} bytes)   the gateway adds {:5.1} ({:6.0} bytes)",
                per[0].0, per[0].1, per[1].0, per[1].1, per[1].0 - per[0].0, per[1].1 - per[0].1
            );
        }
        bench.gw.flush_usage().await;
        let _ = bench.db.cleanup().await;
    });
}

async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    to: SocketAddr,
    auth: Option<&str>,
    body: Bytes,
) {
    let mut req = http::Request::post(format!("http://{to}/v1/chat/completions"))
        .header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let answer = client
        .request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.into_body().collect().await.unwrap();
}
