//! The caller of a server operation: the signed-in user and the tenant they are working in.

use crate::session::ClientInfo;

#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub platform_admin: bool,
    /// Reads usage and adoption across tenants, changes nothing (`access::Principal::platform_viewer`).
    pub platform_viewer: bool,
    /// The tenant chosen in the portal header; operations may also name a tenant explicitly.
    pub tenant_id: Option<String>,
    pub session_id: Option<String>,
    pub client: ClientInfo,
}

impl Caller {
    /// The current tenant, or a clear error when the user belongs to none yet.
    pub fn current_tenant(&self) -> Result<&str, tollgate_domain::DomainError> {
        self.tenant_id.as_deref().ok_or_else(|| {
            tollgate_domain::DomainError::invalid(
                "you are not a member of any tenant yet: ask an admin for an invitation",
            )
        })
    }
}
