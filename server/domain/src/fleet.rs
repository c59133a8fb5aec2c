//! The fleet as platform admins see and change it: deployments of catalog models onto GPUs, their replicas, the
//! GPU inventory and the events of each deployment. The rules here are the ones a form checks before anything is
//! stored (what a deployment may ask for); placement and scaling decisions live in `tollgate-fleet`'s `rules`.

use crate::{time::Millis, DomainError};
use serde::{Deserialize, Serialize};

/// Where a replica is in its life. Desired state is the deployment's; this is what the controller last saw.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    /// Not placed yet: no GPUs fit (the replica's `reason` says why), or waiting for its restart time.
    Pending,
    /// Placed and started; not answering `/health` yet (a vLLM engine loads its weights first).
    Starting,
    /// Answers `/health`: in the gateway's routes.
    Ready,
    /// Out of the routes; in-flight requests finish (bounded by the drain grace) before it stops.
    Draining,
    /// Ended on purpose; its GPUs are free.
    Stopped,
    /// Exited or stopped answering; restarted with backoff, or replaced.
    Failed,
}

impl ReplicaState {
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Starting,
        Self::Ready,
        Self::Draining,
        Self::Stopped,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Draining => "draining",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Counts towards the deployment's replicas (is, or is becoming, serving capacity).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Self::Pending | Self::Starting | Self::Ready | Self::Failed
        )
    }

    /// Holds GPUs.
    pub fn holds_gpus(self) -> bool {
        matches!(
            self,
            Self::Starting | Self::Ready | Self::Draining | Self::Failed
        )
    }
}

/// Whether a catalog model can answer now, as the gateway's routes say (the portal's badge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Serving {
    /// A ready replica serves it.
    Ready,
    /// Replicas are on their way: requests wait for them (or are told when to retry).
    Starting,
    /// Deployed and scaled to zero: the first request starts it.
    Idle,
    /// Nothing serves it.
    #[default]
    Unavailable,
}

impl Serving {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ready => "serving",
            Self::Starting => "starting",
            Self::Idle => "idle (starts on request)",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The engine's configuration: vLLM's arguments that Tollgate sets, plus any others the admin adds.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineArgs {
    /// `--tensor-parallel-size`; defaults to the GPUs per replica, and must equal it when given.
    #[serde(default)]
    pub tensor_parallel_size: Option<u32>,
    /// `--max-model-len`.
    #[serde(default)]
    pub max_model_len: Option<u32>,
    /// `--max-num-seqs`.
    #[serde(default)]
    pub max_num_seqs: Option<u32>,
    /// `--dtype` (auto, half, float16, bfloat16, float, float32).
    #[serde(default)]
    pub dtype: Option<String>,
    /// Further arguments passed as they are, e.g. `["--enable-prefix-caching"]`.
    #[serde(default)]
    pub extra_args: Vec<String>,
}

/// The arguments Tollgate itself sets for every replica: an admin cannot set them through `extra_args`.
pub const RESERVED_ARGS: [&str; 7] = [
    "--host",
    "--port",
    "--model",
    "--served-model-name",
    "--tensor-parallel-size",
    "--api-key",
    "--uds",
];

const DTYPES: [&str; 6] = ["auto", "half", "float16", "bfloat16", "float", "float32"];

impl EngineArgs {
    /// The command-line arguments (after the model) for a replica with `gpus` GPUs.
    pub fn to_args(&self, gpus: u32) -> Vec<String> {
        let mut args = vec![
            "--tensor-parallel-size".to_string(),
            self.tensor_parallel_size.unwrap_or(gpus).to_string(),
        ];
        if let Some(n) = self.max_model_len {
            args.extend(["--max-model-len".to_string(), n.to_string()]);
        }
        if let Some(n) = self.max_num_seqs {
            args.extend(["--max-num-seqs".to_string(), n.to_string()]);
        }
        if let Some(d) = &self.dtype {
            args.extend(["--dtype".to_string(), d.clone()]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn check(&self, gpus: u32) -> Result<(), DomainError> {
        if let Some(tp) = self.tensor_parallel_size {
            if tp != gpus {
                return Err(DomainError::invalid(format!(
                    "the tensor-parallel size ({tp}) must equal the GPUs per replica ({gpus})"
                )));
            }
        }
        if self.max_model_len == Some(0) || self.max_num_seqs == Some(0) {
            return Err(DomainError::invalid(
                "max model length and max sequences must be at least 1",
            ));
        }
        if let Some(d) = &self.dtype {
            if !DTYPES.contains(&d.as_str()) {
                return Err(DomainError::invalid(format!(
                    "unknown dtype '{d}'; use one of {}",
                    DTYPES.join(", ")
                )));
            }
        }
        if self.extra_args.len() > 64 {
            return Err(DomainError::invalid("at most 64 extra engine arguments"));
        }
        for a in &self.extra_args {
            if a.is_empty() || a.len() > 512 || a.chars().any(char::is_control) {
                return Err(DomainError::invalid(
                    "each extra engine argument must be 1 to 512 printable characters",
                ));
            }
            let flag = a.split('=').next().unwrap_or(a);
            if RESERVED_ARGS.contains(&flag) {
                return Err(DomainError::invalid(format!(
                    "{flag} is set by Tollgate for each replica; remove it from the extra arguments"
                )));
            }
        }
        Ok(())
    }
}

/// A deployment as created: what to run, on what, and how many.
///
/// Unknown fields are kept aside and refused by `validate` (not with serde's `deny_unknown_fields`, which would
/// also forbid the fields a `DeploymentView` adds beside this struct in its schema).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentInput {
    /// The catalog model to serve.
    pub model_id: String,
    #[serde(default)]
    pub engine: EngineArgs,
    /// GPUs per replica, all on one node (the tensor-parallel size).
    #[serde(default = "one")]
    pub gpus_per_replica: u32,
    /// Each GPU must have at least this much memory (GiB); 0 = any.
    #[serde(default)]
    pub min_gpu_memory_gib: u32,
    /// GPU products the replicas may run on (e.g. `H100-80GB`); empty = any.
    #[serde(default)]
    pub gpu_products: Vec<String>,
    #[serde(default = "one")]
    pub min_replicas: u32,
    #[serde(default = "one")]
    pub max_replicas: u32,
    /// Requests (running or waiting) one replica should carry before another is added.
    #[serde(default = "default_target")]
    pub target_requests_per_replica: u32,
    /// Higher runs first and may drain lower ones when GPUs are short.
    #[serde(default)]
    pub priority: i32,
    /// With `min_replicas` 0: stop the last replica after this many seconds without requests.
    #[serde(default = "default_idle")]
    pub scale_to_zero_after_s: u32,
    /// Fields this type does not know, refused by `validate`.
    #[serde(flatten, skip_serializing, default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

fn one() -> u32 {
    1
}
fn default_target() -> u32 {
    8
}
fn default_idle() -> u32 {
    300
}

/// A change to a deployment: absent fields keep their value. A change to the engine's arguments rolls the
/// replicas over to the new ones, keeping serving capacity.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentPatch {
    #[serde(default)]
    pub engine: Option<EngineArgs>,
    #[serde(default)]
    pub min_replicas: Option<u32>,
    #[serde(default)]
    pub max_replicas: Option<u32>,
    #[serde(default)]
    pub target_requests_per_replica: Option<u32>,
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(default)]
    pub scale_to_zero_after_s: Option<u32>,
}

/// The most replicas one deployment may ask for.
pub const MAX_REPLICAS: u32 = 256;

impl DeploymentInput {
    /// Checks what can be checked without the inventory; the fleet checks GPUs and products against it.
    pub fn validate(&mut self) -> Result<(), DomainError> {
        if let Some(field) = self.unknown.keys().next() {
            return Err(DomainError::invalid(format!(
                "unknown field '{field}' in the deployment"
            )));
        }
        self.model_id = self.model_id.trim().to_string();
        if self.model_id.is_empty() {
            return Err(DomainError::invalid("choose a model to deploy"));
        }
        if self.gpus_per_replica == 0 || self.gpus_per_replica > 64 {
            return Err(DomainError::invalid(
                "GPUs per replica must be between 1 and 64",
            ));
        }
        self.engine.check(self.gpus_per_replica)?;
        check_scale(
            self.min_replicas,
            self.max_replicas,
            self.target_requests_per_replica,
        )?;
        let mut products = Vec::new();
        for p in self.gpu_products.iter().map(|p| p.trim()) {
            if p.is_empty() || p.len() > 64 || p.chars().any(char::is_control) {
                return Err(DomainError::invalid(
                    "GPU product names are 1 to 64 printable characters",
                ));
            }
            if !products.iter().any(|q: &String| q.eq_ignore_ascii_case(p)) {
                products.push(p.to_string());
            }
        }
        self.gpu_products = products;
        Ok(())
    }

    /// Applies a patch, then validates the result as a whole.
    pub fn patched(&self, patch: &DeploymentPatch) -> Result<Self, DomainError> {
        let mut next = self.clone();
        if let Some(e) = &patch.engine {
            next.engine = e.clone();
        }
        if let Some(v) = patch.min_replicas {
            next.min_replicas = v;
        }
        if let Some(v) = patch.max_replicas {
            next.max_replicas = v;
        }
        if let Some(v) = patch.target_requests_per_replica {
            next.target_requests_per_replica = v;
        }
        if let Some(v) = patch.priority {
            next.priority = v;
        }
        if let Some(v) = patch.scale_to_zero_after_s {
            next.scale_to_zero_after_s = v;
        }
        next.validate()?;
        Ok(next)
    }
}

fn check_scale(min: u32, max: u32, target: u32) -> Result<(), DomainError> {
    if max == 0 {
        return Err(DomainError::invalid("max replicas must be at least 1"));
    }
    if min > max {
        return Err(DomainError::invalid(format!(
            "min replicas ({min}) cannot be more than max replicas ({max})"
        )));
    }
    if max > MAX_REPLICAS {
        return Err(DomainError::invalid(format!(
            "at most {MAX_REPLICAS} replicas per deployment"
        )));
    }
    if target == 0 {
        return Err(DomainError::invalid(
            "the target requests per replica must be at least 1",
        ));
    }
    Ok(())
}

/// One replica as the portal and the API show it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaView {
    pub id: String,
    pub state: ReplicaState,
    /// The node its GPUs are on (None while pending).
    pub node: Option<String>,
    /// GPU indices on that node.
    pub gpus: Vec<u32>,
    /// Where the gateway reaches it.
    pub base_url: Option<String>,
    pub restarts: u32,
    pub last_error: Option<String>,
    /// Why it is pending, or what it waits for, in words.
    pub reason: Option<String>,
    /// Which version of the deployment's engine arguments it runs.
    pub generation: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub since: Millis,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentView {
    pub id: String,
    /// What the admin asked for (`model_id`, GPUs, replicas, engine arguments), at the top level of the JSON.
    #[serde(flatten)]
    pub spec: DeploymentInput,
    /// How many replicas the autoscaler wants now, between min and max.
    pub desired_replicas: u32,
    pub ready_replicas: u32,
    /// Why the desired count is what it is, in words.
    pub scale_reason: Option<String>,
    /// A problem that needs an admin (engine arguments the driver refuses, say), in words.
    pub condition: Option<String>,
    pub generation: u32,
    /// GPU-seconds held by this deployment's replicas so far.
    pub gpu_seconds: f64,
    pub replicas: Vec<ReplicaView>,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub created_at: Millis,
}

/// One GPU of the inventory.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuView {
    pub index: u32,
    pub product: String,
    pub memory_mib: u64,
    pub healthy: bool,
    /// The replica holding it, and its deployment.
    pub replica: Option<String>,
    pub deployment: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub name: String,
    pub schedulable: bool,
    pub gpus: Vec<GpuView>,
}

/// Something that happened to a deployment or one of its replicas.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetEventView {
    pub id: String,
    pub deployment_id: String,
    pub replica_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub at: Millis,
    /// A short machine-readable word: created, placed, started, ready, failed, restarted, draining, stopped,
    /// scaled, preempted, pending, updated, deleted.
    pub kind: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> DeploymentInput {
        serde_json::from_str(r#"{"model_id":" llama "}"#).unwrap()
    }

    #[test]
    fn defaults_make_a_valid_single_gpu_deployment() {
        let mut d = input();
        d.validate().unwrap();
        assert_eq!(d.model_id, "llama");
        assert_eq!(
            (d.gpus_per_replica, d.min_replicas, d.max_replicas),
            (1, 1, 1)
        );
        assert_eq!(d.engine.to_args(1), vec!["--tensor-parallel-size", "1"]);
    }

    #[test]
    fn bad_input_is_refused_in_words() {
        let cases: Vec<(&str, &str)> = vec![
            (r#"{"model_id":""}"#, "choose a model to deploy"),
            (
                r#"{"model_id":"m","min_replicas":3,"max_replicas":2}"#,
                "min replicas (3) cannot be more than max replicas (2)",
            ),
            (
                r#"{"model_id":"m","max_replicas":0,"min_replicas":0}"#,
                "max replicas must be at least 1",
            ),
            (
                r#"{"model_id":"m","gpus_per_replica":0}"#,
                "GPUs per replica must be between 1 and 64",
            ),
            (
                r#"{"model_id":"m","gpus_per_replica":2,"engine":{"tensor_parallel_size":4}}"#,
                "the tensor-parallel size (4) must equal the GPUs per replica (2)",
            ),
            (
                r#"{"model_id":"m","engine":{"extra_args":["--port=9"]}}"#,
                "--port is set by Tollgate for each replica; remove it from the extra arguments",
            ),
            (
                r#"{"model_id":"m","engine":{"dtype":"int3"}}"#,
                "unknown dtype 'int3'; use one of auto, half, float16, bfloat16, float, float32",
            ),
            (
                r#"{"model_id":"m","engine":{"extra_args":["a\nb"]}}"#,
                "each extra engine argument must be 1 to 512 printable characters",
            ),
            (
                r#"{"model_id":"m","max_replicas":1000}"#,
                "at most 256 replicas per deployment",
            ),
            (
                r#"{"model_id":"m","target_requests_per_replica":0}"#,
                "the target requests per replica must be at least 1",
            ),
        ];
        for (json, message) in cases {
            let mut d: DeploymentInput = serde_json::from_str(json).unwrap();
            assert_eq!(
                d.validate(),
                Err(DomainError::Invalid(message.into())),
                "{json}"
            );
        }
        let mut unknown: DeploymentInput =
            serde_json::from_str(r#"{"model_id":"m","gpus":2}"#).unwrap();
        assert_eq!(
            unknown.validate(),
            Err(DomainError::invalid(
                "unknown field 'gpus' in the deployment"
            )),
            "unknown fields are refused, not ignored"
        );
    }

    #[test]
    fn products_are_trimmed_and_deduplicated() {
        let mut d: DeploymentInput = serde_json::from_str(
            r#"{"model_id":"m","gpu_products":[" H100-80GB","h100-80gb","A100-40GB"]}"#,
        )
        .unwrap();
        d.validate().unwrap();
        assert_eq!(d.gpu_products, vec!["H100-80GB", "A100-40GB"]);
    }

    #[test]
    fn a_patch_is_validated_as_a_whole() {
        let mut d = input();
        d.validate().unwrap();
        let p = DeploymentPatch {
            min_replicas: Some(2),
            ..Default::default()
        };
        assert!(d.patched(&p).is_err(), "min 2 > max 1");
        let p = DeploymentPatch {
            min_replicas: Some(2),
            max_replicas: Some(4),
            ..Default::default()
        };
        let n = d.patched(&p).unwrap();
        assert_eq!((n.min_replicas, n.max_replicas), (2, 4));
    }

    #[test]
    fn engine_args_become_vllm_flags() {
        let e = EngineArgs {
            tensor_parallel_size: None,
            max_model_len: Some(8192),
            max_num_seqs: Some(64),
            dtype: Some("bfloat16".into()),
            extra_args: vec!["--enable-prefix-caching".into()],
        };
        assert_eq!(
            e.to_args(2).join(" "),
            "--tensor-parallel-size 2 --max-model-len 8192 --max-num-seqs 64 --dtype bfloat16 --enable-prefix-caching"
        );
    }

    #[test]
    fn a_deployment_view_round_trips_with_its_spec_at_the_top_level() {
        let mut spec = input();
        spec.validate().unwrap();
        let v = DeploymentView {
            id: "d1".into(),
            spec,
            desired_replicas: 1,
            ready_replicas: 0,
            scale_reason: None,
            condition: None,
            generation: 1,
            gpu_seconds: 0.0,
            replicas: vec![],
            created_at: Millis(1),
        };
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["model_id"], "llama");
        assert_eq!(json["max_replicas"], 1);
        let back: DeploymentView = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn states_round_trip_and_classify() {
        for s in ReplicaState::ALL {
            assert_eq!(ReplicaState::parse(s.as_str()), Some(s));
        }
        assert!(ReplicaState::Ready.is_live() && !ReplicaState::Draining.is_live());
        assert!(!ReplicaState::Pending.holds_gpus() && ReplicaState::Draining.holds_gpus());
    }
}
