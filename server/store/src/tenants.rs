//! Tenants (organisations) and memberships: who belongs to which tenant, in which role.

use crate::{new_id, now_millis, Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub created_at: i64,
}

/// A tenant with the counts shown in lists.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantSummaryRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub created_at: i64,
    pub members: i64,
    pub teams: i64,
}

/// A member of a tenant, joined with the user's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

/// One of a user's tenants, with their role there.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserTenantRow {
    pub tenant_id: String,
    pub slug: String,
    pub name: String,
    pub role: String,
}

impl Store {
    pub async fn create_tenant(&self, slug: &str, name: &str) -> Result<TenantRow> {
        let row = TenantRow {
            id: new_id("tnt"),
            slug: slug.into(),
            name: name.into(),
            created_at: now_millis(),
        };
        sqlx::query("INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&row.id)
            .bind(&row.slug)
            .bind(&row.name)
            .bind(row.created_at)
            .execute(&self.pool)
            .await?;
        Ok(row)
    }

    pub async fn tenant_by_id(&self, id: &str) -> Result<Option<TenantRow>> {
        Ok(
            sqlx::query_as("SELECT id, slug, name, created_at FROM tenants WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Option<TenantRow>> {
        Ok(
            sqlx::query_as("SELECT id, slug, name, created_at FROM tenants WHERE slug = $1")
                .bind(slug)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// All tenants (platform admins), filtered by a case-insensitive search on name or slug.
    pub async fn list_tenants(
        &self,
        search: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<TenantSummaryRow>, i64)> {
        let pattern = like_pattern(search);
        let rows = sqlx::query_as(
            "SELECT t.id, t.slug, t.name, t.created_at,
                    (SELECT COUNT(*) FROM memberships m WHERE m.tenant_id = t.id) AS members,
                    (SELECT COUNT(*) FROM teams tm WHERE tm.tenant_id = t.id) AS teams
             FROM tenants t WHERE LOWER(t.name) LIKE $1 OR t.slug LIKE $1
             ORDER BY t.name LIMIT $2 OFFSET $3",
        )
        .bind(&pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tenants WHERE LOWER(name) LIKE $1 OR slug LIKE $1",
        )
        .bind(&pattern)
        .fetch_one(&self.pool)
        .await?;
        Ok((rows, total))
    }

    /// Adds a member with a role granted by hand (portal, first start).
    pub async fn add_membership(&self, tenant_id: &str, user_id: &str, role: &str) -> Result<()> {
        sqlx::query("INSERT INTO memberships (tenant_id, user_id, role, manual_role, created_at) VALUES ($1, $2, $3, $3, $4)")
            .bind(tenant_id)
            .bind(user_id)
            .bind(role)
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn membership_role(&self, tenant_id: &str, user_id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar(
                "SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2",
            )
            .bind(tenant_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?,
        )
    }

    /// Sets a member's role by hand. The role becomes the hand's: the group-granted part is cleared (the next
    /// single sign-on may grant it again, as long as the provider's groups say so).
    pub async fn set_membership_role(
        &self,
        tenant_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<bool> {
        let done =
            sqlx::query("UPDATE memberships SET role = $1, manual_role = $1, sso_role = NULL WHERE tenant_id = $2 AND user_id = $3")
                .bind(role)
                .bind(tenant_id)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a member from the tenant and from every team of that tenant.
    pub async fn remove_membership(&self, tenant_id: &str, user_id: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM team_members WHERE user_id = $1 AND team_id IN (SELECT id FROM teams WHERE tenant_id = $2)",
        )
        .bind(user_id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// A membership's role and where it came from; None when the user is not a member.
    pub async fn membership_sources(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Option<MembershipSources>> {
        Ok(sqlx::query_as(
            "SELECT tenant_id, role, manual_role, sso_role FROM memberships WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The user's memberships that a provider's group granted (in part or whole), in every tenant.
    pub async fn sso_memberships_of_user(&self, user_id: &str) -> Result<Vec<MembershipSources>> {
        Ok(sqlx::query_as(
            "SELECT tenant_id, role, manual_role, sso_role FROM memberships
             WHERE user_id = $1 AND sso_role IS NOT NULL ORDER BY tenant_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Applies the role a sign-in's groups grant in one tenant: `sso_role` is the group's part (None: no group any
    /// more), `role` the effective role the caller computed from it and the hand-granted part (None: no role left,
    /// the membership and its team memberships go). Never demotes or removes the tenant's last admin: then nothing
    /// is written and the answer says so.
    pub async fn apply_sso_role(
        &self,
        tenant_id: &str,
        user_id: &str,
        sso_role: Option<&str>,
        role: Option<&str>,
    ) -> Result<SsoRoleChange> {
        let mut tx = self.begin_write().await?;
        let current: Option<MembershipSources> = sqlx::query_as(
            "SELECT tenant_id, role, manual_role, sso_role FROM memberships WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let change = match (current, role) {
            (None, None) => return Ok(SsoRoleChange::Unchanged),
            (None, Some(role)) => {
                sqlx::query(
                    "INSERT INTO memberships (tenant_id, user_id, role, sso_role, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(tenant_id)
                .bind(user_id)
                .bind(role)
                .bind(sso_role)
                .bind(now_millis())
                .execute(&mut *tx)
                .await?;
                SsoRoleChange::Added
            }
            (Some(cur), role)
                if Some(cur.role.as_str()) == role && cur.sso_role.as_deref() == sso_role =>
            {
                return Ok(SsoRoleChange::Unchanged)
            }
            (Some(cur), role) => {
                if cur.role == "admin" && role != Some("admin") {
                    let admins: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM memberships WHERE tenant_id = $1 AND role = 'admin'",
                    )
                    .bind(tenant_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    if admins <= 1 {
                        return Ok(SsoRoleChange::KeptLastAdmin);
                    }
                }
                match role {
                    None => {
                        sqlx::query(
                            "DELETE FROM team_members WHERE user_id = $1 AND team_id IN (SELECT id FROM teams WHERE tenant_id = $2)",
                        )
                        .bind(user_id)
                        .bind(tenant_id)
                        .execute(&mut *tx)
                        .await?;
                        sqlx::query(
                            "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2",
                        )
                        .bind(tenant_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                        SsoRoleChange::Removed { from: cur.role }
                    }
                    Some(role) => {
                        sqlx::query(
                            "UPDATE memberships SET role = $1, sso_role = $2 WHERE tenant_id = $3 AND user_id = $4",
                        )
                        .bind(role)
                        .bind(sso_role)
                        .bind(tenant_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                        if cur.role == role {
                            SsoRoleChange::Unchanged
                        } else {
                            SsoRoleChange::Changed { from: cur.role }
                        }
                    }
                }
            }
        };
        tx.commit().await?;
        Ok(change)
    }

    pub async fn count_admins(&self, tenant_id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM memberships WHERE tenant_id = $1 AND role = 'admin'",
        )
        .bind(tenant_id)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn list_members(
        &self,
        tenant_id: &str,
        search: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<MemberRow>, i64)> {
        let pattern = like_pattern(search);
        let rows = sqlx::query_as(
            "SELECT u.id AS user_id, u.email, u.name, m.role, m.created_at
             FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.tenant_id = $1 AND (LOWER(u.name) LIKE $2 OR u.email LIKE $2)
             ORDER BY u.name, u.email LIMIT $3 OFFSET $4",
        )
        .bind(tenant_id)
        .bind(&pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total = sqlx::query_scalar(
            "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.tenant_id = $1 AND (LOWER(u.name) LIKE $2 OR u.email LIKE $2)",
        )
        .bind(tenant_id)
        .bind(&pattern)
        .fetch_one(&self.pool)
        .await?;
        Ok((rows, total))
    }

    pub async fn member(&self, tenant_id: &str, user_id: &str) -> Result<Option<MemberRow>> {
        Ok(sqlx::query_as(
            "SELECT u.id AS user_id, u.email, u.name, m.role, m.created_at
             FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 AND m.user_id = $2",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn tenants_of_user(&self, user_id: &str) -> Result<Vec<UserTenantRow>> {
        Ok(sqlx::query_as(
            "SELECT t.id AS tenant_id, t.slug, t.name, m.role
             FROM memberships m JOIN tenants t ON t.id = m.tenant_id WHERE m.user_id = $1 ORDER BY t.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// A membership's effective role and its two sources.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MembershipSources {
    pub tenant_id: String,
    pub role: String,
    /// Granted by hand (portal, invitation, first start).
    pub manual_role: Option<String>,
    /// Granted by the provider's groups at the last single sign-on.
    pub sso_role: Option<String>,
}

/// What [`Store::apply_sso_role`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum SsoRoleChange {
    Unchanged,
    Added,
    Changed {
        from: String,
    },
    Removed {
        from: String,
    },
    /// The change would have left the tenant without an admin: nothing was written.
    KeptLastAdmin,
}

/// `%text%`, lower-cased, with LIKE's wildcards in the user's text taken literally.
pub(crate) fn like_pattern(search: &str) -> String {
    let cleaned: String = search
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| *c != '%' && *c != '_')
        .collect();
    format!("%{cleaned}%")
}
