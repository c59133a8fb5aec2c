//! Platform-level roles granted by hand: the platform viewer (product owners read usage, cost and adoption across
//! tenants and change nothing). Only platform admins grant it (`Action::ManagePlatformRoles`); single sign-on
//! grants it through the `<prefix>platform-viewer` group (`oidc.rs`).

use crate::{internal, Caller, Identity};
use tollgate_domain::{
    access::{decide, Action, Principal},
    audit::AuditAction,
    views::PlatformViewerView as PlatformViewer,
    DomainError,
};

impl Identity {
    fn require(caller: &Caller, action: Action) -> Result<(), DomainError> {
        decide(
            Principal {
                platform_admin: caller.platform_admin,
                platform_viewer: caller.platform_viewer,
                role_in_tenant: None,
            },
            action,
        )
    }

    /// Grants (`on`) or withdraws the platform viewer role of the user with `email`, by hand. Platform admins only.
    pub async fn set_platform_viewer(
        &self,
        caller: &Caller,
        email: &str,
        on: bool,
    ) -> Result<PlatformViewer, DomainError> {
        Self::require(caller, Action::ManagePlatformRoles)?;
        let user = self
            .store
            .user_by_email(email.trim())
            .await
            .map_err(internal)?
            .ok_or_else(|| DomainError::not_found("user"))?;
        self.store
            .set_platform_viewer(&user.id, on)
            .await
            .map_err(internal)?;
        let detail = if on {
            format!(
                "{} may read usage across tenants (platform viewer)",
                user.email
            )
        } else {
            format!("{} is no longer a platform viewer", user.email)
        };
        self.record(tollgate_store::NewAuditEvent {
            tenant_id: None,
            actor_id: Some(&caller.user_id),
            actor_email: Some(&caller.email),
            action: AuditAction::PlatformViewerChanged.as_str(),
            target_type: "user",
            target_id: &user.id,
            detail: &detail,
            ip: caller.client.ip.as_deref(),
        })
        .await;
        Ok(PlatformViewer {
            user_id: user.id,
            email: user.email,
            name: user.name,
        })
    }

    /// Everyone holding the platform viewer role. Platform admins only.
    pub async fn platform_viewers(
        &self,
        caller: &Caller,
    ) -> Result<Vec<PlatformViewer>, DomainError> {
        Self::require(caller, Action::ManagePlatformRoles)?;
        Ok(self
            .store
            .platform_viewers()
            .await
            .map_err(internal)?
            .into_iter()
            .map(|u| PlatformViewer {
                user_id: u.id,
                email: u.email,
                name: u.name,
            })
            .collect())
    }
}
