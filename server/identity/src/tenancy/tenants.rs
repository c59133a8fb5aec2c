//! Tenants: creating and listing them, for platform admins only.

use crate::{error::duplicate_as, internal, Caller, Identity};
use tollgate_domain::{
    access::Action,
    audit::AuditAction,
    page::{Page, PageRequest},
    text,
    time::Millis,
    views::TenantView,
    DomainError,
};

use super::page_of;

impl Identity {
    pub async fn create_tenant(
        &self,
        caller: &Caller,
        name: &str,
        slug: &str,
    ) -> Result<TenantView, DomainError> {
        Self::require_platform_admin(caller, Action::ManageTenants)?;
        let name = text::name("Tenant name", name, 100)?;
        let slug = text::slug(
            if slug.trim().is_empty() {
                text::slugify(&name)
            } else {
                slug.to_string()
            }
            .as_str(),
        )?;
        let t = self
            .store
            .create_tenant(&slug, &name)
            .await
            .map_err(duplicate_as("a tenant with this short name already exists"))?;
        self.audit(
            caller,
            Some(&t.id),
            AuditAction::TenantCreated,
            "tenant",
            &t.id,
            &t.name,
        )
        .await;
        Ok(TenantView {
            id: t.id,
            slug: t.slug,
            name: t.name,
            members: 0,
            teams: 0,
            created_at: Millis(t.created_at),
        })
    }

    pub async fn list_tenants(
        &self,
        caller: &Caller,
        search: &str,
        page: PageRequest,
    ) -> Result<Page<TenantView>, DomainError> {
        Self::require_platform_admin(caller, Action::ManageTenants)?;
        let (rows, total) = self
            .store
            .list_tenants(search, page.offset(), page.limit())
            .await
            .map_err(internal)?;
        let items = rows
            .into_iter()
            .map(|t| TenantView {
                id: t.id,
                slug: t.slug,
                name: t.name,
                members: u64::try_from(t.members).unwrap_or(0),
                teams: u64::try_from(t.teams).unwrap_or(0),
                created_at: Millis(t.created_at),
            })
            .collect();
        Ok(page_of(items, total, page))
    }
}
