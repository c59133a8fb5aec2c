//! An engine behind `https://`: the gateway trusts it through a configured CA (the test CA in
//! `tests/fixtures/tls`), keeps its TLS connections alive across requests, streams through TLS, and refuses an
//! engine whose certificate it cannot verify. The engine is the simulator behind a TLS terminator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use common::tls_front::{fixture, tls_front};
use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tollgate_domain::grant::Limits;
use tollgate_gateway::engine_conn::EngineTls;
use tollgate_gateway::GatewayConfig;

async fn https_gateway(tls: EngineTls) -> (TestGateway, TestKey, Arc<AtomicUsize>) {
    let engine = sim(fast_sim()).await;
    let (front, sessions) = tls_front(engine).await;
    let k = key(71, "sub_tls", MODEL, Limits::default());
    let gw = gateway_with(
        vec![k.entry.clone()],
        // By name: the certificate is checked against "localhost".
        &routes_to(vec![format!("https://localhost:{}", front.port())], 0),
        memory(),
        GatewayConfig {
            engine_tls: tls,
            ..no_holding()
        },
    )
    .await;
    (gw, k, sessions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_engine_with_a_configured_ca_serves_answers_and_streams() {
    let tls = EngineTls::with_ca_file(&fixture("ca.pem")).unwrap();
    let (gw, k, sessions) = https_gateway(tls).await;
    let c = client();
    for i in 0..5 {
        let r = c
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&k.secret)
            .json(&chat_body(&format!("hello {i}"), 8, false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["model"], MODEL);
        assert!(body["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    }
    let r = c
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&k.secret)
        .json(&chat_body("stream it", 8, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = sse_data(&r.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(events.len() > 3, "{events:?}");
    assert_eq!(
        sessions.load(Ordering::Relaxed),
        1,
        "one TLS session, kept alive across the six requests"
    );
    let records = gw.wait_records(6).await;
    assert!(records
        .iter()
        .all(|r| r.status == 200 && r.completion_tokens > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_engine_whose_certificate_is_not_trusted_is_refused() {
    // The system's roots only: the test CA is not among them.
    let (gw, k, sessions) = https_gateway(EngineTls::default()).await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&k.secret)
        .json(&chat_body("hello", 8, false))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unavailable", "{body}");
    assert_eq!(
        sessions.load(Ordering::Relaxed),
        0,
        "no TLS session was completed"
    );
}

#[test]
fn a_ca_file_without_certificates_is_an_error() {
    let e = EngineTls::with_ca_file(&fixture("engine.key")).unwrap_err();
    assert!(e.contains("no certificate"), "{e}");
    assert!(EngineTls::with_ca_file(&fixture("missing.pem")).is_err());
}
