//! Users: local accounts (password hash) and accounts linked to an OpenID Connect identity (issuer + subject).

use crate::{new_id, now_millis, Result, SsoRoleChange, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub oidc_issuer: Option<String>,
    pub oidc_subject: Option<String>,
    pub platform_admin: i64,
    pub created_at: i64,
    pub last_sign_in_at: Option<i64>,
    pub platform_viewer: i64,
}

impl UserRow {
    pub fn is_platform_admin(&self) -> bool {
        self.platform_admin != 0
    }
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: Option<&'a str>,
    pub oidc: Option<(&'a str, &'a str)>,
    pub platform_admin: bool,
}

const COLUMNS: &str =
    "id, email, name, password_hash, oidc_issuer, oidc_subject, platform_admin, created_at, last_sign_in_at,
    platform_viewer";

impl Store {
    pub async fn create_user(&self, new: NewUser<'_>) -> Result<UserRow> {
        let id = new_id("usr");
        let (issuer, subject) = new.oidc.unzip();
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, oidc_issuer, oidc_subject, platform_admin, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(new.email)
        .bind(new.name)
        .bind(new.password_hash)
        .bind(issuer)
        .bind(subject)
        .bind(i64::from(new.platform_admin))
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        self.user_by_id(&id).await?.ok_or(crate::StoreError::Setup(
            "user vanished after insert".into(),
        ))
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE email = $1"))
                .bind(email)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn user_by_oidc(&self, issuer: &str, subject: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2"
        ))
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Links an existing account (found by email) to an OIDC identity on its first single sign-on.
    pub async fn link_oidc(&self, user_id: &str, issuer: &str, subject: &str) -> Result<()> {
        sqlx::query("UPDATE users SET oidc_issuer = $1, oidc_subject = $2 WHERE id = $3")
            .bind(issuer)
            .bind(subject)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_password_hash(&self, user_id: &str, hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Grants or withdraws platform admin by hand; a hand's grant is never withdrawn by single sign-on.
    pub async fn set_platform_admin(&self, user_id: &str, admin: bool) -> Result<()> {
        sqlx::query("UPDATE users SET platform_admin = $1, platform_admin_sso = 0 WHERE id = $2")
            .bind(i64::from(admin))
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Grants or withdraws the platform viewer role by hand (a hand's grant is never withdrawn by single sign-on).
    /// Returns false when no such user exists.
    pub async fn set_platform_viewer(&self, user_id: &str, viewer: bool) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE users SET platform_viewer = $1, platform_viewer_sso = 0 WHERE id = $2",
        )
        .bind(i64::from(viewer))
        .bind(user_id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// Applies the `<prefix>platform-viewer` group of a sign-in: grants the role from the group, or withdraws one
    /// the group had granted once the group is gone; a grant by hand is left alone.
    pub async fn apply_sso_platform_viewer(
        &self,
        user_id: &str,
        granted: bool,
    ) -> Result<SsoRoleChange> {
        let (set, when, change) = if granted {
            (
                "platform_viewer = 1, platform_viewer_sso = 1",
                "platform_viewer = 0",
                SsoRoleChange::Added,
            )
        } else {
            (
                "platform_viewer = 0, platform_viewer_sso = 0",
                "platform_viewer = 1 AND platform_viewer_sso = 1",
                SsoRoleChange::Removed {
                    from: "platform-viewer".into(),
                },
            )
        };
        let n = sqlx::query(&format!("UPDATE users SET {set} WHERE id = $1 AND {when}"))
            .bind(user_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(if n > 0 {
            change
        } else {
            SsoRoleChange::Unchanged
        })
    }

    /// Users holding the platform viewer role, by email.
    pub async fn platform_viewers(&self) -> Result<Vec<UserRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM users WHERE platform_viewer = 1 ORDER BY email"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn touch_sign_in(&self, user_id: &str) -> Result<()> {
        sqlx::query("UPDATE users SET last_sign_in_at = $1 WHERE id = $2")
            .bind(now_millis())
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Applies the `<prefix>platform-admin` group of a sign-in: grants platform admin from the group, or withdraws
    /// one the group had granted once the group is gone. A grant by hand is left alone, and the last platform admin
    /// is kept (nothing written, and the answer says so).
    pub async fn apply_sso_platform_admin(
        &self,
        user_id: &str,
        granted: bool,
    ) -> Result<SsoRoleChange> {
        let mut tx = self.begin_write().await?;
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT platform_admin, platform_admin_sso FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((admin, from_sso)) = row else {
            return Ok(SsoRoleChange::Unchanged);
        };
        let change = match (granted, admin != 0, from_sso != 0) {
            (true, false, _) => {
                sqlx::query(
                    "UPDATE users SET platform_admin = 1, platform_admin_sso = 1 WHERE id = $1",
                )
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                SsoRoleChange::Added
            }
            (false, true, true) => {
                let admins: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE platform_admin = 1")
                        .fetch_one(&mut *tx)
                        .await?;
                if admins <= 1 {
                    return Ok(SsoRoleChange::KeptLastAdmin);
                }
                sqlx::query(
                    "UPDATE users SET platform_admin = 0, platform_admin_sso = 0 WHERE id = $1",
                )
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                SsoRoleChange::Removed {
                    from: "platform-admin".into(),
                }
            }
            _ => return Ok(SsoRoleChange::Unchanged),
        };
        tx.commit().await?;
        Ok(change)
    }

    pub async fn count_platform_admins(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE platform_admin = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
