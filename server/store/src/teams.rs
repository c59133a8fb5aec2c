//! Teams inside a tenant and their members. Every query is scoped by tenant id, so a team id from another
//! tenant simply finds nothing.

use crate::{new_id, now_millis, tenants::like_pattern, Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub members: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamMemberRow {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub created_at: i64,
}

const TEAM_COLUMNS: &str = "t.id, t.tenant_id, t.name, t.description, t.created_at,
    (SELECT COUNT(*) FROM team_members tm WHERE tm.team_id = t.id) AS members";

impl Store {
    pub async fn create_team(
        &self,
        tenant_id: &str,
        name: &str,
        description: &str,
    ) -> Result<TeamRow> {
        let id = new_id("team");
        let created_at = now_millis();
        sqlx::query("INSERT INTO teams (id, tenant_id, name, description, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(tenant_id)
            .bind(name)
            .bind(description)
            .bind(created_at)
            .execute(&self.pool)
            .await?;
        Ok(TeamRow {
            id,
            tenant_id: tenant_id.into(),
            name: name.into(),
            description: description.into(),
            created_at,
            members: 0,
        })
    }

    pub async fn team(&self, tenant_id: &str, team_id: &str) -> Result<Option<TeamRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TEAM_COLUMNS} FROM teams t WHERE t.tenant_id = $1 AND t.id = $2"
        ))
        .bind(tenant_id)
        .bind(team_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn list_teams(
        &self,
        tenant_id: &str,
        search: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<TeamRow>, i64)> {
        let pattern = like_pattern(search);
        let rows = sqlx::query_as(&format!(
            "SELECT {TEAM_COLUMNS} FROM teams t WHERE t.tenant_id = $1 AND LOWER(t.name) LIKE $2
             ORDER BY t.name LIMIT $3 OFFSET $4"
        ))
        .bind(tenant_id)
        .bind(&pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total = sqlx::query_scalar(
            "SELECT COUNT(*) FROM teams WHERE tenant_id = $1 AND LOWER(name) LIKE $2",
        )
        .bind(tenant_id)
        .bind(&pattern)
        .fetch_one(&self.pool)
        .await?;
        Ok((rows, total))
    }

    pub async fn delete_team(&self, tenant_id: &str, team_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM teams WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(team_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Adds a user to a team of the tenant; NotFound-like (no row written, false) when the team is another tenant's.
    pub async fn add_team_member(
        &self,
        tenant_id: &str,
        team_id: &str,
        user_id: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO team_members (team_id, user_id, created_at)
             SELECT t.id, $2, $3 FROM teams t WHERE t.id = $1 AND t.tenant_id = $4",
        )
        .bind(team_id)
        .bind(user_id)
        .bind(now_millis())
        .bind(tenant_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn remove_team_member(
        &self,
        tenant_id: &str,
        team_id: &str,
        user_id: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM team_members WHERE team_id = $1 AND user_id = $2
               AND team_id IN (SELECT id FROM teams WHERE tenant_id = $3)",
        )
        .bind(team_id)
        .bind(user_id)
        .bind(tenant_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn team_members(&self, tenant_id: &str, team_id: &str) -> Result<Vec<TeamMemberRow>> {
        Ok(sqlx::query_as(
            "SELECT u.id AS user_id, u.email, u.name, tm.created_at
             FROM team_members tm JOIN teams t ON t.id = tm.team_id JOIN users u ON u.id = tm.user_id
             WHERE tm.team_id = $1 AND t.tenant_id = $2 ORDER BY u.name",
        )
        .bind(team_id)
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn is_team_member(
        &self,
        tenant_id: &str,
        team_id: &str,
        user_id: &str,
    ) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM team_members tm JOIN teams t ON t.id = tm.team_id
             WHERE tm.team_id = $1 AND tm.user_id = $2 AND t.tenant_id = $3",
        )
        .bind(team_id)
        .bind(user_id)
        .bind(tenant_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// The ids of the teams of `tenant_id` that `user_id` belongs to (a developer's usage reach).
    pub async fn team_ids_of_member(&self, tenant_id: &str, user_id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT tm.team_id FROM team_members tm JOIN teams t ON t.id = tm.team_id
             WHERE t.tenant_id = $1 AND tm.user_id = $2 ORDER BY tm.team_id",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
