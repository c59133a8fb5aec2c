//! What TLS to an engine costs the gateway's engine connections: the same requests sent through `EnginePool` to the
//! simulator over plain HTTP and over `https://` (a TLS terminator in front of it, the test CA trusted), on kept
//! connections, one at a time (added latency) and 16 at once (throughput); and a new connection's cost with each.
//! The terminator is a hop of its own, so plain HTTP is also measured through a plain relay: that row against the
//! https row is what TLS alone costs.
//!
//! `cargo bench -p tollgate-gateway --bench engine_tls` (`BENCH_REQUESTS`, default 20000).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;
#[path = "../tests/common/tls_front.rs"]
mod tls_front;

use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tollgate_gateway::engine_conn::{
    ConnectOptions, EngineAddress, EnginePool, EngineRequest, EngineTls,
};

const MODEL: &str = "bench-model";
const BODY: &[u8] = br#"{"model":"bench-model","prompt":"Count to three","max_tokens":16}"#;

fn main() {
    let requests = common::env("BENCH_REQUESTS", 20_000) as usize;
    // The engine and its TLS front on a runtime of their own, as a process apart would be.
    let engine_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (plain, relayed, tls) = engine_rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let engine = l.local_addr().unwrap();
        tokio::spawn(tollgate_sim::serve(
            tollgate_sim::SimConfig::new(MODEL).zero_latency(),
            l,
        ));
        let (front, _) = tls_front::tls_front(engine).await;
        let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay_addr = relay.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = relay.accept().await {
                tokio::spawn(async move {
                    let _ = inbound.set_nodelay(true);
                    let mut outbound = tokio::net::TcpStream::connect(engine).await.unwrap();
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        (
            EngineAddress::parse(&format!("http://{engine}")).unwrap(),
            EngineAddress::parse(&format!("http://{relay_addr}")).unwrap(),
            EngineAddress::parse(&format!("https://localhost:{}", front.port())).unwrap(),
        )
    });
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let trust = EngineTls::with_ca_file(&tls_front::fixture("ca.pem")).unwrap();
    println!("tollgate-gateway engine connections, plain HTTP against TLS (the simulator behind a TLS terminator, on one machine)");
    client.block_on(async {
        for (name, address) in [
            ("http", &plain),
            ("http, relayed", &relayed),
            ("https", &tls),
        ] {
            let options = ConnectOptions {
                connect_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(60),
                tls: &trust,
            };
            let head = address
                .head("POST", "/v1/completions", Some("application/json"))
                .unwrap();
            let send = |pool: Arc<EnginePool>| {
                let head = &head;
                async move {
                    let request = EngineRequest {
                        head,
                        request_id: None,
                        body: Some(BODY),
                    };
                    let answer = pool.send(address, request, &options).await.unwrap();
                    assert_eq!(answer.status, 200);
                    answer.body.collect().await.unwrap();
                }
            };
            // New connections: a fresh pool per request.
            let fresh = 200;
            let started = Instant::now();
            for _ in 0..fresh {
                send(Arc::default()).await;
            }
            let per_new = started.elapsed().as_secs_f64() * 1e6 / fresh as f64;
            // Kept connections, one request at a time.
            let pool: Arc<EnginePool> = Arc::default();
            send(pool.clone()).await;
            let mut took = Vec::with_capacity(requests);
            for _ in 0..requests {
                let t = Instant::now();
                send(pool.clone()).await;
                took.push(t.elapsed().as_secs_f64() * 1e6);
            }
            took.sort_by(f64::total_cmp);
            let at = |q: f64| took[((took.len() as f64 - 1.0) * q) as usize];
            // Kept connections, 16 at a time.
            let started = Instant::now();
            let per_task = requests / 16;
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let pool = pool.clone();
                    async move {
                        for _ in 0..per_task {
                            send(pool.clone()).await;
                        }
                    }
                })
                .collect();
            futures_util::future::join_all(tasks).await;
            let rps = (per_task * 16) as f64 / started.elapsed().as_secs_f64();
            println!(
                "  {name:13}  one at a time: p50 {:6.1} µs  p99 {:6.1} µs   16 at once: {rps:8.0} requests/s   a new connection each: {per_new:7.1} µs per request   ({} connections opened)",
                at(0.5),
                at(0.99),
                pool.opened(),
            );
        }
    });
}
