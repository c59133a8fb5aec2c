//! Two gateways sharing one Redis enforce one token limit: together they admit what one would, not twice as much.
//! Uses the Redis at 127.0.0.1:6379 (`TOLLGATE_TEST_REDIS_URL` to point elsewhere), under a fresh key prefix.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use common::*;
use std::sync::Arc;
use tollgate_domain::grant::Limits;
use tollgate_gateway::{Limiter, RedisLimiter};

fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_enforce_one_token_limit() {
    const TPM: u32 = 2_000;
    let engine = sim(fast_sim()).await;
    let prefix = tollgate_store::new_id("tgtest");
    // An hour-long window, so the run never straddles two windows.
    let window = 3_600_000;
    let a: Arc<dyn Limiter> = Arc::new(
        RedisLimiter::connected(&redis_url(), &prefix, window)
            .await
            .expect("redis"),
    );
    let b: Arc<dyn Limiter> = Arc::new(
        RedisLimiter::connected(&redis_url(), &prefix, window)
            .await
            .expect("redis"),
    );
    let k = key(
        70,
        "sub_shared",
        MODEL,
        Limits {
            tokens_per_minute: Some(TPM),
            ..Limits::default()
        },
    );
    let ga = gateway(vec![k.entry.clone()], &routes(&[engine], 0), a).await;
    let gb = gateway(vec![k.entry.clone()], &routes(&[engine], 0), b).await;

    // Four clients per gateway, each sending until refused.
    let mut tasks = Vec::new();
    for (i, url) in [
        ga.url("/v1/chat/completions"),
        gb.url("/v1/chat/completions"),
    ]
    .into_iter()
    .cycle()
    .take(8)
    .enumerate()
    {
        let secret = k.secret.clone();
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut ok = 0;
            loop {
                let r = c
                    .post(&url)
                    .header("authorization", format!("Bearer {secret}"))
                    .json(&chat_body(
                        &format!("client {i} says hello"),
                        16,
                        i % 2 == 0,
                    ))
                    .send()
                    .await
                    .unwrap();
                match r.status().as_u16() {
                    200 => {
                        let _ = r.bytes().await.unwrap();
                        ok += 1;
                    }
                    429 => return ok,
                    s => panic!("unexpected {s}: {}", r.text().await.unwrap()),
                }
            }
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += t.await.unwrap();
    }
    let records: Vec<_> = ga
        .records()
        .await
        .into_iter()
        .chain(gb.records().await)
        .filter(|r| r.status == 200)
        .collect();
    assert_eq!(records.len(), admitted);
    let used: i64 = records
        .iter()
        .map(|r| r.prompt_tokens + r.completion_tokens)
        .sum();
    let biggest = records
        .iter()
        .map(|r| r.prompt_tokens + r.completion_tokens)
        .max()
        .unwrap();
    assert!(records.iter().all(|r| !r.replica.is_empty()));
    // Both gateways served some of the traffic.
    assert!(!ga.records().await.is_empty() && !gb.records().await.is_empty());
    // One limit, not two: the total stays within the limit plus what requests in flight at the last admission could
    // exceed their estimate by, and the limit was actually used up.
    assert!(
        used <= i64::from(TPM) + 8 * biggest / 2,
        "used {used} of {TPM} (largest request {biggest})"
    );
    assert!(
        used >= i64::from(TPM) - 8 * biggest,
        "used {used} of {TPM}: the limit was not reached"
    );
    assert!(
        used < 2 * i64::from(TPM) - 8 * biggest,
        "two separate limits would allow about twice the tokens"
    );
}
