//! A client that leaves while its admission is in flight (a Redis round trip) gets its slot and tokens back: the
//! admission may have run, but no answer came before the handler was dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use async_trait::async_trait;
use common::*;
use std::sync::Arc;
use std::time::Duration;
use tollgate_domain::grant::Limits;
use tollgate_gateway::limits::{LimitError, Seen, Ticket};
use tollgate_gateway::{Limiter, MemoryLimiter};

/// Runs the admission, then never answers, like a Redis reply that does not come back before the client leaves.
struct AdmitsThenHangs(Arc<MemoryLimiter>);

#[async_trait]
impl Limiter for AdmitsThenHangs {
    async fn admit(&self, t: &Ticket, l: &Limits, now: i64) -> Result<Seen, LimitError> {
        self.0.admit(t, l, now).await?;
        std::future::pending().await
    }
    fn settle(&self, t: Ticket, used: u64) {
        self.0.settle(t, used)
    }
    async fn seed_month(&self, s: &str, m: i64, t: u64) -> Result<(), String> {
        self.0.seed_month(s, m, t).await
    }
    fn window_ms(&self) -> i64 {
        self.0.window_ms()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_during_admission_gets_its_slot_back() {
    let engine = sim(fast_sim()).await;
    let counters = memory();
    let k = key(
        93,
        "sub_abandoned",
        MODEL,
        Limits {
            max_concurrent: Some(1),
            tokens_per_minute: Some(100_000),
            ..Limits::default()
        },
    );
    let g = gateway(
        vec![k.entry.clone()],
        &routes(&[engine], 0),
        Arc::new(AdmitsThenHangs(counters.clone())),
    )
    .await;
    let leaving = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = leaving
        .post(g.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {}", k.secret))
        .json(&chat_body("hello", 4, false))
        .send()
        .await;
    assert!(
        r.is_err(),
        "the admission never answers, so the client gives up"
    );
    // The gateway notices the client left and drops the request; its admission is settled.
    for _ in 0..200 {
        let c = counters
            .counters("sub_abandoned")
            .expect("the admission ran");
        if c.concurrent == 0 {
            assert_eq!(c.tokens, 0, "the reserved tokens are back too");
            assert_eq!(g.wait_records(1).await[0].status, 499);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the abandoned admission still holds its slot");
}
