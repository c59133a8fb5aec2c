//! Replica health from the engine probes: a replica that has never answered is not routed to, a model with no
//! other replica tells clients to retry soon (503 with `Retry-After`), and the replica serves once it answers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use common::*;
use std::time::Duration;
use tokio::net::TcpListener;
use tollgate_domain::grant::Limits;
use tollgate_gateway::GatewayConfig;

async fn chat(gw: &TestGateway, secret: &str) -> reqwest::Response {
    client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&chat_body("hello", 4, false))
        .send()
        .await
        .expect("request")
}

/// Waits until the poller has probed every replica at least once more.
async fn a_few_probes() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_model_whose_engine_is_starting_says_when_to_retry_and_serves_once_it_answers() {
    let engine = dead_addr().await;
    let k = key(1, "sub_starting", MODEL, Limits::default());
    let gw = gateway(vec![k.entry.clone()], &routes(&[engine], 0), memory()).await;
    let poller = gw.gw.spawn_engine_load_poller(Duration::from_millis(30));
    a_few_probes().await;

    let r = chat(&gw, &k.secret).await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "no_replica");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is starting"),
        "{body}"
    );

    // The engine comes up on its port.
    let listener = TcpListener::bind(engine)
        .await
        .expect("rebind the engine's port");
    tokio::spawn(tollgate_sim::serve(fast_sim(), listener));
    a_few_probes().await;
    let r = chat(&gw, &k.secret).await;
    assert_eq!(r.status(), 200);

    let records = gw.wait_records(2).await;
    let mut statuses: Vec<i64> = records.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 503], "the refusal is metered too");
    poller.abort();
}

#[tokio::test]
async fn a_request_for_a_starting_model_is_held_until_its_engine_answers() {
    let engine = dead_addr().await;
    let k = key(1, "sub_held", MODEL, Limits::default());
    let config = GatewayConfig {
        wake_wait: Duration::from_secs(20),
        ..GatewayConfig::default()
    };
    let gw = gateway_with(
        vec![k.entry.clone()],
        &routes(&[engine], 0),
        memory(),
        config,
    )
    .await;
    let poller = gw.gw.spawn_engine_load_poller(Duration::from_millis(30));
    a_few_probes().await;
    let started = std::time::Instant::now();
    let held = tokio::spawn({
        let (addr, secret) = (gw.addr, k.secret.clone());
        async move {
            reqwest::Client::new()
                .post(format!("http://{addr}/v1/chat/completions"))
                .bearer_auth(secret)
                .json(&serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}))
                .send()
                .await
                .expect("request")
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!held.is_finished(), "held while the engine is starting");
    let listener = TcpListener::bind(engine)
        .await
        .expect("rebind the engine's port");
    tokio::spawn(tollgate_sim::serve(fast_sim(), listener));
    let r = held.await.expect("join");
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered when the engine came up, not at the end of the wait: {:?}",
        started.elapsed()
    );
    let records = gw.wait_records(1).await;
    assert_eq!(records.len(), 1, "one request, one record: {records:?}");
    poller.abort();
}

#[tokio::test]
async fn a_replica_that_does_not_answer_its_probe_gets_no_requests() {
    let dead = dead_addr().await;
    let live = sim(fast_sim()).await;
    let k = key(2, "sub_skip", MODEL, Limits::default());
    let gw = gateway(vec![k.entry.clone()], &routes(&[dead, live], 0), memory()).await;
    let poller = gw.gw.spawn_engine_load_poller(Duration::from_millis(30));
    a_few_probes().await;

    for _ in 0..6 {
        assert_eq!(chat(&gw, &k.secret).await.status(), 200);
    }
    let records = gw.wait_records(6).await;
    assert!(
        records
            .iter()
            .all(|r| r.replica == format!("http://{live}")),
        "a request went to the replica that is down"
    );
    let upstream_errors: f64 = gw
        .gw
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with("tollgate_gateway_upstream_errors_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(upstream_errors, 0.0, "no attempt was wasted on it");
    let text = gw.gw.metrics_text();
    assert!(
        text.contains(&format!(
            "tollgate_gateway_replica_ready{{replica=\"http://{dead}\"}} 0"
        )),
        "{text}"
    );
    assert!(text.contains(&format!(
        "tollgate_gateway_replica_ready{{replica=\"http://{live}\"}} 1"
    )));
    // Six requests one after another and the probes share pooled connections (two at most, when a probe and a
    // request overlap).
    let opened: u64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "tollgate_gateway_engine_connections_opened_total{{replica=\"http://{live}\"}} "
            ))
        })
        .and_then(|v| v.parse().ok())
        .expect("connections opened");
    assert!((1..=2).contains(&opened), "{opened} connections opened");
    poller.abort();
}

#[tokio::test]
async fn the_held_queue_is_bounded_per_model() {
    use tollgate_gateway::{ModelRoute, Routes};
    let a = key(1, "sub_a", MODEL, Limits::default());
    let b = key(2, "sub_b", "other", Limits::default());
    let starting = ModelRoute {
        served_name: "served".into(),
        replicas: vec![],
        starting: 1,
        wakeable: false,
    };
    let routes = Routes {
        models: [
            (MODEL.to_string(), starting.clone()),
            ("other".to_string(), starting),
        ]
        .into(),
    };
    let config = GatewayConfig {
        wake_wait: Duration::from_secs(3),
        wake_queue: 1,
        ..GatewayConfig::default()
    };
    let gw = gateway_with(
        vec![a.entry.clone(), b.entry.clone()],
        &routes,
        memory(),
        config,
    )
    .await;
    let send = |secret: String, model: &'static str| {
        let addr = gw.addr;
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let r = reqwest::Client::new()
                .post(format!("http://{addr}/v1/chat/completions"))
                .bearer_auth(secret)
                .json(&serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .expect("request");
            (r.status().as_u16(), started.elapsed())
        })
    };
    let first_a = send(a.secret.clone(), MODEL);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second_a = send(a.secret.clone(), MODEL);
    let first_b = send(b.secret.clone(), "other");
    let (status, waited) = second_a.await.expect("join");
    assert_eq!(status, 503);
    assert!(
        waited < Duration::from_secs(2),
        "refused at once, not held: {waited:?}"
    );
    let (status, waited) = first_b.await.expect("join");
    assert_eq!(status, 503, "nothing came up");
    assert!(
        waited >= Duration::from_secs(2),
        "another model's request was held despite the first model's full queue: {waited:?}"
    );
    let (status, waited) = first_a.await.expect("join");
    assert_eq!((status, waited >= Duration::from_secs(2)), (503, true));
}

/// An engine with no `/metrics` (llama.cpp's server without `--metrics`): `/health` and the API only.
async fn engine_without_metrics(healthy: bool) -> std::net::SocketAddr {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route(
            "/health",
            get(move || async move {
                if healthy {
                    axum::http::StatusCode::OK
                } else {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                }
            }),
        )
        .route(
            "/v1/chat/completions",
            post(|| async {
                axum::Json(serde_json::json!({
                    "id": "c", "object": "chat.completion", "created": 1, "model": SERVED,
                    "choices": [{"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "hi"}}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
                }))
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn an_engine_without_metrics_serves_while_its_health_answers() {
    let engine = engine_without_metrics(true).await;
    let k = key(1, "sub_no_metrics", MODEL, Limits::default());
    let gw = gateway(vec![k.entry.clone()], &routes(&[engine], 0), memory()).await;
    let poller = gw.gw.spawn_engine_load_poller(Duration::from_millis(30));
    a_few_probes().await;
    let r = chat(&gw, &k.secret).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    poller.abort();

    // One whose /health fails too is not ready: it stays starting.
    let sick = engine_without_metrics(false).await;
    let k = key(2, "sub_sick", MODEL, Limits::default());
    let gw = gateway(vec![k.entry.clone()], &routes(&[sick], 0), memory()).await;
    let poller = gw.gw.spawn_engine_load_poller(Duration::from_millis(30));
    a_few_probes().await;
    assert_eq!(chat(&gw, &k.secret).await.status(), 503);
    poller.abort();
}
