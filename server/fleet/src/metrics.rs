//! The controller's series for `/metrics`: failures by kind, passes, leadership and replicas by state.

use crate::model::Replica;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use tollgate_domain::fleet::ReplicaState;
use tollgate_metrics::{Exposition, Kind, Labels};

#[derive(Default)]
pub struct FleetMetrics {
    failures: Mutex<BTreeMap<&'static str, u64>>,
    passes: AtomicU64,
    leader: AtomicBool,
    replicas: Mutex<BTreeMap<&'static str, u64>>,
}

impl FleetMetrics {
    /// Counts a failure of `kind`: start_failed, replica_failed, placement_refused, driver_transient,
    /// driver_permanent, store.
    pub fn failed(&self, kind: &'static str) {
        *self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind)
            .or_insert(0) += 1;
    }

    pub fn failures(&self, kind: &str) -> u64 {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    pub fn pass(&self) {
        self.passes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    pub fn observe_replicas(&self, replicas: &[Replica]) {
        let mut counts: BTreeMap<&'static str, u64> =
            ReplicaState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for r in replicas {
            *counts.entry(r.state.as_str()).or_insert(0) += 1;
        }
        *self.replicas.lock().unwrap_or_else(|p| p.into_inner()) = counts;
    }

    pub fn render(&self, x: &mut Exposition) {
        x.family(
            "tollgate_fleet_failures_total",
            Kind::Counter,
            "Fleet controller failures by kind.",
        );
        for (kind, n) in self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            x.sample(
                "tollgate_fleet_failures_total",
                &Labels::new().with("kind", kind),
                *n,
            );
        }
        x.family(
            "tollgate_fleet_passes_total",
            Kind::Counter,
            "Reconcile passes run by this server.",
        );
        x.sample(
            "tollgate_fleet_passes_total",
            &Labels::new(),
            self.passes.load(Ordering::Relaxed),
        );
        x.family(
            "tollgate_fleet_leader",
            Kind::Gauge,
            "1 when this server runs the fleet controller.",
        );
        x.sample(
            "tollgate_fleet_leader",
            &Labels::new(),
            u64::from(self.is_leader()),
        );
        if self.is_leader() {
            x.family(
                "tollgate_fleet_replicas",
                Kind::Gauge,
                "Replicas by state, as of the last pass.",
            );
            for (state, n) in self
                .replicas
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
            {
                x.sample(
                    "tollgate_fleet_replicas",
                    &Labels::new().with("state", state),
                    *n,
                );
            }
        }
    }
}
