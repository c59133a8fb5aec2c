//! API keys: stored as the hash of their secret; only the public id and the hash are kept.

use crate::revisions::bump_gateway_revision;
use crate::{now_millis, Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant_id: String,
    pub subscription_id: String,
    pub name: String,
    pub created_by_email: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub rotated_to: Option<String>,
    /// 1: the key covers every live subscription of its team, present and future.
    pub team_wide: i64,
}

/// A subscription a key covers beyond its home one, with that subscription's model.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyLinkRow {
    pub key_id: String,
    pub subscription_id: String,
    pub model_id: String,
}

pub struct NewApiKey<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub subscription_id: &'a str,
    pub name: &'a str,
    pub secret_hash: &'a str,
    pub created_by: &'a str,
    pub expires_at: Option<i64>,
    /// Covers every live subscription of the team, present and future.
    pub team_wide: bool,
    /// Other subscriptions (of the same team) it covers.
    pub also: &'a [String],
}

/// A subscription as the gateway snapshot needs it: every active or suspended one, with or without keys, so the
/// portal's playground can be served under a subscription that has no key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GatewaySubscriptionRow {
    pub id: String,
    pub tenant_id: String,
    pub team_id: String,
    pub state: String,
    pub model_id: String,
    pub plan_id: String,
}

/// A key as the gateway snapshot needs it, with its subscription's state and plan.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GatewayKeyRow {
    pub id: String,
    pub secret_hash: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub tenant_id: String,
    pub team_id: String,
    pub subscription_id: String,
    pub subscription_state: String,
    pub model_id: String,
    pub plan_id: String,
    pub team_wide: i64,
}

const KEY_SELECT: &str = "SELECT k.id, k.tenant_id, k.subscription_id, k.name, COALESCE(u.email, '') AS created_by_email,
    k.created_at, k.expires_at, k.revoked_at, k.last_used_at, k.rotated_to, k.team_wide
    FROM api_keys k LEFT JOIN users u ON u.id = k.created_by";

/// How long a revoked or expired key keeps answering "revoked"/"expired" rather than "invalid".
const RECENTLY_MS: i64 = 30 * 24 * 3_600_000;

impl Store {
    pub async fn insert_api_key(&self, k: NewApiKey<'_>) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_key(&mut tx, k.tenant_id, &k).await?;
        bump_gateway_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates `new` and limits `old_id` to `old_expires_at`, in one transaction. False when the old key is
    /// already revoked or rotated (or is not the tenant's). The new key belongs to the same tenant.
    pub async fn rotate_api_key(
        &self,
        tenant_id: &str,
        old_id: &str,
        old_expires_at: i64,
        new: NewApiKey<'_>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET expires_at = $2, rotated_to = $3
             WHERE id = $1 AND revoked_at IS NULL AND rotated_to IS NULL AND tenant_id = $4",
        )
        .bind(old_id)
        .bind(old_expires_at)
        .bind(new.id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        insert_key(&mut tx, tenant_id, &new).await?;
        bump_gateway_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The tenant that owns a key, and nothing else about it: what a caller holding only a key id authorizes
    /// against before it reads the key with [`Store::api_key`].
    pub async fn tenant_of_api_key(&self, id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT tenant_id FROM api_keys WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// One key of the tenant; None for an id of another tenant.
    pub async fn api_key(&self, tenant_id: &str, id: &str) -> Result<Option<ApiKeyRow>> {
        Ok(sqlx::query_as(&format!(
            "{KEY_SELECT} WHERE k.tenant_id = $1 AND k.id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The keys of one subscription of the tenant, newest first.
    pub async fn api_keys_of(
        &self,
        tenant_id: &str,
        subscription_id: &str,
    ) -> Result<Vec<ApiKeyRow>> {
        Ok(sqlx::query_as(&format!(
            "{KEY_SELECT} WHERE k.tenant_id = $1 AND k.subscription_id = $2 ORDER BY k.created_at DESC"
        ))
        .bind(tenant_id)
        .bind(subscription_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The subscriptions the keys of `subscription_id` (their home) cover besides it, or, with `key_id`, those of
    /// that one key; within the tenant.
    pub async fn api_key_links(
        &self,
        tenant_id: &str,
        subscription_id: &str,
        key_id: Option<&str>,
    ) -> Result<Vec<KeyLinkRow>> {
        Ok(sqlx::query_as(
            "SELECT l.key_id, l.subscription_id, s.model_id
             FROM api_key_subscriptions l JOIN api_keys k ON k.id = l.key_id JOIN subscriptions s ON s.id = l.subscription_id
             WHERE k.tenant_id = $1 AND k.subscription_id = $2 AND ($3 = '' OR k.id = $3)
             ORDER BY s.model_id",
        )
        .bind(tenant_id)
        .bind(subscription_id)
        .bind(key_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?)
    }

    /// The active subscriptions of a team, (id, model), by model: what a key made for the team may cover.
    pub async fn active_subscriptions_of_team(
        &self,
        tenant_id: &str,
        team_id: &str,
    ) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT id, model_id FROM subscriptions WHERE tenant_id = $1 AND team_id = $2 AND state = 'active'
             ORDER BY model_id",
        )
        .bind(tenant_id)
        .bind(team_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every (key, subscription) link whose subscription is live, for the gateway's snapshot.
    pub async fn gateway_key_links(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT l.key_id, l.subscription_id FROM api_key_subscriptions l
             JOIN subscriptions s ON s.id = l.subscription_id
             WHERE s.state IN ('active', 'suspended')",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes a key of the tenant; false when it was already revoked (or does not exist in this tenant).
    pub async fn revoke_api_key(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND tenant_id = $3 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(now_millis())
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        bump_gateway_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every key the gateway should know: live subscriptions' keys, including recently revoked or expired ones
    /// (so they answer "revoked" or "expired" rather than "invalid").
    pub async fn gateway_keys(&self) -> Result<Vec<GatewayKeyRow>> {
        let since = now_millis() - RECENTLY_MS;
        Ok(sqlx::query_as(
            "SELECT k.id, k.secret_hash, k.expires_at, k.revoked_at, s.tenant_id, s.team_id, s.id AS subscription_id,
                s.state AS subscription_state, s.model_id, s.plan_id, k.team_wide
             FROM api_keys k JOIN subscriptions s ON s.id = k.subscription_id
             WHERE s.state IN ('active', 'suspended')
               AND (k.revoked_at IS NULL OR k.revoked_at > $1)
               AND (k.expires_at IS NULL OR k.expires_at > $1)",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every active or suspended subscription of every tenant, for the gateway's snapshot (each grant carries its
    /// tenant).
    pub async fn gateway_subscriptions(&self) -> Result<Vec<GatewaySubscriptionRow>> {
        Ok(sqlx::query_as(
            "SELECT id, tenant_id, team_id, state, model_id, plan_id FROM subscriptions
             WHERE state IN ('active', 'suspended')",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Inserts a key and its links to the other subscriptions it covers.
async fn insert_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: &str,
    k: &NewApiKey<'_>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, subscription_id, name, secret_hash, created_by, created_at, expires_at, team_wide)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(k.id)
    .bind(tenant_id)
    .bind(k.subscription_id)
    .bind(k.name)
    .bind(k.secret_hash)
    .bind(k.created_by)
    .bind(now_millis())
    .bind(k.expires_at)
    .bind(i64::from(k.team_wide))
    .execute(&mut **tx)
    .await?;
    for sub in k.also.iter().filter(|s| s.as_str() != k.subscription_id) {
        sqlx::query(
            "INSERT INTO api_key_subscriptions (key_id, subscription_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(k.id)
        .bind(sub)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
