//! The audit log: append-only events, read newest first with filters.

use crate::{filter::Filter, new_id, now_millis, Result, Store};

#[derive(Debug, Clone, Default)]
pub struct NewAuditEvent<'a> {
    pub tenant_id: Option<&'a str>,
    pub actor_id: Option<&'a str>,
    pub actor_email: Option<&'a str>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub detail: &'a str,
    pub ip: Option<&'a str>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: String,
    pub at: i64,
    pub tenant_id: Option<String>,
    pub actor_id: Option<String>,
    pub actor_email: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub detail: String,
    pub ip: Option<String>,
}

/// Filters for reading the log. `tenant_id: None` means every tenant, which only platform admins may ask.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub tenant_id: Option<String>,
    pub action: Option<String>,
    pub actor: Option<String>,
    pub from: Option<i64>,
    pub until: Option<i64>,
    pub offset: i64,
    pub limit: i64,
}

impl Store {
    pub async fn record_audit(&self, e: NewAuditEvent<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (id, at, tenant_id, actor_id, actor_email, action, target_type, target_id, detail, ip)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(new_id("evt"))
        .bind(now_millis())
        .bind(e.tenant_id)
        .bind(e.actor_id)
        .bind(e.actor_email)
        .bind(e.action)
        .bind(e.target_type)
        .bind(e.target_id)
        .bind(e.detail)
        .bind(e.ip)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn list_audit(&self, q: &AuditQuery) -> Result<(Vec<AuditRow>, i64)> {
        // Only the filters given are in the SQL text, so each can use its index.
        let actor = q.actor.as_deref().map(crate::tenants::like_pattern);
        let f = Filter::new()
            .text("tenant_id =", q.tenant_id.as_deref())
            .text("action =", q.action.as_deref())
            .text("actor_email LIKE", actor.as_deref())
            .int("at >=", q.from)
            .int("at <", q.until);
        Ok(f.page(
            &self.pool,
            "audit_events",
            "id, at, tenant_id, actor_id, actor_email, action, target_type, target_id, detail, ip",
            q.limit,
            q.offset,
        )
        .await?)
    }
}
