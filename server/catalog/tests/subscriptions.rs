//! The catalog end to end at the service layer, on SQLite and on PostgreSQL: subscribing under each approval path,
//! who may decide, keys through the gateway snapshot (create, rotate, revoke, suspend), tenant isolation, and a
//! revocation on one replica reaching another replica's snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use std::{sync::Arc, time::Duration};
use tollgate_catalog::{
    directory::load_snapshot, seed::seed_if_empty, Catalog, KeyDirectoryRefresher,
};
use tollgate_domain::{
    catalog::CatalogQuery,
    grant::{KeyRejection, KeySnapshot},
    page::PageRequest,
    subscription::{Change, State, SubscriptionFilter},
    time::Millis,
    DomainError, TenantRole,
};
use tollgate_identity::{
    testing::{identity, user},
    Caller,
};
use tollgate_store::{
    now_millis,
    testing::{Flavor, TestDatabase},
};

fn ok<T>(what: &str, r: Result<T, DomainError>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

fn err<T: std::fmt::Debug>(
    what: &str,
    r: Result<T, DomainError>,
    expected: fn(&DomainError) -> bool,
) {
    match r {
        Err(e) if expected(&e) => {}
        other => panic!("{what}: unexpected {other:?}"),
    }
}

fn is_forbidden(e: &DomainError) -> bool {
    matches!(e, DomainError::Forbidden(_))
}
fn is_not_found(e: &DomainError) -> bool {
    matches!(e, DomainError::NotFound(_))
}
fn is_conflict(e: &DomainError) -> bool {
    matches!(e, DomainError::Conflict(_))
}

fn resolve(snapshot: &KeySnapshot, key: &str) -> Result<String, KeyRejection> {
    snapshot
        .resolve(Some(key), Millis(now_millis()))
        .map(|(_, g)| g.subscription_id.clone())
}

async fn plan_id(catalog: &Catalog, caller: &Caller, name: &str) -> String {
    ok("plans", catalog.plans(caller, "").await)
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| p.id)
        .unwrap_or_else(|| panic!("no plan {name}"))
}

async fn suite(flavor: Flavor) {
    let db = TestDatabase::new(flavor)
        .await
        .unwrap_or_else(|e| panic!("{flavor:?}: {e}"));
    let store = db.store().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        seed_if_empty(&store)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            >= 8
    );
    assert_eq!(
        seed_if_empty(&store)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        0,
        "seeding twice adds nothing"
    );
    let id = identity(&store);
    let catalog = Catalog::new(store.clone(), id.clone());

    let a = store
        .create_tenant("acme", "Acme")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    let b = store
        .create_tenant("globex", "Globex")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    let root = user(&store, "root@platform.test", None, true).await;
    let admin = user(
        &store,
        "admin@acme.test",
        Some((&a, TenantRole::Admin)),
        false,
    )
    .await;
    let dev = user(
        &store,
        "dev@acme.test",
        Some((&a, TenantRole::Developer)),
        false,
    )
    .await;
    let outsider_dev = user(
        &store,
        "other-dev@acme.test",
        Some((&a, TenantRole::Developer)),
        false,
    )
    .await;
    let viewer = user(
        &store,
        "viewer@acme.test",
        Some((&a, TenantRole::Viewer)),
        false,
    )
    .await;
    let admin_b = user(
        &store,
        "admin@globex.test",
        Some((&b, TenantRole::Admin)),
        false,
    )
    .await;
    let team = ok("team", id.create_team(&admin, &a, "Search", "").await).id;
    ok(
        "add dev",
        id.add_team_member(&admin, &a, &team, "dev@acme.test").await,
    );
    ok(
        "add viewer",
        id.add_team_member(&admin, &a, &team, "viewer@acme.test")
            .await,
    );

    // Browsing.
    let (page, facets) = ok(
        "browse",
        catalog
            .browse(
                &dev,
                &CatalogQuery {
                    task: "embeddings".into(),
                    ..Default::default()
                },
                PageRequest::default(),
            )
            .await,
    );
    assert_eq!(
        page.items.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["bge-m3"]
    );
    assert!(facets.families.contains(&"Llama".to_string()));
    let detail = ok("model", catalog.model(&dev, "llama-3.3-70b-instruct").await);
    assert!(
        detail.plans.iter().any(|p| p.name == "Production"),
        "Production covers the 70B model"
    );
    assert_eq!(detail.gateway_url, "http://portal.test/v1");
    let detail = ok("model", catalog.model(&dev, "llama-3.1-8b-instruct").await);
    assert!(
        !detail.plans.iter().any(|p| p.name == "Production"),
        "Production does not cover the 8B model"
    );
    err(
        "unknown model",
        catalog.model(&dev, "gpt-17").await,
        is_not_found,
    );

    let starter = plan_id(&catalog, &dev, "Starter").await;
    let team_plan = plan_id(&catalog, &dev, "Team").await;

    // Who may subscribe.
    err(
        "viewer subscribes",
        catalog
            .subscribe(&viewer, &a, &team, "llama-3.1-8b-instruct", &starter, "")
            .await,
        is_forbidden,
    );
    err(
        "dev outside the team",
        catalog
            .subscribe(
                &outsider_dev,
                &a,
                &team,
                "llama-3.1-8b-instruct",
                &starter,
                "",
            )
            .await,
        is_forbidden,
    );
    err(
        "other tenant's team",
        catalog
            .subscribe(&admin_b, &b, &team, "llama-3.1-8b-instruct", &starter, "")
            .await,
        is_not_found,
    );
    err(
        "plan not covering",
        catalog
            .subscribe(
                &dev,
                &a,
                &team,
                "llama-3.1-8b-instruct",
                &plan_id(&catalog, &dev, "Production").await,
                "",
            )
            .await,
        |e| matches!(e, DomainError::Invalid(_)),
    );

    // No approval needed: active at once, and a key works through the snapshot.
    let open = ok(
        "subscribe",
        catalog
            .subscribe(&dev, &a, &team, "llama-3.1-8b-instruct", &starter, "demo")
            .await,
    );
    assert_eq!(open.state, State::Active);
    playground_checks(
        &catalog,
        &store,
        &open.id,
        &a,
        [&dev, &admin, &viewer, &outsider_dev, &admin_b],
    )
    .await;
    err(
        "twice",
        catalog
            .subscribe(&dev, &a, &team, "llama-3.1-8b-instruct", &starter, "")
            .await,
        is_conflict,
    );
    err(
        "viewer creates a key",
        catalog.create_key(&viewer, &open.id, "k", "").await,
        is_forbidden,
    );
    let key = ok(
        "create key",
        catalog.create_key(&dev, &open.id, "backend", "30").await,
    );
    assert!(key.secret.starts_with("tg-") && key.secret.starts_with(&key.key.prefix));
    let (_, keys) = ok(
        "subscription",
        catalog.subscription(&viewer, &open.id).await,
    );
    assert_eq!(keys.len(), 1);
    let snap = load_snapshot(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolve(&snap, &key.secret), Ok(open.id.clone()));
    let grant = snap
        .resolve(Some(&key.secret), Millis(now_millis()))
        .map(|(_, g)| g.clone())
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        (
            grant.limits.requests_per_minute,
            grant.limits.tokens_per_minute
        ),
        (Some(20), Some(20_000))
    );
    assert_eq!(
        (
            grant.tenant_id.as_str(),
            grant.team_id.as_str(),
            grant.model.as_str()
        ),
        (a.as_str(), team.as_str(), "llama-3.1-8b-instruct")
    );
    assert_eq!(grant.priority, None, "tier 0 sends engines no priority");
    // A plan's scheduling tier reaches the grant as vLLM's priority (lower runs earlier).
    let plan = ok("plans", catalog.plans(&root, "").await)
        .into_iter()
        .find(|p| p.id == starter)
        .unwrap_or_else(|| panic!("starter plan"));
    let mut input = tollgate_domain::plan::PlanInput {
        name: plan.name.clone(),
        description: plan.description.clone(),
        requests_per_minute: "20".into(),
        tokens_per_minute: "20000".into(),
        tier: "3".into(),
        ..Default::default()
    };
    input.requires_approval = plan.requires_approval;
    input.models = plan
        .models
        .iter()
        .map(|m| m.model_id.clone())
        .collect::<Vec<_>>()
        .join(",");
    input.max_concurrent = plan
        .limits
        .max_concurrent
        .map(|n| n.to_string())
        .unwrap_or_default();
    input.monthly_tokens = plan
        .limits
        .monthly_tokens
        .map(|n| n.to_string())
        .unwrap_or_default();
    let updated = ok("tier 3", catalog.update_plan(&root, &starter, &input).await);
    assert_eq!(updated.tier, 3);
    let snap = load_snapshot(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let grant = snap
        .resolve(Some(&key.secret), Millis(now_millis()))
        .map(|(_, g)| g.clone())
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(grant.priority, Some(-3));
    assert_eq!(
        grant.limits.requests_per_minute,
        Some(20),
        "limits unchanged"
    );
    input.tier = String::new();
    assert_eq!(
        ok("tier 0", catalog.update_plan(&root, &starter, &input).await).tier,
        0
    );

    // Another tenant sees nothing of it.
    err(
        "B reads A's subscription",
        catalog.subscription(&admin_b, &open.id).await,
        is_not_found,
    );
    err(
        "B revokes A's key",
        catalog.revoke_key(&admin_b, &key.key.id).await,
        is_not_found,
    );
    err(
        "B lists A's subscriptions",
        catalog
            .subscriptions(
                &admin_b,
                &a,
                &SubscriptionFilter::default(),
                PageRequest::default(),
            )
            .await,
        is_not_found,
    );
    err(
        "B suspends A's subscription",
        catalog
            .decide(&admin_b, &open.id, Change::Suspend, "no")
            .await,
        is_not_found,
    );

    // Rotation: both keys work during the grace period; with no grace the old one stops at once.
    let rotated = ok("rotate", catalog.rotate_key(&dev, &key.key.id, 24).await);
    let snap = load_snapshot(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(resolve(&snap, &key.secret).is_ok() && resolve(&snap, &rotated.secret).is_ok());
    err(
        "rotate twice",
        catalog.rotate_key(&dev, &key.key.id, 24).await,
        is_conflict,
    );
    let again = ok(
        "rotate now",
        catalog.rotate_key(&dev, &rotated.key.id, 0).await,
    );
    let snap = load_snapshot(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolve(&snap, &rotated.secret), Err(KeyRejection::Expired));

    // Suspension turns keys away with 403; resuming restores them. Developers cannot suspend.
    err(
        "dev suspends",
        catalog.decide(&dev, &open.id, Change::Suspend, "x").await,
        is_forbidden,
    );
    err(
        "suspend without reason",
        catalog.decide(&admin, &open.id, Change::Suspend, " ").await,
        |e| matches!(e, DomainError::Invalid(_)),
    );
    ok(
        "suspend",
        catalog
            .decide(&admin, &open.id, Change::Suspend, "over budget")
            .await,
    );
    let snap = load_snapshot(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolve(&snap, &again.secret), Err(KeyRejection::Suspended));
    assert_eq!(
        snap.grant_of(&open.id).map(|g| g.active),
        Some(false),
        "a suspended subscription's grant stays, inactive"
    );
    err(
        "playground while suspended",
        catalog.playground_subscription(&dev, &open.id).await,
        is_conflict,
    );
    ok(
        "resume",
        catalog.decide(&admin, &open.id, Change::Resume, "").await,
    );

    // Revocation.
    ok("revoke", catalog.revoke_key(&dev, &again.key.id).await);
    err(
        "revoke twice",
        catalog.revoke_key(&dev, &again.key.id).await,
        is_conflict,
    );
    let snap = load_snapshot(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolve(&snap, &again.secret), Err(KeyRejection::Revoked));

    // A plan needing approval: developers cannot approve; the tenant admin can; the reason shows on rejection.
    let pending = ok(
        "subscribe team plan",
        catalog
            .subscribe(
                &dev,
                &a,
                &team,
                "mistral-small-3.1-24b-instruct",
                &team_plan,
                "for search",
            )
            .await,
    );
    assert_eq!(pending.state, State::PendingTenant);
    err(
        "key before approval",
        catalog.create_key(&dev, &pending.id, "k", "").await,
        is_conflict,
    );
    err(
        "dev approves",
        catalog.decide(&dev, &pending.id, Change::Approve, "").await,
        is_forbidden,
    );
    let queue = ok(
        "approvals",
        catalog
            .approvals(&admin, Some(&a), "", PageRequest::default())
            .await,
    );
    assert_eq!(
        queue
            .items
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        [pending.id.as_str()]
    );
    err(
        "dev's approvals",
        catalog
            .approvals(&dev, Some(&a), "", PageRequest::default())
            .await,
        is_forbidden,
    );
    assert_eq!(
        ok(
            "approve",
            catalog
                .decide(&admin, &pending.id, Change::Approve, "")
                .await
        )
        .state,
        State::Active
    );

    // A restricted model needs a platform admin too.
    let restricted = ok(
        "subscribe restricted",
        catalog
            .subscribe(&dev, &a, &team, "qwen2.5-72b-instruct", &team_plan, "")
            .await,
    );
    let after_tenant = ok(
        "tenant approves",
        catalog
            .decide(&admin, &restricted.id, Change::Approve, "")
            .await,
    );
    assert_eq!(after_tenant.state, State::PendingPlatform);
    err(
        "tenant admin approves again",
        catalog
            .decide(&admin, &restricted.id, Change::Approve, "")
            .await,
        is_forbidden,
    );
    let platform_queue = ok(
        "platform approvals",
        catalog
            .approvals(&root, None, "", PageRequest::default())
            .await,
    );
    assert!(platform_queue.items.iter().any(|s| s.id == restricted.id));
    let rejected = ok(
        "platform rejects",
        catalog
            .decide(
                &root,
                &restricted.id,
                Change::Reject,
                "license review failed",
            )
            .await,
    );
    assert_eq!(
        (rejected.state, rejected.reason.as_str()),
        (State::Rejected, "license review failed")
    );
    err(
        "approve after rejection",
        catalog
            .decide(&root, &restricted.id, Change::Approve, "")
            .await,
        is_conflict,
    );

    // Moving plans and cancelling.
    let moved = ok(
        "change plan",
        catalog.change_plan(&admin, &open.id, &team_plan).await,
    );
    assert_eq!(moved.plan_name, "Team");
    err(
        "dev changes plan",
        catalog.change_plan(&dev, &open.id, &starter).await,
        is_forbidden,
    );
    let fresh = ok(
        "new key",
        catalog.create_key(&dev, &open.id, "after move", "").await,
    );
    let snap = load_snapshot(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let limits = snap
        .resolve(Some(&fresh.secret), Millis(now_millis()))
        .map(|(_, g)| g.limits)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        limits.requests_per_minute,
        Some(120),
        "the new plan's limits apply"
    );
    assert_eq!(
        ok(
            "dev cancels",
            catalog.decide(&dev, &open.id, Change::Cancel, "").await
        )
        .state,
        State::Cancelled
    );
    let snap = load_snapshot(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        resolve(&snap, &fresh.secret),
        Err(KeyRejection::Invalid),
        "a cancelled subscription's keys are gone"
    );

    // Lists: filters and isolation.
    let all = ok(
        "list",
        catalog
            .subscriptions(
                &viewer,
                &a,
                &SubscriptionFilter::default(),
                PageRequest::default(),
            )
            .await,
    );
    assert_eq!(all.total, 3);
    let active = ok(
        "list active",
        catalog
            .subscriptions(
                &viewer,
                &a,
                &SubscriptionFilter {
                    state: "active".into(),
                    ..Default::default()
                },
                PageRequest::default(),
            )
            .await,
    );
    assert_eq!(
        active
            .items
            .iter()
            .map(|s| s.model_id.as_str())
            .collect::<Vec<_>>(),
        ["mistral-small-3.1-24b-instruct"]
    );
    let searched = ok(
        "search",
        catalog
            .subscriptions(
                &viewer,
                &a,
                &SubscriptionFilter {
                    search: "qwen".into(),
                    ..Default::default()
                },
                PageRequest::default(),
            )
            .await,
    );
    assert_eq!(searched.total, 1);
    assert_eq!(
        ok(
            "B's list",
            catalog
                .subscriptions(
                    &admin_b,
                    &b,
                    &SubscriptionFilter::default(),
                    PageRequest::default()
                )
                .await
        )
        .total,
        0
    );

    replicas_share_revocations(
        &db,
        &catalog,
        &dev,
        &open_key_subscription(&catalog, &dev, &a, &team, &starter).await,
    )
    .await;

    store.close().await;
    db.cleanup()
        .await
        .unwrap_or_else(|e| panic!("cleanup: {e}"));
}

/// The playground under the active subscription `sub` (no key yet): its grant is in the snapshot, the team's
/// developer and the tenant admin may use it, the viewer and a developer outside the team may not, another tenant
/// learns nothing; the setup offers the model and says why others are missing.
async fn playground_checks(
    catalog: &Catalog,
    store: &tollgate_store::Store,
    sub: &str,
    tenant: &str,
    [dev, admin, viewer, outsider_dev, admin_b]: [&Caller; 5],
) {
    let snap = load_snapshot(store).await.unwrap_or_else(|e| panic!("{e}"));
    let grant = snap
        .grant_of(sub)
        .unwrap_or_else(|| panic!("no grant for a subscription without keys"));
    assert!(grant.active);
    assert_eq!(grant.limits.requests_per_minute, Some(20));
    assert_eq!(
        ok("dev uses", catalog.playground_subscription(dev, sub).await),
        "llama-3.1-8b-instruct"
    );
    ok(
        "admin uses",
        catalog.playground_subscription(admin, sub).await,
    );
    err(
        "viewer uses",
        catalog.playground_subscription(viewer, sub).await,
        is_forbidden,
    );
    err(
        "developer outside the team uses",
        catalog.playground_subscription(outsider_dev, sub).await,
        is_forbidden,
    );
    err(
        "other tenant uses",
        catalog.playground_subscription(admin_b, sub).await,
        is_not_found,
    );
    let setup = ok("setup", catalog.playground(dev, tenant).await);
    let llama = setup
        .choices
        .iter()
        .find(|c| c.model_id == "llama-3.1-8b-instruct")
        .unwrap_or_else(|| panic!("llama offered"));
    assert!(llama.usable() && llama.subscription_id.as_deref() == Some(sub));
    assert!(setup.choices[0].usable(), "usable models come first");
    let bge = setup
        .choices
        .iter()
        .find(|c| c.model_id == "bge-m3")
        .unwrap_or_else(|| panic!("bge-m3 listed"));
    assert!(
        !bge.usable() && bge.why.contains("subscribe"),
        "{}",
        bge.why
    );
    let for_viewer = ok("viewer setup", catalog.playground(viewer, tenant).await);
    assert!(for_viewer
        .choices
        .iter()
        .all(|c| !c.usable() && c.why.contains("Viewers")));
    let for_outsider = ok(
        "outsider setup",
        catalog.playground(outsider_dev, tenant).await,
    );
    let llama = for_outsider
        .choices
        .iter()
        .find(|c| c.model_id == "llama-3.1-8b-instruct")
        .unwrap_or_else(|| panic!("llama listed"));
    assert!(
        !llama.usable() && llama.why.contains("team"),
        "{}",
        llama.why
    );
    err(
        "other tenant setup",
        catalog.playground(admin_b, tenant).await,
        is_not_found,
    );
}

async fn open_key_subscription(
    catalog: &Catalog,
    dev: &Caller,
    tenant: &str,
    team: &str,
    plan: &str,
) -> String {
    ok(
        "subscribe coder",
        catalog
            .subscribe(dev, tenant, team, "qwen2.5-coder-7b-instruct", plan, "")
            .await,
    )
    .id
}

/// A second replica (its own pool and refresher) sees a key created and then revoked on the first, without any
/// signal but the database.
async fn replicas_share_revocations(
    db: &TestDatabase,
    catalog: &Catalog,
    dev: &Caller,
    subscription: &str,
) {
    let other_store = db.store().await.unwrap_or_else(|e| panic!("{e}"));
    let other = Catalog::new(other_store.clone(), identity(&other_store));
    let snapshot = Arc::new(std::sync::Mutex::new(Arc::new(KeySnapshot::default())));
    let published = snapshot.clone();
    let task = KeyDirectoryRefresher::new(
        other_store.clone(),
        other.changes(),
        other.applied(),
        Duration::from_millis(50),
    )
    .start(move |p| *published.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(p.keys))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let current = || snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let wait_for = |want: Result<(), KeyRejection>, key: String| {
        let current = &current;
        async move {
            for _ in 0..200 {
                if resolve(&current(), &key).map(|_| ()) == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("the second replica never saw {want:?} for the key");
        }
    };
    let key = ok(
        "key on replica 1",
        catalog.create_key(dev, subscription, "shared", "").await,
    );
    wait_for(Ok(()), key.secret.clone()).await;
    ok(
        "revoke on replica 1",
        catalog.revoke_key(dev, &key.key.id).await,
    );
    wait_for(Err(KeyRejection::Revoked), key.secret.clone()).await;
    task.abort();
    other_store.close().await;
}

#[tokio::test]
async fn catalog_on_sqlite() {
    suite(Flavor::Sqlite).await;
}

#[tokio::test]
async fn catalog_on_postgres() {
    suite(Flavor::Postgres).await;
}
