//! The storage suite, run on SQLite and on PostgreSQL: both backends must behave identically.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use tollgate_store::{
    now_millis,
    testing::{Flavor, TestDatabase},
    AuditQuery, NewAuditEvent, NewInvitation, NewUser, SessionWrite, Store, StoreError,
};

async fn suite(flavor: Flavor) {
    let db = TestDatabase::new(flavor)
        .await
        .unwrap_or_else(|e| panic!("{flavor:?} test database: {e}"));
    let store = db
        .store()
        .await
        .unwrap_or_else(|e| panic!("{flavor:?} connect: {e}"));
    // Migrations are idempotent.
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("second migrate: {e}"));
    users_and_tenants(&store).await;
    teams_and_invitations(&store).await;
    sessions(&store).await;
    audit(&store).await;
    peers(&store).await;
    revision_bumps_commit_with_their_change(&store).await;
    subscriptions_and_keys_are_read_and_written_within_their_tenant(&store).await;
    store.close().await;
    db.cleanup()
        .await
        .unwrap_or_else(|e| panic!("cleanup: {e}"));
}

fn user<'a>(email: &'a str) -> NewUser<'a> {
    NewUser {
        email,
        name: email,
        password_hash: Some("hash"),
        oidc: None,
        platform_admin: false,
    }
}

async fn users_and_tenants(store: &Store) {
    let ann = store
        .create_user(user("ann@example.com"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ann.email, "ann@example.com");
    assert!(!ann.is_platform_admin());
    assert!(matches!(
        store.create_user(user("ann@example.com")).await,
        Err(StoreError::Duplicate)
    ));
    let oidc = store
        .create_user(NewUser {
            oidc: Some(("https://idp", "sub-1")),
            password_hash: None,
            ..user("oidc@example.com")
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store
            .user_by_oidc("https://idp", "sub-1")
            .await
            .ok()
            .flatten()
            .map(|u| u.id),
        Some(oidc.id.clone())
    );
    assert!(store
        .user_by_oidc("https://other", "sub-1")
        .await
        .ok()
        .flatten()
        .is_none());

    let acme = store
        .create_tenant("acme", "ACME")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        store.create_tenant("acme", "Again").await,
        Err(StoreError::Duplicate)
    ));
    store
        .add_membership(&acme.id, &ann.id, "admin")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .add_membership(&acme.id, &oidc.id, "developer")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.count_admins(&acme.id).await.ok(), Some(1));
    assert!(store
        .set_membership_role(&acme.id, &oidc.id, "admin")
        .await
        .unwrap_or(false));
    assert_eq!(store.count_admins(&acme.id).await.ok(), Some(2));

    let (members, total) = store
        .list_members(&acme.id, "", 0, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((members.len(), total), (2, 2));
    let (found, total) = store
        .list_members(&acme.id, "OIDC@", 0, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((found.len(), total), (1, 1));
    let (page2, _) = store
        .list_members(&acme.id, "", 1, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page2.len(), 1);
    let (tenants, total) = store
        .list_tenants("ac", 0, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((tenants[0].members, tenants[0].teams, total), (2, 0, 1));
    assert_eq!(
        store.tenants_of_user(&ann.id).await.map(|t| t.len()).ok(),
        Some(1)
    );
    // LIKE wildcards typed by users are taken literally.
    let (none, _) = store
        .list_members(&acme.id, "%", 0, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        none.len(),
        2,
        "a lone % must match like an empty search, not break the query"
    );
}

async fn teams_and_invitations(store: &Store) {
    let tenant = store
        .create_tenant("globex", "Globex")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let other = store
        .create_tenant("initech", "Initech")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bob = store
        .create_user(user("bob@example.com"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let team = store
        .create_team(&tenant.id, "Search", "")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        store.create_team(&tenant.id, "Search", "").await,
        Err(StoreError::Duplicate)
    ));
    // The same name in another tenant is fine, and a team is invisible from another tenant.
    store
        .create_team(&other.id, "Search", "")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(store
        .team(&other.id, &team.id)
        .await
        .ok()
        .flatten()
        .is_none());
    assert!(!store.delete_team(&other.id, &team.id).await.unwrap_or(true));

    let expires_at = now_millis() + 3_600_000;
    let inv = |hash: &'static str| NewInvitation {
        tenant_id: &tenant.id,
        email: None,
        role: "developer",
        team_id: Some(&team.id),
        token_hash: hash,
        invited_by: "admin@example.com",
        expires_at,
    };
    let id = store
        .create_invitation(inv("hash-1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let row = store
        .invitation_by_token_hash("hash-1")
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("invitation"));
    assert_eq!(row.team_name.as_deref(), Some("Search"));
    assert!(store
        .accept_invitation(&row, &bob.id)
        .await
        .unwrap_or(false));
    // Single use: the second acceptance changes nothing.
    assert!(!store.accept_invitation(&row, &bob.id).await.unwrap_or(true));
    assert_eq!(
        store
            .membership_role(&tenant.id, &bob.id)
            .await
            .ok()
            .flatten()
            .as_deref(),
        Some("developer")
    );
    assert_eq!(
        store
            .team_members(&tenant.id, &team.id)
            .await
            .map(|m| m.len())
            .ok(),
        Some(1)
    );
    assert_eq!(
        store
            .team_members(&other.id, &team.id)
            .await
            .map(|m| m.len())
            .ok(),
        Some(0),
        "a team's members are not readable through another tenant"
    );
    assert!(!store
        .is_team_member(&other.id, &team.id, &bob.id)
        .await
        .unwrap_or(true));
    assert!(store
        .is_team_member(&tenant.id, &team.id, &bob.id)
        .await
        .unwrap_or(false));
    assert!(
        !store
            .revoke_invitation(&tenant.id, &id)
            .await
            .unwrap_or(true),
        "an accepted invitation cannot be revoked"
    );

    let id2 = store
        .create_invitation(inv("hash-2"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !store
            .revoke_invitation(&other.id, &id2)
            .await
            .unwrap_or(true),
        "not from another tenant"
    );
    assert!(store
        .revoke_invitation(&tenant.id, &id2)
        .await
        .unwrap_or(false));
    let revoked = store
        .invitation(&tenant.id, &id2)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("invitation"));
    assert!(!store
        .accept_invitation(&revoked, &bob.id)
        .await
        .unwrap_or(true));
    let (list, total) = store
        .list_invitations(&tenant.id, 0, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((list.len(), total), (2, 2));

    // Removing a member also removes them from the tenant's teams.
    assert!(store
        .remove_membership(&tenant.id, &bob.id)
        .await
        .unwrap_or(false));
    assert_eq!(
        store
            .team_members(&tenant.id, &team.id)
            .await
            .map(|m| m.len())
            .ok(),
        Some(0)
    );
}

async fn sessions(store: &Store) {
    let carol = store
        .create_user(user("carol@example.com"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let future = now_millis() + 60_000;
    let write = |id: &'static str, user: Option<&'static str>| SessionWrite {
        id,
        user_id: user,
        data: "{}",
        expires_at: future,
    };
    assert!(store
        .save_session(write("s1", None), true)
        .await
        .unwrap_or(false));
    assert!(
        !store
            .save_session(write("s1", None), true)
            .await
            .unwrap_or(true),
        "create never overwrites"
    );
    let carol_id: &'static str = Box::leak(carol.id.clone().into_boxed_str());
    store
        .save_session(write("s1", Some(carol_id)), false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .save_session(write("s2", Some(carol_id)), false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .save_session(
            SessionWrite {
                id: "old",
                user_id: Some(carol_id),
                data: "{}",
                expires_at: now_millis() - 1,
            },
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store
            .sessions_of_user(&carol.id)
            .await
            .map(|s| s.len())
            .ok(),
        Some(2),
        "expired sessions are not listed"
    );
    assert!(store.load_session("old").await.ok().flatten().is_none());
    assert!(!store
        .delete_user_session("someone-else", "s1")
        .await
        .unwrap_or(true));
    assert!(store
        .delete_user_session(&carol.id, "s1")
        .await
        .unwrap_or(false));
    assert!(store.load_session("s1").await.ok().flatten().is_none());
    assert_eq!(store.delete_expired_sessions(100).await.ok(), Some(1));
    // Sweeps are bounded: many expired sessions go a batch at a time, live ones stay.
    for n in 0..5 {
        store
            .save_session(
                SessionWrite {
                    id: &format!("gone-{n}"),
                    user_id: None,
                    data: "{}",
                    expires_at: now_millis() - 1_000,
                },
                false,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(store.delete_expired_sessions(2).await.ok(), Some(2));
    assert_eq!(store.delete_expired_sessions(2).await.ok(), Some(2));
    assert_eq!(store.delete_expired_sessions(2).await.ok(), Some(1));
    assert_eq!(store.delete_expired_sessions(2).await.ok(), Some(0));
    assert_eq!(
        store
            .sessions_of_user(&carol.id)
            .await
            .map(|s| s.len())
            .ok(),
        Some(1)
    );
}

async fn audit(store: &Store) {
    for (tenant, action, actor) in [
        (Some("t1"), "team.created", "ann@example.com"),
        (Some("t1"), "member.removed", "ann@example.com"),
        (Some("t2"), "team.created", "zed@example.com"),
        (None, "auth.sign_in", "root@example.com"),
    ] {
        store
            .record_audit(NewAuditEvent {
                tenant_id: tenant,
                actor_email: Some(actor),
                action,
                target_type: "x",
                target_id: "y",
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let q = |tenant: Option<&str>, action: Option<&str>, actor: Option<&str>| AuditQuery {
        tenant_id: tenant.map(str::to_string),
        action: action.map(str::to_string),
        actor: actor.map(str::to_string),
        limit: 50,
        ..Default::default()
    };
    let count = |r: tollgate_store::Result<(Vec<tollgate_store::AuditRow>, i64)>| {
        r.map(|(rows, total)| (rows.len(), total)).ok()
    };
    assert_eq!(
        count(store.list_audit(&q(Some("t1"), None, None)).await),
        Some((2, 2))
    );
    assert_eq!(
        count(store.list_audit(&q(None, None, None)).await),
        Some((4, 4))
    );
    assert_eq!(
        count(store.list_audit(&q(None, Some("team.created"), None)).await),
        Some((2, 2))
    );
    assert_eq!(
        count(store.list_audit(&q(Some("t1"), None, Some("ZED"))).await),
        Some((0, 0))
    );
    assert_eq!(
        count(store.list_audit(&q(None, None, Some("zed"))).await),
        Some((1, 1))
    );
    let future = AuditQuery {
        from: Some(now_millis() + 60_000),
        ..q(None, None, None)
    };
    assert_eq!(count(store.list_audit(&future).await), Some((0, 0)));
}

/// A write that changes what keys may do and its revision bump are one transaction: when the bump fails, the
/// write is rolled back, so no replica keeps serving a state it was never told changed.
async fn revision_bumps_commit_with_their_change(store: &Store) {
    let model = tollgate_domain::catalog::ModelInput {
        id: "atomic-model".into(),
        display_name: "Atomic".into(),
        family: "Test".into(),
        provider: "Tollgate".into(),
        context_length: 4096,
        task: "chat".into(),
        status: "available".into(),
        visibility: "open".into(),
        ..Default::default()
    }
    .validate()
    .unwrap_or_else(|e| panic!("{e}"));
    let before = store
        .gateway_revision()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Inject a failure between the write and its bump: the bump's table is gone.
    let rename = |from: &str, to: &str| format!("ALTER TABLE {from} RENAME TO {to}");
    store
        .execute_for_tests(&rename("revisions", "revisions_away"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        store.insert_model(&model).await.is_err(),
        "the bump failed, so the write must fail"
    );
    store
        .execute_for_tests(&rename("revisions_away", "revisions"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        store
            .model("atomic-model")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none(),
        "the model was rolled back with its failed bump"
    );
    store
        .insert_model(&model)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(store
        .model("atomic-model")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_some());
    assert_eq!(
        store
            .gateway_revision()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        before + 1
    );
}

fn fail<T>(e: StoreError) -> T {
    panic!("{e}")
}

/// One subscription or key by id is found, changed or revoked only through its own tenant: an id from another
/// tenant finds nothing and changes nothing, whatever the caller checked before.
async fn subscriptions_and_keys_are_read_and_written_within_their_tenant(store: &Store) {
    let acme = store
        .create_tenant("scope-acme", "Acme")
        .await
        .unwrap_or_else(fail);
    let evil = store
        .create_tenant("scope-evil", "Evil")
        .await
        .unwrap_or_else(fail);
    let dev = store
        .create_user(user("scope-dev@example.com"))
        .await
        .unwrap_or_else(fail);
    let team = store
        .create_team(&acme.id, "Scoped", "")
        .await
        .unwrap_or_else(fail);
    let model = tollgate_domain::catalog::ModelInput {
        id: "scope-model".into(),
        display_name: "Scoped".into(),
        family: "Test".into(),
        provider: "Tollgate".into(),
        context_length: 4096,
        task: "chat".into(),
        status: "available".into(),
        visibility: "open".into(),
        ..Default::default()
    }
    .validate()
    .unwrap_or_else(|e| panic!("{e}"));
    store.insert_model(&model).await.unwrap_or_else(fail);
    let plan = |name: &str| {
        tollgate_domain::plan::PlanInput {
            name: name.into(),
            ..Default::default()
        }
        .validate()
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let basic = store
        .create_plan(&plan("Scope basic"))
        .await
        .unwrap_or_else(fail);
    let pro = store
        .create_plan(&plan("Scope pro"))
        .await
        .unwrap_or_else(fail);
    let sub = store
        .create_subscription(tollgate_store::NewSubscription {
            tenant_id: &acme.id,
            team_id: &team.id,
            model_id: "scope-model",
            plan_id: &basic,
            state: "active",
            note: "",
            requested_by: &dev.id,
        })
        .await
        .unwrap_or_else(fail);
    assert_eq!(
        store
            .tenant_of_subscription(&sub)
            .await
            .unwrap_or_else(fail),
        Some(acme.id.clone())
    );
    assert!(store
        .subscription(&acme.id, &sub)
        .await
        .unwrap_or_else(fail)
        .is_some());
    assert!(store
        .subscription(&evil.id, &sub)
        .await
        .unwrap_or_else(fail)
        .is_none());
    assert!(!store
        .set_subscription_state(&evil.id, &sub, "active", "suspended", "x", &dev.id)
        .await
        .unwrap_or_else(fail));
    assert!(!store
        .set_subscription_plan(&evil.id, &sub, &pro)
        .await
        .unwrap_or_else(fail));
    let row = store
        .subscription(&acme.id, &sub)
        .await
        .unwrap_or_else(fail);
    assert_eq!(
        row.map(|r| (r.state, r.plan_id)),
        Some(("active".to_string(), basic.clone())),
        "nothing changed through another tenant"
    );
    assert!(store
        .set_subscription_plan(&acme.id, &sub, &pro)
        .await
        .unwrap_or_else(fail));

    let key = |id: &'static str| tollgate_store::NewApiKey {
        id,
        tenant_id: &acme.id,
        subscription_id: &sub,
        name: "k",
        secret_hash: id,
        created_by: &dev.id,
        expires_at: None,
        team_wide: false,
        also: &[],
    };
    store
        .insert_api_key(key("tg-scopekey0001"))
        .await
        .unwrap_or_else(fail);
    assert_eq!(
        store
            .tenant_of_api_key("tg-scopekey0001")
            .await
            .unwrap_or_else(fail),
        Some(acme.id.clone())
    );
    assert!(store
        .api_key(&evil.id, "tg-scopekey0001")
        .await
        .unwrap_or_else(fail)
        .is_none());
    assert!(store
        .api_keys_of(&evil.id, &sub)
        .await
        .unwrap_or_else(fail)
        .is_empty());
    assert_eq!(
        store
            .api_keys_of(&acme.id, &sub)
            .await
            .unwrap_or_else(fail)
            .len(),
        1
    );
    assert!(!store
        .rotate_api_key(&evil.id, "tg-scopekey0001", 0, key("tg-scopekey0002"))
        .await
        .unwrap_or_else(fail));
    assert!(!store
        .revoke_api_key(&evil.id, "tg-scopekey0001")
        .await
        .unwrap_or_else(fail));
    let k = store
        .api_key(&acme.id, "tg-scopekey0001")
        .await
        .unwrap_or_else(fail);
    assert!(
        k.is_some_and(|k| k.revoked_at.is_none() && k.rotated_to.is_none()),
        "nothing changed through another tenant"
    );
    assert!(store
        .revoke_api_key(&acme.id, "tg-scopekey0001")
        .await
        .unwrap_or_else(fail));
}

async fn peers(store: &Store) {
    let hb = |id: &'static str, now: i64| async move {
        store
            .peer_heartbeat(id, now, now - 15_000)
            .await
            .unwrap_or_else(|e| panic!("heartbeat: {e}"))
    };
    assert_eq!(hb("gw_a", 100_000).await, 1);
    assert_eq!(hb("gw_b", 101_000).await, 2, "two replicas alive");
    assert_eq!(
        hb("gw_a", 105_000).await,
        2,
        "a second heartbeat updates, it does not add"
    );
    assert_eq!(
        hb("gw_a", 117_000).await,
        1,
        "gw_b is silent for more than 15 s: gone"
    );
    assert_eq!(hb("gw_c", 5_000_000).await, 1);
    assert_eq!(
        hb("gw_b", 5_000_001).await,
        2,
        "rows an hour old are deleted, a returning replica counts again"
    );
}

#[tokio::test]
async fn storage_on_sqlite() {
    suite(Flavor::Sqlite).await;
}

#[tokio::test]
async fn storage_on_postgres() {
    suite(Flavor::Postgres).await;
}
