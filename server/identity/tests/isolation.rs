//! Tenant isolation and role enforcement, as a matrix: members of tenant A try every read and write on
//! tenant B's objects (all answer NotFound and change nothing), and A's developers and viewers try every
//! admin action in their own tenant (all answer Forbidden). Run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use tollgate_domain::{page::PageRequest, views::AuditFilter, DomainError, TenantRole};
use tollgate_identity::{Caller, Identity};
use tollgate_store::{
    testing::{Flavor, TestDatabase},
    Store,
};

struct World {
    id: Identity,
    admin_a: Caller,
    dev_a: Caller,
    viewer_a: Caller,
    a: String,
    b: String,
    team_a: String,
    team_b: String,
    admin_b_user: String,
    invitation_b: String,
}

async fn user(store: &Store, email: &str, tenant: &str, role: TenantRole) -> Caller {
    tollgate_identity::testing::user(store, email, Some((tenant, role)), false).await
}

async fn world(store: Store) -> World {
    let id = tollgate_identity::testing::identity(&store);
    let a = store
        .create_tenant("tenant-a", "Tenant A")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    let b = store
        .create_tenant("tenant-b", "Tenant B")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    let admin_a = user(&store, "admin@a.test", &a, TenantRole::Admin).await;
    let dev_a = user(&store, "dev@a.test", &a, TenantRole::Developer).await;
    let viewer_a = user(&store, "viewer@a.test", &a, TenantRole::Viewer).await;
    let admin_b = user(&store, "admin@b.test", &b, TenantRole::Admin).await;
    let team_a = id
        .create_team(&admin_a, &a, "Team A", "")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    let team_b = id
        .create_team(&admin_b, &b, "Team B", "")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    id.add_team_member(&admin_b, &b, &team_b, "admin@b.test")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let invitation_b = id
        .invite(&admin_b, &b, Some("new@b.test"), "developer", None, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .invitation
        .id;
    World {
        id,
        admin_a,
        dev_a,
        viewer_a,
        a,
        b,
        team_a,
        team_b,
        admin_b_user: admin_b.user_id,
        invitation_b,
    }
}

fn not_found<T: std::fmt::Debug>(what: &str, r: Result<T, DomainError>) {
    assert!(
        matches!(r, Err(DomainError::NotFound(_))),
        "{what}: expected NotFound, got {r:?}"
    );
}

fn forbidden<T: std::fmt::Debug>(what: &str, r: Result<T, DomainError>) {
    assert!(
        matches!(r, Err(DomainError::Forbidden(_))),
        "{what}: expected Forbidden, got {r:?}"
    );
}

async fn matrix(flavor: Flavor) {
    let db = TestDatabase::new(flavor)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = db.store().await.unwrap_or_else(|e| panic!("{e}"));
    let w = world(store.clone()).await;
    let (id, b) = (&w.id, w.b.as_str());
    let page = PageRequest::default();
    let before = snapshot(id, &w).await;

    // Every role of tenant A, naming tenant B directly: nothing is found.
    for c in [&w.admin_a, &w.dev_a, &w.viewer_a] {
        let who = &c.email;
        not_found(
            &format!("{who} list teams of B"),
            id.list_teams(c, b, "", page).await,
        );
        not_found(
            &format!("{who} open team of B"),
            id.team(c, b, &w.team_b).await,
        );
        not_found(
            &format!("{who} create team in B"),
            id.create_team(c, b, "Intruders", "").await,
        );
        not_found(
            &format!("{who} delete team of B"),
            id.delete_team(c, b, &w.team_b).await,
        );
        not_found(
            &format!("{who} add to team of B"),
            id.add_team_member(c, b, &w.team_b, &c.email).await,
        );
        not_found(
            &format!("{who} remove from team of B"),
            id.remove_team_member(c, b, &w.team_b, &w.admin_b_user)
                .await,
        );
        not_found(
            &format!("{who} list members of B"),
            id.list_members(c, b, "", page).await,
        );
        not_found(
            &format!("{who} change role in B"),
            id.change_role(c, b, &w.admin_b_user, "viewer").await,
        );
        not_found(
            &format!("{who} remove member of B"),
            id.remove_member(c, b, &w.admin_b_user).await,
        );
        not_found(
            &format!("{who} invite to B"),
            id.invite(c, b, Some("x@a.test"), "admin", None, None).await,
        );
        not_found(
            &format!("{who} list invitations of B"),
            id.list_invitations(c, b, page).await,
        );
        not_found(
            &format!("{who} revoke invitation of B"),
            id.revoke_invitation(c, b, &w.invitation_b).await,
        );
        let audit_b = AuditFilter {
            tenant_id: Some(w.b.clone()),
            ..Default::default()
        };
        not_found(
            &format!("{who} read audit of B"),
            id.list_audit(c, audit_b, page).await,
        );
    }

    // Tenant A's admin, in their own tenant, using tenant B's object ids: nothing is found either.
    let (admin, a) = (&w.admin_a, w.a.as_str());
    not_found("open B's team via A", id.team(admin, a, &w.team_b).await);
    not_found(
        "delete B's team via A",
        id.delete_team(admin, a, &w.team_b).await,
    );
    not_found(
        "add to B's team via A",
        id.add_team_member(admin, a, &w.team_b, "admin@a.test")
            .await,
    );
    not_found(
        "remove from B's team via A",
        id.remove_team_member(admin, a, &w.team_b, &w.admin_b_user)
            .await,
    );
    not_found(
        "change role of B's admin via A",
        id.change_role(admin, a, &w.admin_b_user, "viewer").await,
    );
    not_found(
        "remove B's admin via A",
        id.remove_member(admin, a, &w.admin_b_user).await,
    );
    not_found(
        "revoke B's invitation via A",
        id.revoke_invitation(admin, a, &w.invitation_b).await,
    );
    let invite_to_b_team = id
        .invite(admin, a, None, "developer", Some(&w.team_b), None)
        .await;
    not_found("invite into B's team via A", invite_to_b_team);

    // Developers and viewers of A try every admin action in A.
    for c in [&w.dev_a, &w.viewer_a] {
        let who = &c.email;
        forbidden(
            &format!("{who} create team"),
            id.create_team(c, a, "New", "").await,
        );
        forbidden(
            &format!("{who} delete team"),
            id.delete_team(c, a, &w.team_a).await,
        );
        forbidden(
            &format!("{who} add team member"),
            id.add_team_member(c, a, &w.team_a, "dev@a.test").await,
        );
        forbidden(
            &format!("{who} remove team member"),
            id.remove_team_member(c, a, &w.team_a, &w.admin_a.user_id)
                .await,
        );
        forbidden(
            &format!("{who} change role"),
            id.change_role(c, a, &c.user_id, "admin").await,
        );
        forbidden(
            &format!("{who} remove member"),
            id.remove_member(c, a, &w.admin_a.user_id).await,
        );
        forbidden(
            &format!("{who} invite"),
            id.invite(c, a, None, "admin", None, None).await,
        );
        forbidden(
            &format!("{who} list invitations"),
            id.list_invitations(c, a, page).await,
        );
        forbidden(
            &format!("{who} read audit"),
            id.list_audit(c, AuditFilter::default(), page).await,
        );
        forbidden(
            &format!("{who} create tenant"),
            id.create_tenant(c, "Mine", "").await,
        );
        forbidden(
            &format!("{who} list tenants"),
            id.list_tenants(c, "", page).await,
        );
        // Reading their own tenant is allowed.
        assert!(id.list_teams(c, a, "", page).await.is_ok());
        assert!(id.list_members(c, a, "", page).await.is_ok());
    }
    forbidden(
        "tenant admin creates tenant",
        id.create_tenant(admin, "Mine", "").await,
    );
    forbidden(
        "tenant admin lists tenants",
        id.list_tenants(admin, "", page).await,
    );

    // Nothing in tenant B changed.
    assert_eq!(snapshot(id, &w).await, before);
    store.close().await;
    db.cleanup().await.unwrap_or_else(|e| panic!("{e}"));
}

/// Tenant B's teams, members, roles and invitations, as seen by a platform admin.
async fn snapshot(id: &Identity, w: &World) -> String {
    let root = Caller {
        platform_admin: true,
        platform_viewer: false,
        ..w.admin_a.clone()
    };
    let page = PageRequest::default();
    let teams = id
        .list_teams(&root, &w.b, "", page)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let members = id
        .list_members(&root, &w.b, "", page)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let invitations = id
        .list_invitations(&root, &w.b, page)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, team_members) = id
        .team(&root, &w.b, &w.team_b)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    format!("{teams:?}|{members:?}|{invitations:?}|{team_members:?}")
}

#[tokio::test]
async fn tenant_isolation_on_sqlite() {
    matrix(Flavor::Sqlite).await;
}

#[tokio::test]
async fn tenant_isolation_on_postgres() {
    matrix(Flavor::Postgres).await;
}

/// The last admin of a tenant cannot be demoted or removed, and invitations are single use.
#[tokio::test]
async fn membership_rules_hold_end_to_end() {
    let db = TestDatabase::new(Flavor::Sqlite)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = db.store().await.unwrap_or_else(|e| panic!("{e}"));
    let w = world(store.clone()).await;
    let (id, a) = (&w.id, w.a.as_str());
    assert!(matches!(
        id.change_role(&w.admin_a, a, &w.admin_a.user_id, "developer")
            .await,
        Err(DomainError::Conflict(_))
    ));
    assert!(matches!(
        id.remove_member(&w.admin_a, a, &w.admin_a.user_id).await,
        Err(DomainError::Conflict(_))
    ));
    id.change_role(&w.admin_a, a, &w.dev_a.user_id, "admin")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    id.change_role(&w.admin_a, a, &w.admin_a.user_id, "viewer")
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let admin = w.dev_a.clone(); // now the admin
    let created = id
        .invite(&admin, a, None, "developer", None, Some(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let token = created
        .link
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let newcomer = user(&store, "newcomer@elsewhere.test", &w.b, TenantRole::Viewer).await;
    assert_eq!(
        id.accept_invitation(&newcomer, &token).await.ok(),
        Some(w.a.clone())
    );
    let again = id.accept_invitation(&w.viewer_a, &token).await;
    assert!(
        matches!(again, Err(DomainError::Conflict(ref m)) if m.contains("already")),
        "{again:?}"
    );
    assert!(matches!(
        id.accept_invitation(&newcomer, "not-a-token").await,
        Err(DomainError::NotFound(_))
    ));
    // An addressed invitation only fits its addressee.
    let addressed = id
        .invite(&admin, a, Some("only@me.test"), "viewer", None, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let token = addressed
        .link
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(matches!(
        id.accept_invitation(&w.viewer_a, &token).await,
        Err(DomainError::Forbidden(_))
    ));
    db.cleanup().await.unwrap_or_else(|e| panic!("{e}"));
}
