//! Who sees whose usage, on SQLite and PostgreSQL: a developer only their own teams' figures, never another team's
//! or tenant's; a tenant viewer their whole tenant and nothing else; a platform viewer (product owner) every tenant,
//! and every write refused; outsiders NotFound.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use tollgate_domain::{
    access::Action,
    time::Millis,
    usage::{rollup::Grain, UsageDimension},
    DomainError, TenantRole,
};
use tollgate_identity::{testing, Caller};
use tollgate_store::testing::{self as testing_store, Flavor, TestDatabase};
use tollgate_store::NewUsage;
use tollgate_usage::{Selection, Usage};

const T0: i64 = 20_000 * 86_400_000;

fn record<'a>(id: &'a str, tenant: &'a str, team: &'a str, tokens: i64) -> NewUsage<'a> {
    NewUsage {
        id,
        request_id: id,
        at: T0 + 5 * 60_000,
        tenant_id: tenant,
        team_id: team,
        subscription_id: "sub",
        key_id: Some("key"),
        model: "llama",
        replica: "",
        endpoint: "chat",
        status: 200,
        prompt_tokens: tokens,
        completion_tokens: 0,
        latency_ms: 100,
        ttft_ms: None,
        streamed: false,
        client_disconnected: false,
        source: "key",
        refusal: "",
    }
}

fn day() -> Selection {
    Selection {
        from: Millis(T0),
        until: Millis(T0 + 86_400_000),
        ..Selection::default()
    }
}

/// Tokens per team as `who` sees them in `tenant` (None: every tenant).
async fn by_team(
    usage: &Usage,
    who: &Caller,
    tenant: Option<&str>,
) -> Result<Vec<(String, u64)>, DomainError> {
    let page = usage
        .figures(
            who,
            tenant,
            &day(),
            Some(UsageDimension::Team),
            None,
            None,
            100,
        )
        .await?;
    Ok(page
        .items
        .into_iter()
        .map(|g| (g.value, g.figures.prompt_tokens))
        .collect())
}

async fn suite(flavor: Flavor) {
    let db = TestDatabase::new(flavor).await.unwrap();
    let store = db.store().await.unwrap();
    let identity = testing::identity(&store);
    let usage = Usage::new(store.clone(), identity.clone());
    let a = store.create_tenant("acme", "Acme").await.unwrap().id;
    let b = store.create_tenant("globex", "Globex").await.unwrap().id;
    let red = store.create_team(&a, "Red", "").await.unwrap().id;
    let blue = store.create_team(&a, "Blue", "").await.unwrap().id;
    let green = store.create_team(&b, "Green", "").await.unwrap().id;
    store
        .insert_usage_batch(&[
            record("r1", &a, &red, 10),
            record("r2", &a, &blue, 200),
            record("r3", &b, &green, 3_000),
        ])
        .await
        .unwrap();

    let dev = testing::user(
        &store,
        "dev@acme.test",
        Some((&a, TenantRole::Developer)),
        false,
    )
    .await;
    store.add_team_member(&a, &red, &dev.user_id).await.unwrap();
    let viewer = testing::user(
        &store,
        "viewer@acme.test",
        Some((&a, TenantRole::Viewer)),
        false,
    )
    .await;
    let admin = testing::user(
        &store,
        "admin@acme.test",
        Some((&a, TenantRole::Admin)),
        false,
    )
    .await;
    let loner = testing::user(
        &store,
        "new@acme.test",
        Some((&a, TenantRole::Developer)),
        false,
    )
    .await;
    let mut owner = testing::user(&store, "po@platform.test", None, false).await;
    owner.platform_viewer = true;

    // The developer: their team only, in their tenant only.
    assert_eq!(
        by_team(&usage, &dev, Some(&a)).await.unwrap(),
        [(red.clone(), 10)]
    );
    assert_eq!(
        by_team(&usage, &dev, Some(&b)).await,
        Err(DomainError::not_found("tenant"))
    );
    assert_eq!(
        by_team(&usage, &dev, None).await,
        Err(DomainError::not_found("tenant"))
    );
    // Filtering by another team does not widen the reach.
    let mut blue_only = day();
    blue_only.team_id = blue.clone();
    let page = usage
        .figures(&dev, Some(&a), &blue_only, None, None, None, 10)
        .await
        .unwrap();
    assert!(page.items.is_empty(), "{page:?}");
    // A developer in no team sees nothing, not the tenant.
    assert!(by_team(&usage, &loner, Some(&a)).await.unwrap().is_empty());

    // Tenant viewers and admins: the whole tenant, never another.
    for who in [&viewer, &admin] {
        let mut seen = by_team(&usage, who, Some(&a)).await.unwrap();
        seen.sort();
        let mut want = vec![(red.clone(), 10), (blue.clone(), 200)];
        want.sort();
        assert_eq!(seen, want, "{}", who.email);
        assert_eq!(
            by_team(&usage, who, Some(&b)).await,
            Err(DomainError::not_found("tenant"))
        );
        assert_eq!(
            by_team(&usage, who, None).await,
            Err(DomainError::not_found("tenant"))
        );
    }

    // The product owner: every tenant, one at a time or all together; per minute too.
    assert_eq!(
        by_team(&usage, &owner, Some(&b)).await.unwrap(),
        [(green.clone(), 3_000)]
    );
    let all = usage
        .figures(
            &owner,
            None,
            &day(),
            Some(UsageDimension::Tenant),
            None,
            None,
            100,
        )
        .await
        .unwrap();
    let mut tenants: Vec<(String, u64)> = all
        .items
        .into_iter()
        .map(|g| (g.value, g.figures.prompt_tokens))
        .collect();
    tenants.sort();
    let mut want = vec![(a.clone(), 210), (b.clone(), 3_000)];
    want.sort();
    assert_eq!(tenants, want);
    let series = usage
        .figures(&owner, None, &day(), None, Some(Grain::Minute), None, 100)
        .await
        .unwrap();
    assert_eq!(series.items.len(), 1);
    assert_eq!(series.items[0].bucket, Some(Millis(T0 + 5 * 60_000)));
    // ... and changes nothing.
    for action in [
        Action::ManageTeams,
        Action::InviteMembers,
        Action::DecideSubscriptions,
        Action::UseModels,
        Action::ViewMembers,
    ] {
        assert!(
            matches!(
                identity.authorize(&owner, &a, action).await,
                Err(DomainError::Forbidden(_))
            ),
            "{action:?}"
        );
    }
    assert!(matches!(
        identity.create_team(&owner, &a, "Sneaky", "").await,
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        identity
            .set_platform_viewer(&owner, "dev@acme.test", true)
            .await,
        Err(DomainError::Forbidden(_))
    ));

    // Keyset paging: two groups, one per page, then the end.
    let first = usage
        .figures(
            &owner,
            None,
            &day(),
            Some(UsageDimension::Tenant),
            None,
            None,
            1,
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 1);
    let second = usage
        .figures(
            &owner,
            None,
            &day(),
            Some(UsageDimension::Tenant),
            None,
            first.next.as_deref(),
            1,
        )
        .await
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert_ne!(first.items[0].value, second.items[0].value);
    assert_eq!(second.next, None);
    assert!(matches!(
        usage
            .figures(&owner, None, &day(), None, None, Some("garbage"), 1)
            .await,
        Err(DomainError::Invalid(_))
    ));

    // Raw records follow the same reach, a keyset page at a time, newest first.
    let ids = |page: tollgate_domain::usage::UsageRecordPage| {
        page.items.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(usage
            .records(&dev, Some(&a), &day(), false, None, 10)
            .await
            .unwrap()),
        ["r1"],
        "a developer reads their team's records only"
    );
    assert_eq!(
        ids(usage
            .records(&dev, Some(&a), &blue_only, false, None, 10)
            .await
            .unwrap()),
        Vec::<String>::new(),
        "filtering by another team does not widen the reach"
    );
    assert!(ids(usage
        .records(&loner, Some(&a), &day(), false, None, 10)
        .await
        .unwrap())
    .is_empty());
    assert_eq!(
        usage.records(&dev, None, &day(), false, None, 10).await,
        Err(DomainError::not_found("tenant"))
    );
    assert_eq!(
        usage
            .records(&viewer, Some(&b), &day(), false, None, 10)
            .await,
        Err(DomainError::not_found("tenant"))
    );
    let first = usage
        .records(&viewer, Some(&a), &day(), false, None, 1)
        .await
        .unwrap();
    let next = first.next.clone().expect("a second page");
    let second = usage
        .records(&viewer, Some(&a), &day(), false, Some(&next), 1)
        .await
        .unwrap();
    let mut both = [ids(first), ids(second.clone())].concat();
    both.sort();
    assert_eq!(
        both,
        ["r1", "r2"],
        "a tenant viewer pages through the tenant"
    );
    assert_eq!(second.next, None);
    let mut everyone = ids(usage
        .records(&owner, None, &day(), false, None, 10)
        .await
        .unwrap());
    everyone.sort();
    assert_eq!(
        everyone,
        ["r1", "r2", "r3"],
        "a platform viewer reads every tenant"
    );
    assert!(matches!(
        usage
            .records(&owner, None, &day(), false, Some("garbage"), 1)
            .await,
        Err(DomainError::Invalid(_))
    ));
    // Errors only: a refusal in the red team, seen by its developer, not by another tenant's reader.
    store
        .insert_usage_batch(&[NewUsage {
            status: 429,
            ..record("r4", &a, &red, 0)
        }])
        .await
        .unwrap();
    for who in [&dev, &viewer, &owner] {
        let errors = usage
            .records(who, Some(&a), &day(), true, None, 10)
            .await
            .unwrap();
        assert_eq!(ids(errors), ["r4"], "{}", who.email);
    }
    assert!(ids(usage
        .records(&owner, Some(&b), &day(), true, None, 10)
        .await
        .unwrap())
    .is_empty());

    // By plan: the subscription's plan, with the cost at its model's list prices (2 and 4 per million tokens).
    let (gold, sub) = testing_store::subscribe(
        &store,
        testing_store::Subscribe {
            tenant_id: &a,
            team_id: &red,
            requested_by: &admin.user_id,
            model_id: "priced",
            prices: ("2", "4"),
            plan: tollgate_domain::plan::PlanInput {
                name: "Gold".into(),
                ..Default::default()
            },
        },
    )
    .await
    .unwrap();
    store
        .insert_usage_batch(&[NewUsage {
            subscription_id: &sub,
            model: "priced",
            completion_tokens: 500_000,
            ..record("r5", &a, &red, 1_000_000)
        }])
        .await
        .unwrap();
    for who in [&dev, &admin, &owner] {
        let page = usage
            .figures(
                who,
                Some(&a),
                &day(),
                Some(UsageDimension::Plan),
                None,
                None,
                10,
            )
            .await
            .unwrap();
        let gold_row: Vec<(u64, Option<i64>)> = page
            .items
            .iter()
            .filter(|g| g.value == gold)
            .map(|g| (g.figures.tokens(), g.figures.cost_micros))
            .collect();
        // $2 x 1M prompt + $4 x 0.5M completion = $4.
        assert_eq!(gold_row, [(1_500_000, Some(4_000_000))], "{}", who.email);
    }
    assert!(
        usage
            .figures(
                &admin,
                Some(&a),
                &day(),
                Some(UsageDimension::Plan),
                Some(Grain::Hour),
                None,
                10
            )
            .await
            .is_err(),
        "by plan is not a series"
    );

    store.close().await;
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn usage_reach_follows_the_roles_on_sqlite() {
    suite(Flavor::Sqlite).await;
}

#[tokio::test]
async fn usage_reach_follows_the_roles_on_postgres() {
    suite(Flavor::Postgres).await;
}
