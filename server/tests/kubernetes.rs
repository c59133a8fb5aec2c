//! The whole server with the Kubernetes fleet driver, against a fake Kubernetes API server (no cluster runs in
//! CI): a deployment made in the portal becomes a Pod and a Service; the scheduler's refusal, readiness, a
//! crash loop and an eviction show in the API and the portal as the controller reacts to them; deleting the
//! deployment deletes its Pods.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is how it fails

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use support::{Browser, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};
use tollgate_fleet_kubernetes::testing::{self, FakeApi};
use tollgate_store::testing::Flavor;

const NS: &str = "models";
const PRODUCT: &str = "NVIDIA-H100-80GB-HBM3";

struct Admin {
    app_url: String,
    token: String,
    http: reqwest::Client,
}

impl Admin {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.app_url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn deployment(&self, id: &str) -> Value {
        let (status, body) = self
            .call(reqwest::Method::GET, &format!("/deployments/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

/// What the watches and the controller deliver arrives asynchronously.
async fn eventually<T>(what: &str, f: impl AsyncFnMut() -> Option<T>) -> T {
    testing::eventually(what, Duration::from_secs(15), f).await
}

fn ready() -> Value {
    json!({"phase": "Running", "conditions": [
        {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "vllm", "ready": true, "restartCount": 0, "image": "vllm", "imageID": "",
            "state": {"running": {"startedAt": "2026-12-07T10:00:00Z"}}}]})
}

fn pod_names(api: &FakeApi) -> Vec<String> {
    api.list("pods")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_deployment_runs_as_pods_and_the_portal_shows_what_the_cluster_says() {
    let api = FakeApi::start().await;
    api.add_gpu_node("gpu-a", 8, PRODUCT, 81559);
    let kubeconfig =
        std::env::temp_dir().join(format!("tollgate-kubeconfig-{}.yaml", std::process::id()));
    std::fs::write(&kubeconfig, api.kubeconfig(NS)).unwrap();
    let app = TestApp::start_with(Flavor::Sqlite, |c| {
        c.settings.fleet_driver = "kubernetes".into();
        c.settings.fleet_kubernetes_kubeconfig = kubeconfig.display().to_string();
        c.settings.fleet_kubernetes_image = "registry.example/vllm:1".into();
        c.settings.fleet_tick_ms = 100;
        c.settings.fleet_drain_grace_s = 1;
    })
    .await;
    let browser = Browser::signed_in(app.url(""), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, body) = browser
        .call(
            "/api/tokens/create",
            &[("name", "k8s"), ("scope", "write"), ("expiry_days", "1")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let admin = Admin {
        app_url: app.url(""),
        token: body["secret"].as_str().unwrap().to_string(),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    };

    // The inventory is the cluster's GPU node, read through the watch.
    let nodes = eventually("the node inventory", async || {
        let (_, nodes) = admin.call(reqwest::Method::GET, "/fleet/nodes", None).await;
        (nodes.as_array().is_some_and(|n| !n.is_empty())).then_some(nodes)
    })
    .await;
    assert_eq!(nodes[0]["name"], "gpu-a", "{nodes}");

    // Deployed from the portal's form, as an admin does on Admin -> Fleet.
    let (status, created) = browser
        .call(
            "/api/fleet/create",
            &[
                ("form[model_id]", "llama-3.1-8b-instruct"),
                ("form[gpus_per_replica]", "2"),
                ("form[gpu_products]", PRODUCT),
                ("form[min_gpu_memory_gib]", ""),
                ("form[min_replicas]", "1"),
                ("form[max_replicas]", "1"),
                ("form[target_requests_per_replica]", ""),
                ("form[priority]", ""),
                ("form[scale_to_zero_after_s]", ""),
                ("form[max_model_len]", ""),
                ("form[dtype]", ""),
                ("form[extra_args]", ""),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap().to_string();

    // The replica becomes a Pod with the deployment's GPUs and a Service owned by it.
    let pod_name = eventually("the pod", async || pod_names(&api).into_iter().next()).await;
    let pod = api.get("pods", Some(NS), &pod_name).unwrap();
    let engine = &pod["spec"]["containers"][0];
    assert_eq!(engine["image"], "registry.example/vllm:1");
    assert_eq!(engine["resources"]["limits"]["nvidia.com/gpu"], "2");
    assert_eq!(engine["args"][0], "meta-llama/Llama-3.1-8B-Instruct");
    let affinity =
        &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(
        affinity["nodeSelectorTerms"][0]["matchExpressions"][0]["values"][0],
        PRODUCT
    );
    let svc = api.get("services", Some(NS), &pod_name).unwrap();
    assert_eq!(
        svc["metadata"]["ownerReferences"][0]["uid"],
        pod["metadata"]["uid"]
    );

    // The scheduler cannot place it: the reason shows in the API and on the deployment's page.
    api.set_status(
        "pods",
        Some(NS),
        &pod_name,
        json!({"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."}]}),
    );
    let reason = eventually("the scheduler's reason", async || {
        let d = admin.deployment(&id).await;
        let reason = d["replicas"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string();
        reason.contains("Insufficient").then_some(reason)
    })
    .await;
    assert_eq!(
        reason,
        "waiting for a node: 0/4 nodes are available: 4 Insufficient nvidia.com/gpu."
    );
    let page = browser
        .get(&format!("/admin/fleet/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("4 Insufficient nvidia.com/gpu"),
        "the portal shows the scheduler's words"
    );

    // Ready (the kubelet's probe on /health passed): the replica serves at its Service's address.
    api.set_status("pods", Some(NS), &pod_name, ready());
    let d = eventually("ready", async || {
        let d = admin.deployment(&id).await;
        (d["replicas"][0]["state"] == "ready").then_some(d)
    })
    .await;
    assert_eq!(d["ready_replicas"], 1);
    assert_eq!(
        d["replicas"][0]["base_url"],
        format!("http://{pod_name}.{NS}.svc:8000")
    );

    // A crash loop: the kubelet restarts the engine; after three failed checks the fleet replaces the Pod.
    let first_uid = pod["metadata"]["uid"].clone();
    api.set_status("pods", Some(NS), &pod_name, json!({"phase": "Running", "conditions": [
        {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
        "containerStatuses": [{"name": "vllm", "ready": false, "restartCount": 3, "image": "vllm", "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}));
    let error = eventually("the crash loop's replacement", async || {
        let d = admin.deployment(&id).await;
        let r = &d["replicas"][0];
        (r["restarts"].as_u64() >= Some(1))
            .then(|| r["last_error"].as_str().unwrap_or("").to_string())
    })
    .await;
    assert!(
        error.contains("crash-looping: restarted 3 times; last: OOMKilled (exit code 137)"),
        "{error}"
    );
    let replaced = eventually("a new pod", async || {
        api.get("pods", Some(NS), &pod_name)
            .filter(|p| p["metadata"]["uid"] != first_uid)
    })
    .await;
    assert_eq!(
        replaced["status"]["phase"], "Pending",
        "a fresh pod, not the crashed one"
    );

    // Evicted: the process ended; the fleet starts the replica again.
    api.set_status("pods", Some(NS), &pod_name, ready());
    eventually("ready again", async || {
        (admin.deployment(&id).await["replicas"][0]["state"] == "ready").then_some(())
    })
    .await;
    api.set_status(
        "pods",
        Some(NS),
        &pod_name,
        json!({"phase": "Failed", "reason": "Evicted",
        "message": "The node was low on resource: memory."}),
    );
    let evicted = eventually("the eviction", async || {
        let (_, events) = admin
            .call(
                reqwest::Method::GET,
                &format!("/deployments/{id}/events?limit=100"),
                None,
            )
            .await;
        events
            .as_array()?
            .iter()
            .find(|e| e["message"].as_str().unwrap_or("").contains("evicted"))
            .cloned()
    })
    .await;
    assert!(evicted["message"]
        .as_str()
        .unwrap()
        .contains("The node was low on resource: memory."));

    // Deleting the deployment drains and deletes its Pods (and their Services).
    let (status, _) = admin
        .call(reqwest::Method::DELETE, &format!("/deployments/{id}"), None)
        .await;
    assert!(status.is_success(), "{status}");
    eventually("the pods deleted", async || {
        (api.list("pods").is_empty() && api.list("services").is_empty()).then_some(())
    })
    .await;
    let verbs = api.verbs();
    assert!(verbs.contains(&("delete".into(), "pods".into())));
    app.stop().await;
    let _ = std::fs::remove_file(kubeconfig);
}
