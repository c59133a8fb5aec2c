//! The reconcile loop driven pass by pass with a clock of the test's own (`Controller::tick(now)`), over a real
//! SQLite store and the simulator driver (engines in this process, answering `/health` at once): what a rolling
//! update does to capacity on a full fleet, and that preemption drains no more than it needs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is how it fails

use std::sync::Arc;
use tokio::sync::Notify;
use tollgate_domain::fleet::{DeploymentInput, ReplicaState};
use tollgate_fleet::driver::sim::SimDriver;
use tollgate_fleet::model::Replica;
use tollgate_fleet::{Controller, ControllerConfig, FleetMetrics};
use tollgate_store::testing::{Flavor, TestDatabase};
use tollgate_store::{DeploymentRow, FleetEventRow, Store};

const MODELS: [&str; 2] = ["low", "high"];

async fn store() -> (TestDatabase, Store) {
    let db = TestDatabase::new(Flavor::Sqlite).await.unwrap();
    let store = db.store().await.unwrap();
    for m in MODELS {
        store
            .execute_for_tests(&format!(
                "INSERT INTO models (id, display_name, family, provider, context_length, task, status, visibility,
                   upstream_name, created_at, updated_at)
                 VALUES ('{m}', '{m}', 'f', 'p', 8192, 'chat', 'available', 'open', 'org/{m}', 1, 1)"
            ))
            .await
            .unwrap();
    }
    (db, store)
}

fn controller(store: &Store, nodes: &str) -> Controller {
    Controller::new(
        store.clone(),
        Arc::new(SimDriver::new(nodes, vec!["--sim-zero-latency".into()]).unwrap()),
        ControllerConfig::default(),
        Arc::new(FleetMetrics::default()),
        Arc::new(Notify::new()),
        Arc::new(Notify::new()),
    )
}

async fn deploy(store: &Store, id: &str, json: &str, now: i64) {
    let mut spec: DeploymentInput = serde_json::from_str(json).unwrap();
    spec.validate().unwrap();
    store
        .create_deployment(
            &DeploymentRow {
                id: id.into(),
                model_id: spec.model_id.clone(),
                spec: serde_json::to_string(&spec).unwrap(),
                generation: 1,
                desired_replicas: i64::from(spec.min_replicas),
                scale_reason: None,
                condition: None,
                deleting: 0,
                gpu_ms: 0,
                created_at: now,
                updated_at: now,
            },
            &FleetEventRow {
                id: format!("fev_{id}"),
                deployment_id: id.into(),
                replica_id: None,
                at: now,
                kind: "created".into(),
                message: "test".into(),
            },
        )
        .await
        .unwrap();
}

async fn replicas(store: &Store, deployment: &str) -> Vec<Replica> {
    store
        .replicas_of(deployment)
        .await
        .unwrap()
        .iter()
        .map(Replica::from_row)
        .collect()
}

fn count(rs: &[Replica], state: ReplicaState) -> usize {
    rs.iter().filter(|r| r.state == state).count()
}

#[tokio::test]
async fn a_rolling_update_on_a_full_fleet_never_drops_below_one_ready_replica() {
    let (db, store) = store().await;
    let c = controller(&store, "1x2xH100-80GB");
    let mut now = 1_000_000;
    deploy(
        &store,
        "dep_low",
        r#"{"model_id":"low","min_replicas":2,"max_replicas":2}"#,
        now,
    )
    .await;
    for _ in 0..10 {
        c.tick(now).await.unwrap();
        now += 1_000;
        if count(&replicas(&store, "dep_low").await, ReplicaState::Ready) == 2 {
            break;
        }
    }
    assert_eq!(
        count(&replicas(&store, "dep_low").await, ReplicaState::Ready),
        2
    );

    // New engine arguments: generation 2. Both GPUs are taken by generation 1.
    let row = store.deployment("dep_low").await.unwrap().unwrap();
    let mut spec: DeploymentInput = serde_json::from_str(&row.spec).unwrap();
    spec.engine.max_model_len = Some(4096);
    let ev = FleetEventRow {
        id: "fev_update".into(),
        deployment_id: "dep_low".into(),
        replica_id: None,
        at: now,
        kind: "updated".into(),
        message: "test".into(),
    };
    let json = serde_json::to_string(&spec).unwrap();
    assert!(store
        .update_deployment_spec("dep_low", &json, 1, 2, false, &ev)
        .await
        .unwrap());

    let mut fewest_ready = usize::MAX;
    let mut rolled = false;
    for _ in 0..60 {
        c.tick(now).await.unwrap();
        now += 1_000;
        let rs = replicas(&store, "dep_low").await;
        fewest_ready = fewest_ready.min(count(&rs, ReplicaState::Ready));
        let ready_new = rs
            .iter()
            .filter(|r| r.state == ReplicaState::Ready && r.generation == 2)
            .count();
        let live_old = rs
            .iter()
            .filter(|r| r.generation == 1 && r.state.is_live())
            .count();
        if ready_new == 2 && live_old == 0 {
            rolled = true;
            break;
        }
    }
    assert!(rolled, "{:?}", replicas(&store, "dep_low").await);
    assert!(
        fewest_ready >= 1,
        "capacity fell to {fewest_ready} ready replicas during the rollout"
    );
    store.close().await;
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn preemption_drains_only_as_many_replicas_as_it_needs() {
    let (db, store) = store().await;
    let c = controller(&store, "1x4xH100-80GB");
    let mut now = 1_000_000;
    deploy(
        &store,
        "dep_low",
        r#"{"model_id":"low","min_replicas":4,"max_replicas":4}"#,
        now,
    )
    .await;
    for _ in 0..10 {
        c.tick(now).await.unwrap();
        now += 1_000;
    }
    assert_eq!(
        count(&replicas(&store, "dep_low").await, ReplicaState::Ready),
        4
    );

    deploy(
        &store,
        "dep_high",
        r#"{"model_id":"high","min_replicas":1,"max_replicas":1,"priority":10}"#,
        now,
    )
    .await;
    // Short ticks: the victim drains for a few seconds (the settle time), and passes keep running meanwhile.
    for _ in 0..60 {
        c.tick(now).await.unwrap();
        now += 250;
        if count(&replicas(&store, "dep_high").await, ReplicaState::Ready) == 1 {
            break;
        }
    }
    assert_eq!(
        count(&replicas(&store, "dep_high").await, ReplicaState::Ready),
        1
    );
    let low = replicas(&store, "dep_low").await;
    assert_eq!(count(&low, ReplicaState::Ready), 3, "{low:?}");
    let preempted = store
        .fleet_events("dep_low", None, 500)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "preempted")
        .count();
    assert_eq!(preempted, 1, "one GPU needed, one replica preempted");
    store.close().await;
    db.cleanup().await.unwrap();
}
