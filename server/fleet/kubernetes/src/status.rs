//! What the cluster says, in the fleet's terms, without IO: a Pod's state as a `Process` (with the scheduler's
//! and the kubelet's reasons in words), and a Node as the fleet's inventory.

use crate::objects::{CONTAINER, GPU_MEMORY_LABEL, GPU_PRODUCT_LABEL, GPU_RESOURCE};
use k8s_openapi::api::core::v1::{ContainerStatus, Node as KubeNode, Pod, Taint, Toleration};
use tollgate_fleet::rules::lifecycle::Process;
use tollgate_fleet::rules::placement::{Gpu, Node};

fn condition<'a>(pod: &'a Pod, kind: &str) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

fn engine_status(pod: &Pod) -> Option<&ContainerStatus> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .iter()
        .find(|s| s.name == CONTAINER)
        .or_else(|| statuses.first())
}

/// How the engine last ended: "OOMKilled (exit code 137)".
fn last_exit(status: &ContainerStatus) -> Option<String> {
    let t = status.last_state.as_ref()?.terminated.as_ref()?;
    let reason = t.reason.clone().unwrap_or_else(|| "exited".into());
    Some(format!("{reason} (exit code {})", t.exit_code))
}

fn trimmed(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 300 {
        format!("{}...", s.chars().take(300).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The replica's process as its Pod shows it. `Running` only while the Pod is Ready (its readiness probe on
/// `/health` passes); a Pod that exists but does not serve is `Waiting` with why; a Pod that ended (evicted,
/// failed, deleted by someone) is `Exited`, and the fleet starts a new one.
pub fn process_of(pod: &Pod) -> Process {
    if pod.metadata.deletion_timestamp.is_some() {
        return Process::Exited("the pod is being deleted".into());
    }
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let reason = status.and_then(|s| s.reason.as_deref()).unwrap_or("");
    let message = status.and_then(|s| s.message.as_deref()).unwrap_or("");
    match phase {
        "Failed" if reason == "Evicted" => {
            return Process::Exited(format!("evicted: {}", trimmed(message)));
        }
        "Failed" => {
            let why = [reason, message]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(": ");
            return Process::Exited(if why.is_empty() {
                "the pod failed".into()
            } else {
                format!("the pod failed: {}", trimmed(&why))
            });
        }
        "Succeeded" => return Process::Exited("the engine exited with status 0".into()),
        _ => {}
    }
    if let Some(c) = condition(pod, "PodScheduled") {
        if c.status == "False" {
            let why = c.message.as_deref().unwrap_or("no node fits yet");
            return Process::Waiting(format!("waiting for a node: {}", trimmed(why)));
        }
    }
    if condition(pod, "Ready").is_some_and(|c| c.status == "True") {
        return Process::Running;
    }
    let Some(engine) = engine_status(pod) else {
        return Process::Waiting(if condition(pod, "PodScheduled").is_some() {
            "creating the container".into()
        } else {
            "waiting to be scheduled".into()
        });
    };
    let restarts = engine.restart_count;
    let history = match (restarts, last_exit(engine)) {
        (0, _) => String::new(),
        (n, Some(exit)) => format!(" (restarted {n} times; last: {exit})"),
        (n, None) => format!(" (restarted {n} times)"),
    };
    if let Some(waiting) = engine.state.as_ref().and_then(|s| s.waiting.as_ref()) {
        let reason = waiting.reason.as_deref().unwrap_or("");
        let message = waiting.message.as_deref().map(trimmed).unwrap_or_default();
        return Process::Waiting(match reason {
            "CrashLoopBackOff" => format!(
                "crash-looping: restarted {restarts} times; last: {}",
                last_exit(engine).unwrap_or_else(|| "exited".into())
            ),
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" => {
                format!("cannot pull the engine image: {message}")
            }
            "CreateContainerConfigError" | "CreateContainerError" => {
                format!("cannot create the engine container: {message}")
            }
            "ContainerCreating" | "PodInitializing" => "creating the container".into(),
            "" => format!("starting{history}"),
            other => format!(
                "{other}{}{history}",
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            ),
        });
    }
    if engine
        .state
        .as_ref()
        .and_then(|s| s.running.as_ref())
        .is_some()
    {
        return Process::Waiting(format!("loading the model{history}"));
    }
    Process::Waiting(format!("{}{history}", phase.to_lowercase()))
}

/// Whether `tolerations` tolerate `taint` (Kubernetes's rule: the key matches, or the toleration has no key and
/// operator Exists; the value matches unless the operator is Exists; the effect matches unless empty).
fn tolerated(taint: &Taint, tolerations: &[Toleration]) -> bool {
    tolerations.iter().any(|t| {
        let exists = t.operator.as_deref() == Some("Exists");
        let key = match t.key.as_deref() {
            None | Some("") => exists,
            Some(k) => k == taint.key,
        };
        let value =
            exists || t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("");
        let effect = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == taint.effect);
        key && value && effect
    })
}

fn count(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> u32 {
    q.and_then(|q| q.0.trim().parse::<u32>().ok()).unwrap_or(0)
}

/// A GPU node as the fleet's inventory, or None for a node without NVIDIA GPUs. Its GPUs are its
/// `nvidia.com/gpu` capacity; those beyond what is allocatable are unhealthy (the device plugin withdraws a
/// failed GPU from allocatable). It takes new replicas while Ready, not cordoned, and with every
/// NoSchedule/NoExecute taint tolerated by the replicas' tolerations.
pub fn node_of(node: &KubeNode, tolerations: &[Toleration]) -> Option<Node> {
    let name = node.metadata.name.clone()?;
    let status = node.status.as_ref();
    let capacity = count(status.and_then(|s| s.capacity.as_ref()?.get(GPU_RESOURCE)));
    if capacity == 0 {
        return None;
    }
    let allocatable =
        count(status.and_then(|s| s.allocatable.as_ref()?.get(GPU_RESOURCE))).min(capacity);
    let labels = node.metadata.labels.as_ref();
    let product = labels
        .and_then(|l| l.get(GPU_PRODUCT_LABEL))
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    let memory_mib = labels
        .and_then(|l| l.get(GPU_MEMORY_LABEL))
        .and_then(|m| m.parse::<u64>().ok())
        .unwrap_or(0);
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let spec = node.spec.as_ref();
    let cordoned = spec.and_then(|s| s.unschedulable).unwrap_or(false);
    let taints_ok = spec
        .and_then(|s| s.taints.as_ref())
        .map(|taints| {
            taints
                .iter()
                .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
                .all(|t| tolerated(t, tolerations))
        })
        .unwrap_or(true);
    Some(Node {
        name,
        schedulable: ready && !cordoned && taints_ok,
        gpus: (0..capacity)
            .map(|index| Gpu {
                index,
                product: product.clone(),
                memory_mib,
                healthy: ready && index < allocatable,
                holder: None,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        let mut base = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        if let (Some(b), Some(o)) = (base.as_object_mut(), v.as_object()) {
            for (k, v) in o {
                b.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(base).unwrap()
    }

    fn waiting(p: Process) -> String {
        match p {
            Process::Waiting(w) => w,
            other => panic!("expected Waiting, got {other:?}"),
        }
    }

    #[test]
    fn a_pod_that_cannot_be_scheduled_says_the_schedulers_reason() {
        let p = pod(json!({"status": {"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]}}));
        assert_eq!(
            waiting(process_of(&p)),
            "waiting for a node: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
        );
    }

    #[test]
    fn readiness_is_the_ready_condition() {
        let loading = pod(json!({"status": {"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "vllm", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                "state": {"running": {"startedAt": "2026-12-07T10:00:00Z"}}}]}}));
        assert_eq!(waiting(process_of(&loading)), "loading the model");
        let ready = pod(json!({"status": {"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]}}));
        assert_eq!(process_of(&ready), Process::Running);
        let fresh = pod(json!({}));
        assert_eq!(waiting(process_of(&fresh)), "waiting to be scheduled");
    }

    #[test]
    fn a_crash_loop_names_its_restarts_and_last_exit() {
        let p = pod(json!({"status": {"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "vllm", "ready": false, "restartCount": 4, "image": "i", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}}));
        assert_eq!(
            waiting(process_of(&p)),
            "crash-looping: restarted 4 times; last: OOMKilled (exit code 137)"
        );
        let pull = pod(
            json!({"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "vllm", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "pull access denied"}}}]}}),
        );
        assert_eq!(
            waiting(process_of(&pull)),
            "cannot pull the engine image: pull access denied"
        );
    }

    #[test]
    fn eviction_failure_and_deletion_end_the_process() {
        let evicted = pod(json!({"status": {"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory."}}));
        assert_eq!(
            process_of(&evicted),
            Process::Exited("evicted: The node was low on resource: memory.".into())
        );
        let failed = pod(json!({"status": {"phase": "Failed", "reason": "DeadlineExceeded"}}));
        assert_eq!(
            process_of(&failed),
            Process::Exited("the pod failed: DeadlineExceeded".into())
        );
        let deleting = pod(
            json!({"metadata": {"name": "p", "deletionTimestamp": "2026-12-07T10:00:00Z"},
            "status": {"phase": "Running"}}),
        );
        assert_eq!(
            process_of(&deleting),
            Process::Exited("the pod is being deleted".into())
        );
    }

    fn node(v: serde_json::Value) -> KubeNode {
        let mut base = json!({"apiVersion": "v1", "kind": "Node"});
        if let (Some(b), Some(o)) = (base.as_object_mut(), v.as_object()) {
            for (k, v) in o {
                b.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn gpu_nodes_become_inventory_and_others_do_not() {
        let gpu_tol = crate::objects::tolerations(&crate::settings::KubeSettings::default());
        let n = node(json!({
            "metadata": {"name": "gpu-1", "labels": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                "nvidia.com/gpu.memory": "81559"}},
            "spec": {"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]},
            "status": {"capacity": {"nvidia.com/gpu": "8"}, "allocatable": {"nvidia.com/gpu": "7"},
                "conditions": [{"type": "Ready", "status": "True"}]}}));
        let inv = node_of(&n, &gpu_tol).unwrap();
        assert_eq!(inv.name, "gpu-1");
        assert!(inv.schedulable);
        assert_eq!(inv.gpus.len(), 8);
        assert_eq!(inv.gpus[0].product, "NVIDIA-H100-80GB-HBM3");
        assert_eq!(inv.gpus[0].memory_mib, 81559);
        assert_eq!(
            inv.gpus.iter().filter(|g| g.healthy).count(),
            7,
            "one GPU withdrawn by the device plugin"
        );
        assert!(
            !node_of(&n, &[]).unwrap().schedulable,
            "a GPU taint not tolerated"
        );
        let cordoned = node(
            json!({"metadata": {"name": "gpu-2"}, "spec": {"unschedulable": true},
            "status": {"capacity": {"nvidia.com/gpu": "4"}, "allocatable": {"nvidia.com/gpu": "4"},
                "conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert!(!node_of(&cordoned, &gpu_tol).unwrap().schedulable);
        let not_ready = node(json!({"metadata": {"name": "gpu-3"},
            "status": {"capacity": {"nvidia.com/gpu": "4"}, "conditions": [{"type": "Ready", "status": "False"}]}}));
        let inv = node_of(&not_ready, &gpu_tol).unwrap();
        assert!(!inv.schedulable && inv.gpus.iter().all(|g| !g.healthy));
        let cpu =
            node(json!({"metadata": {"name": "cpu-1"}, "status": {"capacity": {"cpu": "64"}}}));
        assert!(node_of(&cpu, &gpu_tol).is_none());
    }

    #[test]
    fn toleration_rules() {
        let taint = Taint {
            key: "dedicated".into(),
            value: Some("inference".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let t =
            |key: Option<&str>, op: &str, value: Option<&str>, effect: Option<&str>| Toleration {
                key: key.map(Into::into),
                operator: Some(op.into()),
                value: value.map(Into::into),
                effect: effect.map(Into::into),
                ..Default::default()
            };
        assert!(tolerated(
            &taint,
            &[t(Some("dedicated"), "Equal", Some("inference"), None)]
        ));
        assert!(!tolerated(
            &taint,
            &[t(Some("dedicated"), "Equal", Some("batch"), None)]
        ));
        assert!(tolerated(
            &taint,
            &[t(Some("dedicated"), "Exists", None, Some("NoSchedule"))]
        ));
        assert!(!tolerated(
            &taint,
            &[t(Some("dedicated"), "Exists", None, Some("NoExecute"))]
        ));
        assert!(
            tolerated(&taint, &[t(None, "Exists", None, None)]),
            "tolerate everything"
        );
    }
}
