//! Members of a tenant: listing them, changing their role and removing them (never the last admin).

use crate::{internal, Caller, Identity};
use tollgate_domain::{
    access::Action,
    audit::AuditAction,
    membership,
    page::{Page, PageRequest},
    time::Millis,
    views::MemberView,
    DomainError, TenantRole,
};

use super::{page_of, role_of};

impl Identity {
    pub async fn list_members(
        &self,
        caller: &Caller,
        tenant_id: &str,
        search: &str,
        page: PageRequest,
    ) -> Result<Page<MemberView>, DomainError> {
        self.authorize(caller, tenant_id, Action::ViewMembers)
            .await?;
        let (rows, total) = self
            .store
            .list_members(tenant_id, search, page.offset(), page.limit())
            .await
            .map_err(internal)?;
        let items = rows
            .into_iter()
            .map(|m| MemberView {
                user_id: m.user_id,
                email: m.email,
                name: m.name,
                role: role_of(&m.role),
                joined_at: Millis(m.created_at),
            })
            .collect();
        Ok(page_of(items, total, page))
    }

    pub async fn change_role(
        &self,
        caller: &Caller,
        tenant_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<(), DomainError> {
        self.authorize(caller, tenant_id, Action::ChangeRoles)
            .await?;
        let new_role: TenantRole = role.parse()?;
        let member = self
            .store
            .member(tenant_id, user_id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::not_found("member"))?;
        let current = role_of(&member.role);
        let admins =
            u64::try_from(self.store.count_admins(tenant_id).await.map_err(internal)?).unwrap_or(0);
        membership::check_role_change(current, new_role, admins)?;
        self.store
            .set_membership_role(tenant_id, user_id, new_role.as_str())
            .await
            .map_err(internal)?;
        self.audit(
            caller,
            Some(tenant_id),
            AuditAction::MemberRoleChanged,
            "user",
            user_id,
            &format!("{}: {} -> {}", member.email, current, new_role),
        )
        .await;
        Ok(())
    }

    pub async fn remove_member(
        &self,
        caller: &Caller,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<(), DomainError> {
        self.authorize(caller, tenant_id, Action::RemoveMembers)
            .await?;
        let member = self
            .store
            .member(tenant_id, user_id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::not_found("member"))?;
        let admins =
            u64::try_from(self.store.count_admins(tenant_id).await.map_err(internal)?).unwrap_or(0);
        membership::check_removal(role_of(&member.role), admins)?;
        self.store
            .remove_membership(tenant_id, user_id)
            .await
            .map_err(internal)?;
        self.audit(
            caller,
            Some(tenant_id),
            AuditAction::MemberRemoved,
            "user",
            user_id,
            &member.email,
        )
        .await;
        Ok(())
    }
}
