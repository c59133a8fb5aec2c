//! A plan's scheduling tier reaches the engine as vLLM's `priority`: on a saturated simulator (one sequence at a
//! time), a request from a higher tier overtakes the lower tier's requests already waiting.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use common::*;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tollgate_domain::grant::{KeyEntry, Limits};

fn with_priority(k: TestKey, priority: Option<i32>) -> TestKey {
    let mut grant = (*k.entry.grant).clone();
    grant.priority = priority;
    TestKey {
        secret: k.secret,
        entry: KeyEntry {
            grant: Arc::new(grant),
            ..k.entry
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_tier_overtakes_queued_lower_tier_requests() {
    let mut config = fast_sim();
    config.max_num_seqs = 1;
    config.latency.decode_ms = 10.0;
    let engine = sim(config).await;
    let low = with_priority(key(21, "sub_low", MODEL, Limits::default()), None);
    let high = with_priority(key(22, "sub_high", MODEL, Limits::default()), Some(-5));
    let g = Arc::new(
        gateway(
            vec![low.entry.clone(), high.entry.clone()],
            &routes(&[engine], 0),
            memory(),
        )
        .await,
    );
    let finished = Arc::new(Mutex::new(Vec::<String>::new()));
    let send = |name: String, secret: String| {
        let (g, finished) = (g.clone(), finished.clone());
        tokio::spawn(async move {
            let r = client()
                .post(g.url("/v1/chat/completions"))
                .bearer_auth(secret)
                .json(
                    &json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 20, "ignore_eos": true}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{name}");
            let _ = r.bytes().await;
            finished.lock().unwrap().push(name);
        })
    };
    // One low-tier request runs (20 tokens of 10 ms), four more low-tier ones queue behind it, then a high one comes.
    let mut tasks = vec![send("low-running".into(), low.secret.clone())];
    tokio::time::sleep(Duration::from_millis(20)).await;
    for i in 0..4 {
        tasks.push(send(format!("low-{i}"), low.secret.clone()));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    tasks.push(send("high".into(), high.secret.clone()));
    for t in tasks {
        t.await.unwrap();
    }
    let order = finished.lock().unwrap().clone();
    assert_eq!(order.len(), 6, "{order:?}");
    assert_eq!(order[0], "low-running", "{order:?}");
    assert_eq!(
        order[1], "high",
        "the higher tier is scheduled before the queued lower tier: {order:?}"
    );
    assert_eq!(
        &order[2..],
        ["low-0", "low-1", "low-2", "low-3"],
        "FIFO within a tier"
    );
}
