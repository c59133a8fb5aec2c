//! Personal access tokens for the management API. Looked up per API call: the management API is not a hot path.

use crate::{now_millis, Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccessTokenRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub scopes: String,
    pub secret_hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

pub struct NewAccessToken<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    pub scopes: &'a str,
    pub secret_hash: &'a str,
    pub expires_at: Option<i64>,
}

const COLUMNS: &str =
    "id, user_id, name, scopes, secret_hash, created_at, expires_at, revoked_at, last_used_at";

impl Store {
    pub async fn insert_access_token(&self, t: NewAccessToken<'_>) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO access_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL)"
        ))
        .bind(t.id)
        .bind(t.user_id)
        .bind(t.name)
        .bind(t.scopes)
        .bind(t.secret_hash)
        .bind(now_millis())
        .bind(t.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn access_token(&self, id: &str) -> Result<Option<AccessTokenRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM access_tokens WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn access_tokens_of(&self, user_id: &str) -> Result<Vec<AccessTokenRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM access_tokens WHERE user_id = $1 ORDER BY created_at DESC"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes one of the user's tokens; false when it is not theirs or already revoked.
    pub async fn revoke_access_token(&self, user_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE access_tokens SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(user_id)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn touch_access_token(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE access_tokens SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
