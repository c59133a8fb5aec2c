//! Subscriptions of teams to models. Reads join the names lists show; state changes are compare-and-set on the
//! current state, so two admins deciding at once cannot both win.

use crate::revisions::bump_gateway_revision;
use crate::{new_id, now_millis, tenants::like_pattern, Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub id: String,
    pub tenant_id: String,
    pub team_id: String,
    pub team_name: String,
    pub model_id: String,
    pub model_name: String,
    pub plan_id: String,
    pub plan_name: String,
    pub state: String,
    pub note: String,
    pub reason: String,
    pub requested_by: String,
    pub requested_by_email: String,
    pub decided_by_email: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub active_keys: i64,
}

pub struct NewSubscription<'a> {
    pub tenant_id: &'a str,
    pub team_id: &'a str,
    pub model_id: &'a str,
    pub plan_id: &'a str,
    pub state: &'a str,
    pub note: &'a str,
    pub requested_by: &'a str,
}

/// Which subscriptions to list. `tenant_id` None lists every tenant's (platform admins).
#[derive(Debug, Clone, Default)]
pub struct SubscriptionQuery<'a> {
    pub tenant_id: Option<&'a str>,
    pub team_id: Option<&'a str>,
    /// Any of these states; empty = all.
    pub states: Vec<&'a str>,
    pub search: &'a str,
    pub offset: i64,
    pub limit: i64,
}

/// The columns lists show, with the count of usable keys as of the instant bound at placeholder `now`.
fn select(now: &str) -> String {
    format!("SELECT s.id, s.tenant_id, s.team_id, t.name AS team_name, s.model_id,
        m.display_name AS model_name, s.plan_id, p.name AS plan_name, s.state, s.note, s.reason, s.requested_by,
        COALESCE(ru.email, '') AS requested_by_email, du.email AS decided_by_email, s.created_at, s.updated_at,
        (SELECT COUNT(*) FROM api_keys k WHERE k.subscription_id = s.id AND k.revoked_at IS NULL
            AND (k.expires_at IS NULL OR k.expires_at > {now})) AS active_keys
    FROM subscriptions s
    JOIN teams t ON t.id = s.team_id
    JOIN models m ON m.id = s.model_id
    JOIN plans p ON p.id = s.plan_id
    LEFT JOIN users ru ON ru.id = s.requested_by
    LEFT JOIN users du ON du.id = s.decided_by")
}

impl Store {
    /// The (subscription, plan, model) of each of `ids` that exists, for summing usage by plan. The ids come
    /// from rollups already read within the caller's scope.
    pub async fn plans_of_subscriptions(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, String, String)>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id, plan_id, model_id FROM subscriptions WHERE id IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query_as::<_, (String, String, String)>(&sql);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            out.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(out)
    }

    pub async fn create_subscription(&self, s: NewSubscription<'_>) -> Result<String> {
        let mut tx = self.begin_write().await?;
        let id = new_id("sub");
        let now = now_millis();
        sqlx::query(
            "INSERT INTO subscriptions (id, tenant_id, team_id, model_id, plan_id, state, note, requested_by,
                created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(&id)
        .bind(s.tenant_id)
        .bind(s.team_id)
        .bind(s.model_id)
        .bind(s.plan_id)
        .bind(s.state)
        .bind(s.note)
        .bind(s.requested_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        bump_gateway_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The tenant that owns a subscription, and nothing else about it: what a caller holding only an id (a link,
    /// an API path) authorizes against before it reads the row with [`Store::subscription`].
    pub async fn tenant_of_subscription(&self, id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT tenant_id FROM subscriptions WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// One subscription of the tenant; None for an id of another tenant.
    pub async fn subscription(&self, tenant_id: &str, id: &str) -> Result<Option<SubscriptionRow>> {
        Ok(sqlx::query_as(&format!(
            "{} WHERE s.tenant_id = $2 AND s.id = $3",
            select("$1")
        ))
        .bind(now_millis())
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn list_subscriptions(
        &self,
        q: &SubscriptionQuery<'_>,
    ) -> Result<(Vec<SubscriptionRow>, i64)> {
        // Placeholders are numbered as they are added, so optional filters stay one query on both backends; the
        // count binds the filters only, the rows query then the time, the limit and the offset.
        let mut clauses = vec![
            "(LOWER(m.display_name) LIKE $1 OR LOWER(s.model_id) LIKE $1 OR LOWER(t.name) LIKE $1)"
                .to_string(),
        ];
        let mut n = 1;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if q.tenant_id.is_some() {
            clauses.push(format!("s.tenant_id = {}", next()));
        }
        if q.team_id.is_some() {
            clauses.push(format!("s.team_id = {}", next()));
        }
        if !q.states.is_empty() {
            let marks: Vec<String> = q.states.iter().map(|_| next()).collect();
            clauses.push(format!("s.state IN ({})", marks.join(", ")));
        }
        let (now_mark, limit_mark, offset_mark) = (next(), next(), next());
        let filter = clauses.join(" AND ");
        let pattern = like_pattern(q.search);
        let rows_sql = format!(
            "{} WHERE {filter} ORDER BY s.updated_at DESC, s.id LIMIT {limit_mark} OFFSET {offset_mark}",
            select(&now_mark)
        );
        let count_sql = format!(
            "SELECT COUNT(*) FROM subscriptions s JOIN teams t ON t.id = s.team_id JOIN models m ON m.id = s.model_id
             WHERE {filter}"
        );
        let mut rows = sqlx::query_as::<_, SubscriptionRow>(&rows_sql).bind(&pattern);
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql).bind(&pattern);
        if let Some(t) = q.tenant_id {
            rows = rows.bind(t);
            count = count.bind(t);
        }
        if let Some(t) = q.team_id {
            rows = rows.bind(t);
            count = count.bind(t);
        }
        for s in &q.states {
            rows = rows.bind(*s);
            count = count.bind(*s);
        }
        let rows = rows
            .bind(now_millis())
            .bind(q.limit)
            .bind(q.offset)
            .fetch_all(&self.pool)
            .await?;
        let total = count.fetch_one(&self.pool).await?;
        Ok((rows, total))
    }

    /// Moves a subscription of the tenant from `from` to `to` if it is still in `from`. False when someone else moved
    /// it first (or the id is another tenant's).
    pub async fn set_subscription_state(
        &self,
        tenant_id: &str,
        id: &str,
        from: &str,
        to: &str,
        reason: &str,
        decided_by: &str,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE subscriptions SET state = $3, reason = $4, decided_by = $5, updated_at = $6
             WHERE id = $1 AND state = $2 AND tenant_id = $7",
        )
        .bind(id)
        .bind(from)
        .bind(to)
        .bind(reason)
        .bind(decided_by)
        .bind(now_millis())
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        bump_gateway_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_subscription_plan(
        &self,
        tenant_id: &str,
        id: &str,
        plan_id: &str,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE subscriptions SET plan_id = $2, updated_at = $3 WHERE id = $1 AND tenant_id = $4",
        )
        .bind(id)
        .bind(plan_id)
        .bind(now_millis())
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        bump_gateway_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Subscriptions created per bucket of `every_ms` in `[from, until)`, of one tenant or (None) of every tenant
    /// (platform readers' adoption figures): (bucket start, count), in bucket order.
    pub async fn subscriptions_created_per_bucket(
        &self,
        tenant_id: Option<&str>,
        from: i64,
        until: i64,
        every_ms: i64,
    ) -> Result<Vec<(i64, i64)>> {
        let every_ms = every_ms.max(1);
        let tenant = if tenant_id.is_some() {
            "AND tenant_id = $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT (created_at / {every_ms}) * {every_ms} AS b, CAST(COUNT(*) AS BIGINT) FROM subscriptions
             WHERE created_at >= $1 AND created_at < $2 {tenant} GROUP BY (created_at / {every_ms}) * {every_ms} ORDER BY b"
        );
        let mut q = sqlx::query_as::<_, (i64, i64)>(&sql).bind(from).bind(until);
        if let Some(t) = tenant_id {
            q = q.bind(t);
        }
        Ok(q.fetch_all(&self.pool).await?)
    }
}
