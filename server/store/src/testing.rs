//! Throwaway databases for tests: a SQLite file in a temp folder, or a fresh schema in the PostgreSQL at
//! `TOLLGATE_TEST_POSTGRES_URL` (default: the local server's `test` database). Each test gets its own, so
//! runs never collide; schemas left by crashed runs are dropped after an hour.

use crate::{now_millis, Result, Store, StoreError};
use sqlx::{Connection, Executor};

pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Sqlite,
    Postgres,
}

pub struct TestDatabase {
    pub url: String,
    flavor: Flavor,
    schema: Option<String>,
    admin_url: String,
    _dir: Option<TempDir>,
}

impl TestDatabase {
    pub async fn new(flavor: Flavor) -> Result<Self> {
        match flavor {
            Flavor::Sqlite => {
                let dir = TempDir::new()?;
                let url = format!("sqlite://{}/test.db", dir.0.display());
                Ok(Self {
                    url,
                    flavor,
                    schema: None,
                    admin_url: String::new(),
                    _dir: Some(dir),
                })
            }
            Flavor::Postgres => {
                let admin_url = std::env::var("TOLLGATE_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| DEFAULT_POSTGRES.into());
                let schema = format!(
                    "tg_test_{}_{}",
                    now_millis() / 1000,
                    &crate::new_id("s")[2..14]
                );
                let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                drop_stale_schemas(&mut conn).await?;
                conn.execute(format!("CREATE SCHEMA {schema}").as_str())
                    .await?;
                let sep = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
                Ok(Self {
                    url,
                    flavor,
                    schema: Some(schema),
                    admin_url,
                    _dir: None,
                })
            }
        }
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    pub async fn store(&self) -> Result<Store> {
        Store::connect(&self.url).await
    }

    /// Drops the PostgreSQL schema (SQLite files go with the temp folder).
    pub async fn cleanup(self) -> Result<()> {
        if let Some(schema) = &self.schema {
            let mut conn = sqlx::PgConnection::connect(&self.admin_url).await?;
            conn.execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
                .await?;
        }
        Ok(())
    }
}

async fn drop_stale_schemas(conn: &mut sqlx::PgConnection) -> Result<()> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE 'tg_test_%'")
            .fetch_all(&mut *conn)
            .await?;
    let cutoff = now_millis() / 1000 - 3600;
    for name in names {
        let created: i64 = name
            .split('_')
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(i64::MAX);
        if created < cutoff {
            conn.execute(format!("DROP SCHEMA IF EXISTS {name} CASCADE").as_str())
                .await?;
        }
    }
    Ok(())
}

/// A temp folder removed on drop (no extra dependency for this one use).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let path = std::env::temp_dir().join(crate::new_id("tollgate-test"));
        std::fs::create_dir_all(&path).map_err(|e| StoreError::Setup(e.to_string()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Store {
    /// Runs one statement as it is: for tests that break the schema on purpose, to inject a failure.
    pub async fn execute_for_tests(&self, sql: &str) -> Result<()> {
        sqlx::query(sql).execute(&self.pool).await?;
        Ok(())
    }
}

/// What a test needs subscribed: a catalog model and a plan, and a team of a tenant with an active subscription.
pub struct Subscribe<'a> {
    pub tenant_id: &'a str,
    pub team_id: &'a str,
    pub requested_by: &'a str,
    pub model_id: &'a str,
    /// List prices per million tokens as the catalog writes them (input, output); empty: none.
    pub prices: (&'a str, &'a str),
    pub plan: tollgate_domain::plan::PlanInput,
}

/// Adds a chat model (available, open) and a plan, and subscribes the team to the model under it: returns the
/// (plan id, subscription id).
pub async fn subscribe(
    store: &Store,
    s: Subscribe<'_>,
) -> std::result::Result<(String, String), Box<dyn std::error::Error + Send + Sync>> {
    let model = tollgate_domain::catalog::ModelInput {
        id: s.model_id.into(),
        display_name: format!("Model {}", s.model_id),
        family: "Test".into(),
        provider: "Tollgate".into(),
        context_length: 4096,
        task: "chat".into(),
        status: "available".into(),
        visibility: "open".into(),
        input_price: s.prices.0.into(),
        output_price: s.prices.1.into(),
        ..Default::default()
    }
    .validate()?;
    store.insert_model(&model).await?;
    let plan = store.create_plan(&s.plan.validate()?).await?;
    let sub = store
        .create_subscription(crate::NewSubscription {
            tenant_id: s.tenant_id,
            team_id: s.team_id,
            model_id: s.model_id,
            plan_id: &plan,
            state: "active",
            note: "",
            requested_by: s.requested_by,
        })
        .await?;
    Ok((plan, sub))
}
