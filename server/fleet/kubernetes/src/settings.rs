//! What the Kubernetes driver is configured with (the server fills it from `TOLLGATE_FLEET_KUBERNETES_*`).

use k8s_openapi::api::core::v1::PodTemplateSpec;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct KubeSettings {
    /// Where replicas' Pods and Services go; empty: the kubeconfig's namespace (in a pod: its own), else `default`.
    pub namespace: String,
    /// The vLLM image, e.g. `vllm/vllm-openai:v0.11.0`.
    pub image: String,
    pub image_pull_secrets: Vec<String>,
    /// A PersistentVolumeClaim mounted as the Hugging Face cache; None: an emptyDir (weights load on every start).
    pub model_cache_pvc: Option<String>,
    /// Extra pod fields (node selector, tolerations, resources of the `vllm` container, ...) the driver's own
    /// fields are laid over.
    pub pod_template: Option<PodTemplateSpec>,
    /// The port vLLM listens on inside the pod and the Service exposes.
    pub port: u16,
    /// How long an engine may take to load before its startup probe gives up (the fleet's start timeout).
    pub start_timeout: Duration,
    /// How long a Pod has to finish after deletion (SIGTERM to SIGKILL).
    pub termination_grace: Duration,
    /// The longest one API call may take before it counts as a transient failure.
    pub api_timeout: Duration,
}

impl Default for KubeSettings {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            image: "vllm/vllm-openai:v0.11.0".into(),
            image_pull_secrets: Vec::new(),
            model_cache_pvc: None,
            pod_template: None,
            port: 8000,
            start_timeout: Duration::from_secs(900),
            termination_grace: Duration::from_secs(30),
            api_timeout: Duration::from_secs(10),
        }
    }
}

/// Reads a pod template from YAML (or JSON, which is YAML): a PodTemplateSpec, `metadata` and `spec`.
pub fn parse_pod_template(text: &str) -> Result<PodTemplateSpec, String> {
    serde_saphyr::from_str::<PodTemplateSpec>(text)
        .map_err(|e| format!("the engine pod template is not a PodTemplateSpec: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_parses_and_a_wrong_one_says_why() {
        let t = parse_pod_template(
            "metadata:\n  labels:\n    team: ml\nspec:\n  nodeSelector:\n    pool: gpu\n  containers:\n  - name: vllm\n    resources:\n      requests:\n        cpu: '8'\n",
        )
        .unwrap();
        let spec = t.spec.unwrap();
        assert_eq!(spec.node_selector.unwrap()["pool"], "gpu");
        assert_eq!(spec.containers[0].name, "vllm");
        let err = parse_pod_template("spec:\n  containers: 7\n").unwrap_err();
        assert!(err.contains("PodTemplateSpec"), "{err}");
    }
}
