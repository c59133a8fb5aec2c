//! A reconcile pass over 1,000 deployments with nothing to do: every deployment has its two replicas ready, the
//! autoscaler keeps the count, nothing is written. Prints figures; not a timed test.
//!
//! `cargo bench -p tollgate-fleet --bench reconcile` (`BENCH_RUNS`, default 15).
//!
//! Measured two ways:
//! - the whole pass (`Controller::pass`) on SQLite: reading deployments, replicas, models and wake-up marks, the
//!   decisions, and writing nothing but the lease renewal. Replicas carry no address, so no engine is probed: probes run concurrently
//!   and their time is the engines', not the controller's.
//! - the decisions alone (autoscaling, the scale plan and every replica's state machine), without IO.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark may panic: that is how it fails

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tollgate_domain::fleet::{DeploymentInput, ReplicaState};
use tollgate_fleet::driver::{Driver, DriverError, ReplicaSpec, Started};
use tollgate_fleet::model::{Deployment, Replica};
use tollgate_fleet::rules::autoscale::{Autoscaler, Policy, Signal};
use tollgate_fleet::rules::lifecycle::{self, Facts, Process, Timing};
use tollgate_fleet::rules::placement::{Gpu, Node};
use tollgate_fleet::{Controller, ControllerConfig, FleetMetrics};
use tollgate_store::testing::{Flavor, TestDatabase};
use tollgate_store::{DeploymentRow, FleetChanges, FleetEventRow, Store};

const DEPLOYMENTS: usize = 1_000;
const REPLICAS_EACH: usize = 2;

/// Every replica is running; 250 nodes of 8 GPUs hold them.
struct Steady;

#[async_trait::async_trait]
impl Driver for Steady {
    fn kind(&self) -> &'static str {
        "bench"
    }
    async fn inventory(&self) -> Result<Vec<Node>, DriverError> {
        Ok((0..250)
            .map(|n| Node {
                name: format!("node-{n:03}"),
                schedulable: true,
                gpus: (0..8)
                    .map(|index| Gpu {
                        index,
                        product: "H100-80GB".into(),
                        memory_mib: 81_920,
                        healthy: true,
                        holder: None,
                    })
                    .collect(),
            })
            .collect())
    }
    fn check_args(&self, _: &str, _: &[String]) -> Result<(), String> {
        Ok(())
    }
    async fn start(&self, _: &ReplicaSpec) -> Result<Started, DriverError> {
        Err(DriverError::Permanent("nothing should start".into()))
    }
    async fn observe(&self, _: &str) -> Process {
        Process::Running
    }
    async fn stop(&self, _: &str) -> Result<(), DriverError> {
        Ok(())
    }
}

fn spec(model: &str) -> DeploymentInput {
    let mut d: DeploymentInput = serde_json::from_str(&format!(
        r#"{{"model_id":"{model}","min_replicas":2,"max_replicas":2}}"#
    ))
    .unwrap();
    d.validate().unwrap();
    d
}

fn replica(i: usize, r: usize, now: i64) -> Replica {
    let mut x = Replica::new(format!("rep_{i:04}_{r}"), format!("dep_{i:04}"), 1, now);
    x.state = ReplicaState::Ready;
    let slot = i * REPLICAS_EACH + r;
    x.node = Some(format!("node-{:03}", slot / 8));
    x.gpus = vec![u32::try_from(slot % 8).unwrap()];
    x.handle = Some(format!("bench:{slot}"));
    x.gpu_since = Some(now);
    x.reason = None;
    x
}

async fn seed(store: &Store, now: i64) {
    let mut values = Vec::new();
    for i in 0..DEPLOYMENTS {
        values.push(format!(
            "('m{i:04}', 'm', 'f', 'p', 8192, 'chat', 'available', 'open', 'org/m{i:04}', 1, 1)"
        ));
    }
    store
        .execute_for_tests(&format!(
            "INSERT INTO models (id, display_name, family, provider, context_length, task, status, visibility,
               upstream_name, created_at, updated_at) VALUES {}",
            values.join(",")
        ))
        .await
        .unwrap();
    let mut upserts = Vec::new();
    for i in 0..DEPLOYMENTS {
        let id = format!("dep_{i:04}");
        store
            .create_deployment(
                &DeploymentRow {
                    id: id.clone(),
                    model_id: format!("m{i:04}"),
                    spec: serde_json::to_string(&spec(&format!("m{i:04}"))).unwrap(),
                    generation: 1,
                    desired_replicas: 2,
                    scale_reason: None,
                    condition: None,
                    deleting: 0,
                    gpu_ms: 0,
                    created_at: now,
                    updated_at: now,
                },
                &FleetEventRow {
                    id: format!("fev_{i:04}"),
                    deployment_id: id,
                    replica_id: None,
                    at: now,
                    kind: "created".into(),
                    message: "bench".into(),
                },
            )
            .await
            .unwrap();
        for r in 0..REPLICAS_EACH {
            upserts.push(replica(i, r, now).to_row());
        }
    }
    store
        .apply_fleet_changes(&FleetChanges {
            upserts,
            ..FleetChanges::default()
        })
        .await
        .unwrap();
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[0]), ms(v[v.len() / 2]))
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = TestDatabase::new(Flavor::Sqlite).await.unwrap();
        let store = db.store().await.unwrap();
        let now = tollgate_store::now_millis();
        seed(&store, now).await;
        let metrics = Arc::new(FleetMetrics::default());
        let controller = Controller::new(
            store.clone(),
            Arc::new(Steady),
            ControllerConfig {
                down_window_ms: 60_000,
                ..ControllerConfig::default()
            },
            metrics.clone(),
            Arc::new(Notify::new()),
            Arc::new(Notify::new()),
        );
        // The first pass meets every deployment (and records the autoscaler's reason once).
        controller.tick(now).await.unwrap();
        let before = (store.replicas().await.unwrap(), store.fleet_events("dep_0000", None, 1000).await.unwrap().len());
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            controller.tick(tollgate_store::now_millis()).await.unwrap();
            times.push(t.elapsed());
        }
        let after = (store.replicas().await.unwrap(), store.fleet_events("dep_0000", None, 1000).await.unwrap().len());
        assert_eq!(before, after, "a pass with nothing to do changes nothing");
        let (min, median) = stats(times);
        println!(
            "whole pass, SQLite, {DEPLOYMENTS} deployments x {REPLICAS_EACH} ready replicas, nothing to do: min {min:.1} ms, median {median:.1} ms ({runs} runs); nothing written but the lease renewal"
        );

        // The decisions alone.
        let deployments: Vec<Deployment> = (0..DEPLOYMENTS)
            .map(|i| Deployment {
                id: format!("dep_{i:04}"),
                spec: spec(&format!("m{i:04}")),
                generation: 1,
                desired: 2,
                deleting: false,
                condition: None,
                scale_reason: None,
            })
            .collect();
        let replicas: Vec<Replica> = (0..DEPLOYMENTS)
            .flat_map(|i| (0..REPLICAS_EACH).map(move |r| replica(i, r, now)))
            .collect();
        let facts = Facts {
            process: Process::Running,
            healthy: Some(true),
            health_failures: 0,
            busy: Some(3.0),
        };
        let mut scalers: Vec<Autoscaler> = vec![Autoscaler::default(); DEPLOYMENTS];
        let timing = Timing::default();
        let mut times = Vec::new();
        let mut changed = 0usize;
        for _ in 0..runs {
            let t = Instant::now();
            let mut working = replicas.clone();
            for (i, d) in deployments.iter().enumerate() {
                let policy = Policy {
                    min: d.spec.min_replicas,
                    max: d.spec.max_replicas,
                    target_per_replica: f64::from(d.spec.target_requests_per_replica),
                    up_window_ms: 0,
                    down_window_ms: 60_000,
                    idle_to_zero_ms: 0,
                };
                let decision = scalers[i].recommend(
                    &policy,
                    &Signal {
                        now_ms: now,
                        demand: 6.0,
                        kv_cache: 0.2,
                        last_request_ms: Some(now),
                        current: 2,
                    },
                );
                let plan = lifecycle::plan(d, &working[i * REPLICAS_EACH..(i + 1) * REPLICAS_EACH]);
                changed += plan.add as usize + plan.drain.len() + usize::from(decision.replicas != 2);
                for r in &mut working[i * REPLICAS_EACH..(i + 1) * REPLICAS_EACH] {
                    if lifecycle::advance(r, &facts, now, &timing) != lifecycle::Step::Nothing {
                        changed += 1;
                    }
                }
            }
            times.push(t.elapsed());
        }
        assert_eq!(changed, 0, "nothing to do means no action");
        let (min, median) = stats(times);
        println!(
            "decisions alone (autoscaling, scale plan, {} replica state machines): min {min:.2} ms, median {median:.2} ms ({runs} runs)",
            DEPLOYMENTS * REPLICAS_EACH
        );
        store.close().await;
        db.cleanup().await.unwrap();
    });
}
