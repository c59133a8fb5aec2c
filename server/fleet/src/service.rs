//! The fleet as platform admins use it, from the portal and the management API alike: the inventory, deployments
//! and their events. Every method authorizes first (`Action::ManageFleet`), checks a change completely before
//! storing anything (so a bad request leaves nothing half-made), stores desired state and wakes the controller,
//! which does the rest.

use crate::driver::Driver;
use crate::metrics::FleetMetrics;
use crate::model::{event, Deployment, Replica};
use crate::rules::placement::{self, Node};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;
use tollgate_domain::{
    access::{decide, Action, Principal},
    audit::AuditAction,
    catalog::ModelStatus,
    fleet::{
        DeploymentInput, DeploymentPatch, DeploymentView, FleetEventView, GpuView, NodeView,
        ReplicaState,
    },
    time::Millis,
    DomainError,
};
use tollgate_identity::{internal, Caller, Identity};
use tollgate_store::{new_id, now_millis, DeploymentRow, Store};

#[derive(Clone)]
pub struct Fleet {
    store: Store,
    identity: Identity,
    driver: Arc<dyn Driver>,
    metrics: Arc<FleetMetrics>,
    wake: Arc<Notify>,
}

fn require_admin(caller: &Caller) -> Result<(), DomainError> {
    decide(
        Principal {
            platform_admin: caller.platform_admin,
            platform_viewer: caller.platform_viewer,
            role_in_tenant: None,
        },
        Action::ManageFleet,
    )
}

impl Fleet {
    pub fn new(
        store: Store,
        identity: Identity,
        driver: Arc<dyn Driver>,
        metrics: Arc<FleetMetrics>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            identity,
            driver,
            metrics,
            wake,
        }
    }

    pub fn driver_kind(&self) -> &'static str {
        self.driver.kind()
    }

    pub fn metrics(&self) -> &Arc<FleetMetrics> {
        &self.metrics
    }

    /// Runs the controller's next pass now (on this server, when it holds the lease).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The GPU inventory as the controller last stored it (the driver is asked only when nothing is stored yet,
    /// on a fresh start): pages that poll it never run `nvidia-smi` or list a cluster's nodes themselves.
    async fn inventory(&self) -> Vec<Node> {
        let stored: Vec<Node> = self
            .store
            .nodes()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|n| Node {
                name: n.name,
                schedulable: n.schedulable != 0,
                gpus: serde_json::from_str(&n.gpus).unwrap_or_default(),
            })
            .collect();
        if !stored.is_empty() {
            return stored;
        }
        self.driver.inventory().await.unwrap_or_default()
    }

    /// Every node and GPU, with the replica holding each.
    pub async fn nodes(&self, caller: &Caller) -> Result<Vec<NodeView>, DomainError> {
        require_admin(caller)?;
        let replicas = self.store.replicas().await.map_err(internal)?;
        let mut holders: HashMap<(String, u32), (String, String)> = HashMap::new();
        for r in replicas.iter().map(Replica::from_row) {
            if let (true, Some(node)) = (r.state.holds_gpus(), &r.node) {
                for g in &r.gpus {
                    holders.insert((node.clone(), *g), (r.id.clone(), r.deployment_id.clone()));
                }
            }
        }
        Ok(self
            .inventory()
            .await
            .into_iter()
            .map(|n| NodeView {
                gpus: n
                    .gpus
                    .iter()
                    .map(|g| {
                        let holder = holders.get(&(n.name.clone(), g.index));
                        GpuView {
                            index: g.index,
                            product: g.product.clone(),
                            memory_mib: g.memory_mib,
                            healthy: g.healthy,
                            replica: holder.map(|h| h.0.clone()),
                            deployment: holder.map(|h| h.1.clone()),
                        }
                    })
                    .collect(),
                name: n.name,
                schedulable: n.schedulable,
            })
            .collect())
    }

    pub async fn deployments(&self, caller: &Caller) -> Result<Vec<DeploymentView>, DomainError> {
        require_admin(caller)?;
        let rows = self.store.deployments().await.map_err(internal)?;
        let replicas = self.store.replicas().await.map_err(internal)?;
        let now = now_millis();
        Ok(rows
            .iter()
            .filter_map(|row| {
                let mine: Vec<Replica> = replicas
                    .iter()
                    .filter(|r| r.deployment_id == row.id)
                    .map(Replica::from_row)
                    .collect();
                view(row, &mine, now)
            })
            .collect())
    }

    pub async fn deployment(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<DeploymentView, DomainError> {
        require_admin(caller)?;
        let row = self.row(id).await?;
        let replicas: Vec<Replica> = self
            .store
            .replicas_of(id)
            .await
            .map_err(internal)?
            .iter()
            .map(Replica::from_row)
            .collect();
        view(&row, &replicas, now_millis()).ok_or(DomainError::Internal)
    }

    async fn row(&self, id: &str) -> Result<DeploymentRow, DomainError> {
        self.store
            .deployment(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| DomainError::not_found("deployment"))
    }

    /// Checks a spec against the catalog, the inventory and the driver.
    async fn check(&self, spec: &DeploymentInput) -> Result<(), DomainError> {
        let model = self
            .store
            .model(&spec.model_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                DomainError::invalid(format!(
                    "there is no model '{}' in the catalog",
                    spec.model_id
                ))
            })?;
        if model.status == ModelStatus::Retired.as_str() {
            return Err(DomainError::invalid(format!(
                "'{}' is retired; it cannot be deployed",
                spec.model_id
            )));
        }
        let nodes = self.inventory().await;
        check_fits(spec, &nodes)?;
        self.driver
            .check_args(
                &model.upstream_name,
                &spec.engine.to_args(spec.gpus_per_replica),
            )
            .map_err(|e| {
                DomainError::invalid(format!(
                    "the engine would not start with these arguments: {e}"
                ))
            })
    }

    pub async fn create(
        &self,
        caller: &Caller,
        mut input: DeploymentInput,
    ) -> Result<DeploymentView, DomainError> {
        require_admin(caller)?;
        input.validate()?;
        self.check(&input).await?;
        let existing = self.store.deployments().await.map_err(internal)?;
        if existing
            .iter()
            .any(|d| d.model_id == input.model_id && d.deleting == 0)
        {
            return Err(DomainError::conflict(format!(
                "'{}' already has a deployment; change that one instead",
                input.model_id
            )));
        }
        let now = now_millis();
        let id = new_id("dep");
        let row = DeploymentRow {
            id: id.clone(),
            model_id: input.model_id.clone(),
            spec: serde_json::to_string(&input).map_err(|_| DomainError::Internal)?,
            generation: 1,
            desired_replicas: i64::from(input.min_replicas.max(1).min(input.max_replicas)),
            scale_reason: Some("starting at the minimum (at least one)".into()),
            condition: None,
            deleting: 0,
            gpu_ms: 0,
            created_at: now,
            updated_at: now,
        };
        let ev = event(
            &id,
            None,
            now,
            "created",
            format!("created by {}: {}", caller.email, summary(&input)),
        );
        self.store
            .create_deployment(&row, &ev)
            .await
            .map_err(internal)?;
        self.identity
            .audit(
                caller,
                None,
                AuditAction::DeploymentCreated,
                "deployment",
                &id,
                &summary(&input),
            )
            .await;
        self.wake();
        self.deployment(caller, &id).await
    }

    pub async fn update(
        &self,
        caller: &Caller,
        id: &str,
        patch: &DeploymentPatch,
    ) -> Result<DeploymentView, DomainError> {
        require_admin(caller)?;
        let row = self.row(id).await?;
        if row.deleting != 0 {
            return Err(DomainError::conflict("this deployment is being deleted"));
        }
        let current = Deployment::from_row(&row).ok_or(DomainError::Internal)?;
        let next = current.spec.patched(patch)?;
        if next.engine != current.spec.engine {
            self.check(&next).await?;
        } else {
            check_fits(&next, &self.inventory().await)?;
        }
        let generation = row.generation + i64::from(next.engine != current.spec.engine);
        let mut changed = Vec::new();
        if next.engine != current.spec.engine {
            changed.push("new engine arguments (rolling update)".to_string());
        }
        if (next.min_replicas, next.max_replicas)
            != (current.spec.min_replicas, current.spec.max_replicas)
        {
            changed.push(format!(
                "replicas {}..{}",
                next.min_replicas, next.max_replicas
            ));
        }
        if next.priority != current.spec.priority {
            changed.push(format!("priority {}", next.priority));
        }
        if next.target_requests_per_replica != current.spec.target_requests_per_replica {
            changed.push(format!(
                "target {} requests per replica",
                next.target_requests_per_replica
            ));
        }
        if next.scale_to_zero_after_s != current.spec.scale_to_zero_after_s {
            changed.push(format!(
                "scale to zero after {} s",
                next.scale_to_zero_after_s
            ));
        }
        let what = if changed.is_empty() {
            "no change".to_string()
        } else {
            changed.join(", ")
        };
        let spec = serde_json::to_string(&next).map_err(|_| DomainError::Internal)?;
        let ev = event(
            id,
            None,
            now_millis(),
            "updated",
            format!("updated by {}: {what}", caller.email),
        );
        let changed = self
            .store
            .update_deployment_spec(id, &spec, row.generation, generation, false, &ev)
            .await
            .map_err(internal)?;
        if !changed {
            return Err(DomainError::conflict(
                "the deployment changed (or is being deleted) while you edited it; reload and try again",
            ));
        }
        // The desired count moves into the new bounds at once; the autoscaler takes it from there.
        let desired = current.desired.clamp(next.min_replicas, next.max_replicas);
        if desired != current.desired {
            self.store
                .set_deployment_status(
                    id,
                    i64::from(desired),
                    Some("moved into the new replica bounds"),
                    row.condition.as_deref(),
                )
                .await
                .map_err(internal)?;
        }
        self.identity
            .audit(
                caller,
                None,
                AuditAction::DeploymentUpdated,
                "deployment",
                id,
                &what,
            )
            .await;
        self.wake();
        self.deployment(caller, id).await
    }

    /// Marks a deployment for deletion: its replicas drain, then it goes.
    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<DeploymentView, DomainError> {
        require_admin(caller)?;
        let row = self.row(id).await?;
        if row.deleting == 0 {
            let ev = event(
                id,
                None,
                now_millis(),
                "deleting",
                format!("deleted by {}; draining its replicas", caller.email),
            );
            let changed = self
                .store
                .update_deployment_spec(id, &row.spec, row.generation, row.generation, true, &ev)
                .await
                .map_err(internal)?;
            if !changed {
                return Err(DomainError::conflict(
                    "the deployment changed while you deleted it; reload and try again",
                ));
            }
            self.identity
                .audit(
                    caller,
                    None,
                    AuditAction::DeploymentDeleted,
                    "deployment",
                    id,
                    &row.model_id,
                )
                .await;
            self.wake();
        }
        self.deployment(caller, id).await
    }

    /// A deployment's events, newest first (also after it was deleted).
    pub async fn events(
        &self,
        caller: &Caller,
        id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<FleetEventView>, DomainError> {
        require_admin(caller)?;
        let rows = self
            .store
            .fleet_events(id, before, i64::from(limit.clamp(1, 500)))
            .await
            .map_err(internal)?;
        if rows.is_empty() && before.is_none() {
            self.row(id).await?;
        }
        Ok(rows
            .into_iter()
            .map(|e| FleetEventView {
                id: e.id,
                deployment_id: e.deployment_id,
                replica_id: e.replica_id,
                at: Millis(e.at),
                kind: e.kind,
                message: e.message,
            })
            .collect())
    }

    /// The last `lines` output lines of each of a deployment's replicas that has a process (where this server's
    /// driver keeps them: the local driver does, the simulator has none).
    pub async fn deployment_logs(
        &self,
        caller: &Caller,
        id: &str,
        lines: usize,
    ) -> Result<Vec<(String, Vec<String>)>, DomainError> {
        require_admin(caller)?;
        let mut out = Vec::new();
        for r in self.store.replicas_of(id).await.map_err(internal)? {
            if let Some(h) = &r.handle {
                let log = self.driver.logs(h, &r.id).await;
                if !log.is_empty() {
                    let skip = log.len().saturating_sub(lines);
                    out.push((r.id.clone(), log.into_iter().skip(skip).collect()));
                }
            }
        }
        Ok(out)
    }

    /// A replica's last output lines, where this server's driver runs it.
    pub async fn logs(
        &self,
        caller: &Caller,
        replica_id: &str,
    ) -> Result<Vec<String>, DomainError> {
        require_admin(caller)?;
        let replicas = self.store.replicas().await.map_err(internal)?;
        let r = replicas
            .iter()
            .find(|r| r.id == replica_id)
            .ok_or_else(|| DomainError::not_found("replica"))?;
        Ok(match &r.handle {
            Some(h) => self.driver.logs(h, replica_id).await,
            None => Vec::new(),
        })
    }
}

/// The deployment's GPUs exist somewhere: enough on one node, of an allowed product, with the memory
/// (`placement::check`, whose words are those a pending replica would show).
pub fn check_fits(spec: &DeploymentInput, nodes: &[Node]) -> Result<(), DomainError> {
    placement::check(nodes, &crate::model::requirement(spec, ""))
        .map_err(|e| DomainError::invalid(format!("this deployment cannot run on this fleet: {e}")))
}

fn summary(d: &DeploymentInput) -> String {
    format!(
        "{} on {} GPU(s) per replica, {}..{} replicas, priority {}",
        d.model_id, d.gpus_per_replica, d.min_replicas, d.max_replicas, d.priority
    )
}

fn view(row: &DeploymentRow, replicas: &[Replica], now: i64) -> Option<DeploymentView> {
    let d = Deployment::from_row(row)?;
    let live_ms: i64 = replicas.iter().map(|r| r.gpu_ms(now)).sum();
    Some(DeploymentView {
        id: d.id,
        spec: d.spec,
        desired_replicas: if d.deleting { 0 } else { d.desired },
        ready_replicas: u32::try_from(
            replicas
                .iter()
                .filter(|r| r.state == ReplicaState::Ready)
                .count(),
        )
        .unwrap_or(0),
        scale_reason: d.scale_reason,
        condition: if d.deleting {
            Some("being deleted: its replicas are draining".into())
        } else {
            d.condition
        },
        generation: d.generation,
        gpu_seconds: (row.gpu_ms + live_ms) as f64 / 1000.0,
        replicas: replicas.iter().map(Replica::view).collect(),
        created_at: Millis(row.created_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::placement::Gpu;

    fn nodes() -> Vec<Node> {
        let gpu = |index, product: &str, memory_mib| Gpu {
            index,
            product: product.into(),
            memory_mib,
            healthy: true,
            holder: None,
        };
        vec![
            Node {
                name: "a".into(),
                schedulable: true,
                gpus: (0..8).map(|i| gpu(i, "H100-80GB", 81920)).collect(),
            },
            Node {
                name: "b".into(),
                schedulable: true,
                gpus: (0..4).map(|i| gpu(i, "A100-40GB", 40960)).collect(),
            },
        ]
    }

    fn spec(json: &str) -> DeploymentInput {
        let mut d: DeploymentInput = serde_json::from_str(json).unwrap();
        d.validate().unwrap();
        d
    }

    #[test]
    fn what_does_not_fit_anywhere_is_refused_in_words() {
        let refused = |json: &str| match check_fits(&spec(json), &nodes()) {
            Err(DomainError::Invalid(m)) => m,
            other => panic!("{json}: {other:?}"),
        };
        assert!(check_fits(&spec(r#"{"model_id":"m","gpus_per_replica":8}"#), &nodes()).is_ok());
        let m = refused(r#"{"model_id":"m","gpus_per_replica":16}"#);
        assert!(
            m.starts_with("this deployment cannot run on this fleet: "),
            "{m}"
        );
        assert!(m.contains("16") && m.contains('8'), "{m}");
        let m = refused(r#"{"model_id":"m","gpu_products":["H200-141GB"]}"#);
        assert!(
            m.contains("H200-141GB") && m.contains("H100-80GB"),
            "names what there is: {m}"
        );
        let m = refused(r#"{"model_id":"m","gpus_per_replica":5,"gpu_products":["a100-40gb"]}"#);
        assert!(m.contains('5'), "{m}");
        assert!(check_fits(
            &spec(r#"{"model_id":"m","gpus_per_replica":2,"min_gpu_memory_gib":80}"#),
            &nodes()
        )
        .is_ok());
        assert!(check_fits(
            &spec(r#"{"model_id":"m","gpus_per_replica":2,"min_gpu_memory_gib":81}"#),
            &nodes()
        )
        .is_err());
    }
}
