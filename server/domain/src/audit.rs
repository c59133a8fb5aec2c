//! The vocabulary of the audit log: what happened, in stable machine names that filters and exports use.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditAction {
    SignIn,
    SignInFailed,
    SignOut,
    SessionRevoked,
    TenantCreated,
    TeamCreated,
    TeamDeleted,
    TeamMemberAdded,
    TeamMemberRemoved,
    MemberInvited,
    InvitationRevoked,
    InvitationAccepted,
    MemberRoleChanged,
    MemberRemoved,
    ModelCreated,
    ModelUpdated,
    PlanCreated,
    PlanUpdated,
    SubscriptionRequested,
    SubscriptionApproved,
    SubscriptionRejected,
    SubscriptionSuspended,
    SubscriptionResumed,
    SubscriptionCancelled,
    SubscriptionPlanChanged,
    KeyCreated,
    KeyRotated,
    KeyRevoked,
    TokenCreated,
    TokenRevoked,
    DeploymentCreated,
    DeploymentUpdated,
    DeploymentDeleted,
    /// Single sign-on added, changed or removed a role that the provider's groups grant.
    MemberRoleSynced,
    /// Single sign-on granted or withdrew platform admin per the provider's group.
    PlatformAdminSynced,
    /// A sign-in's groups would have removed the last admin (of a tenant, or of the platform): kept.
    LastAdminKept,
    /// A platform admin granted or withdrew the platform viewer role.
    PlatformViewerChanged,
    /// Single sign-on granted or withdrew the platform viewer role per the provider's group.
    PlatformViewerSynced,
    /// A tenant admin set, re-pointed, rotated the secret of, or removed the tenant's alert webhook.
    AlertWebhookChanged,
}

impl AuditAction {
    pub const ALL: [AuditAction; 39] = [
        Self::SignIn,
        Self::SignInFailed,
        Self::SignOut,
        Self::SessionRevoked,
        Self::TenantCreated,
        Self::TeamCreated,
        Self::TeamDeleted,
        Self::TeamMemberAdded,
        Self::TeamMemberRemoved,
        Self::MemberInvited,
        Self::InvitationRevoked,
        Self::InvitationAccepted,
        Self::MemberRoleChanged,
        Self::MemberRemoved,
        Self::ModelCreated,
        Self::ModelUpdated,
        Self::PlanCreated,
        Self::PlanUpdated,
        Self::SubscriptionRequested,
        Self::SubscriptionApproved,
        Self::SubscriptionRejected,
        Self::SubscriptionSuspended,
        Self::SubscriptionResumed,
        Self::SubscriptionCancelled,
        Self::SubscriptionPlanChanged,
        Self::KeyCreated,
        Self::KeyRotated,
        Self::KeyRevoked,
        Self::TokenCreated,
        Self::TokenRevoked,
        Self::DeploymentCreated,
        Self::DeploymentUpdated,
        Self::DeploymentDeleted,
        Self::MemberRoleSynced,
        Self::PlatformAdminSynced,
        Self::LastAdminKept,
        Self::PlatformViewerChanged,
        Self::PlatformViewerSynced,
        Self::AlertWebhookChanged,
    ];

    /// The stored name. NEVER change one: stored events and saved filters use them.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "auth.sign_in",
            Self::SignInFailed => "auth.sign_in_failed",
            Self::SignOut => "auth.sign_out",
            Self::SessionRevoked => "auth.session_revoked",
            Self::TenantCreated => "tenant.created",
            Self::TeamCreated => "team.created",
            Self::TeamDeleted => "team.deleted",
            Self::TeamMemberAdded => "team.member_added",
            Self::TeamMemberRemoved => "team.member_removed",
            Self::MemberInvited => "member.invited",
            Self::InvitationRevoked => "member.invitation_revoked",
            Self::InvitationAccepted => "member.invitation_accepted",
            Self::MemberRoleChanged => "member.role_changed",
            Self::MemberRemoved => "member.removed",
            Self::ModelCreated => "catalog.model_created",
            Self::ModelUpdated => "catalog.model_updated",
            Self::PlanCreated => "catalog.plan_created",
            Self::PlanUpdated => "catalog.plan_updated",
            Self::SubscriptionRequested => "subscription.requested",
            Self::SubscriptionApproved => "subscription.approved",
            Self::SubscriptionRejected => "subscription.rejected",
            Self::SubscriptionSuspended => "subscription.suspended",
            Self::SubscriptionResumed => "subscription.resumed",
            Self::SubscriptionCancelled => "subscription.cancelled",
            Self::SubscriptionPlanChanged => "subscription.plan_changed",
            Self::KeyCreated => "key.created",
            Self::KeyRotated => "key.rotated",
            Self::KeyRevoked => "key.revoked",
            Self::TokenCreated => "token.created",
            Self::TokenRevoked => "token.revoked",
            Self::DeploymentCreated => "fleet.deployment_created",
            Self::DeploymentUpdated => "fleet.deployment_updated",
            Self::DeploymentDeleted => "fleet.deployment_deleted",
            Self::MemberRoleSynced => "member.role_synced",
            Self::PlatformAdminSynced => "platform.admin_synced",
            Self::LastAdminKept => "member.last_admin_kept",
            Self::PlatformViewerChanged => "platform.viewer_changed",
            Self::PlatformViewerSynced => "platform.viewer_synced",
            Self::AlertWebhookChanged => "alerts.webhook_changed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
            assert_eq!(
                AuditAction::ALL
                    .iter()
                    .filter(|b| b.as_str() == a.as_str())
                    .count(),
                1
            );
        }
        assert_eq!(AuditAction::parse("nope"), None);
    }
}
