//! Keys for several models, on SQLite and on PostgreSQL: a key made under one subscription that also covers others
//! of its team (listed, or all of them, future ones included), as the gateway's snapshot resolves it; another
//! team's subscription refused; rotation keeps what a key covers; a suspended subscription is suspended for its
//! model only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use tollgate_catalog::{directory::load_snapshot, seed::seed_if_empty, Catalog, Coverage};
use tollgate_domain::{
    grant::{KeyEntry, KeySnapshot},
    subscription::Change,
    time::Millis,
    DomainError, TenantRole,
};
use tollgate_identity::testing::{identity, user};
use tollgate_store::{
    now_millis,
    testing::{Flavor, TestDatabase},
};

/// The subscription each model resolves to with this key, in the snapshot (None: the key does not cover it).
fn served_by(snap: &KeySnapshot, secret: &str, models: &[&str]) -> Vec<Option<String>> {
    let (entry, home) = snap.resolve(Some(secret), Millis(now_millis())).unwrap();
    models
        .iter()
        .map(|m| KeyEntry::grant_for(home, &entry.also, m).map(|g| g.subscription_id.clone()))
        .collect()
}

async fn suite(flavor: Flavor) {
    let db = TestDatabase::new(flavor).await.unwrap();
    let store = db.store().await.unwrap();
    seed_if_empty(&store).await.unwrap();
    let id = identity(&store);
    let catalog = Catalog::new(store.clone(), id.clone());
    let acme = store.create_tenant("acme", "Acme").await.unwrap().id;
    let admin = user(
        &store,
        "admin@acme.test",
        Some((&acme, TenantRole::Admin)),
        false,
    )
    .await;
    let dev = user(
        &store,
        "dev@acme.test",
        Some((&acme, TenantRole::Developer)),
        false,
    )
    .await;
    let search = id
        .create_team(&admin, &acme, "Search", "")
        .await
        .unwrap()
        .id;
    let other = id.create_team(&admin, &acme, "Other", "").await.unwrap().id;
    id.add_team_member(&admin, &acme, &search, "dev@acme.test")
        .await
        .unwrap();
    let starter = catalog
        .plans(&dev, "")
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.name == "Starter")
        .unwrap()
        .id;
    let subscribe = |team: String, model: &'static str| {
        let (catalog, admin, acme, starter) = (&catalog, &admin, &acme, &starter);
        async move {
            catalog
                .subscribe(admin, acme, &team, model, starter, "")
                .await
                .unwrap()
                .id
        }
    };
    let llama = subscribe(search.clone(), "llama-3.1-8b-instruct").await;
    let coder = subscribe(search.clone(), "qwen2.5-coder-7b-instruct").await;
    let elsewhere = subscribe(other.clone(), "mistral-7b-instruct-v0.3").await;

    // Another team's subscription is refused, and nothing is made.
    let refused = catalog
        .create_key_covering(
            &dev,
            &llama,
            "k",
            "",
            &Coverage {
                also: vec![elsewhere.clone()],
                team_wide: false,
            },
        )
        .await;
    assert!(
        matches!(refused, Err(DomainError::Invalid(_))),
        "{refused:?}"
    );
    assert!(catalog
        .subscription(&dev, &llama)
        .await
        .unwrap()
        .1
        .is_empty());
    let choices = catalog.key_coverage_choices(&dev, &llama).await.unwrap();
    assert_eq!(
        choices
            .iter()
            .map(|c| c.model_id.as_str())
            .collect::<Vec<_>>(),
        ["qwen2.5-coder-7b-instruct"]
    );

    // A key for llama that also covers the coder model; a team-wide one; a plain one.
    let two = catalog
        .create_key_covering(
            &dev,
            &llama,
            "two models",
            "",
            &Coverage {
                also: vec![coder.clone()],
                team_wide: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(two.key.also.len(), 1);
    assert_eq!(two.key.also[0].model_id, "qwen2.5-coder-7b-instruct");
    let wide = catalog
        .create_key_covering(
            &dev,
            &llama,
            "all",
            "",
            &Coverage {
                also: vec![],
                team_wide: true,
            },
        )
        .await
        .unwrap();
    assert!(wide.key.team_wide);
    let one = catalog.create_key(&dev, &llama, "one", "").await.unwrap();
    let listed = catalog.subscription(&dev, &llama).await.unwrap().1;
    let of = |name: &str| listed.iter().find(|k| k.name == name).unwrap().clone();
    assert_eq!(of("two models").also, two.key.also);
    assert!(of("all").team_wide && of("one").also.is_empty() && !of("one").team_wide);

    // A model subscribed later: the team-wide key covers it, the listed one does not.
    let granite = subscribe(search.clone(), "granite-3.1-2b-base").await;
    let models = [
        "llama-3.1-8b-instruct",
        "qwen2.5-coder-7b-instruct",
        "granite-3.1-2b-base",
        "mistral-7b-instruct-v0.3",
    ];
    let snap = load_snapshot(&store).await.unwrap();
    assert_eq!(
        served_by(&snap, &two.secret, &models),
        [Some(llama.clone()), Some(coder.clone()), None, None]
    );
    assert_eq!(
        served_by(&snap, &wide.secret, &models),
        [
            Some(llama.clone()),
            Some(coder.clone()),
            Some(granite.clone()),
            None
        ],
        "another team's model is never covered"
    );
    assert_eq!(
        served_by(&snap, &one.secret, &models),
        [Some(llama.clone()), None, None, None]
    );

    // Rotation keeps what the key covers.
    let rotated = catalog.rotate_key(&dev, &two.key.id, 1).await.unwrap();
    assert_eq!(rotated.key.also, two.key.also);
    let snap = load_snapshot(&store).await.unwrap();
    assert_eq!(
        served_by(&snap, &rotated.secret, &models)[1],
        Some(coder.clone())
    );

    // Suspending the coder subscription suspends that model only; suspending the home one too leaves the key
    // resolving while another of its subscriptions is active.
    catalog
        .decide(&admin, &coder, Change::Suspend, "over budget")
        .await
        .unwrap();
    let snap = load_snapshot(&store).await.unwrap();
    let (entry, home) = snap
        .resolve(Some(&two.secret), Millis(now_millis()))
        .unwrap();
    assert!(home.active);
    assert!(
        !KeyEntry::grant_for(home, &entry.also, "qwen2.5-coder-7b-instruct")
            .unwrap()
            .active
    );
    catalog
        .decide(&admin, &llama, Change::Suspend, "over budget")
        .await
        .unwrap();
    let snap = load_snapshot(&store).await.unwrap();
    assert!(
        snap.resolve(Some(&wide.secret), Millis(now_millis()))
            .is_ok(),
        "granite is still active"
    );
    assert_eq!(
        snap.resolve(Some(&two.secret), Millis(now_millis()))
            .unwrap_err(),
        tollgate_domain::grant::KeyRejection::Suspended,
        "both of its subscriptions are suspended"
    );
    store.close().await;
}

#[tokio::test]
async fn multi_model_keys_on_sqlite() {
    suite(Flavor::Sqlite).await;
}

#[tokio::test]
async fn multi_model_keys_on_postgres() {
    suite(Flavor::Postgres).await;
}
