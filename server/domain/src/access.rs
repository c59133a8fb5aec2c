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
    /// Usage figures: a tenant's (admins, viewers) or one's own teams' (developers); see [`usage_reach`].
    ViewUsage,
    /// Platform-wide: usage across every tenant (platform admins and platform viewers).
    ViewAllUsage,
    /// Platform-wide: grant or withdraw the platform viewer role.
    ManagePlatformRoles,
    /// The tenant's alert webhook: set, rotate its secret, remove (tenant admins).
    ManageAlerts,
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
            Self::ViewUsage => "view usage",
            Self::ViewAllUsage => "view every tenant's usage",
            Self::ManagePlatformRoles => "grant platform roles",
            Self::ManageAlerts => "manage the tenant's alert webhook",
        }
    }

    fn minimum_role(self) -> Option<TenantRole> {
        match self {
            Self::ViewTenant
            | Self::ViewTeams
            | Self::ViewMembers
            | Self::ViewSubscriptions
            | Self::ViewUsage => Some(TenantRole::Viewer),
            Self::UseModels => Some(TenantRole::Developer),
            Self::ManageTeams
            | Self::InviteMembers
            | Self::ChangeRoles
            | Self::RemoveMembers
            | Self::ViewAudit
            | Self::DecideSubscriptions
            | Self::ManageAlerts => Some(TenantRole::Admin),
            // Platform actions: no tenant role is enough.
            Self::ManageTenants
            | Self::ViewAllAudit
            | Self::ManageCatalog
            | Self::ManageFleet
            | Self::ViewAllUsage
            | Self::ManagePlatformRoles => None,
        }
    }

    /// What a platform viewer (a product owner across tenants) may do: read the catalog's, tenants' and usage
    /// figures; never change anything, never read members' details or the audit log.
    fn platform_viewer_may(self) -> bool {
        matches!(
            self,
            Self::ViewTenant
                | Self::ViewTeams
                | Self::ViewSubscriptions
                | Self::ViewUsage
                | Self::ViewAllUsage
        )
    }
}

/// Who is asking, as far as authorization cares.
#[derive(Debug, Clone, Copy, Default)]
pub struct Principal {
    pub platform_admin: bool,
    /// The platform-level read-only role: usage and adoption across tenants, refused every write.
    pub platform_viewer: bool,
    /// The caller's role in the tenant the action targets; None when not a member.
    pub role_in_tenant: Option<TenantRole>,
}

/// Decides whether `who` may perform `action` in a tenant.
///
/// Platform admins may do everything; platform viewers read what [`Action::platform_viewer_may`] lists, in any
/// tenant. Non-members get NotFound, never Forbidden, so that probing another tenant's ids tells nothing about
/// whether they exist.
pub fn decide(who: Principal, action: Action) -> Result<(), DomainError> {
    if who.platform_admin || (who.platform_viewer && action.platform_viewer_may()) {
        return Ok(());
    }
    if who.platform_viewer && who.role_in_tenant.is_none() {
        // A platform-level role: the tenant's existence is no secret to it, the refusal is.
        return Err(DomainError::forbidden(action.describe()));
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

/// How much of a tenant's usage a caller reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageReach {
    /// Every team's figures.
    Tenant,
    /// Only the teams the caller belongs to (developers: their own quota and usage, nobody else's).
    OwnTeams,
}

/// Whose usage `who` may read in a tenant: tenant admins and viewers (product owners) the whole tenant,
/// developers their own teams, platform admins and platform viewers any tenant, outsiders nothing (NotFound).
pub fn usage_reach(who: Principal) -> Result<UsageReach, DomainError> {
    decide(who, Action::ViewUsage)?;
    Ok(match who.role_in_tenant {
        _ if who.platform_admin || who.platform_viewer => UsageReach::Tenant,
        Some(TenantRole::Developer) => UsageReach::OwnTeams,
        _ => UsageReach::Tenant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT_ACTIONS: [Action; 12] = [
        Action::ManageAlerts,
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
            role_in_tenant: Some(role),
            ..Principal::default()
        }
    }

    const PLATFORM_ACTIONS: [Action; 7] = [
        Action::ManageTenants,
        Action::ViewAllAudit,
        Action::ManageCatalog,
        Action::ManageFleet,
        Action::ViewUsage,
        Action::ViewAllUsage,
        Action::ManagePlatformRoles,
    ];

    fn is_write(action: Action) -> bool {
        !matches!(
            action,
            Action::ViewTenant
                | Action::ViewTeams
                | Action::ViewMembers
                | Action::ViewAudit
                | Action::ViewSubscriptions
                | Action::ViewAllAudit
                | Action::ViewUsage
                | Action::ViewAllUsage
        )
    }

    #[test]
    fn platform_viewers_read_usage_anywhere_and_are_refused_every_write() {
        let owner = Principal {
            platform_viewer: true,
            ..Principal::default()
        };
        for action in TENANT_ACTIONS.into_iter().chain(PLATFORM_ACTIONS) {
            let verdict = decide(owner, action);
            if is_write(action) {
                assert!(
                    matches!(verdict, Err(DomainError::Forbidden(_))),
                    "{action:?}: {verdict:?}"
                );
            } else if matches!(
                action,
                Action::ViewMembers | Action::ViewAudit | Action::ViewAllAudit
            ) {
                assert!(
                    verdict.is_err(),
                    "{action:?}: people's details stay private"
                );
            } else {
                assert!(verdict.is_ok(), "{action:?}");
            }
        }
        assert_eq!(usage_reach(owner), Ok(UsageReach::Tenant));
        // Also a developer somewhere: still only reads, but every tenant's usage in full.
        let both = Principal {
            platform_viewer: true,
            role_in_tenant: Some(TenantRole::Developer),
            ..Principal::default()
        };
        assert_eq!(usage_reach(both), Ok(UsageReach::Tenant));
        assert!(decide(both, Action::DecideSubscriptions).is_err());
    }

    #[test]
    fn usage_reach_is_the_tenant_for_admins_and_viewers_and_own_teams_for_developers() {
        assert_eq!(
            usage_reach(member(TenantRole::Admin)),
            Ok(UsageReach::Tenant)
        );
        assert_eq!(
            usage_reach(member(TenantRole::Viewer)),
            Ok(UsageReach::Tenant)
        );
        assert_eq!(
            usage_reach(member(TenantRole::Developer)),
            Ok(UsageReach::OwnTeams)
        );
        assert_eq!(
            usage_reach(Principal::default()),
            Err(DomainError::not_found("tenant"))
        );
        let root = Principal {
            platform_admin: true,
            ..Principal::default()
        };
        assert_eq!(usage_reach(root), Ok(UsageReach::Tenant));
        for role in TenantRole::ALL {
            assert!(matches!(
                decide(member(role), Action::ViewAllUsage),
                Err(DomainError::Forbidden(_))
            ));
        }
    }

    #[test]
    fn outsiders_get_not_found_for_every_tenant_action() {
        let outsider = Principal::default();
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
            ..Principal::default()
        };
        for action in TENANT_ACTIONS.into_iter().chain(PLATFORM_ACTIONS) {
            assert!(decide(root, action).is_ok());
        }
    }
}
