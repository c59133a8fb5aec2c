//! Helpers for tests of this crate and of the crates built on it: an `Identity` over a test store, and users
//! made directly in the store with a role in a tenant.

use crate::{session::ClientInfo, throttle::LoginThrottle, Caller, Identity, Settings};
use std::time::Duration;
use tollgate_domain::TenantRole;
use tollgate_store::{NewUser, Store};

/// An `Identity` with the settings tests assume (public URL `http://portal.test`, no OIDC).
pub fn identity(store: &Store) -> Identity {
    Identity::new(
        store.clone(),
        Settings {
            public_url: "http://portal.test".into(),
            local_login: true,
            idle_timeout_secs: 3600,
            absolute_timeout_secs: 86_400,
        },
        LoginThrottle::new(5, Duration::from_secs(60), Duration::from_secs(60)),
        None,
    )
}

/// A user created in the store, optionally a member of `tenant` with `role`, as the `Caller` services take.
pub async fn user(
    store: &Store,
    email: &str,
    tenant: Option<(&str, TenantRole)>,
    platform_admin: bool,
) -> Caller {
    let u = store
        .create_user(NewUser {
            email,
            name: email,
            password_hash: None,
            oidc: None,
            platform_admin,
        })
        .await
        .unwrap_or_else(|e| panic!("create {email}: {e}"));
    if let Some((t, role)) = tenant {
        store
            .add_membership(t, &u.id, role.as_str())
            .await
            .unwrap_or_else(|e| panic!("membership of {email}: {e}"));
    }
    Caller {
        user_id: u.id,
        email: u.email,
        name: u.name,
        platform_admin,
        platform_viewer: false,
        tenant_id: tenant.map(|(t, _)| t.to_string()),
        session_id: None,
        client: ClientInfo::default(),
    }
}
