//! Invitations to join a tenant. Only a hash of the link's token is stored; accepting marks the row used in
//! the same statement that checks it is still unused, so a link can never be used twice.

use crate::{new_id, now_millis, Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: String,
    pub tenant_id: String,
    pub email: Option<String>,
    pub role: String,
    pub team_id: Option<String>,
    pub team_name: Option<String>,
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub struct NewInvitation<'a> {
    pub tenant_id: &'a str,
    pub email: Option<&'a str>,
    pub role: &'a str,
    pub team_id: Option<&'a str>,
    pub token_hash: &'a str,
    pub invited_by: &'a str,
    pub expires_at: i64,
}

const COLUMNS: &str =
    "i.id, i.tenant_id, i.email, i.role, i.team_id, t.name AS team_name, i.invited_by,
    i.created_at, i.expires_at, i.accepted_at, i.revoked_at";

impl Store {
    pub async fn create_invitation(&self, new: NewInvitation<'_>) -> Result<String> {
        let id = new_id("inv");
        sqlx::query(
            "INSERT INTO invitations (id, tenant_id, email, role, team_id, token_hash, invited_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(new.tenant_id)
        .bind(new.email)
        .bind(new.role)
        .bind(new.team_id)
        .bind(new.token_hash)
        .bind(new.invited_by)
        .bind(now_millis())
        .bind(new.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn invitation(&self, tenant_id: &str, id: &str) -> Result<Option<InvitationRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM invitations i LEFT JOIN teams t ON t.id = i.team_id
             WHERE i.tenant_id = $1 AND i.id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn invitation_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<InvitationRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM invitations i LEFT JOIN teams t ON t.id = i.team_id WHERE i.token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Newest first.
    pub async fn list_invitations(
        &self,
        tenant_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<InvitationRow>, i64)> {
        let rows = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM invitations i LEFT JOIN teams t ON t.id = i.team_id
             WHERE i.tenant_id = $1 ORDER BY i.created_at DESC LIMIT $2 OFFSET $3"
        ))
        .bind(tenant_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total = sqlx::query_scalar("SELECT COUNT(*) FROM invitations WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows, total))
    }

    pub async fn revoke_invitation(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE invitations SET revoked_at = $1
             WHERE tenant_id = $2 AND id = $3 AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now_millis())
        .bind(tenant_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Accepts atomically: the membership (and team membership) is created only if this call is the one that
    /// flipped the invitation from pending to accepted. Returns false if it was used, revoked or expired.
    pub async fn accept_invitation(&self, inv: &InvitationRow, user_id: &str) -> Result<bool> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(
            "UPDATE invitations SET accepted_at = $1, accepted_by = $2
             WHERE id = $3 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(user_id)
        .bind(&inv.id)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(false);
        }
        let already: Option<String> = sqlx::query_scalar(
            "SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(&inv.tenant_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if already.is_none() {
            sqlx::query("INSERT INTO memberships (tenant_id, user_id, role, manual_role, created_at) VALUES ($1, $2, $3, $3, $4)")
                .bind(&inv.tenant_id)
                .bind(user_id)
                .bind(&inv.role)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(team_id) = &inv.team_id {
            sqlx::query(
                "INSERT INTO team_members (team_id, user_id, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (team_id, user_id) DO NOTHING",
            )
            .bind(team_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
