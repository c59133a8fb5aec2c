//! Per-minute limits slide: in any window-long span, at most the limit is admitted, whatever the timing, in memory
//! and in Redis alike, and the two backends decide the same. Checked with a simulated clock (thousands of
//! admissions over many windows, no waiting) and over HTTP with a short window (a burst test: hammering clients
//! never get more than the limit plus one request in any window-long span, counted by the client's clock).
//! Uses the Redis at 127.0.0.1:6379 (`TOLLGATE_TEST_REDIS_URL` to point elsewhere), under a fresh key prefix.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tollgate_domain::grant::Limits;
use tollgate_gateway::limits::{window, LimitError, LimitKind, Ticket};
use tollgate_gateway::{Limiter, MemoryLimiter, RedisLimiter};

const WINDOW: i64 = 60_000;
const T0: i64 = 1_769_817_600_000 + 17_321;
const RPM: u32 = 25;
const TPM: u32 = 400;

fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn redis(window_ms: i64) -> RedisLimiter {
    redis_with_prefix(window_ms).await.0
}

async fn redis_with_prefix(window_ms: i64) -> (RedisLimiter, String) {
    let prefix = tollgate_store::new_id("tgtest");
    let limiter = RedisLimiter::connected(&redis_url(), &prefix, window_ms)
        .await
        .expect("redis");
    (limiter, prefix)
}

/// Waits until Redis took a ticket's settlement (sent in the background): it left the running set.
async fn settled_in_redis(prefix: &str, ticket: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for _ in 0..500 {
        let score: Option<i64> = redis::cmd("ZSCORE")
            .arg(format!("{prefix}:{{sub}}:c"))
            .arg(ticket)
            .query_async(&mut conn)
            .await
            .unwrap();
        if score.is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{ticket} was never settled");
}

/// xorshift64: a fixed sequence per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// One decision of a run: when, what was reserved, and how it went.
#[derive(Debug, Clone, PartialEq)]
struct Decision {
    at: i64,
    reserved: u64,
    used: u64,
    outcome: Result<(), (LimitKind, i64)>,
}

/// Asks `limiter` for 1500 admissions at random intervals (a few per second, in bursts), each settled at once at
/// a random part of its reservation (all of it with `settle_fully`). With a Redis prefix, each settlement is
/// awaited before the next admission.
async fn drive(
    limiter: &dyn Limiter,
    seed: u64,
    settle_fully: bool,
    redis_prefix: Option<&str>,
) -> Vec<Decision> {
    let limits = Limits {
        requests_per_minute: Some(RPM),
        tokens_per_minute: Some(TPM),
        ..Limits::default()
    };
    let mut rng = Rng(seed);
    let mut now = T0;
    let mut decisions = Vec::new();
    for i in 0..1500 {
        // Mostly bursts (several requests within a second), sometimes a pause of up to half a window.
        now += match rng.below(10) {
            0 => rng.below(WINDOW as u64 / 2) as i64,
            1..=3 => rng.below(5_000) as i64,
            _ => rng.below(300) as i64,
        };
        let reserved = 1 + rng.below(40);
        let used = if settle_fully {
            reserved
        } else {
            rng.below(reserved + 1)
        };
        let ticket = Ticket::new(format!("t{seed}-{i}"), "sub", reserved, now, WINDOW);
        let outcome = match limiter.admit(&ticket, &limits, now).await {
            Ok(_) => {
                let id = ticket.id.clone();
                limiter.settle(ticket, used);
                if let Some(prefix) = redis_prefix {
                    settled_in_redis(prefix, &id).await;
                }
                Ok(())
            }
            Err(LimitError::Refused {
                kind,
                retry_after_ms,
                ..
            }) => Err((kind, retry_after_ms)),
            Err(e) => panic!("{e:?}"),
        };
        decisions.push(Decision {
            at: now,
            reserved,
            used,
            outcome,
        });
    }
    decisions
}

/// At most `RPM` requests and `TPM` tokens (as settled) in any window-long span; every refusal justified (what the
/// window's steps held was the limit); and enough admitted to show the limits were reached, not avoided.
fn assert_slides(decisions: &[Decision]) {
    let admitted: Vec<&Decision> = decisions.iter().filter(|d| d.outcome.is_ok()).collect();
    for (i, first) in admitted.iter().enumerate() {
        let span: Vec<&&Decision> = admitted[i..]
            .iter()
            .take_while(|d| d.at < first.at + WINDOW)
            .collect();
        assert!(
            span.len() <= RPM as usize,
            "{} requests admitted within {WINDOW} ms from {}",
            span.len(),
            first.at
        );
        let tokens: u64 = span.iter().map(|d| d.used).sum();
        assert!(tokens <= u64::from(TPM), "{tokens} tokens within a window");
    }
    let step = window::step_ms(WINDOW);
    let mut refused = 0;
    for d in decisions {
        let Err((kind, retry_after)) = d.outcome else {
            continue;
        };
        refused += 1;
        assert!(retry_after > 0 && retry_after <= WINDOW + step, "{d:?}");
        // What the window held at the refusal: the last `STEPS` steps and the current one.
        let from = (d.at.div_euclid(step) - window::STEPS) * step;
        let recent = admitted.iter().filter(|a| a.at >= from && a.at <= d.at);
        match kind {
            LimitKind::Requests => assert_eq!(recent.count(), RPM as usize, "{d:?}"),
            LimitKind::Tokens => {
                // What counted against it: reservations settled at once, so what was used.
                let counted: u64 = recent.map(|a| a.used).sum();
                assert!(counted + d.reserved > u64::from(TPM), "{d:?}: {counted}");
            }
            other => panic!("refused for {other:?}"),
        }
    }
    assert!(
        refused > 100,
        "only {refused} refusals: the limits never bit"
    );
    assert!(admitted.len() > 300, "only {} admitted", admitted.len());
}

#[tokio::test]
async fn in_memory_no_window_long_span_admits_more_than_the_limit() {
    for seed in [1, 7, 42] {
        let limiter = MemoryLimiter::with_window(WINDOW);
        assert_slides(&drive(&limiter, seed, false, None).await);
    }
}

#[tokio::test]
async fn in_redis_no_window_long_span_admits_more_than_the_limit() {
    let (limiter, prefix) = redis_with_prefix(WINDOW).await;
    assert_slides(&drive(&limiter, 9, false, Some(&prefix)).await);
}

#[tokio::test]
async fn redis_and_memory_decide_alike() {
    // Settled at what was reserved, so when a settlement reaches Redis (in the background) changes nothing.
    let memory = drive(&MemoryLimiter::with_window(WINDOW), 3, true, None).await;
    let shared = drive(&redis(WINDOW).await, 3, true, None).await;
    assert_eq!(memory, shared);
}

#[tokio::test]
async fn an_admission_from_a_lagging_clock_is_still_counted() {
    // Another replica's clock, a window behind: its admission counts in the oldest step still in the window.
    for limiter in [
        Arc::new(MemoryLimiter::with_window(WINDOW)) as Arc<dyn Limiter>,
        Arc::new(redis(WINDOW).await),
    ] {
        let limits = Limits {
            requests_per_minute: Some(2),
            ..Limits::default()
        };
        let t = |id: &str, at: i64| Ticket::new(id.into(), "sub", 1, at, WINDOW);
        limiter.admit(&t("a", T0), &limits, T0).await.unwrap();
        let late = T0 - 2 * WINDOW;
        let seen = limiter.admit(&t("b", late), &limits, late).await.unwrap();
        assert_eq!(seen.requests, 2);
        assert!(limiter.admit(&t("c", T0), &limits, T0).await.is_err());
    }
}

/// Clients hammer a gateway whose window is two seconds: by their own clocks, no two-second span has more than the
/// limit plus one admitted request (the one the client's clock may misplace at the span's edge), and several
/// windows' worth is admitted over the run.
async fn hammer(limiter: Arc<dyn Limiter>) {
    const SHORT: i64 = 2_000;
    const LIMIT: u32 = 6;
    let engine = sim(fast_sim()).await;
    let k = key(
        90,
        "sub_burst",
        MODEL,
        Limits {
            requests_per_minute: Some(LIMIT),
            ..Limits::default()
        },
    );
    assert_eq!(limiter.window_ms(), SHORT);
    let gw = gateway(vec![k.entry.clone()], &routes(&[engine], 0), limiter).await;
    let started = Instant::now();
    let admitted = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let mut clients = Vec::new();
    for i in 0..4 {
        let (url, secret, admitted) = (
            gw.url("/v1/chat/completions"),
            k.secret.clone(),
            admitted.clone(),
        );
        clients.push(tokio::spawn(async move {
            let c = client();
            let mut refused = 0;
            while started.elapsed() < Duration::from_millis(5_500) {
                let sent = started.elapsed();
                let r = c
                    .post(&url)
                    .bearer_auth(&secret)
                    .json(&chat_body(&format!("burst {i}"), 4, false))
                    .send()
                    .await
                    .unwrap();
                match r.status().as_u16() {
                    200 => admitted.lock().unwrap().push(sent),
                    429 => {
                        let retry: u64 = r.headers()["retry-after"]
                            .to_str()
                            .unwrap()
                            .parse()
                            .unwrap();
                        assert!((1..=3).contains(&retry), "retry-after {retry}");
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    s => panic!("{s}: {}", r.text().await.unwrap()),
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for c in clients {
        refused += c.await.unwrap();
    }
    let mut times = admitted.lock().unwrap().clone();
    times.sort();
    let span = Duration::from_millis(SHORT as u64);
    let most = (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t < times[i] + span)
                .count()
        })
        .max()
        .unwrap_or(0);
    println!(
        "{} admitted, {refused} refused in 5.5 s; at most {most} in any {SHORT} ms (limit {LIMIT})",
        times.len()
    );
    assert!(
        most <= LIMIT as usize + 1,
        "{most} admitted within {SHORT} ms"
    );
    assert!(refused > 20, "the limit never bit");
    // Over 5.5 s a 2 s sliding window admits at least two windows' worth, however the steps fall.
    assert!(
        times.len() >= 2 * LIMIT as usize,
        "{} admitted",
        times.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_at_a_window_edge_gets_no_more_than_the_limit_in_memory() {
    hammer(Arc::new(MemoryLimiter::with_window(2_000))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_at_a_window_edge_gets_no_more_than_the_limit_in_redis() {
    hammer(Arc::new(redis(2_000).await)).await;
}
