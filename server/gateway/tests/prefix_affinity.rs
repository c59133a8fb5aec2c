//! Prefix affinity through the real gateway: requests that share a long beginning land on one replica (whose
//! engine then serves them from its prefix cache), other beginnings spread over the replicas, and with affinity
//! off the same requests are spread by load.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use common::*;
use std::collections::{BTreeSet, HashMap};
use tollgate_domain::grant::Limits;
use tollgate_gateway::GatewayConfig;

fn body(system: &str, question: &str) -> serde_json::Value {
    serde_json::json!({
        "model": MODEL, "max_tokens": 4,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
    })
}

/// Sends `requests` one after another; returns the replica each was served by, from the usage records.
async fn replicas_used(factor: f64, requests: &[serde_json::Value]) -> Vec<String> {
    let engines = [
        sim(fast_sim()).await,
        sim(fast_sim()).await,
        sim(fast_sim()).await,
    ];
    let k = key(3, "sub_affinity", MODEL, Limits::default());
    let config = GatewayConfig {
        prefix_affinity: factor,
        ..no_holding()
    };
    let gw = gateway_with(
        vec![k.entry.clone()],
        &routes(&engines, 0),
        memory(),
        config,
    )
    .await;
    let mut ids = Vec::new();
    for b in requests {
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&k.secret)
            .json(b)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    let records = gw.wait_records(requests.len()).await;
    let by_id: HashMap<&str, &str> = records
        .iter()
        .map(|r| (r.request_id.as_str(), r.replica.as_str()))
        .collect();
    ids.iter()
        .map(|id| by_id[id.as_str()].to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_begin_alike_meet_one_replica() {
    let system =
        "You are a support agent for a bicycle shop. Answer briefly and politely. ".repeat(40);
    let same: Vec<_> = (0..9)
        .map(|i| body(&system, &format!("Question {i}?")))
        .collect();
    let used = replicas_used(1.25, &same).await;
    assert_eq!(used.iter().collect::<BTreeSet<_>>().len(), 1, "{used:?}");

    // Different beginnings spread over the replicas.
    let spread: Vec<_> = (0..30)
        .map(|i| body(&format!("System prompt number {i}. ").repeat(40), "Hello?"))
        .collect();
    let used = replicas_used(1.25, &spread).await;
    assert_eq!(used.iter().collect::<BTreeSet<_>>().len(), 3, "{used:?}");

    // Affinity off: one after another, each request finds every replica idle and the rotation spreads them.
    let used = replicas_used(0.0, &same).await;
    assert!(used.iter().collect::<BTreeSet<_>>().len() > 1, "{used:?}");
}
