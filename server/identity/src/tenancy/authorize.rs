//! The access check every tenancy operation starts with: the caller's role in the tenant, read fresh, against
//! `tollgate_domain::access::decide`.

use crate::{internal, Caller, Identity};
use tollgate_domain::{
    access::{decide, Action, Principal},
    DomainError, TenantRole,
};

use super::role_of;

impl Identity {
    /// Checks `action` in `tenant_id` for the caller, with their role read fresh from the database (a role
    /// change applies on the next click). Returns that role.
    pub async fn authorize(
        &self,
        caller: &Caller,
        tenant_id: &str,
        action: Action,
    ) -> Result<Option<TenantRole>, DomainError> {
        let role = self
            .store
            .membership_role(tenant_id, &caller.user_id)
            .await
            .map_err(internal)?
            .map(|r| role_of(&r));
        decide(
            Principal {
                platform_admin: caller.platform_admin,
                platform_viewer: caller.platform_viewer,
                role_in_tenant: role,
            },
            action,
        )?;
        Ok(role)
    }

    pub(super) fn require_platform_admin(
        caller: &Caller,
        action: Action,
    ) -> Result<(), DomainError> {
        decide(
            Principal {
                platform_admin: caller.platform_admin,
                platform_viewer: caller.platform_viewer,
                role_in_tenant: None,
            },
            action,
        )
    }
}
