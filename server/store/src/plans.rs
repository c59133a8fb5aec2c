//! Plans and the models they cover (with per-model limit overrides).

use crate::revisions::bump_gateway_revision;
use crate::{new_id, now_millis, Result, Store};
use tollgate_domain::plan::ValidPlan;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub requests_per_minute: Option<i64>,
    pub tokens_per_minute: Option<i64>,
    pub max_concurrent: Option<i64>,
    pub monthly_tokens: Option<i64>,
    pub all_models: i64,
    pub requires_approval: i64,
    pub archived: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub tier: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanModelRow {
    pub plan_id: String,
    pub model_id: String,
    pub requests_per_minute: Option<i64>,
    pub tokens_per_minute: Option<i64>,
    pub max_concurrent: Option<i64>,
    pub monthly_tokens: Option<i64>,
}

const PLAN_COLUMNS: &str =
    "id, name, description, requests_per_minute, tokens_per_minute, max_concurrent,
    monthly_tokens, all_models, requires_approval, archived, created_at, updated_at, tier";

fn opt(v: Option<impl Into<i64>>) -> Option<i64> {
    v.map(Into::into)
}

fn monthly(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

impl Store {
    /// Creates a plan with the models it covers; returns its id.
    pub async fn create_plan(&self, p: &ValidPlan) -> Result<String> {
        let id = new_id("plan");
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO plans ({PLAN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $10, $11)"
        ))
        .bind(&id)
        .bind(&p.name)
        .bind(&p.description)
        .bind(opt(p.limits.requests_per_minute))
        .bind(opt(p.limits.tokens_per_minute))
        .bind(opt(p.limits.max_concurrent))
        .bind(monthly(p.limits.monthly_tokens))
        .bind(i64::from(p.all_models))
        .bind(i64::from(p.requires_approval))
        .bind(now)
        .bind(i64::from(p.tier))
        .execute(&mut *tx)
        .await?;
        for model in &p.models {
            sqlx::query("INSERT INTO plan_models (plan_id, model_id) VALUES ($1, $2)")
                .bind(&id)
                .bind(model)
                .execute(&mut *tx)
                .await?;
        }
        bump_gateway_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Replaces a plan's settings and covered models, keeping per-model overrides of models still covered.
    pub async fn update_plan(&self, id: &str, p: &ValidPlan) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE plans SET name = $2, description = $3, requests_per_minute = $4, tokens_per_minute = $5,
                max_concurrent = $6, monthly_tokens = $7, all_models = $8, requires_approval = $9, updated_at = $10,
                tier = $11
             WHERE id = $1",
        )
        .bind(id)
        .bind(&p.name)
        .bind(&p.description)
        .bind(opt(p.limits.requests_per_minute))
        .bind(opt(p.limits.tokens_per_minute))
        .bind(opt(p.limits.max_concurrent))
        .bind(monthly(p.limits.monthly_tokens))
        .bind(i64::from(p.all_models))
        .bind(i64::from(p.requires_approval))
        .bind(now_millis())
        .bind(i64::from(p.tier))
        .execute(&mut *tx)
        .await?;
        if !p.all_models {
            let existing: Vec<String> =
                sqlx::query_scalar("SELECT model_id FROM plan_models WHERE plan_id = $1")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
            for gone in existing.iter().filter(|m| !p.models.contains(m)) {
                sqlx::query("DELETE FROM plan_models WHERE plan_id = $1 AND model_id = $2")
                    .bind(id)
                    .bind(gone)
                    .execute(&mut *tx)
                    .await?;
            }
            for new in p.models.iter().filter(|m| !existing.contains(m)) {
                sqlx::query("INSERT INTO plan_models (plan_id, model_id) VALUES ($1, $2)")
                    .bind(id)
                    .bind(new)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        bump_gateway_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets (or, with all None, clears) a plan's limit overrides for one model.
    pub async fn set_plan_model_overrides(
        &self,
        plan_id: &str,
        model_id: &str,
        o: &tollgate_domain::plan::LimitOverride,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM plan_models WHERE plan_id = $1 AND model_id = $2")
            .bind(plan_id)
            .bind(model_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO plan_models (plan_id, model_id, requests_per_minute, tokens_per_minute, max_concurrent,
                monthly_tokens) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(plan_id)
        .bind(model_id)
        .bind(opt(o.requests_per_minute))
        .bind(opt(o.tokens_per_minute))
        .bind(opt(o.max_concurrent))
        .bind(monthly(o.monthly_tokens))
        .execute(&mut *tx)
        .await?;
        bump_gateway_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_plan_archived(&self, id: &str, archived: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE plans SET archived = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(i64::from(archived))
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn all_plans(&self) -> Result<Vec<PlanRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {PLAN_COLUMNS} FROM plans ORDER BY name"))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn plan(&self, id: &str) -> Result<Option<PlanRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn all_plan_models(&self) -> Result<Vec<PlanModelRow>> {
        Ok(sqlx::query_as(
            "SELECT plan_id, model_id, requests_per_minute, tokens_per_minute, max_concurrent, monthly_tokens
             FROM plan_models ORDER BY plan_id, model_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
