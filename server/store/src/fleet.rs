//! The fleet's tables: deployments (desired state, written by admins), replicas and nodes (observed state,
//! written by the controller), events, the controller's lease and the gateway's wake-up marks. Every write that
//! changes what the gateway may route to bumps the `routes` revision in the same transaction, so each server
//! replica's route publisher sees it on its next poll.

use crate::{now_millis, Result, Store};

const ROUTES: &str = "routes";

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeploymentRow {
    pub id: String,
    pub model_id: String,
    /// JSON of `tollgate_domain::fleet::DeploymentInput`.
    pub spec: String,
    pub generation: i64,
    pub desired_replicas: i64,
    pub scale_reason: Option<String>,
    pub condition: Option<String>,
    pub deleting: i64,
    pub gpu_ms: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const DEPLOYMENT_COLUMNS: &str =
    "id, model_id, spec, generation, desired_replicas, scale_reason, condition,
    deleting, gpu_ms, created_at, updated_at";

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ReplicaRow {
    pub id: String,
    pub deployment_id: String,
    pub generation: i64,
    pub state: String,
    pub node: Option<String>,
    /// Comma-separated GPU indices.
    pub gpus: String,
    pub handle: Option<String>,
    pub base_url: Option<String>,
    pub restarts: i64,
    pub last_error: Option<String>,
    pub reason: Option<String>,
    pub since: i64,
    pub next_attempt_at: Option<i64>,
    pub gpu_since: Option<i64>,
    pub drain_until: Option<i64>,
    pub created_at: i64,
}

const REPLICA_COLUMNS: &str =
    "id, deployment_id, generation, state, node, gpus, handle, base_url, restarts,
    last_error, reason, since, next_attempt_at, gpu_since, drain_until, created_at";

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FleetEventRow {
    pub id: String,
    pub deployment_id: String,
    pub replica_id: Option<String>,
    pub at: i64,
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NodeRow {
    pub name: String,
    pub schedulable: i64,
    /// JSON list of GPUs.
    pub gpus: String,
    pub seen_at: i64,
}

/// A ready replica the gateway may route to, or a count of those on their way.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RouteRow {
    pub model_id: String,
    pub state: String,
    pub base_url: Option<String>,
}

async fn bump_routes(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    sqlx::query("UPDATE revisions SET value = value + 1 WHERE name = $1")
        .bind(ROUTES)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    pub async fn routes_revision(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT value FROM revisions WHERE name = $1")
                .bind(ROUTES)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The replicas of every deployment that are ready or on their way (for the gateway's routes).
    pub async fn fleet_routes(&self) -> Result<Vec<RouteRow>> {
        Ok(sqlx::query_as(
            "SELECT d.model_id, r.state, r.base_url FROM fleet_replicas r
             JOIN fleet_deployments d ON d.id = r.deployment_id
             WHERE r.state IN ('pending', 'starting', 'ready', 'failed')
             ORDER BY d.model_id, r.id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The models that have a deployment (not being deleted), with its minimum replicas, so the routes know which
    /// models the fleet serves even while they have no replica (scaled to zero).
    pub async fn deployed_models(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT model_id FROM fleet_deployments WHERE deleting = 0 ORDER BY model_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn create_deployment(&self, d: &DeploymentRow, event: &FleetEventRow) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO fleet_deployments ({DEPLOYMENT_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&d.id)
        .bind(&d.model_id)
        .bind(&d.spec)
        .bind(d.generation)
        .bind(d.desired_replicas)
        .bind(d.scale_reason.as_deref())
        .bind(d.condition.as_deref())
        .bind(d.deleting)
        .bind(d.gpu_ms)
        .bind(d.created_at)
        .bind(d.updated_at)
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, event).await?;
        bump_routes(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn deployment(&self, id: &str) -> Result<Option<DeploymentRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM fleet_deployments WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn deployments(&self) -> Result<Vec<DeploymentRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM fleet_deployments ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// An admin's change: the spec, its generation, and (when deleting) the mark, with the event. A
    /// compare-and-set on what the admin read (`read_generation`, and not being deleted), so of two concurrent
    /// changes one wins and the other is told (false), and a change never undoes a deletion.
    pub async fn update_deployment_spec(
        &self,
        id: &str,
        spec: &str,
        read_generation: i64,
        generation: i64,
        deleting: bool,
        event: &FleetEventRow,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE fleet_deployments SET spec = $2, generation = $3, deleting = $4, updated_at = $5
             WHERE id = $1 AND generation = $6 AND deleting = 0",
        )
        .bind(id)
        .bind(spec)
        .bind(generation)
        .bind(i64::from(deleting))
        .bind(now_millis())
        .bind(read_generation)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            insert_event(&mut tx, event).await?;
            bump_routes(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// The controller's view of a deployment: desired count, why, and any condition.
    pub async fn set_deployment_status(
        &self,
        id: &str,
        desired: i64,
        scale_reason: Option<&str>,
        condition: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE fleet_deployments SET desired_replicas = $2, scale_reason = $3, condition = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(desired)
        .bind(scale_reason)
        .bind(condition)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a deployment whose replicas have all stopped.
    pub async fn delete_deployment(&self, id: &str, event: &FleetEventRow) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM fleet_replicas WHERE deployment_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM fleet_deployments WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_event(&mut tx, event).await?;
        bump_routes(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn replicas(&self) -> Result<Vec<ReplicaRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {REPLICA_COLUMNS} FROM fleet_replicas ORDER BY deployment_id, created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn replicas_of(&self, deployment_id: &str) -> Result<Vec<ReplicaRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {REPLICA_COLUMNS} FROM fleet_replicas WHERE deployment_id = $1 ORDER BY created_at, id"
        ))
        .bind(deployment_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// `apply_fleet_changes`, only while `lease` is held: the lease is renewed in the same transaction, and when
    /// another holder has it (or it expired) nothing is written and the answer is false.
    pub async fn apply_fleet_changes_fenced(
        &self,
        changes: &FleetChanges,
        lease: &LeaseFence<'_>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let held = sqlx::query(
            "UPDATE fleet_lease SET expires_at = $3 WHERE name = $1 AND holder = $2 AND expires_at >= $4",
        )
        .bind(lease.name)
        .bind(lease.holder)
        .bind(lease.now + lease.ttl_ms)
        .bind(lease.now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !held {
            tx.rollback().await?;
            return Ok(false);
        }
        write_changes(&mut tx, changes).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Writes the controller's changes to replicas (inserted or updated whole), their events, the GPU time of
    /// replicas that let their GPUs go, and removes stopped replicas it no longer keeps: one transaction, with a
    /// routes bump when `routes_changed`.
    pub async fn apply_fleet_changes(&self, changes: &FleetChanges) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        write_changes(&mut tx, changes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A deployment's events, newest first; after the event `before` (the last of the previous page) when given.
    /// Pages by (at, id), so events sharing one instant are neither skipped nor repeated.
    pub async fn fleet_events(
        &self,
        deployment_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<FleetEventRow>> {
        let cursor: Option<(i64, String)> = match before {
            None => None,
            Some(id) => {
                sqlx::query_as(
                    "SELECT at, id FROM fleet_events WHERE id = $1 AND deployment_id = $2",
                )
                .bind(id)
                .bind(deployment_id)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        if before.is_some() && cursor.is_none() {
            return Ok(Vec::new());
        }
        let (at, id) = cursor.unwrap_or((i64::MAX, String::new()));
        Ok(sqlx::query_as(
            "SELECT id, deployment_id, replica_id, at, kind, message FROM fleet_events
             WHERE deployment_id = $1 AND (at < $2 OR (at = $2 AND id < $3) OR $4 = 0)
             ORDER BY at DESC, id DESC LIMIT $5",
        )
        .bind(deployment_id)
        .bind(at)
        .bind(id)
        .bind(i64::from(before.is_some()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Replaces the inventory with what the driver reports now.
    pub async fn replace_nodes(&self, nodes: &[NodeRow]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM fleet_nodes")
            .execute(&mut *tx)
            .await?;
        for n in nodes {
            sqlx::query(
                "INSERT INTO fleet_nodes (name, schedulable, gpus, seen_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&n.name)
            .bind(n.schedulable)
            .bind(&n.gpus)
            .bind(n.seen_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn nodes(&self) -> Result<Vec<NodeRow>> {
        Ok(
            sqlx::query_as(
                "SELECT name, schedulable, gpus, seen_at FROM fleet_nodes ORDER BY name",
            )
            .fetch_all(&self.pool)
            .await?,
        )
    }

    /// Takes or renews the lease `name` for `holder` until `now + ttl_ms`; true when `holder` has it. Another
    /// holder's lease is taken over only once it has expired, in one statement, so two replicas cannot both win.
    pub async fn try_lease(&self, name: &str, holder: &str, now: i64, ttl_ms: i64) -> Result<bool> {
        sqlx::query(
            "INSERT INTO fleet_lease (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE fleet_lease.holder = excluded.holder OR fleet_lease.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT holder FROM fleet_lease WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(current.as_deref() == Some(holder))
    }

    /// Gives the lease up (at shutdown), so another replica need not wait for it to expire.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM fleet_lease WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Who holds the lease now, and until when.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT holder, expires_at FROM fleet_lease WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// A request is waiting for `model_id`, which has no replica to serve it.
    pub async fn mark_demand(&self, model_id: &str, at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO fleet_demand (model_id, at) VALUES ($1, $2)
             ON CONFLICT (model_id) DO UPDATE SET at = excluded.at",
        )
        .bind(model_id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Models with a request waiting since `since` or later.
    pub async fn demand_since(&self, since: i64) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT model_id, at FROM fleet_demand WHERE at >= $1")
                .bind(since)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

/// What one pass of the controller changes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FleetChanges {
    pub upserts: Vec<ReplicaRow>,
    pub removed: Vec<String>,
    /// GPU-milliseconds to add to a deployment's total (replicas that released their GPUs).
    pub gpu_ms: Vec<(String, i64)>,
    pub events: Vec<FleetEventRow>,
    pub routes_changed: bool,
}

impl FleetChanges {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty()
            && self.removed.is_empty()
            && self.gpu_ms.is_empty()
            && self.events.is_empty()
            && !self.routes_changed
    }
}

/// A lease the writer must still hold.
#[derive(Debug, Clone, Copy)]
pub struct LeaseFence<'a> {
    pub name: &'a str,
    pub holder: &'a str,
    pub now: i64,
    pub ttl_ms: i64,
}

async fn write_changes(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    changes: &FleetChanges,
) -> Result<()> {
    for r in &changes.upserts {
        sqlx::query(&format!(
                "INSERT INTO fleet_replicas ({REPLICA_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                 ON CONFLICT (id) DO UPDATE SET generation = excluded.generation, state = excluded.state,
                   node = excluded.node, gpus = excluded.gpus, handle = excluded.handle,
                   base_url = excluded.base_url, restarts = excluded.restarts, last_error = excluded.last_error,
                   reason = excluded.reason, since = excluded.since, next_attempt_at = excluded.next_attempt_at,
                   gpu_since = excluded.gpu_since, drain_until = excluded.drain_until"
            ))
            .bind(&r.id)
            .bind(&r.deployment_id)
            .bind(r.generation)
            .bind(&r.state)
            .bind(r.node.as_deref())
            .bind(&r.gpus)
            .bind(r.handle.as_deref())
            .bind(r.base_url.as_deref())
            .bind(r.restarts)
            .bind(r.last_error.as_deref())
            .bind(r.reason.as_deref())
            .bind(r.since)
            .bind(r.next_attempt_at)
            .bind(r.gpu_since)
            .bind(r.drain_until)
            .bind(r.created_at)
            .execute(&mut **tx)
            .await?;
    }
    for id in &changes.removed {
        sqlx::query("DELETE FROM fleet_replicas WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    for (deployment, ms) in &changes.gpu_ms {
        sqlx::query("UPDATE fleet_deployments SET gpu_ms = gpu_ms + $2 WHERE id = $1")
            .bind(deployment)
            .bind(*ms)
            .execute(&mut **tx)
            .await?;
    }
    for e in &changes.events {
        insert_event(tx, e).await?;
    }
    if changes.routes_changed {
        bump_routes(tx).await?;
    }
    Ok(())
}

async fn insert_event(tx: &mut sqlx::Transaction<'_, sqlx::Any>, e: &FleetEventRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO fleet_events (id, deployment_id, replica_id, at, kind, message)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&e.id)
    .bind(&e.deployment_id)
    .bind(e.replica_id.as_deref())
    .bind(e.at)
    .bind(&e.kind)
    .bind(&e.message)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
