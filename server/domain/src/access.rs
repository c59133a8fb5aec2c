//! Authorization: the single table of which role may perform which action. Every service call asks `decide`
//! before touching data, and answers NotFound (not Forbidden) to callers outside the tenant so that other
//! tenants' ids reveal nothing.

use crate::{DomainError, TenantRole};

/// Everything a caller can try to do inside a tenant, plus the platform-wide actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ViewTenant,
    ViewTeams,
    ManageTeams,
    ViewMembers,
    InviteMembers,
    ChangeRoles,
    RemoveMembers,
    ViewAudit,
    /// See the tenant's subscriptions, keys (prefixes only) and usage.
    ViewSubscriptions,
    /// Subscribe a team the caller belongs to, manage that team's keys, cancel its subscriptions.
    UseModels,
    /// Approve, reject, suspend, resume, move and cancel any subscription of the tenant.
    DecideSubscriptions,
    /// Platform-wide: edit the catalog and plans, approve restricted models.
    ManageCatalog,
    /// Platform-wide: create tenants, see every tenant.
    ManageTenants,
    /// Platform-wide: read the audit log of every tenant.
    ViewAllAudit,
    /// Platform-wide: GPUs, deployments and their replicas.
    ManageFleet,
}

impl Action {
    /// Words for the "you do not have permission to ..." message.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ViewTenant => "view this tenant",
            Self::ViewTeams => "view teams",
            Self::ManageTeams => "manage teams",
            Self::ViewMembers => "view members",
            Self::InviteMembers => "invite members",
            Self::ChangeRoles => "change roles",
            Self::RemoveMembers => "remove members",
            Self::ViewAudit => "view the audit log",
            Self::ViewSubscriptions => "view subscriptions",
            Self::UseModels => "subscribe to models and manage API keys",
            Self::DecideSubscriptions => "approve or change subscriptions",
            Self::ManageCatalog => "manage the catalog",
            Self::ManageTenants => "manage tenants",
            Self::ViewAllAudit => "view the platform audit log",
            Self::ManageFleet => "manage the GPU fleet",
        }
    }

    fn minimum_role(self) -> Option<TenantRole> {
        match self {
            Self::ViewTenant | Self::ViewTeams | Self::ViewMembers | Self::ViewSubscriptions => {
                Some(TenantRole::Viewer)
            }
            Self::UseModels => Some(TenantRole::Developer),
            Self::ManageTeams
            | Self::InviteMembers
            | Self::ChangeRoles
            | Self::RemoveMembers
            | Self::ViewAudit
            | Self::DecideSubscriptions => Some(TenantRole::Admin),
            // Platform actions: no tenant role is enough.
            Self::ManageTenants | Self::ViewAllAudit | Self::ManageCatalog | Self::ManageFleet => {
                None
            }
        }
    }
}

/// Who is asking, as far as authorization cares.
#[derive(Debug, Clone, Copy)]
pub struct Principal {
    pub platform_admin: bool,
    /// The caller's role in the tenant the action targets; None when not a member.
    pub role_in_tenant: Option<TenantRole>,
}

/// Decides whether `who` may perform `action` in a tenant.
///
/// Platform admins may do everything. Non-members get NotFound, never Forbidden, so that probing another
/// tenant's ids tells nothing about whether they exist.
pub fn decide(who: Principal, action: Action) -> Result<(), DomainError> {
    if who.platform_admin {
        return Ok(());
    }
    let Some(needed) = action.minimum_role() else {
        return Err(DomainError::forbidden(action.describe()));
    };
    match who.role_in_tenant {
        None => Err(DomainError::not_found("tenant")),
        Some(role) if role >= needed => Ok(()),
        Some(_) => Err(DomainError::forbidden(action.describe())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT_ACTIONS: [Action; 11] = [
        Action::ViewSubscriptions,
        Action::UseModels,
        Action::DecideSubscriptions,
        Action::ViewTenant,
        Action::ViewTeams,
        Action::ManageTeams,
        Action::ViewMembers,
        Action::InviteMembers,
        Action::ChangeRoles,
        Action::RemoveMembers,
        Action::ViewAudit,
    ];

    fn member(role: TenantRole) -> Principal {
        Principal {
            platform_admin: false,
            role_in_tenant: Some(role),
        }
    }

    #[test]
    fn outsiders_get_not_found_for_every_tenant_action() {
        let outsider = Principal {
            platform_admin: false,
            role_in_tenant: None,
        };
        for action in TENANT_ACTIONS {
            assert_eq!(
                decide(outsider, action),
                Err(DomainError::not_found("tenant")),
                "{action:?}"
            );
        }
    }

    #[test]
    fn admins_may_do_every_tenant_action_but_no_platform_action() {
        for action in TENANT_ACTIONS {
            assert!(
                decide(member(TenantRole::Admin), action).is_ok(),
                "{action:?}"
            );
        }
        assert!(matches!(
            decide(member(TenantRole::Admin), Action::ManageTenants),
            Err(DomainError::Forbidden(_))
        ));
        assert!(matches!(
            decide(member(TenantRole::Admin), Action::ViewAllAudit),
            Err(DomainError::Forbidden(_))
        ));
    }

    #[test]
    fn developers_use_models_but_only_admins_decide() {
        assert!(decide(member(TenantRole::Developer), Action::UseModels).is_ok());
        assert!(matches!(
            decide(member(TenantRole::Viewer), Action::UseModels),
            Err(DomainError::Forbidden(_))
        ));
        assert!(matches!(
            decide(member(TenantRole::Developer), Action::DecideSubscriptions),
            Err(DomainError::Forbidden(_))
        ));
        assert!(decide(member(TenantRole::Viewer), Action::ViewSubscriptions).is_ok());
    }

    #[test]
    fn developers_and_viewers_only_read() {
        for role in [TenantRole::Developer, TenantRole::Viewer] {
            for action in [Action::ViewTenant, Action::ViewTeams, Action::ViewMembers] {
                assert!(decide(member(role), action).is_ok());
            }
            for action in [
                Action::ManageTeams,
                Action::InviteMembers,
                Action::ChangeRoles,
                Action::RemoveMembers,
                Action::ViewAudit,
            ] {
                assert!(
                    matches!(decide(member(role), action), Err(DomainError::Forbidden(_))),
                    "{role} {action:?}"
                );
            }
        }
    }

    #[test]
    fn platform_admins_may_do_everything_even_without_membership() {
        let root = Principal {
            platform_admin: true,
            role_in_tenant: None,
        };
        for action in TENANT_ACTIONS.into_iter().chain([
            Action::ManageTenants,
            Action::ViewAllAudit,
            Action::ManageCatalog,
            Action::ManageFleet,
        ]) {
            assert!(decide(root, action).is_ok());
        }
    }
}
