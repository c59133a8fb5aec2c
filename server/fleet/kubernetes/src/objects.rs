//! The objects one engine replica needs, built without IO: a Pod running vLLM and a Service in front of it.
//!
//! One Pod per replica, not a Deployment per fleet deployment: the fleet controller already decides each
//! replica's life (placement, restarts with backoff, draining before a stop, rolling updates that keep capacity),
//! and a ReplicaSet would make the same decisions again, differently. The Service (owned by its Pod, so it goes
//! when the Pod goes) gives the replica a stable address at once, before the Pod has an IP.

use crate::settings::KubeSettings;
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EmptyDirVolumeSource, HTTPGetAction, LocalObjectReference,
    NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    PersistentVolumeClaimVolumeSource, Pod, PodSpec, Probe, ResourceRequirements, Service,
    ServicePort, ServiceSpec, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use tollgate_fleet::driver::ReplicaSpec;

/// The field manager of everything Tollgate applies.
pub const FIELD_MANAGER: &str = "tollgate";
/// Every object Tollgate makes carries it, so `kubectl get pods -l app.kubernetes.io/managed-by=tollgate` finds them.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "tollgate");
pub const REPLICA_LABEL: &str = "tollgate.dev/replica";
pub const DEPLOYMENT_LABEL: &str = "tollgate.dev/deployment";
/// The container that runs the engine (a pod template may name it to add its own fields).
pub const CONTAINER: &str = "vllm";
/// The GPU resource NVIDIA's device plugin advertises, and the node labels its feature discovery sets.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
pub const GPU_PRODUCT_LABEL: &str = "nvidia.com/gpu.product";
pub const GPU_MEMORY_LABEL: &str = "nvidia.com/gpu.memory";

/// The label selector of the driver's watch.
pub fn managed_selector() -> String {
    format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)
}

/// A DNS-1123 label from an id: lowercase letters, digits and '-', at most 63 characters, starting and ending
/// with an alphanumeric.
fn dns_label(prefix: &str, id: &str) -> String {
    let mut out: String = prefix.to_string();
    for c in id.chars() {
        match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => out.push(c),
            _ => out.push('-'),
        }
    }
    out.truncate(63);
    out.trim_end_matches('-').to_string()
}

/// The Pod's (and its Service's) name: fixed per replica, so that starting a replica again after a controller
/// restart applies to the Pod that is already there (adoption) instead of making a second one.
pub fn pod_name(replica_id: &str) -> String {
    dns_label("tollgate-", replica_id)
}

/// Label values are at most 63 characters of `[A-Za-z0-9._-]`.
fn label_value(id: &str) -> String {
    let mut v: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    v.truncate(63);
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

pub fn labels(spec: &ReplicaSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        ("app.kubernetes.io/name".into(), "vllm".into()),
        ("app.kubernetes.io/component".into(), "engine".into()),
        (REPLICA_LABEL.into(), label_value(&spec.replica_id)),
        (DEPLOYMENT_LABEL.into(), label_value(&spec.deployment_id)),
    ])
}

/// The address the gateway reaches the replica at: its Service's cluster DNS name.
pub fn base_url(spec: &ReplicaSpec, namespace: &str, port: u16) -> String {
    format!(
        "http://{}.{namespace}.svc:{port}",
        pod_name(&spec.replica_id)
    )
}

/// Shared memory for NCCL between tensor-parallel workers: 2 GiB per GPU, at least 2 GiB.
fn shm_size(gpus: usize) -> Quantity {
    Quantity(format!("{}Gi", 2 * gpus.max(1)))
}

fn health_probe(port_name: &str, period_s: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/health".into()),
            port: IntOrString::String(port_name.into()),
            ..Default::default()
        }),
        period_seconds: Some(period_s),
        failure_threshold: Some(failures),
        timeout_seconds: Some(5),
        ..Default::default()
    }
}

/// The tolerations replicas get: the template's, and the taint NVIDIA's GPU operator puts on GPU nodes.
pub fn tolerations(settings: &KubeSettings) -> Vec<Toleration> {
    let mut out = settings
        .pod_template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    if !out.iter().any(|t| t.key.as_deref() == Some(GPU_RESOURCE)) {
        out.push(Toleration {
            key: Some(GPU_RESOURCE.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        });
    }
    out
}

/// The node-affinity terms: the template's own terms (or one empty term), each also requiring an allowed GPU
/// product and enough memory per GPU. Kubernetes ORs terms and ANDs a term's expressions, so adding ours to every
/// term keeps the template's meaning and adds ours.
fn node_affinity(spec: &ReplicaSpec, template: Option<&Affinity>) -> Option<Affinity> {
    let mut ours = Vec::new();
    if !spec.gpu_products.is_empty() {
        ours.push(NodeSelectorRequirement {
            key: GPU_PRODUCT_LABEL.into(),
            operator: "In".into(),
            values: Some(spec.gpu_products.clone()),
        });
    }
    if spec.min_gpu_memory_mib > 0 {
        ours.push(NodeSelectorRequirement {
            key: GPU_MEMORY_LABEL.into(),
            operator: "Gt".into(),
            values: Some(vec![(spec.min_gpu_memory_mib - 1).to_string()]),
        });
    }
    let mut affinity = template.cloned().unwrap_or_default();
    if ours.is_empty() {
        return template.cloned();
    }
    let node = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    let required = node
        .required_during_scheduling_ignored_during_execution
        .get_or_insert_with(|| NodeSelector {
            node_selector_terms: Vec::new(),
        });
    if required.node_selector_terms.is_empty() {
        required
            .node_selector_terms
            .push(NodeSelectorTerm::default());
    }
    for term in &mut required.node_selector_terms {
        term.match_expressions
            .get_or_insert_with(Vec::new)
            .extend(ours.iter().cloned());
    }
    Some(affinity)
}

/// The engine's command line: `vllm serve MODEL`, the names and address Tollgate routes by, then the
/// deployment's own arguments.
fn engine_args(spec: &ReplicaSpec, port: u16) -> Vec<String> {
    let mut args = vec![
        spec.served_name.clone(),
        "--served-model-name".into(),
        spec.served_name.clone(),
        "--host".into(),
        "0.0.0.0".into(),
        "--port".into(),
        port.to_string(),
    ];
    args.extend(spec.args.iter().cloned());
    args
}

/// The replica's Pod: the template, with Tollgate's fields laid over it.
pub fn pod(spec: &ReplicaSpec, settings: &KubeSettings, namespace: &str) -> Pod {
    let template = settings.pod_template.clone().unwrap_or_default();
    let mut meta = template.metadata.unwrap_or_default();
    meta.name = Some(pod_name(&spec.replica_id));
    meta.namespace = Some(namespace.to_string());
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .extend(labels(spec));
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert("tollgate.dev/model".into(), spec.served_name.clone());
    // Fields that belong to a live object, not to what is applied.
    meta.uid = None;
    meta.resource_version = None;
    meta.managed_fields = None;

    let mut pod_spec: PodSpec = template.spec.unwrap_or_default();
    let gpus = spec.gpus.len().max(1);
    let mut container = pod_spec
        .containers
        .iter()
        .position(|c| c.name == CONTAINER)
        .map(|i| pod_spec.containers.remove(i))
        .unwrap_or_else(|| Container {
            name: CONTAINER.into(),
            ..Default::default()
        });
    container.image = Some(settings.image.clone());
    container.command = Some(vec!["vllm".into(), "serve".into()]);
    container.args = Some(engine_args(spec, settings.port));
    container.ports = Some(vec![ContainerPort {
        name: Some("http".into()),
        container_port: i32::from(settings.port),
        protocol: Some("TCP".into()),
        ..Default::default()
    }]);
    container.readiness_probe = Some(health_probe("http", 5, 3));
    let start_periods = i32::try_from(settings.start_timeout.as_secs().div_ceil(10))
        .unwrap_or(i32::MAX)
        .max(1);
    container.startup_probe = Some(health_probe("http", 10, start_periods));
    let resources = container
        .resources
        .get_or_insert_with(ResourceRequirements::default);
    resources
        .limits
        .get_or_insert_with(BTreeMap::new)
        .insert(GPU_RESOURCE.into(), Quantity(gpus.to_string()));
    if let Some(requests) = resources.requests.as_mut() {
        // Extended resources need requests equal to limits; one the template set otherwise would be refused.
        requests.remove(GPU_RESOURCE);
    }
    let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
    mounts.retain(|m| m.name != "dshm" && m.name != "model-cache");
    mounts.push(VolumeMount {
        name: "dshm".into(),
        mount_path: "/dev/shm".into(),
        ..Default::default()
    });
    mounts.push(VolumeMount {
        name: "model-cache".into(),
        mount_path: "/root/.cache/huggingface".into(),
        ..Default::default()
    });
    pod_spec.containers.insert(0, container);

    let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
    volumes.retain(|v| v.name != "dshm" && v.name != "model-cache");
    volumes.push(Volume {
        name: "dshm".into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(shm_size(gpus)),
        }),
        ..Default::default()
    });
    volumes.push(match &settings.model_cache_pvc {
        Some(claim) => Volume {
            name: "model-cache".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(false),
            }),
            ..Default::default()
        },
        None => Volume {
            name: "model-cache".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    });
    let secrets = pod_spec.image_pull_secrets.get_or_insert_with(Vec::new);
    for name in &settings.image_pull_secrets {
        if !secrets.iter().any(|s| &s.name == name) {
            secrets.push(LocalObjectReference { name: name.clone() });
        }
    }
    if secrets.is_empty() {
        pod_spec.image_pull_secrets = None;
    }
    pod_spec.affinity = node_affinity(spec, pod_spec.affinity.as_ref());
    pod_spec.tolerations = Some(tolerations(settings));
    pod_spec.restart_policy = Some("Always".into());
    // A Service named like an engine variable (`vllm` makes VLLM_PORT=tcp://...) breaks vLLM's own settings.
    pod_spec.enable_service_links = Some(false);
    pod_spec.termination_grace_period_seconds =
        Some(i64::try_from(settings.termination_grace.as_secs()).unwrap_or(30));
    Pod {
        metadata: meta,
        spec: Some(pod_spec),
        status: None,
    }
}

/// The replica's Service, owned by its Pod (`pod_uid`), so the cluster's garbage collector removes it with the
/// Pod.
pub fn service(
    spec: &ReplicaSpec,
    settings: &KubeSettings,
    namespace: &str,
    pod_uid: &str,
) -> Service {
    let name = pod_name(&spec.replica_id);
    Service {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels(spec)),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name,
                uid: pod_uid.to_string(),
                controller: Some(false),
                block_owner_deletion: Some(false),
            }]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(BTreeMap::from([(
                REPLICA_LABEL.to_string(),
                label_value(&spec.replica_id),
            )])),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(settings.port),
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::parse_pod_template;

    fn spec(gpus: usize) -> ReplicaSpec {
        ReplicaSpec {
            replica_id: "rep_01HXYZ".into(),
            deployment_id: "dep_01ABC".into(),
            served_name: "meta-llama/Llama-3.1-8B-Instruct".into(),
            node: "gpu-1".into(),
            gpus: (0..gpus as u32).collect(),
            args: vec!["--tensor-parallel-size".into(), gpus.to_string()],
            gpu_products: vec!["NVIDIA-H100-80GB-HBM3".into()],
            min_gpu_memory_mib: 80 * 1024,
            context_length: 0,
        }
    }

    #[test]
    fn names_are_dns_labels_fixed_per_replica() {
        assert_eq!(pod_name("rep_01HXYZ"), "tollgate-rep-01hxyz");
        let long = pod_name(&"x".repeat(100));
        assert_eq!(long.len(), 63);
        assert_eq!(pod_name("a_"), "tollgate-a", "never ends with a dash");
        assert_eq!(label_value("rep_01HXYZ"), "rep_01HXYZ");
    }

    #[test]
    fn the_pod_runs_vllm_on_as_many_gpus_as_its_tensor_parallel_size() {
        let settings = KubeSettings {
            model_cache_pvc: Some("hf-cache".into()),
            image_pull_secrets: vec!["registry".into()],
            ..KubeSettings::default()
        };
        let p = pod(&spec(2), &settings, "models");
        assert_eq!(p.metadata.name.as_deref(), Some("tollgate-rep-01hxyz"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("models"));
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "tollgate");
        assert_eq!(labels[REPLICA_LABEL], "rep_01HXYZ");
        assert_eq!(labels[DEPLOYMENT_LABEL], "dep_01ABC");
        let s = p.spec.as_ref().unwrap();
        let c = &s.containers[0];
        assert_eq!(c.image.as_deref(), Some("vllm/vllm-openai:v0.11.0"));
        assert_eq!(
            c.args.as_ref().unwrap()[..7],
            [
                "meta-llama/Llama-3.1-8B-Instruct",
                "--served-model-name",
                "meta-llama/Llama-3.1-8B-Instruct",
                "--host",
                "0.0.0.0",
                "--port",
                "8000"
            ]
        );
        assert!(c
            .args
            .as_ref()
            .unwrap()
            .ends_with(&["--tensor-parallel-size".into(), "2".into()]));
        let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits[GPU_RESOURCE], Quantity("2".into()));
        let ready = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(ready.path.as_deref(), Some("/health"));
        let startup = c.startup_probe.as_ref().unwrap();
        assert_eq!(
            startup.period_seconds.unwrap() * startup.failure_threshold.unwrap(),
            900,
            "the startup probe waits as long as the fleet's start timeout"
        );
        let volumes = s.volumes.as_ref().unwrap();
        let shm = volumes.iter().find(|v| v.name == "dshm").unwrap();
        assert_eq!(
            shm.empty_dir.as_ref().unwrap().medium.as_deref(),
            Some("Memory")
        );
        assert_eq!(
            shm.empty_dir.as_ref().unwrap().size_limit,
            Some(Quantity("4Gi".into()))
        );
        let cache = volumes.iter().find(|v| v.name == "model-cache").unwrap();
        assert_eq!(
            cache.persistent_volume_claim.as_ref().unwrap().claim_name,
            "hf-cache"
        );
        assert_eq!(s.image_pull_secrets.as_ref().unwrap()[0].name, "registry");
        let terms = &s
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        let exprs = terms[0].match_expressions.as_ref().unwrap();
        assert_eq!(exprs[0].key, GPU_PRODUCT_LABEL);
        assert_eq!(
            exprs[0].values.as_ref().unwrap()[0],
            "NVIDIA-H100-80GB-HBM3"
        );
        assert_eq!(
            (
                exprs[1].operator.as_str(),
                exprs[1].values.as_ref().unwrap()[0].as_str()
            ),
            ("Gt", "81919")
        );
        assert!(s
            .tolerations
            .as_ref()
            .unwrap()
            .iter()
            .any(|t| t.key.as_deref() == Some(GPU_RESOURCE)));
        assert_eq!(s.enable_service_links, Some(false));
    }

    #[test]
    fn the_template_keeps_its_own_fields_and_terms() {
        let template = parse_pod_template(
            r#"
metadata:
  labels: {team: ml}
spec:
  priorityClassName: inference
  nodeSelector: {pool: gpu}
  tolerations:
  - {key: dedicated, operator: Equal, value: inference, effect: NoSchedule}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: zone, operator: In, values: [a]}]
        - matchExpressions: [{key: zone, operator: In, values: [b]}]
  containers:
  - name: vllm
    image: ignored
    env: [{name: HF_HUB_OFFLINE, value: "1"}]
    resources:
      requests: {cpu: "8", memory: 64Gi, nvidia.com/gpu: "7"}
"#,
        )
        .unwrap();
        let settings = KubeSettings {
            pod_template: Some(template),
            ..KubeSettings::default()
        };
        let p = pod(&spec(1), &settings, "models");
        assert_eq!(p.metadata.labels.as_ref().unwrap()["team"], "ml");
        let s = p.spec.unwrap();
        assert_eq!(s.priority_class_name.as_deref(), Some("inference"));
        assert_eq!(s.node_selector.unwrap()["pool"], "gpu");
        assert_eq!(
            s.containers.len(),
            1,
            "the template's vllm container is the engine's"
        );
        let c = &s.containers[0];
        assert_eq!(c.image.as_deref(), Some("vllm/vllm-openai:v0.11.0"));
        assert_eq!(c.env.as_ref().unwrap()[0].name, "HF_HUB_OFFLINE");
        let res = c.resources.as_ref().unwrap();
        assert_eq!(res.requests.as_ref().unwrap()["cpu"], Quantity("8".into()));
        assert!(!res.requests.as_ref().unwrap().contains_key(GPU_RESOURCE));
        let tol = s.tolerations.unwrap();
        assert_eq!(tol.len(), 2, "the template's toleration and the GPU one");
        let terms = s
            .affinity
            .unwrap()
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 2);
        for term in terms {
            let keys: Vec<String> = term
                .match_expressions
                .unwrap()
                .into_iter()
                .map(|e| e.key)
                .collect();
            assert_eq!(keys, ["zone", GPU_PRODUCT_LABEL, GPU_MEMORY_LABEL]);
        }
    }

    #[test]
    fn the_service_is_owned_by_its_pod_and_selects_only_it() {
        let s = service(&spec(1), &KubeSettings::default(), "models", "uid-7");
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Pod", "uid-7"));
        let sel = s.spec.as_ref().unwrap().selector.as_ref().unwrap();
        assert_eq!(sel.len(), 1);
        assert_eq!(sel[REPLICA_LABEL], "rep_01HXYZ");
        assert_eq!(
            base_url(&spec(1), "models", 8000),
            "http://tollgate-rep-01hxyz.models.svc:8000"
        );
    }
}
