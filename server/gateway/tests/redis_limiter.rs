//! The Redis limiter's running set: slots lapse after their lease however busy the subscription is, long requests
//! keep theirs by refreshing, and settling a ticket that was never admitted changes nothing. Uses the Redis at
//! 127.0.0.1:6379 (`TOLLGATE_TEST_REDIS_URL` to point elsewhere), under a fresh key prefix per test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use std::time::Duration;
use tollgate_domain::grant::Limits;
use tollgate_gateway::limits::{LimitError, LimitKind, Ticket};
use tollgate_gateway::{Limiter, RedisLimiter};

const WINDOW: i64 = 3_600_000;
const LEASE: i64 = 60_000;
/// A fixed instant at the start of an hour window, so every `now` below falls in one window.
const T0: i64 = 1_769_817_600_000;

fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn limiter() -> (RedisLimiter, String) {
    let prefix = tollgate_store::new_id("tgtest");
    let l = RedisLimiter::connected(&redis_url(), &prefix, WINDOW)
        .await
        .expect("redis")
        .with_lease_ms(LEASE);
    (l, prefix)
}

fn ticket(id: &str, reserve: u64, now: i64) -> Ticket {
    Ticket::new(id.into(), "sub", reserve, now, WINDOW)
}

fn one_at_a_time() -> Limits {
    Limits {
        max_concurrent: Some(1),
        ..Limits::default()
    }
}

fn refused_for_concurrency(r: Result<tollgate_gateway::limits::Seen, LimitError>) -> bool {
    matches!(
        r,
        Err(LimitError::Refused {
            kind: LimitKind::Concurrency,
            ..
        })
    )
}

/// The lapse time Redis holds for a ticket (None once it left the running set).
async fn lapse_of(prefix: &str, id: &str) -> Option<i64> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("ZSCORE")
        .arg(format!("{prefix}:{{sub}}:c"))
        .arg(id)
        .query_async::<Option<i64>>(&mut conn)
        .await
        .unwrap()
}

/// Waits for a background update to reach Redis.
async fn until_lapse(prefix: &str, id: &str, want: Option<i64>) {
    for _ in 0..200 {
        if lapse_of(prefix, id).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} never reached {want:?}");
}

#[tokio::test]
async fn a_lost_slot_comes_back_after_its_lease_even_under_traffic() {
    let (l, _) = limiter().await;
    // Admitted, then never settled (its gateway crashed).
    l.admit(&ticket("lost", 10, T0), &one_at_a_time(), T0)
        .await
        .unwrap();
    // Traffic keeps coming while the slot is held: refused, and the refusals do not extend the lost slot.
    for (i, at) in [T0 + 1_000, T0 + 30_000, T0 + 59_000]
        .into_iter()
        .enumerate()
    {
        let r = l
            .admit(&ticket(&format!("busy{i}"), 10, at), &one_at_a_time(), at)
            .await;
        assert!(refused_for_concurrency(r), "{i}");
    }
    let after = T0 + LEASE + 1;
    l.admit(&ticket("next", 10, after), &one_at_a_time(), after)
        .await
        .expect("the lost slot lapsed");
}

#[tokio::test]
async fn a_refreshed_request_keeps_its_slot_past_the_lease() {
    let (l, prefix) = limiter().await;
    let long = ticket("long", 10, T0);
    l.admit(&long, &one_at_a_time(), T0).await.unwrap();
    l.refresh(&long, T0 + 50_000);
    until_lapse(&prefix, "long", Some(T0 + 50_000 + LEASE)).await;
    let at = T0 + LEASE + 10_000;
    let r = l
        .admit(&ticket("other", 10, at), &one_at_a_time(), at)
        .await;
    assert!(
        refused_for_concurrency(r),
        "the long request still holds the slot"
    );
    l.settle(long, 5);
    until_lapse(&prefix, "long", None).await;
    l.admit(&ticket("after", 10, at), &one_at_a_time(), at)
        .await
        .expect("settled: the slot is free");
    // A settled ticket is not brought back by a late refresh.
    l.refresh(&ticket("long", 10, T0), at);
    l.refresh(&ticket("after", 10, at), at + 1);
    until_lapse(&prefix, "after", Some(at + 1 + LEASE)).await;
    assert_eq!(lapse_of(&prefix, "long").await, None);
}

#[tokio::test]
async fn settling_a_ticket_never_admitted_changes_nothing() {
    let (l, prefix) = limiter().await;
    let limits = Limits {
        max_concurrent: Some(2),
        tokens_per_minute: Some(10_000),
        ..Limits::default()
    };
    let held = ticket("held", 100, T0);
    let marker = ticket("marker", 10, T0);
    l.admit(&held, &limits, T0).await.unwrap();
    assert_eq!(l.admit(&marker, &limits, T0).await.unwrap().tokens, 110);
    // A refused ticket, one whose admission never ran (abandoned before it was sent), and one settled twice.
    let refused = ticket("refused", 500, T0);
    assert!(refused_for_concurrency(
        l.admit(&refused, &limits, T0).await
    ));
    l.settle(refused, 0);
    l.settle(ticket("never", 700, T0), 0);
    l.settle(held.clone(), 100);
    l.settle(held, 0);
    // Sent after those on the same connection: once it shows, they are done.
    l.refresh(&marker, T0 + 1);
    until_lapse(&prefix, "marker", Some(T0 + 1 + LEASE)).await;
    let seen = l
        .admit(&ticket("probe", 1, T0), &limits, T0)
        .await
        .expect("held's slot is free");
    assert_eq!(
        seen.tokens, 111,
        "held (settled once, at 100), the marker and the probe"
    );
}

#[tokio::test]
async fn admissions_report_the_month_so_far() {
    let (l, _prefix) = limiter().await;
    let limits = Limits {
        monthly_tokens: Some(1_000),
        ..Limits::default()
    };
    let first = l.admit(&ticket("a", 100, T0), &limits, T0).await.unwrap();
    let second = l.admit(&ticket("b", 200, T0), &limits, T0).await.unwrap();
    assert_eq!((first.month_tokens, second.month_tokens), (100, 300));
    match l.admit(&ticket("c", 800, T0), &limits, T0).await {
        Err(LimitError::Refused {
            kind: LimitKind::Monthly,
            seen,
            ..
        }) => assert_eq!(
            seen.month_tokens, 300,
            "a refusal reports the month as it was"
        ),
        other => panic!("expected a monthly refusal, got {other:?}"),
    }
}
