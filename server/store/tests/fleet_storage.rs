//! The fleet's tables on SQLite and PostgreSQL: deployments, replicas, events, the lease, demand marks and the
//! routes revision.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is how it fails

use tollgate_store::{
    testing::{Flavor, TestDatabase},
    DeploymentRow, FleetChanges, FleetEventRow, NodeRow, ReplicaRow, Store,
};

fn event(id: &str, deployment: &str, at: i64, kind: &str) -> FleetEventRow {
    FleetEventRow {
        id: id.into(),
        deployment_id: deployment.into(),
        replica_id: None,
        at,
        kind: kind.into(),
        message: format!("{kind} at {at}"),
    }
}

fn replica(id: &str, state: &str, url: Option<&str>) -> ReplicaRow {
    ReplicaRow {
        id: id.into(),
        deployment_id: "dep_1".into(),
        generation: 1,
        state: state.into(),
        node: Some("node-a".into()),
        gpus: "0,1".into(),
        handle: Some(format!("sim:{id}")),
        base_url: url.map(String::from),
        restarts: 0,
        last_error: None,
        reason: None,
        since: 10,
        next_attempt_at: None,
        gpu_since: Some(10),
        drain_until: None,
        created_at: 10,
    }
}

async fn suite(flavor: Flavor) {
    let db = TestDatabase::new(flavor).await.unwrap();
    let store = db.store().await.unwrap();
    store
        .execute_for_tests(
            "INSERT INTO models (id, display_name, family, provider, context_length, task, status, visibility,
               upstream_name, created_at, updated_at)
             VALUES ('llama', 'Llama', 'llama', 'meta', 8192, 'chat', 'available', 'open', 'meta/llama', 1, 1)",
        )
        .await
        .unwrap();
    deployments_and_replicas(&store).await;
    lease(&store).await;
    demand_and_nodes(&store).await;
    store.close().await;
    db.cleanup().await.unwrap();
}

async fn deployments_and_replicas(store: &Store) {
    let r0 = store.routes_revision().await.unwrap();
    let d = DeploymentRow {
        id: "dep_1".into(),
        model_id: "llama".into(),
        spec: r#"{"model_id":"llama"}"#.into(),
        generation: 1,
        desired_replicas: 1,
        scale_reason: None,
        condition: None,
        deleting: 0,
        gpu_ms: 0,
        created_at: 5,
        updated_at: 5,
    };
    store
        .create_deployment(&d, &event("ev_1", "dep_1", 5, "created"))
        .await
        .unwrap();
    assert_eq!(store.deployment("dep_1").await.unwrap(), Some(d.clone()));
    assert_eq!(store.routes_revision().await.unwrap(), r0 + 1);
    assert_eq!(store.deployed_models().await.unwrap(), vec!["llama"]);

    let changes = FleetChanges {
        upserts: vec![
            replica("rep_a", "ready", Some("http://127.0.0.1:9001")),
            replica("rep_b", "starting", None),
        ],
        events: vec![event("ev_2", "dep_1", 6, "ready")],
        routes_changed: true,
        ..Default::default()
    };
    store.apply_fleet_changes(&changes).await.unwrap();
    assert_eq!(store.routes_revision().await.unwrap(), r0 + 2);
    let routes = store.fleet_routes().await.unwrap();
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0].base_url.as_deref(), Some("http://127.0.0.1:9001"));

    // An update replaces the row whole; GPU time adds up; a removal deletes.
    let mut stopped = replica("rep_a", "stopped", None);
    stopped.gpu_since = None;
    store
        .apply_fleet_changes(&FleetChanges {
            upserts: vec![stopped.clone()],
            gpu_ms: vec![("dep_1".into(), 1500)],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store.routes_revision().await.unwrap(),
        r0 + 2,
        "no bump asked"
    );
    let rows = store.replicas_of("dep_1").await.unwrap();
    assert_eq!(rows.iter().find(|r| r.id == "rep_a"), Some(&stopped));
    assert_eq!(
        store.deployment("dep_1").await.unwrap().unwrap().gpu_ms,
        1500
    );
    assert_eq!(
        store.fleet_routes().await.unwrap().len(),
        1,
        "stopped replicas are not routes"
    );
    store
        .apply_fleet_changes(&FleetChanges {
            removed: vec!["rep_a".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(store.replicas().await.unwrap().len(), 1);

    // Events page newest first.
    let events = store.fleet_events("dep_1", None, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["ev_2", "ev_1"]
    );
    let older = store.fleet_events("dep_1", Some("ev_2"), 10).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].id, "ev_1");
    assert!(store
        .fleet_events("dep_1", Some("nope"), 10)
        .await
        .unwrap()
        .is_empty());
    // Events sharing one instant page by id, none skipped.
    for id in ["ev_s1", "ev_s2", "ev_s3"] {
        store
            .apply_fleet_changes(&FleetChanges {
                events: vec![event(id, "dep_1", 9, "same")],
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = store
            .fleet_events("dep_1", before.as_deref(), 2)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id.clone());
        seen.extend(page.into_iter().map(|e| e.id));
    }
    assert_eq!(seen, ["ev_s3", "ev_s2", "ev_s1", "ev_2", "ev_1"]);

    // A change written against a generation that is not the stored one writes nothing.
    assert!(!store
        .update_deployment_spec(
            "dep_1",
            &d.spec,
            2,
            3,
            false,
            &event("ev_x", "dep_1", 7, "x")
        )
        .await
        .unwrap());
    // Marking for deletion hides the model from the deployed ones; then no change undoes it.
    assert!(store
        .update_deployment_spec(
            "dep_1",
            &d.spec,
            1,
            1,
            true,
            &event("ev_3", "dep_1", 7, "deleting")
        )
        .await
        .unwrap());
    assert!(!store
        .update_deployment_spec(
            "dep_1",
            &d.spec,
            1,
            2,
            false,
            &event("ev_y", "dep_1", 7, "y")
        )
        .await
        .unwrap());
    // One live deployment per model: a second one is a duplicate, but a successor beside a deleted one is not.
    let mut second = d.clone();
    second.id = "dep_2".into();
    store
        .create_deployment(&second, &event("ev_d2", "dep_2", 8, "created"))
        .await
        .unwrap();
    let mut third = d.clone();
    third.id = "dep_3".into();
    assert!(matches!(
        store
            .create_deployment(&third, &event("ev_d3", "dep_3", 8, "created"))
            .await,
        Err(tollgate_store::StoreError::Duplicate)
    ));
    store
        .delete_deployment("dep_2", &event("ev_d2x", "dep_2", 8, "deleted"))
        .await
        .unwrap();
    assert!(store.deployed_models().await.unwrap().is_empty());
    assert!(!store
        .update_deployment_spec("nope", &d.spec, 1, 1, true, &event("ev_4", "nope", 7, "x"))
        .await
        .unwrap());
    store
        .set_deployment_status("dep_1", 3, Some("load"), Some("cond"))
        .await
        .unwrap();
    let row = store.deployment("dep_1").await.unwrap().unwrap();
    assert_eq!(
        (row.desired_replicas, row.condition.as_deref()),
        (3, Some("cond"))
    );
    store
        .delete_deployment("dep_1", &event("ev_5", "dep_1", 8, "deleted"))
        .await
        .unwrap();
    assert!(store.deployment("dep_1").await.unwrap().is_none());
    assert!(store.replicas().await.unwrap().is_empty());
    assert_eq!(
        store.fleet_events("dep_1", None, 10).await.unwrap().len(),
        7,
        "events outlive the deployment"
    );
}

async fn lease(store: &Store) {
    assert!(store.try_lease("fleet", "a", 1_000, 10_000).await.unwrap());
    assert!(
        !store.try_lease("fleet", "b", 5_000, 10_000).await.unwrap(),
        "held by a until 11 000"
    );
    assert!(
        store.try_lease("fleet", "a", 6_000, 10_000).await.unwrap(),
        "renewed"
    );
    assert!(!store.try_lease("fleet", "b", 15_000, 10_000).await.unwrap());
    assert!(
        store.try_lease("fleet", "b", 16_001, 10_000).await.unwrap(),
        "expired at 16 000: b takes over"
    );
    assert_eq!(
        store.lease_holder("fleet").await.unwrap(),
        Some(("b".into(), 26_001))
    );
    store.release_lease("fleet", "a").await.unwrap();
    assert!(
        store.lease_holder("fleet").await.unwrap().is_some(),
        "only the holder releases"
    );
    store.release_lease("fleet", "b").await.unwrap();
    assert!(store.try_lease("fleet", "a", 16_002, 10_000).await.unwrap());
}

async fn demand_and_nodes(store: &Store) {
    store.mark_demand("llama", 100).await.unwrap();
    store.mark_demand("llama", 200).await.unwrap();
    assert_eq!(
        store.demand_since(150).await.unwrap(),
        vec![("llama".to_string(), 200)]
    );
    assert!(store.demand_since(201).await.unwrap().is_empty());
    let node = |name: &str| NodeRow {
        name: name.into(),
        schedulable: 1,
        gpus: "[]".into(),
        seen_at: 1,
    };
    store.replace_nodes(&[node("a"), node("b")]).await.unwrap();
    store.replace_nodes(&[node("b")]).await.unwrap();
    assert_eq!(store.nodes().await.unwrap(), vec![node("b")]);
}

#[tokio::test]
async fn fleet_storage_on_sqlite() {
    suite(Flavor::Sqlite).await;
}

#[tokio::test]
async fn fleet_storage_on_postgres() {
    suite(Flavor::Postgres).await;
}
