//! Portal sessions. The session library hands us an opaque JSON record; we also keep who owns it and when it
//! was last seen, so that a user can list and revoke their sessions, and expired rows can be swept.

use crate::{now_millis, Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    pub user_id: Option<String>,
    pub data: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

pub struct SessionWrite<'a> {
    pub id: &'a str,
    pub user_id: Option<&'a str>,
    pub data: &'a str,
    pub expires_at: i64,
}

impl Store {
    /// Inserts or replaces a session record. Returns false, writing nothing, when `only_if_new` and the id exists.
    pub async fn save_session(&self, s: SessionWrite<'_>, only_if_new: bool) -> Result<bool> {
        let now = now_millis();
        let conflict = if only_if_new {
            "ON CONFLICT (id) DO NOTHING"
        } else {
            "ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, data = excluded.data,
             last_seen_at = excluded.last_seen_at, expires_at = excluded.expires_at"
        };
        let done = sqlx::query(&format!(
            "INSERT INTO sessions (id, user_id, data, created_at, last_seen_at, expires_at)
             VALUES ($1, $2, $3, $4, $4, $5) {conflict}"
        ))
        .bind(s.id)
        .bind(s.user_id)
        .bind(s.data)
        .bind(now)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A live (unexpired) session.
    pub async fn load_session(&self, id: &str) -> Result<Option<SessionRow>> {
        Ok(sqlx::query_as(
            "SELECT id, user_id, data, created_at, last_seen_at, expires_at FROM sessions
             WHERE id = $1 AND expires_at > $2",
        )
        .bind(id)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn delete_session(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A user's live sessions, most recently used first.
    pub async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<SessionRow>> {
        Ok(sqlx::query_as(
            "SELECT id, user_id, data, created_at, last_seen_at, expires_at FROM sessions
             WHERE user_id = $1 AND expires_at > $2 ORDER BY last_seen_at DESC",
        )
        .bind(user_id)
        .bind(now_millis())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes one of the user's sessions; false when it is not theirs (or gone).
    pub async fn delete_user_session(&self, user_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes every session of a user (after removal from the platform, for example).
    pub async fn delete_sessions_of_user(&self, user_id: &str) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Deletes up to `batch` expired sessions; returns how many. Bounded, so a sweep never holds the table (or
    /// SQLite's one writer) for long, however many have piled up.
    pub async fn delete_expired_sessions(&self, batch: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM sessions WHERE id IN
                (SELECT id FROM sessions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)",
        )
        .bind(now_millis())
        .bind(batch.max(1))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// How many session rows exist, expired or not.
    pub async fn count_sessions(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(&self.pool)
            .await?)
    }
}
