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
}

impl AuditAction {
    pub const ALL: [AuditAction; 14] = [
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
