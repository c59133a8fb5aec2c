//! The shapes the server hands to the portal (and, later, to the management API). Plain data, serializable.

use crate::{invitation::InvitationState, time::Millis, TenantRole};
use serde::{Deserialize, Serialize};

/// The signed-in user as the portal sees them: who, and in which tenant they are working now.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Me {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub platform_admin: bool,
    /// Reads usage across tenants and changes nothing (product owners).
    #[serde(default)]
    pub platform_viewer: bool,
    /// The tenant the user is working in now (chosen in the header), with their role there.
    pub tenant: Option<TenantMembership>,
    /// Every tenant the user belongs to, for the tenant switcher.
    pub tenants: Vec<TenantMembership>,
}

/// A user holding the platform viewer role (product owners: usage across tenants, read-only).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformViewerView {
    pub user_id: String,
    pub email: String,
    pub name: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantMembership {
    pub tenant_id: String,
    pub slug: String,
    pub name: String,
    /// None for a platform admin looking at a tenant they do not belong to.
    pub role: Option<TenantRole>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantView {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub members: u64,
    pub teams: u64,
    pub created_at: Millis,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub members: u64,
    pub created_at: Millis,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: TenantRole,
    pub joined_at: Millis,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamMemberView {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub added_at: Millis,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationView {
    pub id: String,
    pub email: Option<String>,
    pub role: TenantRole,
    pub team_name: Option<String>,
    pub invited_by: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub state: InvitationState,
}

/// What the inviter sees once: the link to pass on. The token inside is never shown again.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationCreated {
    pub invitation: InvitationView,
    pub link: String,
}

/// What the invitee sees before accepting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationPreview {
    pub tenant_name: String,
    pub role: TenantRole,
    pub email: Option<String>,
    pub invited_by: String,
    pub expires_at: Millis,
    pub state: InvitationState,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEventView {
    pub id: String,
    pub at: Millis,
    pub tenant_id: Option<String>,
    pub actor_email: Option<String>,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub from: Option<Millis>,
    pub until: Option<Millis>,
    /// Platform admins only: restrict to one tenant (None = all tenants).
    pub tenant_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionView {
    pub id: String,
    pub created_at: Millis,
    pub last_seen_at: Millis,
    pub expires_at: Millis,
    pub user_agent: String,
    pub ip: String,
    pub method: String,
    pub current: bool,
}

/// How the login page should look: which ways to sign in this server offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginOptions {
    pub local: bool,
    pub oidc: Option<String>,
}
