//! The model catalog. The catalog is small, so it is read whole (`all_models`) and filtered in the domain layer.

use crate::revisions::bump_gateway_revision;
use crate::{now_millis, Result, Store};
use tollgate_domain::catalog::ValidModel;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ModelRow {
    pub id: String,
    pub display_name: String,
    pub family: String,
    pub provider: String,
    pub description: String,
    pub parameters_millions: i64,
    pub context_length: i64,
    pub task: String,
    pub license: String,
    pub tags: String,
    pub versions: String,
    pub input_price_micros: i64,
    pub output_price_micros: i64,
    pub status: String,
    pub sunset_at: Option<i64>,
    pub replacement_id: Option<String>,
    pub visibility: String,
    pub upstream_name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const MODEL_COLUMNS: &str = "id, display_name, family, provider, description, parameters_millions, context_length,
    task, license, tags, versions, input_price_micros, output_price_micros, status, sunset_at, replacement_id,
    visibility, upstream_name, created_at, updated_at";

/// Binds a model's fields as `$1`..`$18` in column order (id first), shared by insert and update.
fn bind_model<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    m: &'q ValidModel,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(&m.id)
        .bind(&m.display_name)
        .bind(&m.family)
        .bind(&m.provider)
        .bind(&m.description)
        .bind(m.parameters_millions)
        .bind(m.context_length)
        .bind(m.task.as_str())
        .bind(&m.license)
        .bind(m.tags.join(","))
        .bind(m.versions.join(","))
        .bind(m.input_price.0)
        .bind(m.output_price.0)
        .bind(m.status.as_str())
        .bind(m.sunset_at.map(|t| t.0))
        .bind(m.replacement_id.as_deref())
        .bind(m.visibility.as_str())
        .bind(&m.upstream_name)
}

impl Store {
    pub async fn insert_model(&self, m: &ValidModel) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "INSERT INTO models ({MODEL_COLUMNS}) VALUES
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19)"
        );
        bind_model(sqlx::query(&sql), m)
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
        bump_gateway_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces every field but the id and creation time. False when no such model exists.
    pub async fn update_model(&self, m: &ValidModel) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let sql = "UPDATE models SET display_name = $2, family = $3, provider = $4, description = $5,
                parameters_millions = $6, context_length = $7, task = $8, license = $9, tags = $10, versions = $11,
                input_price_micros = $12, output_price_micros = $13, status = $14, sunset_at = $15,
                replacement_id = $16, visibility = $17, upstream_name = $18, updated_at = $19
             WHERE id = $1";
        let done = bind_model(sqlx::query(sql), m)
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
        bump_gateway_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn model(&self, id: &str) -> Result<Option<ModelRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {MODEL_COLUMNS} FROM models WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn all_models(&self) -> Result<Vec<ModelRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {MODEL_COLUMNS} FROM models ORDER BY display_name"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn count_models(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM models")
            .fetch_one(&self.pool)
            .await?)
    }
}
