//! Usage alerts in the store, on SQLite and PostgreSQL: an alert fires once per (subscription, kind, threshold,
//! period) even when recorded twice at once; its deliveries are claimed by one caller per attempt and finish
//! delivered, put off or given up; recipients are the team's members and the tenant's admins; webhooks are set,
//! rotated and removed within their tenant; lists are newest first, keyset-paged and scoped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use tollgate_store::testing::{Flavor, TestDatabase};
use tollgate_store::{AlertQuery, NewAlert, NewDelivery, NewUser, Store};

fn user(email: &str) -> NewUser<'_> {
    NewUser {
        email,
        name: email,
        password_hash: Some("hash"),
        oidc: None,
        platform_admin: false,
    }
}

struct World {
    tenant: String,
    other: String,
    team: String,
    sub: String,
}

async fn world(store: &Store) -> World {
    let acme = store.create_tenant("acme", "Acme").await.unwrap();
    let other = store.create_tenant("other", "Other").await.unwrap();
    let admin = store.create_user(user("admin@acme.test")).await.unwrap();
    let dev = store.create_user(user("dev@acme.test")).await.unwrap();
    let outsider = store.create_user(user("dev@other.test")).await.unwrap();
    store
        .add_membership(&acme.id, &admin.id, "admin")
        .await
        .unwrap();
    store
        .add_membership(&acme.id, &dev.id, "developer")
        .await
        .unwrap();
    store
        .add_membership(&other.id, &outsider.id, "admin")
        .await
        .unwrap();
    let team = store.create_team(&acme.id, "Search", "").await.unwrap();
    let lonely = store.create_team(&acme.id, "Lonely", "").await.unwrap();
    assert!(store
        .add_team_member(&acme.id, &team.id, &dev.id)
        .await
        .unwrap());
    // The admin is also a member: one address, once.
    assert!(store
        .add_team_member(&acme.id, &team.id, &admin.id)
        .await
        .unwrap());
    let _ = lonely;
    let model = tollgate_domain::catalog::ModelInput {
        id: "alert-model".into(),
        display_name: "Alert model".into(),
        family: "Test".into(),
        provider: "Tollgate".into(),
        context_length: 4096,
        task: "chat".into(),
        status: "available".into(),
        visibility: "open".into(),
        ..Default::default()
    }
    .validate()
    .unwrap();
    store.insert_model(&model).await.unwrap();
    let plan = store
        .create_plan(
            &tollgate_domain::plan::PlanInput {
                name: "Small".into(),
                ..Default::default()
            }
            .validate()
            .unwrap(),
        )
        .await
        .unwrap();
    let sub = store
        .create_subscription(tollgate_store::NewSubscription {
            tenant_id: &acme.id,
            team_id: &team.id,
            model_id: "alert-model",
            plan_id: &plan,
            state: "active",
            note: "",
            requested_by: &dev.id,
        })
        .await
        .unwrap();
    World {
        tenant: acme.id,
        other: other.id,
        team: team.id,
        sub,
    }
}

fn alert<'a>(w: &'a World, threshold: i64, period: &'a str, at: i64) -> NewAlert<'a> {
    NewAlert {
        tenant_id: &w.tenant,
        team_id: &w.team,
        subscription_id: &w.sub,
        kind: "quota",
        threshold,
        period,
        team_name: "Search",
        model: "Alert model",
        quota_tokens: Some(1000),
        used_tokens: 10 * threshold,
        refusals: 0,
        at,
    }
}

async fn suite(flavor: Flavor) {
    let db = TestDatabase::new(flavor).await.unwrap();
    let store = db.store().await.unwrap();
    let w = world(&store).await;

    // Recipients: the team's members and the tenant's admins, each once; never another tenant's.
    assert_eq!(
        store.alert_recipients(&w.tenant, &w.team).await.unwrap(),
        vec!["admin@acme.test".to_string(), "dev@acme.test".to_string()]
    );
    assert_eq!(
        store.alert_recipients(&w.other, &w.team).await.unwrap(),
        vec!["dev@other.test".to_string()],
        "another tenant's team adds no members"
    );

    // Active subscriptions for the evaluator, paged by id.
    let subs = store.active_subscriptions_for_alerts("", 10).await.unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].team_name, "Search");
    assert_eq!(subs[0].model_name, "Alert model");
    assert!(store
        .active_subscriptions_for_alerts(&subs[0].id, 10)
        .await
        .unwrap()
        .is_empty());

    // Fires once per threshold and period, even when two servers record it at the same time.
    let email = [
        NewDelivery {
            channel: "email",
            target: "admin@acme.test, dev@acme.test",
        },
        NewDelivery {
            channel: "webhook",
            target: "http://127.0.0.1:9/hook",
        },
    ];
    let fifty = alert(&w, 50, "2026-12", 1000);
    let (a, b) = tokio::join!(
        store.record_alert(&fifty, &email),
        store.record_alert(&fifty, &email),
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one of two records wins");
    assert!(!store
        .record_alert(&alert(&w, 50, "2026-12", 2000), &email)
        .await
        .unwrap());
    assert!(store
        .record_alert(&alert(&w, 90, "2026-12", 3000), &email[..1])
        .await
        .unwrap());
    assert!(store
        .record_alert(&alert(&w, 50, "2027-01", 4000), &[])
        .await
        .unwrap());
    let keys = store.alert_keys_since(0).await.unwrap();
    assert_eq!(keys.len(), 3);
    assert!(keys.contains(&(w.sub.clone(), "quota".into(), 90, "2026-12".into())));
    assert_eq!(store.alert_keys_since(3500).await.unwrap().len(), 1);

    // Lists: newest first, keyset-paged, scoped by tenant and team.
    let page = |tenant: Option<&str>, teams: Option<Vec<String>>, before, limit| AlertQuery {
        tenant_id: tenant.map(str::to_string),
        team_ids: teams,
        before,
        limit,
    };
    let first = store
        .list_alerts(&page(Some(&w.tenant), None, None, 2))
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|a| a.created_at).collect::<Vec<_>>(),
        vec![4000, 3000]
    );
    let last = first.last().unwrap();
    let second = store
        .list_alerts(&page(
            Some(&w.tenant),
            None,
            Some((last.created_at, last.id.clone())),
            2,
        ))
        .await
        .unwrap();
    assert_eq!(
        second.iter().map(|a| a.threshold).collect::<Vec<_>>(),
        vec![50]
    );
    assert_eq!(second[0].period, "2026-12");
    assert!(store
        .list_alerts(&page(Some(&w.other), None, None, 10))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_alerts(&page(Some(&w.tenant), Some(vec![]), None, 10))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .list_alerts(&page(None, Some(vec![w.team.clone()]), None, 10))
            .await
            .unwrap()
            .len(),
        3
    );

    // Deliveries: due at once; one claim wins; failure puts off, success ends, giving up ends without delivery.
    let due = store.due_deliveries(5000, 10).await.unwrap();
    assert_eq!(due.len(), 3, "two for the 50 % alert, one for the 90 %");
    assert!(due
        .iter()
        .all(|(d, a)| d.alert_id == a.id && d.attempts == 0));
    let (d, _) = due.iter().find(|(d, _)| d.channel == "webhook").unwrap();
    let seen = d.next_attempt_at.unwrap();
    let (c1, c2) = tokio::join!(
        store.claim_delivery(&d.id, seen, 65_000),
        store.claim_delivery(&d.id, seen, 65_000),
    );
    assert!(c1.unwrap() ^ c2.unwrap(), "exactly one claim wins");
    assert!(
        store
            .due_deliveries(6000, 10)
            .await
            .unwrap()
            .iter()
            .all(|(x, _)| x.id != d.id),
        "a claimed delivery is not due while its attempt runs"
    );
    store
        .finish_delivery(&d.id, 6000, Some("HTTP 500"), Some(7000))
        .await
        .unwrap();
    let again = store.due_deliveries(7000, 10).await.unwrap();
    let (d2, _) = again.iter().find(|(x, _)| x.id == d.id).unwrap();
    assert_eq!(d2.attempts, 1);
    assert_eq!(d2.last_error, "HTTP 500");
    assert!(store.claim_delivery(&d.id, 7000, 70_000).await.unwrap());
    store
        .finish_delivery(&d.id, 7100, None, None)
        .await
        .unwrap();
    let (e, _) = again.iter().find(|(x, _)| x.channel == "email").unwrap();
    assert!(store
        .claim_delivery(&e.id, e.next_attempt_at.unwrap(), 70_000)
        .await
        .unwrap());
    store
        .finish_delivery(&e.id, 7200, Some("no SMTP server"), None)
        .await
        .unwrap();
    let all = store
        .deliveries_of_alerts(std::slice::from_ref(&d.alert_id))
        .await
        .unwrap();
    let webhook = all.iter().find(|x| x.id == d.id).unwrap();
    assert_eq!(webhook.delivered_at, Some(7100));
    assert_eq!(webhook.next_attempt_at, None);
    assert_eq!(webhook.attempts, 2);
    assert!(webhook.last_error.is_empty());
    let given_up = all.iter().find(|x| x.id == e.id).unwrap();
    assert_eq!(
        (given_up.delivered_at, given_up.next_attempt_at),
        (None, None)
    );
    assert_eq!(given_up.last_error, "no SMTP server");
    assert_eq!(
        store.due_deliveries(i64::MAX, 10).await.unwrap().len(),
        1,
        "only the 90 % alert's email is left"
    );

    // Webhooks: set with a secret, the URL changed alone, rotated, removed; always within the tenant.
    assert!(store.tenant_webhook(&w.tenant).await.unwrap().is_none());
    assert!(!store
        .set_tenant_webhook(&w.tenant, "http://a/", None, 1)
        .await
        .unwrap());
    assert!(store
        .set_tenant_webhook(&w.tenant, "http://a/", Some("s1"), 1)
        .await
        .unwrap());
    assert!(store
        .set_tenant_webhook(&w.tenant, "http://b/", None, 2)
        .await
        .unwrap());
    let hook = store.tenant_webhook(&w.tenant).await.unwrap().unwrap();
    assert_eq!(
        (
            hook.url.as_str(),
            hook.secret.as_str(),
            hook.created_at,
            hook.updated_at
        ),
        ("http://b/", "s1", 1, 2)
    );
    assert!(store
        .set_tenant_webhook(&w.tenant, "http://b/", Some("s2"), 3)
        .await
        .unwrap());
    let hook = store.tenant_webhook(&w.tenant).await.unwrap().unwrap();
    assert_eq!((hook.secret.as_str(), hook.created_at), ("s2", 1));
    assert!(store.tenant_webhook(&w.other).await.unwrap().is_none());
    assert!(!store.delete_tenant_webhook(&w.other).await.unwrap());
    assert!(store.delete_tenant_webhook(&w.tenant).await.unwrap());
    assert!(store.tenant_webhook(&w.tenant).await.unwrap().is_none());

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
