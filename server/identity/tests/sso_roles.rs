//! Single sign-on keeps the roles it granted in step with the provider's groups, on SQLite and on PostgreSQL:
//! roles from groups are raised, lowered and removed as the groups change; roles granted by hand stay; a tenant
//! (and the platform) keeps its last admin, and the audit log says why.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use tollgate_domain::{audit::AuditAction, TenantRole};
use tollgate_identity::oidc::parse_groups;
use tollgate_store::{
    testing::{Flavor, TestDatabase},
    AuditQuery, NewUser, Store, UserRow,
};

async fn sso_user(store: &Store, email: &str) -> UserRow {
    store
        .create_user(NewUser {
            email,
            name: email,
            password_hash: None,
            oidc: Some(("https://idp.test", email)),
            platform_admin: false,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn role(store: &Store, tenant: &str, user: &UserRow) -> Option<String> {
    store
        .membership_role(tenant, &user.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn platform_admin(store: &Store, user: &UserRow) -> bool {
    store
        .user_by_id(&user.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_some_and(|u| u.is_platform_admin())
}

async fn events(store: &Store, action: AuditAction) -> Vec<(Option<String>, String)> {
    let (rows, _) = store
        .list_audit(&AuditQuery {
            tenant_id: None,
            action: Some(action.as_str().into()),
            actor: None,
            from: None,
            until: None,
            offset: 0,
            limit: 100,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    rows.into_iter().map(|r| (r.tenant_id, r.detail)).collect()
}

async fn suite(flavor: Flavor) {
    let db = TestDatabase::new(flavor)
        .await
        .unwrap_or_else(|e| panic!("{flavor:?}: {e}"));
    let store = db.store().await.unwrap_or_else(|e| panic!("{e}"));
    let id = tollgate_identity::testing::identity(&store);
    let sign_in = |user: UserRow, groups: &[&str]| {
        let id = id.clone();
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        async move {
            id.sync_sso_roles(&user, &parse_groups("tollgate:", &groups))
                .await
                .unwrap_or_else(|e| panic!("sync: {e}"));
        }
    };
    let acme = store.create_tenant("acme", "Acme").await.unwrap().id;
    let globex = store.create_tenant("globex", "Globex").await.unwrap().id;
    // A hand-made admin of acme, so acme never runs out of admins in this test.
    let boss = tollgate_identity::testing::user(
        &store,
        "boss@acme.test",
        Some((&acme, TenantRole::Admin)),
        true,
    )
    .await;

    // Roles from groups follow the groups: added, lowered, removed.
    let sam = sso_user(&store, "sam@acme.test").await;
    sign_in(
        sam.clone(),
        &["tollgate:acme:admin", "tollgate:platform-admin"],
    )
    .await;
    assert_eq!(role(&store, &acme, &sam).await.as_deref(), Some("admin"));
    assert!(platform_admin(&store, &sam).await);
    let team = store.create_team(&acme, "Search", "").await.unwrap();
    assert!(store
        .add_team_member(&acme, &team.id, &sam.id)
        .await
        .unwrap());
    sign_in(sam.clone(), &["tollgate:acme:developer"]).await;
    assert_eq!(
        role(&store, &acme, &sam).await.as_deref(),
        Some("developer"),
        "lowered with the group"
    );
    assert!(
        !platform_admin(&store, &sam).await,
        "platform admin goes with its group"
    );
    sign_in(sam.clone(), &[]).await;
    assert_eq!(
        role(&store, &acme, &sam).await,
        None,
        "removed with the group"
    );
    assert!(
        !store
            .is_team_member(&acme, &team.id, &sam.id)
            .await
            .unwrap(),
        "and from the tenant's teams"
    );
    let synced = events(&store, AuditAction::MemberRoleSynced).await;
    assert_eq!(synced.len(), 3, "{synced:?}");
    assert!(synced
        .iter()
        .all(|(t, _)| t.as_deref() == Some(acme.as_str())));
    assert_eq!(
        events(&store, AuditAction::PlatformAdminSynced).await.len(),
        2
    );

    // A role granted by hand stays: the groups can raise it, and lowering the group falls back to it.
    let hana = sso_user(&store, "hana@acme.test").await;
    store
        .add_membership(&acme, &hana.id, "developer")
        .await
        .unwrap();
    sign_in(hana.clone(), &[]).await;
    assert_eq!(
        role(&store, &acme, &hana).await.as_deref(),
        Some("developer"),
        "no group never removes a hand-granted role"
    );
    sign_in(hana.clone(), &["tollgate:acme:admin"]).await;
    assert_eq!(role(&store, &acme, &hana).await.as_deref(), Some("admin"));
    sign_in(hana.clone(), &["tollgate:acme:viewer"]).await;
    assert_eq!(
        role(&store, &acme, &hana).await.as_deref(),
        Some("developer"),
        "never below the hand's role"
    );
    sign_in(hana.clone(), &[]).await;
    assert_eq!(
        role(&store, &acme, &hana).await.as_deref(),
        Some("developer")
    );
    // Platform admin granted by hand is not the group's to withdraw.
    store.set_platform_admin(&hana.id, true).await.unwrap();
    sign_in(hana.clone(), &[]).await;
    assert!(platform_admin(&store, &hana).await);
    // A role changed by hand in the portal becomes the hand's.
    let rex = sso_user(&store, "rex@acme.test").await;
    sign_in(rex.clone(), &["tollgate:acme:developer"]).await;
    assert!(store
        .set_membership_role(&acme, &rex.id, "viewer")
        .await
        .unwrap());
    sign_in(rex.clone(), &[]).await;
    assert_eq!(role(&store, &acme, &rex).await.as_deref(), Some("viewer"));

    // A tenant keeps its last admin, and the audit log says so.
    let gil = sso_user(&store, "gil@globex.test").await;
    sign_in(gil.clone(), &["tollgate:globex:admin"]).await;
    assert_eq!(role(&store, &globex, &gil).await.as_deref(), Some("admin"));
    sign_in(gil.clone(), &["tollgate:globex:viewer"]).await;
    assert_eq!(
        role(&store, &globex, &gil).await.as_deref(),
        Some("admin"),
        "the last admin is not lowered"
    );
    sign_in(gil.clone(), &[]).await;
    assert_eq!(
        role(&store, &globex, &gil).await.as_deref(),
        Some("admin"),
        "nor removed"
    );
    let kept = events(&store, AuditAction::LastAdminKept).await;
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept
        .iter()
        .all(|(t, d)| t.as_deref() == Some(globex.as_str()) && d.contains("keeps one admin")));
    // Once another admin exists, the group's change goes through.
    let _other = tollgate_identity::testing::user(
        &store,
        "other@globex.test",
        Some((&globex, TenantRole::Admin)),
        false,
    )
    .await;
    sign_in(gil.clone(), &[]).await;
    assert_eq!(role(&store, &globex, &gil).await, None);

    // The platform keeps its last admin too.
    store
        .set_platform_admin(&boss.user_id, false)
        .await
        .unwrap();
    store.set_platform_admin(&hana.id, false).await.unwrap();
    let pat = sso_user(&store, "pat@idp.test").await;
    sign_in(pat.clone(), &["tollgate:platform-admin"]).await;
    assert!(platform_admin(&store, &pat).await);
    assert_eq!(store.count_platform_admins().await.unwrap(), 1);
    sign_in(pat.clone(), &[]).await;
    assert!(
        platform_admin(&store, &pat).await,
        "the last platform admin stays"
    );
    assert_eq!(events(&store, AuditAction::LastAdminKept).await.len(), 3);

    store.close().await;
    db.cleanup().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn sso_roles_follow_the_groups_on_sqlite() {
    suite(Flavor::Sqlite).await;
}

#[tokio::test]
async fn sso_roles_follow_the_groups_on_postgres() {
    suite(Flavor::Postgres).await;
}
