//! The Kubernetes driver against the API's contract: a fake API server over real HTTP (`testing::FakeApi`),
//! with the tests playing the scheduler and the kubelet.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is how it fails

use serde_json::json;
use std::time::Duration;
use tollgate_fleet::driver::{Driver, DriverError, ReplicaSpec};
use tollgate_fleet::rules::lifecycle::Process;
use tollgate_fleet_kubernetes::testing::{self, FakeApi, Fault};
use tollgate_fleet_kubernetes::{KubeSettings, KubernetesDriver};

const NS: &str = "models";

fn settings() -> KubeSettings {
    KubeSettings {
        namespace: NS.into(),
        api_timeout: Duration::from_millis(700),
        ..KubeSettings::default()
    }
}

fn driver(api: &FakeApi) -> KubernetesDriver {
    KubernetesDriver::new(api.client(NS), NS.into(), settings())
}

fn spec(replica: &str) -> ReplicaSpec {
    ReplicaSpec {
        replica_id: replica.into(),
        deployment_id: "dep_1".into(),
        served_name: "Qwen/Qwen2.5-7B-Instruct".into(),
        node: "gpu-a".into(),
        gpus: vec![0, 1],
        args: vec!["--tensor-parallel-size".into(), "2".into()],
        gpu_products: vec!["NVIDIA-H100-80GB-HBM3".into()],
        min_gpu_memory_mib: 0,
        context_length: 0,
    }
}

/// What the watches and the controller deliver arrives asynchronously.
async fn eventually<T>(what: &str, f: impl AsyncFnMut() -> Option<T>) -> T {
    testing::eventually(what, Duration::from_secs(5), f).await
}

fn ready_status() -> serde_json::Value {
    json!({"phase": "Running", "podIP": "10.0.0.7", "conditions": [
        {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "vllm", "ready": true, "restartCount": 0, "image": "vllm", "imageID": "",
            "state": {"running": {"startedAt": "2026-12-07T10:00:00Z"}}}]})
}

#[tokio::test]
async fn inventory_follows_the_nodes_watch() {
    let api = FakeApi::start().await;
    api.add_gpu_node("gpu-a", 8, "NVIDIA-H100-80GB-HBM3", 81559);
    api.add_gpu_node("gpu-b", 4, "NVIDIA-A100-SXM4-40GB", 40960);
    api.put(
        "nodes",
        None,
        "cpu-1",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cpu-1"},
            "status": {"capacity": {"cpu": "64"}, "conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    let d = driver(&api);
    let nodes = d.inventory().await.unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["gpu-a", "gpu-b"], "the CPU node is not inventory");
    assert_eq!(nodes[0].gpus.len(), 8);
    assert_eq!(nodes[1].gpus[0].product, "NVIDIA-A100-SXM4-40GB");
    assert!(nodes.iter().all(|n| n.schedulable));

    // A cordon arrives through the watch: no call is made for it.
    let lists_before = api.calls().iter().filter(|c| c.verb == "list").count();
    let mut node = api.get("nodes", None, "gpu-b").unwrap();
    node["spec"]["unschedulable"] = json!(true);
    api.put("nodes", None, "gpu-b", node);
    eventually("the cordon", async || {
        let nodes = d.inventory().await.unwrap();
        (!nodes[1].schedulable).then_some(())
    })
    .await;
    let lists_after = api.calls().iter().filter(|c| c.verb == "list").count();
    assert_eq!(
        lists_before, lists_after,
        "inventory reads the watch, not the API"
    );
}

#[tokio::test]
async fn a_replica_becomes_a_pod_and_a_service_and_follows_its_pod() {
    let api = FakeApi::start().await;
    api.add_gpu_node("gpu-a", 8, "NVIDIA-H100-80GB-HBM3", 81559);
    let d = driver(&api);
    let started = d.start(&spec("rep_1")).await.unwrap();
    assert_eq!(started.handle, "k8s:models/tollgate-rep-1");
    assert_eq!(started.base_url, "http://tollgate-rep-1.models.svc:8000");

    let pod = api.get("pods", Some(NS), "tollgate-rep-1").unwrap();
    assert_eq!(
        pod["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "tollgate"
    );
    assert_eq!(
        pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
        "2"
    );
    assert_eq!(
        pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"],
        "/health"
    );
    let svc = api.get("services", Some(NS), "tollgate-rep-1").unwrap();
    assert_eq!(
        svc["metadata"]["ownerReferences"][0]["uid"],
        pod["metadata"]["uid"]
    );
    assert_eq!(svc["spec"]["selector"]["tollgate.dev/replica"], "rep_1");
    let applies: Vec<_> = api
        .calls()
        .into_iter()
        .filter(|c| c.verb == "patch")
        .collect();
    assert_eq!(applies.len(), 2);
    for call in applies {
        assert!(
            call.query.contains("fieldManager=tollgate"),
            "{}",
            call.query
        );
        assert!(call.query.contains("force=true"), "{}", call.query);
    }

    // Just applied: pending, not yet scheduled.
    let first = d.observe(&started.handle).await;
    assert!(matches!(first, Process::Waiting(_)), "{first:?}");

    // The scheduler cannot place it.
    api.set_status(
        "pods",
        Some(NS),
        "tollgate-rep-1",
        json!({"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}]}),
    );
    let why = eventually("the scheduler's reason", async || {
        match d.observe(&started.handle).await {
            Process::Waiting(w) if w.contains("Insufficient") => Some(w),
            _ => None,
        }
    })
    .await;
    assert_eq!(
        why,
        "waiting for a node: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    );

    // Scheduled and ready: the kubelet's readiness probe on /health passed.
    api.set_status("pods", Some(NS), "tollgate-rep-1", ready_status());
    eventually("readiness", async || {
        (d.observe(&started.handle).await == Process::Running).then_some(())
    })
    .await;
    assert!(d.reports_readiness());

    // The engine crashes over and over: the kubelet restarts it, the fleet is told why.
    api.set_status("pods", Some(NS), "tollgate-rep-1", json!({"phase": "Running", "conditions": [
        {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
        "containerStatuses": [{"name": "vllm", "ready": false, "restartCount": 5, "image": "vllm", "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}));
    let looping = eventually("the crash loop", async || {
        match d.observe(&started.handle).await {
            Process::Waiting(w) if w.starts_with("crash-looping") => Some(w),
            _ => None,
        }
    })
    .await;
    assert_eq!(
        looping,
        "crash-looping: restarted 5 times; last: Error (exit code 1)"
    );

    // Evicted: the process ended, the fleet starts another.
    api.set_status(
        "pods",
        Some(NS),
        "tollgate-rep-1",
        json!({"phase": "Failed", "reason": "Evicted",
        "message": "The node was low on resource: ephemeral-storage."}),
    );
    let evicted = eventually("the eviction", async || {
        match d.observe(&started.handle).await {
            Process::Exited(w) => Some(w),
            _ => None,
        }
    })
    .await;
    assert!(
        evicted.starts_with("evicted: The node was low"),
        "{evicted}"
    );

    // Output comes from the pod's log.
    api.set_pod_log(NS, "tollgate-rep-1", "INFO loading weights\nINFO ready\n");
    assert_eq!(
        d.logs(&started.handle, "rep_1").await,
        ["INFO loading weights", "INFO ready"]
    );

    // Stopping deletes the pod and its service; stopping again is not an error.
    d.stop(&started.handle).await.unwrap();
    assert!(api.get("pods", Some(NS), "tollgate-rep-1").is_none());
    assert!(api.get("services", Some(NS), "tollgate-rep-1").is_none());
    d.stop(&started.handle).await.unwrap();
    eventually("the pod gone", async || {
        (d.observe(&started.handle).await == Process::None).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_new_driver_adopts_the_pods_of_the_last_one() {
    let api = FakeApi::start().await;
    let first = driver(&api);
    let started = first.start(&spec("rep_7")).await.unwrap();
    api.set_status("pods", Some(NS), "tollgate-rep-7", ready_status());
    let uid = api.get("pods", Some(NS), "tollgate-rep-7").unwrap()["metadata"]["uid"].clone();
    drop(first);

    // Tollgate restarted: the stored handle finds the pod, and starting the replica again applies to it.
    let second = driver(&api);
    eventually("the adopted pod ready", async || {
        (second.observe(&started.handle).await == Process::Running).then_some(())
    })
    .await;
    let again = second.start(&spec("rep_7")).await.unwrap();
    assert_eq!(again, started);
    assert_eq!(api.list("pods").len(), 1, "no second pod");
    assert_eq!(
        api.get("pods", Some(NS), "tollgate-rep-7").unwrap()["metadata"]["uid"],
        uid
    );
}

#[tokio::test]
async fn users_edits_to_other_fields_survive_and_tollgates_fields_are_taken_back() {
    let api = FakeApi::start().await;
    let d = driver(&api);
    d.start(&spec("rep_2")).await.unwrap();
    // A user annotates the pod and, carelessly, changes the engine image with their own field manager.
    api.apply_as(
        "kubectl",
        "pods",
        Some(NS),
        "tollgate-rep-2",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"annotations": {"owner": "ml-platform"}}}),
        false,
    )
    .unwrap();
    let mut pod = api.get("pods", Some(NS), "tollgate-rep-2").unwrap();
    let mut containers = pod["spec"]["containers"].clone();
    containers[0]["image"] = json!("vllm/vllm-openai:nightly");
    let conflict = api
        .apply_as(
            "kubectl",
            "pods",
            Some(NS),
            "tollgate-rep-2",
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": containers.clone()}}),
            false,
        )
        .unwrap_err();
    assert_eq!(
        conflict.0, 409,
        "Tollgate owns the containers: {conflict:?}"
    );
    api.apply_as(
        "kubectl",
        "pods",
        Some(NS),
        "tollgate-rep-2",
        json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": containers}}),
        true,
    )
    .unwrap();
    pod = api.get("pods", Some(NS), "tollgate-rep-2").unwrap();
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "vllm/vllm-openai:nightly"
    );

    // Tollgate applies again (a restart of the replica): its field is back, the user's annotation stays.
    d.start(&spec("rep_2")).await.unwrap();
    pod = api.get("pods", Some(NS), "tollgate-rep-2").unwrap();
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "vllm/vllm-openai:v0.11.0"
    );
    assert_eq!(pod["metadata"]["annotations"]["owner"], "ml-platform");
    let owners = api.owners("pods", Some(NS), "tollgate-rep-2");
    assert_eq!(owners["spec.containers"], "tollgate");
    assert_eq!(owners["metadata.annotations.owner"], "kubectl");
}

#[tokio::test]
async fn api_errors_are_transient_or_permanent_as_retrying_would_help() {
    let api = FakeApi::start().await;
    let d = driver(&api);
    let fault = |verb: &str, resource: &str, status: u16, reason: &str, delay_ms: u64| Fault {
        verb: verb.into(),
        resource: resource.into(),
        status,
        reason: reason.into(),
        times: 1,
        delay: Duration::from_millis(delay_ms),
    };
    api.fault(fault("patch", "pods", 403, "Forbidden", 0));
    let e = d.start(&spec("rep_3")).await.unwrap_err();
    assert!(
        matches!(&e, DriverError::Permanent(m) if m.contains("forbidden (403)") && m.contains("rbac.yaml")),
        "{e}"
    );

    api.fault(fault("patch", "pods", 409, "Conflict", 0));
    let e = d.start(&spec("rep_3")).await.unwrap_err();
    assert!(
        matches!(&e, DriverError::Transient(m) if m.contains("409")),
        "{e}"
    );

    api.fault(fault("patch", "services", 500, "InternalError", 0));
    let e = d.start(&spec("rep_3")).await.unwrap_err();
    assert!(
        matches!(&e, DriverError::Transient(m) if m.contains("applying service")),
        "{e}"
    );

    api.fault(fault("patch", "pods", 422, "Invalid", 0));
    let e = d.start(&spec("rep_3")).await.unwrap_err();
    assert!(
        matches!(&e, DriverError::Permanent(m) if m.contains("refused the object")),
        "{e}"
    );

    api.fault(fault("get", "pods", 0, "", 2_000));
    let e = d.start(&spec("rep_3")).await.unwrap_err();
    assert!(
        matches!(&e, DriverError::Transient(m) if m.contains("did not answer")),
        "{e}"
    );

    // After the faults, the same call goes through.
    d.start(&spec("rep_3")).await.unwrap();
    api.fault(fault("delete", "pods", 500, "InternalError", 0));
    let e = d.stop("k8s:models/tollgate-rep-3").await.unwrap_err();
    assert!(matches!(e, DriverError::Transient(_)), "{e}");
    // A busy API server (503) is retried by kube's client itself, with backoff: the stop goes through.
    d.start(&spec("rep_3")).await.unwrap();
    api.fault(fault("delete", "pods", 503, "ServiceUnavailable", 0));
    d.stop("k8s:models/tollgate-rep-3").await.unwrap();
    assert!(api.get("pods", Some(NS), "tollgate-rep-3").is_none());
    let deletes = api
        .calls()
        .iter()
        .filter(|c| c.verb == "delete" && c.resource == "pods")
        .count();
    assert_eq!(deletes, 3, "the failed delete, the 503 and its retry");
}

#[tokio::test]
async fn a_watch_that_expires_lists_again_and_misses_nothing() {
    let api = FakeApi::start().await;
    api.add_gpu_node("gpu-a", 8, "NVIDIA-H100-80GB-HBM3", 81559);
    // The first node watch answers 410 Gone; the watcher must list again.
    api.fault(Fault {
        verb: "watch".into(),
        resource: "nodes".into(),
        status: 410,
        reason: "Expired".into(),
        times: 1,
        delay: Duration::ZERO,
    });
    let d = driver(&api);
    assert_eq!(d.inventory().await.unwrap().len(), 1);
    api.add_gpu_node("gpu-b", 8, "NVIDIA-H100-80GB-HBM3", 81559);
    eventually("the node added after the 410", async || {
        (d.inventory().await.unwrap().len() == 2).then_some(())
    })
    .await;
    let node_lists = api
        .calls()
        .iter()
        .filter(|c| c.verb == "list" && c.resource == "nodes")
        .count();
    assert!(
        node_lists >= 2,
        "listed again after the 410 ({node_lists} lists)"
    );
}

#[tokio::test]
async fn a_pod_being_deleted_is_not_reused() {
    let api = FakeApi::start().await;
    let d = driver(&api);
    d.start(&spec("rep_4")).await.unwrap();
    let mut pod = api.get("pods", Some(NS), "tollgate-rep-4").unwrap();
    pod["metadata"]["deletionTimestamp"] = json!("2026-12-07T10:00:00Z");
    api.put("pods", Some(NS), "tollgate-rep-4", pod);
    let e = d.start(&spec("rep_4")).await.unwrap_err();
    assert!(
        matches!(&e, DriverError::Transient(m) if m.contains("still terminating")),
        "{e}"
    );
}

#[tokio::test]
async fn pods_no_replica_names_are_collected_once_old_enough() {
    let api = FakeApi::start().await;
    let d = driver(&api);
    let kept = d.start(&spec("rep_known")).await.unwrap();
    // Left by a controller that died before writing its row: an old one and one applied a moment ago.
    for (name, created) in [
        ("tollgate-old", "2026-01-01T00:00:00Z"),
        ("tollgate-young", ""),
    ] {
        let mut pod = api.get("pods", Some(NS), "tollgate-rep-known").unwrap();
        pod["metadata"] =
            json!({"name": name, "labels": {"app.kubernetes.io/managed-by": "tollgate"}});
        pod["metadata"]["creationTimestamp"] = if created.is_empty() {
            pod_created(&api, "tollgate-rep-known")
        } else {
            json!(created)
        };
        api.put("pods", Some(NS), name, pod);
    }
    // Someone else's pod, without Tollgate's label, is not Tollgate's to collect.
    api.put(
        "pods",
        Some(NS),
        "theirs",
        json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "theirs", "creationTimestamp": "2026-01-01T00:00:00Z"}}),
    );
    let known = std::collections::HashSet::from([kept.handle.clone()]);
    // The watch delivers the new pods asynchronously; collecting is idempotent.
    let stopped = eventually("the orphan collected", async || {
        let stopped = d.collect_garbage(&known).await;
        (!stopped.is_empty()).then_some(stopped)
    })
    .await;
    assert_eq!(stopped, ["k8s:models/tollgate-old"]);
    assert!(api.get("pods", Some(NS), "tollgate-old").is_none());
    assert!(
        api.get("pods", Some(NS), "tollgate-young").is_some(),
        "too young to be an orphan"
    );
    assert!(api.get("pods", Some(NS), "tollgate-rep-known").is_some());
    assert!(api.get("pods", Some(NS), "theirs").is_some());
}

fn pod_created(api: &FakeApi, name: &str) -> serde_json::Value {
    api.get("pods", Some(NS), name).unwrap()["metadata"]["creationTimestamp"].clone()
}
