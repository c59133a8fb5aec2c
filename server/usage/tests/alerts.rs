//! The alert task against a real store, on SQLite and PostgreSQL: two evaluators running at once (two servers)
//! record each threshold once; more use crosses the next one only; repeated 429s raise one rate-limit alert; a
//! webhook that cannot be reached is retried with backoff and given up after the last attempt, the reason kept,
//! and the list says so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_domain::usage::alerts::PRIVATE_WEBHOOK;
use tollgate_domain::usage::alerts::{AlertKind, MAX_ATTEMPTS};
use tollgate_domain::DomainError;
use tollgate_domain::TenantRole;
use tollgate_identity::testing;
use tollgate_store::testing::{self as testing_store, Flavor, TestDatabase};
use tollgate_store::{NewUsage, Store};
use tollgate_usage::alerts::{AlertSettings, Alerts};
use tollgate_usage::Usage;

fn record<'a>(
    id: &'a str,
    tenant: &'a str,
    team: &'a str,
    sub: &'a str,
    status: i64,
    tokens: i64,
    at: i64,
) -> NewUsage<'a> {
    NewUsage {
        id,
        request_id: id,
        at,
        tenant_id: tenant,
        team_id: team,
        subscription_id: sub,
        key_id: Some("key"),
        model: "alert-model",
        replica: "",
        endpoint: "chat",
        status,
        prompt_tokens: tokens,
        completion_tokens: 0,
        latency_ms: 10,
        ttft_ms: None,
        streamed: false,
        client_disconnected: false,
        source: "key",
        refusal: if status == 429 { "requests" } else { "" },
    }
}

/// The alert task; `private`: webhooks may reach internal addresses (these tests' receivers are on loopback).
fn alerts_with(store: &Store, private: bool) -> Alerts {
    Alerts::new(
        store.clone(),
        AlertSettings {
            interval: Duration::from_secs(1),
            retry_first: Duration::from_millis(1),
            rate_limited_at_least: 3,
            webhook_timeout: Duration::from_secs(2),
            webhook_private: private,
        },
        None,
    )
    .unwrap()
}

fn alerts(store: &Store) -> Alerts {
    alerts_with(store, true)
}

/// A webhook receiver on loopback that answers 200 to anything and counts the connections it accepted.
async fn receiver() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, connections)
}

async fn suite(flavor: Flavor) {
    let db = TestDatabase::new(flavor).await.unwrap();
    let store = db.store().await.unwrap();
    let identity = testing::identity(&store);
    let usage = Usage::new(store.clone(), identity.clone());

    let tenant = store.create_tenant("acme", "Acme").await.unwrap().id;
    let caller = testing::user(
        &store,
        "admin@acme.test",
        Some((&tenant, TenantRole::Admin)),
        false,
    )
    .await;
    let team = store.create_team(&tenant, "Search", "").await.unwrap().id;
    let (_, sub) = testing_store::subscribe(
        &store,
        testing_store::Subscribe {
            tenant_id: &tenant,
            team_id: &team,
            requested_by: &caller.user_id,
            model_id: "alert-model",
            prices: ("", ""),
            plan: tollgate_domain::plan::PlanInput {
                name: "Thousand".into(),
                monthly_tokens: "1000".into(),
                ..Default::default()
            },
        },
    )
    .await
    .unwrap();
    // Nothing listens on port 1: every delivery fails to connect.
    store
        .set_tenant_webhook(&tenant, "http://127.0.0.1:1/hook", Some("s"), 0)
        .await
        .unwrap();

    let now = tollgate_store::now_millis();
    store
        .insert_usage_batch(&[record("r1", &tenant, &team, &sub, 200, 950, now)])
        .await
        .unwrap();
    // Two servers evaluating at the same instant: 50 % and 90 % are recorded once in all.
    let (a, b) = (alerts(&store), alerts(&store));
    let (x, y) = tokio::join!(a.evaluate(now), b.evaluate(now));
    assert_eq!(x.unwrap() + y.unwrap(), 2);
    assert_eq!(a.evaluate(now).await.unwrap(), 0, "nothing fires twice");

    // More use crosses 100 %; three 429s in the window raise one rate-limit alert.
    store
        .insert_usage_batch(&[
            record("r2", &tenant, &team, &sub, 200, 60, now),
            record("r3", &tenant, &team, &sub, 429, 0, now),
            record("r4", &tenant, &team, &sub, 429, 0, now),
            record("r5", &tenant, &team, &sub, 429, 0, now),
        ])
        .await
        .unwrap();
    assert_eq!(a.evaluate(now).await.unwrap(), 2);
    assert_eq!(b.evaluate(now + 1000).await.unwrap(), 0);

    let page = usage
        .alerts(&caller, Some(&tenant), None, 10)
        .await
        .unwrap();
    let mut kinds: Vec<(AlertKind, u8)> =
        page.items.iter().map(|a| (a.kind, a.threshold)).collect();
    kinds.sort_by_key(|(k, t)| (k.as_str(), *t));
    assert_eq!(
        kinds,
        vec![
            (AlertKind::Quota, 50),
            (AlertKind::Quota, 90),
            (AlertKind::Quota, 100),
            (AlertKind::RateLimited, 0),
        ]
    );
    let limited = page
        .items
        .iter()
        .find(|a| a.kind == AlertKind::RateLimited)
        .unwrap();
    assert_eq!(limited.refusals, 3);
    assert!(page.items.iter().all(|a| a.deliveries.len() == 1
        && a.deliveries[0].channel == "webhook"
        && a.deliveries[0].status == "pending"));

    // The unreachable webhook: retried with backoff (1, 2, 4 ... ms here), then given up with the reason.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        a.deliver_due(tollgate_store::now_millis()).await.unwrap();
        let page = usage
            .alerts(&caller, Some(&tenant), None, 10)
            .await
            .unwrap();
        if page
            .items
            .iter()
            .all(|a| a.deliveries[0].status == "failed")
        {
            for alert in &page.items {
                let d = &alert.deliveries[0];
                assert_eq!(d.attempts, MAX_ATTEMPTS);
                assert!(
                    d.last_error.contains("could not connect"),
                    "{}",
                    d.last_error
                );
                assert_eq!(d.delivered_at, None);
            }
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never given up: {page:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        store.due_deliveries(i64::MAX, 10).await.unwrap().len(),
        0,
        "given up deliveries are never due again"
    );

    // A developer of the tenant outside the team sees none of its alerts; the webhook is not theirs to read.
    let dev = testing::user(
        &store,
        "dev@acme.test",
        Some((&tenant, TenantRole::Developer)),
        false,
    )
    .await;
    assert!(usage
        .alerts(&dev, Some(&tenant), None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(usage.webhook(&dev, &tenant).await.is_err());
    assert!(usage
        .set_webhook(&dev, &tenant, "https://x.test/")
        .await
        .is_err());
    store
        .add_team_member(&tenant, &team, &dev.user_id)
        .await
        .unwrap();
    assert_eq!(
        usage
            .alerts(&dev, Some(&tenant), None, 10)
            .await
            .unwrap()
            .items
            .len(),
        4,
        "once in the team, its alerts"
    );

    // Another tenant's member sees none of it.
    let other = store.create_tenant("other", "Other").await.unwrap().id;
    let stranger = testing::user(
        &store,
        "admin@other.test",
        Some((&other, TenantRole::Admin)),
        false,
    )
    .await;
    assert!(usage
        .alerts(&stranger, Some(&tenant), None, 10)
        .await
        .is_err());
    assert!(usage
        .alerts(&stranger, Some(&other), None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(usage.webhook(&stranger, &tenant).await.is_err());

    // Once the tenant removes its webhook, a delivery waiting for it is given up at its first attempt (retrying
    // cannot help), the reason kept.
    assert!(store.delete_tenant_webhook(&tenant).await.unwrap());
    let late_alert = tollgate_store::NewAlert {
        tenant_id: &tenant,
        team_id: &team,
        subscription_id: &sub,
        kind: "quota",
        threshold: 50,
        period: "1999-01",
        team_name: "Team",
        model: "m",
        quota_tokens: Some(1000),
        used_tokens: 500,
        refusals: 0,
        at: tollgate_store::now_millis(),
    };
    let hook = tollgate_store::NewDelivery {
        channel: "webhook",
        target: "webhook",
    };
    assert!(store.record_alert(&late_alert, &[hook]).await.unwrap());
    a.deliver_due(tollgate_store::now_millis()).await.unwrap();
    let page = usage
        .alerts(&caller, Some(&tenant), None, 10)
        .await
        .unwrap();
    let late = page.items.iter().find(|a| a.period == "1999-01").unwrap();
    let d = &late.deliveries[0];
    assert_eq!((d.status.as_str(), d.attempts), ("failed", 1), "{d:?}");
    assert!(d.last_error.contains("removed"), "{}", d.last_error);

    // Internal addresses, unless the setting allows them: a webhook on one is refused when it is saved, and a
    // delivery to one (saved before the rule, or spelt so that a URL parser reads it as an address) is given up at
    // its first attempt without a connection.
    let (port, connections) = receiver().await;
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://0x7f.0.0.1:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        assert!(
            matches!(
                usage.set_webhook(&caller, &tenant, &url).await,
                Err(DomainError::Invalid(ref why)) if why == PRIVATE_WEBHOOK
            ),
            "{url}"
        );
    }
    let trusting = Usage::new(store.clone(), identity.clone()).allowing_private_webhooks(true);
    trusting
        .set_webhook(&caller, &tenant, &format!("http://0x7f.0.0.1:{port}/hook"))
        .await
        .unwrap();
    let strict = alerts_with(&store, false);
    let fire = |period: &'static str| {
        let alert = tollgate_store::NewAlert {
            period,
            at: tollgate_store::now_millis(),
            ..late_alert.clone()
        };
        let store = store.clone();
        async move {
            assert!(store.record_alert(&alert, &[hook]).await.unwrap());
        }
    };
    // The one delivery of the alert of `period`, once `task` has sent what is due.
    let delivered_by = |task: Alerts, period: &'static str| {
        let (usage, caller, tenant) = (usage.clone(), caller.clone(), tenant.clone());
        async move {
            task.deliver_due(tollgate_store::now_millis())
                .await
                .unwrap();
            let page = usage
                .alerts(&caller, Some(&tenant), None, 10)
                .await
                .unwrap();
            let alert = page.items.into_iter().find(|a| a.period == period);
            alert.unwrap().deliveries.remove(0)
        }
    };
    fire("1999-02").await;
    let d = &delivered_by(strict, "1999-02").await;
    assert_eq!((d.status.as_str(), d.attempts), ("failed", 1), "{d:?}");
    assert_eq!(d.last_error, PRIVATE_WEBHOOK);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "no connection was made"
    );
    // Allowed, the same webhook is called.
    fire("1999-03").await;
    let d = &delivered_by(a.clone(), "1999-03").await;
    assert_eq!(d.status, "delivered", "{d:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 1);

    store.close().await;
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn alerts_on_sqlite() {
    suite(Flavor::Sqlite).await;
}

#[tokio::test]
async fn alerts_on_postgres() {
    suite(Flavor::Postgres).await;
}
