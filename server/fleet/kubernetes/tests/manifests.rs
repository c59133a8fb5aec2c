//! `deploy/kubernetes/`: every manifest is the Kubernetes object it claims to be (parsed into the k8s-openapi
//! types and written back unchanged, so a misspelt or misplaced field fails), and the RBAC rules grant exactly
//! the calls the driver makes, as recorded by the fake API server while the driver does everything it does.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is how it fails

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;
use tollgate_fleet::driver::{Driver, ReplicaSpec};
use tollgate_fleet_kubernetes::testing::FakeApi;
use tollgate_fleet_kubernetes::{parse_pod_template, KubeSettings, KubernetesDriver};

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../deploy/kubernetes")
}

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(folder().join(file)).unwrap();
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{file} is not YAML: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// Parses `doc` as `T` and checks that writing it back gives the same document: a field the type does not
/// have (a typo, a wrong level) would be dropped and fail the comparison.
fn round_trip<T: DeserializeOwned + Serialize>(file: &str, doc: &Value) {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{file}: not a {}: {e}", doc["kind"]));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, doc,
        "{file}: {} {} has fields its type does not know (or wrongly nested)",
        doc["kind"], doc["metadata"]["name"]
    );
}

#[test]
fn every_manifest_is_the_object_it_claims_to_be() {
    let mut kinds = BTreeSet::new();
    let mut files: Vec<String> = std::fs::read_dir(folder())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    for file in &files {
        match file.as_str() {
            // kustomize's own file, not an API object: its resources must exist.
            "kustomization.yaml" => {
                let k = &documents(file)[0];
                for r in k["resources"].as_array().unwrap() {
                    let r = r.as_str().unwrap();
                    assert!(
                        folder().join(r).exists(),
                        "kustomization lists {r}, which is missing"
                    );
                }
                continue;
            }
            // The driver's pod template: what the driver itself parses.
            "engine-pod-template.yaml" => {
                let text = std::fs::read_to_string(folder().join(file)).unwrap();
                let template = parse_pod_template(&text).unwrap();
                let doc = documents(file).remove(0);
                let back = serde_json::to_value(&template).unwrap();
                assert_eq!(
                    back, doc,
                    "{file} has fields a PodTemplateSpec does not know"
                );
                continue;
            }
            _ => {}
        }
        for doc in documents(file) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            match kind.as_str() {
                "Deployment" => round_trip::<Deployment>(file, &doc),
                "Service" => round_trip::<Service>(file, &doc),
                "Ingress" => round_trip::<Ingress>(file, &doc),
                "ConfigMap" => round_trip::<ConfigMap>(file, &doc),
                "Secret" => round_trip::<Secret>(file, &doc),
                "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(file, &doc),
                "ServiceAccount" => round_trip::<ServiceAccount>(file, &doc),
                "Role" => round_trip::<Role>(file, &doc),
                "RoleBinding" => round_trip::<RoleBinding>(file, &doc),
                "ClusterRole" => round_trip::<ClusterRole>(file, &doc),
                "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(file, &doc),
                "PriorityClass" => round_trip::<PriorityClass>(file, &doc),
                other => panic!("{file}: no test knows kind {other:?}"),
            }
            kinds.insert(kind);
        }
    }
    for needed in [
        "Deployment",
        "Service",
        "Ingress",
        "PodDisruptionBudget",
        "ServiceAccount",
        "Role",
        "RoleBinding",
    ] {
        assert!(kinds.contains(needed), "no {needed} in deploy/kubernetes");
    }
}

/// (verb, resource) pairs the rules grant, for the core API group.
fn granted(rules: &[PolicyRule]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        let groups = rule.api_groups.clone().unwrap_or_default();
        assert_eq!(groups, [""], "only the core group is needed: {rule:?}");
        for resource in rule.resources.clone().unwrap_or_default() {
            for verb in &rule.verbs {
                out.insert((verb.clone(), resource.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_rbac_rules_grant_exactly_what_the_driver_calls() {
    // Everything the driver does: watch nodes and pods, start (read, apply a pod and a service), observe,
    // read logs, stop (delete both).
    let api = FakeApi::start().await;
    api.add_gpu_node("gpu-a", 8, "NVIDIA-H100-80GB-HBM3", 81559);
    let settings = KubeSettings {
        namespace: "models".into(),
        api_timeout: Duration::from_secs(2),
        ..KubeSettings::default()
    };
    let driver = KubernetesDriver::new(api.client("models"), "models".into(), settings);
    assert_eq!(driver.inventory().await.unwrap().len(), 1);
    let spec = ReplicaSpec {
        replica_id: "r1".into(),
        deployment_id: "d1".into(),
        served_name: "m".into(),
        node: "gpu-a".into(),
        gpus: vec![0],
        args: Vec::new(),
        gpu_products: Vec::new(),
        min_gpu_memory_mib: 0,
        context_length: 0,
    };
    let started = driver.start(&spec).await.unwrap();
    let _ = driver.observe(&started.handle).await;
    // A pod the watch has not shown yet is read directly.
    let _ = driver.observe("k8s:models/tollgate-not-yet").await;
    api.set_pod_log("models", "tollgate-r1", "line\n");
    assert_eq!(driver.logs(&started.handle, "r1").await, ["line"]);
    driver.stop(&started.handle).await.unwrap();

    let called = api.verbs();
    let namespaced: BTreeSet<_> = called
        .iter()
        .filter(|(_, r)| r != "nodes")
        .cloned()
        .collect();
    let cluster: BTreeSet<_> = called
        .iter()
        .filter(|(_, r)| r == "nodes")
        .cloned()
        .collect();

    let docs = documents("rbac.yaml");
    let role: Role =
        serde_json::from_value(docs.iter().find(|d| d["kind"] == "Role").unwrap().clone()).unwrap();
    let cluster_role: ClusterRole = serde_json::from_value(
        docs.iter()
            .find(|d| d["kind"] == "ClusterRole")
            .unwrap()
            .clone(),
    )
    .unwrap();
    let role_grants = granted(&role.rules.unwrap_or_default());
    let cluster_grants = granted(&cluster_role.rules.unwrap_or_default());
    assert_eq!(
        role_grants, namespaced,
        "the Role must grant exactly the namespaced calls the driver makes (left: granted, right: called)"
    );
    assert_eq!(
        cluster_grants, cluster,
        "the ClusterRole must grant exactly the node calls the driver makes (left: granted, right: called)"
    );
    // The bindings name the service account the Deployment runs as.
    let deployment = documents("deployment.yaml").remove(0);
    let account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap();
    for kind in ["RoleBinding", "ClusterRoleBinding"] {
        let b = docs.iter().find(|d| d["kind"] == kind).unwrap();
        assert_eq!(b["subjects"][0]["name"], account, "{kind}");
    }
}
