//! Drivers run replicas somewhere: one trait, chosen by configuration. The controller calls them; they report
//! what they see (`observe`), never decide. Replicas may outlive this process (local processes, Kubernetes pods):
//! a driver finds them again by their handle, which the controller stores, so a new controller adopts them.

pub mod local;
pub mod nvidia_smi;
pub mod sim;

use crate::rules::lifecycle::Process;
use crate::rules::placement::Node;

/// What a driver needs to start one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSpec {
    pub replica_id: String,
    pub deployment_id: String,
    /// The name the engine serves the model as (vLLM's model argument and `--served-model-name`).
    pub served_name: String,
    pub node: String,
    pub gpus: Vec<u32>,
    /// vLLM arguments after the model (`EngineArgs::to_args`).
    pub args: Vec<String>,
    /// The deployment's allowed GPU products (empty: any) and least memory per GPU (0: any), for drivers whose
    /// platform places replicas itself (Kubernetes: node affinity).
    pub gpu_products: Vec<String>,
    pub min_gpu_memory_mib: u64,
    /// The model's context length in the catalog (0: unknown). A real engine reads it from the model's own config
    /// unless `--max-model-len` says otherwise; the simulator has no model config, so its driver passes this.
    pub context_length: u32,
}

/// A started replica: how to find it again, and where the gateway reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub handle: String,
    pub base_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// Worth retrying: a port was taken, the API timed out.
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help until an admin changes something (engine arguments refused, the command missing).
    #[error("{0}")]
    Permanent(String),
}

impl DriverError {
    /// The label of `tollgate_fleet_failures_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Transient(_) => "driver_transient",
            Self::Permanent(_) => "driver_permanent",
        }
    }
}

#[async_trait::async_trait]
pub trait Driver: Send + Sync + 'static {
    /// `simulator`, `local`, `kubernetes`.
    fn kind(&self) -> &'static str;

    /// The nodes and GPUs there are (holders are the controller's business, not the driver's).
    async fn inventory(&self) -> Result<Vec<Node>, DriverError>;

    /// Refuses engine arguments this driver's engine would not start with (checked before a deployment is stored).
    fn check_args(&self, served_name: &str, args: &[String]) -> Result<(), String>;

    async fn start(&self, spec: &ReplicaSpec) -> Result<Started, DriverError>;

    /// Whether the replica behind `handle` still runs.
    async fn observe(&self, handle: &str) -> Process;

    /// True when the platform checks the engine's `/health` itself and `observe` says `Running` only while it
    /// passes (Kubernetes's readiness probe): the controller then takes that as the health instead of probing
    /// an address it may not reach. False: the controller probes `/health` itself.
    fn reports_readiness(&self) -> bool {
        false
    }

    /// Stops the replica; stopping one that is gone is not an error.
    async fn stop(&self, handle: &str) -> Result<(), DriverError>;

    /// Stops replicas this driver runs that no replica row names (`known` holds every stored handle): left by a
    /// controller that died between starting one and writing its row. Returns the handles it stopped. Drivers
    /// whose replicas end with their process (the simulator) or that keep no list (local processes) have none.
    async fn collect_garbage(&self, _known: &std::collections::HashSet<String>) -> Vec<String> {
        Vec::new()
    }

    /// The replica's last output lines, oldest first (bounded).
    async fn logs(&self, _handle: &str, _replica_id: &str) -> Vec<String> {
        Vec::new()
    }
}

/// No driver (`TOLLGATE_FLEET_DRIVER=none`): only statically configured engines serve; deployments are refused.
pub struct NoDriver;

#[async_trait::async_trait]
impl Driver for NoDriver {
    fn kind(&self) -> &'static str {
        "none"
    }

    async fn inventory(&self) -> Result<Vec<Node>, DriverError> {
        Ok(Vec::new())
    }

    fn check_args(&self, _served_name: &str, _args: &[String]) -> Result<(), String> {
        Err("no fleet driver is configured (TOLLGATE_FLEET_DRIVER=none)".into())
    }

    async fn start(&self, _spec: &ReplicaSpec) -> Result<Started, DriverError> {
        Err(DriverError::Permanent(
            "no fleet driver is configured (TOLLGATE_FLEET_DRIVER=none)".into(),
        ))
    }

    async fn observe(&self, _handle: &str) -> Process {
        Process::None
    }

    async fn stop(&self, _handle: &str) -> Result<(), DriverError> {
        Ok(())
    }
}
