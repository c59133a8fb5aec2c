//! Usage alerts (`usage_alerts`), their delivery outbox (`alert_deliveries`) and tenants' alert webhooks
//! (`tenant_webhooks`). An alert and its deliveries are written in one transaction, and only when the alert's
//! unique key (subscription, kind, threshold, period) is new, so several servers evaluating at once fire it once.
//! Deliveries are claimed by compare-and-set on `next_attempt_at`, so one server tries each attempt.

use crate::{new_id, Result, Store};

/// An alert to record, with its names and figures when it fired.
#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    pub tenant_id: &'a str,
    pub team_id: &'a str,
    pub subscription_id: &'a str,
    pub kind: &'a str,
    pub threshold: i64,
    pub period: &'a str,
    pub team_name: &'a str,
    pub model: &'a str,
    pub quota_tokens: Option<i64>,
    pub used_tokens: i64,
    pub refusals: i64,
    pub at: i64,
}

/// A channel to deliver an alert on: `email` to comma-separated recipients, or `webhook` to a URL.
#[derive(Debug, Clone, Copy)]
pub struct NewDelivery<'a> {
    pub channel: &'a str,
    pub target: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AlertRow {
    pub id: String,
    pub tenant_id: String,
    pub team_id: String,
    pub subscription_id: String,
    pub kind: String,
    pub threshold: i64,
    pub period: String,
    pub team_name: String,
    pub model: String,
    pub quota_tokens: Option<i64>,
    pub used_tokens: i64,
    pub refusals: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub alert_id: String,
    pub tenant_id: String,
    pub channel: String,
    pub target: String,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_error: String,
    pub delivered_at: Option<i64>,
}

/// Which alerts to list, newest first. `tenant_id` None: every tenant's (platform-wide readers, as
/// `tollgate-usage` decides); `team_ids` Some: only those teams' (developers).
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    pub tenant_id: Option<String>,
    pub team_ids: Option<Vec<String>>,
    /// Keyset: only alerts strictly older than this (created_at, id).
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// An active subscription, as the alert evaluator reads it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AlertSubscriptionRow {
    pub id: String,
    pub tenant_id: String,
    pub team_id: String,
    pub team_name: String,
    pub model_id: String,
    pub model_name: String,
    pub plan_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookRow {
    pub tenant_id: String,
    pub url: String,
    pub secret: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const ALERT_COLUMNS: &str =
    "id, tenant_id, team_id, subscription_id, kind, threshold, period, team_name, model,
    quota_tokens, used_tokens, refusals, created_at";
const DELIVERY_COLUMNS: &str =
    "id, alert_id, tenant_id, channel, target, attempts, next_attempt_at, last_error, delivered_at";

impl Store {
    /// Records `alert` and its `deliveries` (due at once) unless an alert with the same subscription, kind,
    /// threshold and period exists; returns whether this call recorded it.
    pub async fn record_alert(
        &self,
        alert: &NewAlert<'_>,
        deliveries: &[NewDelivery<'_>],
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let id = new_id("alert");
        let inserted = sqlx::query(
            "INSERT INTO usage_alerts (id, tenant_id, team_id, subscription_id, kind, threshold, period, team_name,
                model, quota_tokens, used_tokens, refusals, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (subscription_id, kind, threshold, period) DO NOTHING",
        )
        .bind(&id)
        .bind(alert.tenant_id)
        .bind(alert.team_id)
        .bind(alert.subscription_id)
        .bind(alert.kind)
        .bind(alert.threshold)
        .bind(alert.period)
        .bind(alert.team_name)
        .bind(alert.model)
        .bind(alert.quota_tokens)
        .bind(alert.used_tokens)
        .bind(alert.refusals)
        .bind(alert.at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            return Ok(false);
        }
        for d in deliveries {
            sqlx::query(
                "INSERT INTO alert_deliveries (id, alert_id, tenant_id, channel, target, attempts, next_attempt_at,
                    last_error, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6, '', $6)",
            )
            .bind(new_id("dlv"))
            .bind(&id)
            .bind(alert.tenant_id)
            .bind(d.channel)
            .bind(d.target)
            .bind(alert.at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The keys (subscription, kind, threshold, period) of the alerts recorded since `since`, so the evaluator
    /// skips what has fired without writing.
    pub async fn alert_keys_since(&self, since: i64) -> Result<Vec<(String, String, i64, String)>> {
        Ok(sqlx::query_as(
            "SELECT subscription_id, kind, threshold, period FROM usage_alerts WHERE created_at >= $1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every active subscription of every tenant, with the names an alert's words need, `limit` after `after_id`
    /// in id order.
    pub async fn active_subscriptions_for_alerts(
        &self,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<AlertSubscriptionRow>> {
        Ok(sqlx::query_as(
            "SELECT s.id, s.tenant_id, s.team_id, t.name AS team_name, s.model_id, m.display_name AS model_name,
                s.plan_id
             FROM subscriptions s JOIN teams t ON t.id = s.team_id JOIN models m ON m.id = s.model_id
             WHERE s.state = 'active' AND s.id > $1 ORDER BY s.id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The addresses an alert of `team_id` goes to: the team's members and the tenant's admins, each once, sorted.
    pub async fn alert_recipients(&self, tenant_id: &str, team_id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT u.email FROM users u WHERE u.id IN (
                SELECT tm.user_id FROM team_members tm JOIN teams t ON t.id = tm.team_id
                    WHERE tm.team_id = $2 AND t.tenant_id = $1
                UNION
                SELECT ms.user_id FROM memberships ms WHERE ms.tenant_id = $1 AND ms.role = 'admin')
             ORDER BY u.email",
        )
        .bind(tenant_id)
        .bind(team_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Alerts newest first, as `q` says.
    pub async fn list_alerts(&self, q: &AlertQuery) -> Result<Vec<AlertRow>> {
        let mut clauses = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if q.tenant_id.is_some() {
            clauses.push(format!("tenant_id = {}", next()));
        }
        if let Some(teams) = &q.team_ids {
            if teams.is_empty() {
                return Ok(Vec::new());
            }
            let marks: Vec<String> = teams.iter().map(|_| next()).collect();
            clauses.push(format!("team_id IN ({})", marks.join(", ")));
        }
        if q.before.is_some() {
            let (a, b, c) = (next(), next(), next());
            clauses.push(format!(
                "(created_at < {a} OR (created_at = {b} AND id < {c}))"
            ));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM usage_alerts {filter} ORDER BY created_at DESC, id DESC LIMIT {}",
            next()
        );
        let mut query = sqlx::query_as::<_, AlertRow>(&sql);
        if let Some(t) = &q.tenant_id {
            query = query.bind(t);
        }
        for t in q.team_ids.iter().flatten() {
            query = query.bind(t);
        }
        if let Some((at, id)) = &q.before {
            query = query.bind(*at).bind(*at).bind(id);
        }
        Ok(query.bind(q.limit).fetch_all(&self.pool).await?)
    }

    /// The deliveries of the alerts `alert_ids` (read by `list_alerts` under the caller's scope).
    pub async fn deliveries_of_alerts(&self, alert_ids: &[String]) -> Result<Vec<DeliveryRow>> {
        if alert_ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=alert_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries WHERE alert_id IN ({}) ORDER BY channel, id",
            marks.join(", ")
        );
        let mut query = sqlx::query_as::<_, DeliveryRow>(&sql);
        for id in alert_ids {
            query = query.bind(id);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// Up to `limit` deliveries due at `now`, oldest first, with their alerts.
    pub async fn due_deliveries(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(DeliveryRow, AlertRow)>> {
        let due: Vec<DeliveryRow> = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries
             WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $1 AND delivered_at IS NULL
             ORDER BY next_attempt_at, id LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(due.len());
        for d in due {
            let alert: Option<AlertRow> = sqlx::query_as(&format!(
                "SELECT {ALERT_COLUMNS} FROM usage_alerts WHERE id = $1 AND tenant_id = $2"
            ))
            .bind(&d.alert_id)
            .bind(&d.tenant_id)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(a) = alert {
                out.push((d, a));
            }
        }
        Ok(out)
    }

    /// Takes delivery `id` for one attempt if it is still due at `seen_next` (another server has not taken it):
    /// counts the attempt and puts the row off until `lease_until`, by when this attempt has ended. Returns
    /// whether this call took it.
    pub async fn claim_delivery(&self, id: &str, seen_next: i64, lease_until: i64) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE alert_deliveries SET attempts = attempts + 1, next_attempt_at = $3
             WHERE id = $1 AND next_attempt_at = $2 AND delivered_at IS NULL",
        )
        .bind(id)
        .bind(seen_next)
        .bind(lease_until)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Records how an attempt at delivery `id` ended: delivered at `now` (`error` None), or failed with `error`
    /// and tried again at `retry_at` (None: given up).
    pub async fn finish_delivery(
        &self,
        id: &str,
        now: i64,
        error: Option<&str>,
        retry_at: Option<i64>,
    ) -> Result<()> {
        match error {
            None => sqlx::query(
                "UPDATE alert_deliveries SET delivered_at = $2, next_attempt_at = NULL, last_error = ''
                 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?,
            Some(e) => sqlx::query(
                "UPDATE alert_deliveries SET next_attempt_at = $2, last_error = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(retry_at)
            .bind(e)
            .execute(&self.pool)
            .await?,
        };
        Ok(())
    }

    /// The tenant's alert webhook, if it has one.
    pub async fn tenant_webhook(&self, tenant_id: &str) -> Result<Option<WebhookRow>> {
        Ok(sqlx::query_as(
            "SELECT tenant_id, url, secret, created_at, updated_at FROM tenant_webhooks WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Sets the tenant's alert webhook: its URL, and its secret when `secret` is Some (creation, rotation).
    /// Changing only the URL of a tenant without a webhook does nothing (returns false).
    pub async fn set_tenant_webhook(
        &self,
        tenant_id: &str,
        url: &str,
        secret: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let done =
            match secret {
                Some(secret) => sqlx::query(
                    "INSERT INTO tenant_webhooks (tenant_id, url, secret, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (tenant_id) DO UPDATE SET url = excluded.url, secret = excluded.secret,
                    updated_at = excluded.updated_at",
                )
                .bind(tenant_id)
                .bind(url)
                .bind(secret)
                .bind(now)
                .execute(&self.pool)
                .await?,
                None => {
                    sqlx::query(
                        "UPDATE tenant_webhooks SET url = $2, updated_at = $3 WHERE tenant_id = $1",
                    )
                    .bind(tenant_id)
                    .bind(url)
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                }
            };
        Ok(done.rows_affected() == 1)
    }

    /// Removes the tenant's alert webhook; returns whether it had one.
    pub async fn delete_tenant_webhook(&self, tenant_id: &str) -> Result<bool> {
        Ok(
            sqlx::query("DELETE FROM tenant_webhooks WHERE tenant_id = $1")
                .bind(tenant_id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                == 1,
        )
    }
}
