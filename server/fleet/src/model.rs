//! The controller's in-memory picture of deployments and replicas, read from and written back to the store's rows.

use tollgate_domain::fleet::{DeploymentInput, ReplicaState, ReplicaView};
use tollgate_domain::time::Millis;
use tollgate_store::{new_id, DeploymentRow, FleetEventRow, ReplicaRow};

/// A deployment as the controller reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub id: String,
    pub spec: DeploymentInput,
    pub generation: u32,
    pub desired: u32,
    pub deleting: bool,
    pub condition: Option<String>,
    pub scale_reason: Option<String>,
}

impl Deployment {
    /// None when the stored spec does not parse (written by a newer version, say): such a deployment is left
    /// alone and reported, never acted on half-understood.
    pub fn from_row(row: &DeploymentRow) -> Option<Self> {
        let spec: DeploymentInput = serde_json::from_str(&row.spec).ok()?;
        Some(Self {
            id: row.id.clone(),
            spec,
            generation: u32::try_from(row.generation).unwrap_or(1),
            desired: u32::try_from(row.desired_replicas).unwrap_or(0),
            deleting: row.deleting != 0,
            condition: row.condition.clone(),
            scale_reason: row.scale_reason.clone(),
        })
    }
}

/// A replica as the controller tracks it; `to_row` writes it back whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    pub id: String,
    pub deployment_id: String,
    pub generation: u32,
    pub state: ReplicaState,
    pub node: Option<String>,
    pub gpus: Vec<u32>,
    pub handle: Option<String>,
    pub base_url: Option<String>,
    pub restarts: u32,
    pub last_error: Option<String>,
    pub reason: Option<String>,
    pub since: i64,
    pub next_attempt_at: Option<i64>,
    pub gpu_since: Option<i64>,
    pub drain_until: Option<i64>,
    pub created_at: i64,
}

impl Replica {
    pub fn new(id: String, deployment_id: String, generation: u32, now: i64) -> Self {
        Self {
            id,
            deployment_id,
            generation,
            state: ReplicaState::Pending,
            node: None,
            gpus: Vec::new(),
            handle: None,
            base_url: None,
            restarts: 0,
            last_error: None,
            reason: Some("waiting to be placed".into()),
            since: now,
            next_attempt_at: None,
            gpu_since: None,
            drain_until: None,
            created_at: now,
        }
    }

    pub fn from_row(row: &ReplicaRow) -> Self {
        Self {
            id: row.id.clone(),
            deployment_id: row.deployment_id.clone(),
            generation: u32::try_from(row.generation).unwrap_or(0),
            state: ReplicaState::parse(&row.state).unwrap_or(ReplicaState::Failed),
            node: row.node.clone(),
            gpus: row
                .gpus
                .split(',')
                .filter_map(|g| g.trim().parse().ok())
                .collect(),
            handle: row.handle.clone(),
            base_url: row.base_url.clone(),
            restarts: u32::try_from(row.restarts).unwrap_or(0),
            last_error: row.last_error.clone(),
            reason: row.reason.clone(),
            since: row.since,
            next_attempt_at: row.next_attempt_at,
            gpu_since: row.gpu_since,
            drain_until: row.drain_until,
            created_at: row.created_at,
        }
    }

    pub fn to_row(&self) -> ReplicaRow {
        ReplicaRow {
            id: self.id.clone(),
            deployment_id: self.deployment_id.clone(),
            generation: i64::from(self.generation),
            state: self.state.as_str().to_string(),
            node: self.node.clone(),
            gpus: self
                .gpus
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
            handle: self.handle.clone(),
            base_url: self.base_url.clone(),
            restarts: i64::from(self.restarts),
            last_error: self.last_error.clone(),
            reason: self.reason.clone(),
            since: self.since,
            next_attempt_at: self.next_attempt_at,
            gpu_since: self.gpu_since,
            drain_until: self.drain_until,
            created_at: self.created_at,
        }
    }

    pub fn view(&self) -> ReplicaView {
        ReplicaView {
            id: self.id.clone(),
            state: self.state,
            node: self.node.clone(),
            gpus: self.gpus.clone(),
            base_url: self.base_url.clone(),
            restarts: self.restarts,
            last_error: self.last_error.clone(),
            reason: self.reason.clone(),
            generation: self.generation,
            since: Millis(self.since),
        }
    }

    /// GPU-milliseconds held up to `now` (0 when it holds none).
    pub fn gpu_ms(&self, now: i64) -> i64 {
        self.gpu_since.map_or(0, |s| {
            (now - s).max(0) * i64::try_from(self.gpus.len()).unwrap_or(0)
        })
    }

    /// Moves to `state` at `now` (the time it entered it is what the portal shows).
    pub fn enter(&mut self, state: ReplicaState, now: i64) {
        if self.state != state {
            self.state = state;
            self.since = now;
        }
    }
}

/// Event ids sort as the events happened (instant, then order within this process), so a list by (at, id) reads
/// in order even when one pass writes several events at one instant.
pub fn event_id(at: i64) -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let salt = new_id("x");
    format!(
        "fev_{:013}_{seq:012}_{}",
        at.max(0),
        salt.get(2..10).unwrap_or_default()
    )
}

/// An event of a deployment (and one of its replicas), as the controller and the admin operations write them.
pub fn event(
    deployment: &str,
    replica: Option<&str>,
    at: i64,
    kind: &str,
    message: String,
) -> FleetEventRow {
    FleetEventRow {
        id: event_id(at),
        deployment_id: deployment.to_string(),
        replica_id: replica.map(str::to_string),
        at,
        kind: kind.to_string(),
        message,
    }
}

/// What one replica of `spec` needs from placement.
pub fn requirement(
    spec: &tollgate_domain::fleet::DeploymentInput,
    deployment: &str,
) -> crate::rules::placement::Requirement {
    crate::rules::placement::Requirement {
        gpus: spec.gpus_per_replica,
        min_memory_mib: u64::from(spec.min_gpu_memory_gib) * 1024,
        products: spec.gpu_products.clone(),
        priority: spec.priority,
        deployment: deployment.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_round_trips_through_its_row() {
        let mut r = Replica::new("rep_1".into(), "dep_1".into(), 2, 100);
        r.gpus = vec![3, 4];
        r.node = Some("n".into());
        r.gpu_since = Some(1_000);
        r.enter(ReplicaState::Starting, 1_000);
        assert_eq!(Replica::from_row(&r.to_row()), r);
        assert_eq!(r.gpu_ms(1_500), 1_000, "2 GPUs for 500 ms");
    }
}
