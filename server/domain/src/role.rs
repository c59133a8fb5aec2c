//! Roles a user holds in a tenant. Platform admin is not a tenant role: it is a flag on the user (see `access`).

use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TenantRole {
    /// Product owner: reads usage and the catalog, changes nothing.
    Viewer,
    /// Builds with models: subscribes teams, creates keys, uses the playground.
    Developer,
    /// Manages the tenant: teams, members, roles, approvals, audit log.
    Admin,
}

impl TenantRole {
    pub const ALL: [TenantRole; 3] = [TenantRole::Admin, TenantRole::Developer, TenantRole::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Developer => "developer",
            Self::Viewer => "viewer",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Admin => "Tenant admin",
            Self::Developer => "Developer",
            Self::Viewer => "Viewer (product owner)",
        }
    }
}

impl fmt::Display for TenantRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TenantRole {
    type Err = crate::DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" | "tenant-admin" | "tenant_admin" => Ok(Self::Admin),
            "developer" | "dev" => Ok(Self::Developer),
            "viewer" | "product-owner" | "product_owner" => Ok(Self::Viewer),
            other => Err(crate::DomainError::invalid(format!(
                "unknown role '{other}': use admin, developer or viewer"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in TenantRole::ALL {
            assert_eq!(role.as_str().parse::<TenantRole>(), Ok(role));
        }
        assert_eq!("Tenant-Admin".parse::<TenantRole>(), Ok(TenantRole::Admin));
        assert!("owner".parse::<TenantRole>().is_err());
    }

    #[test]
    fn admin_outranks_developer_outranks_viewer() {
        assert!(TenantRole::Admin > TenantRole::Developer);
        assert!(TenantRole::Developer > TenantRole::Viewer);
    }
}
