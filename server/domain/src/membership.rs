//! Rules for changing who belongs to a tenant: a tenant must always keep at least one admin, so that nobody
//! locks a tenant out of its own settings by accident.

use crate::{DomainError, TenantRole};

/// Checks a role change of a member, given how many admins the tenant has now.
pub fn check_role_change(
    current: TenantRole,
    new: TenantRole,
    admin_count: u64,
) -> Result<(), DomainError> {
    if current == TenantRole::Admin && new != TenantRole::Admin && admin_count <= 1 {
        return Err(DomainError::conflict(
            "this is the tenant's last admin: make someone else an admin first",
        ));
    }
    Ok(())
}

/// Checks removing a member, given how many admins the tenant has now.
pub fn check_removal(current: TenantRole, admin_count: u64) -> Result<(), DomainError> {
    if current == TenantRole::Admin && admin_count <= 1 {
        return Err(DomainError::conflict(
            "this is the tenant's last admin: make someone else an admin before removing them",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use TenantRole::*;

    #[test]
    fn the_last_admin_cannot_be_demoted_or_removed() {
        assert!(matches!(
            check_role_change(Admin, Developer, 1),
            Err(DomainError::Conflict(_))
        ));
        assert!(matches!(
            check_removal(Admin, 1),
            Err(DomainError::Conflict(_))
        ));
    }

    #[test]
    fn an_admin_can_be_demoted_when_another_remains() {
        assert!(check_role_change(Admin, Viewer, 2).is_ok());
        assert!(check_removal(Admin, 2).is_ok());
    }

    #[test]
    fn non_admins_change_freely() {
        assert!(check_role_change(Developer, Admin, 1).is_ok());
        assert!(check_role_change(Viewer, Developer, 1).is_ok());
        assert!(check_removal(Viewer, 1).is_ok());
        assert!(check_role_change(Admin, Admin, 1).is_ok());
    }
}
