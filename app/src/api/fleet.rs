//! The fleet, for platform admins: GPUs, deployments, their replicas and events.

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};
use tollgate_domain::fleet::{DeploymentView, FleetEventView, NodeView};

/// What the fleet page shows, read at once (the live panel polls it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetStatus {
    pub driver: String,
    pub nodes: Vec<NodeView>,
    pub deployments: Vec<DeploymentView>,
}

#[server(endpoint = "fleet/overview", input = GetUrl)]
pub async fn fleet_overview() -> Result<FleetStatus, AppError> {
    let (fleet, caller) = super::ssr::fleet_caller().await?;
    Ok(FleetStatus {
        driver: fleet.driver_kind().to_string(),
        nodes: fleet.nodes(&caller).await?,
        deployments: fleet.deployments(&caller).await?,
    })
}

/// A deployment, its latest events and its replicas' last output lines (the live panel polls it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentPage {
    pub deployment: DeploymentView,
    pub events: Vec<FleetEventView>,
    /// Replica id -> its engine's last output lines (local processes; simulated engines have none).
    pub logs: Vec<(String, Vec<String>)>,
}

#[server(endpoint = "fleet/deployment", input = GetUrl)]
pub async fn deployment_detail(id: String) -> Result<DeploymentPage, AppError> {
    let (fleet, caller) = super::ssr::fleet_caller().await?;
    let deployment = fleet.deployment(&caller, &id).await?;
    let events = fleet.events(&caller, &id, None, 50).await?;
    let logs = fleet.deployment_logs(&caller, &id, 40).await?;
    Ok(DeploymentPage {
        deployment,
        events,
        logs,
    })
}

/// The form's fields, as the browser posts them (numbers as text, lists comma- or space-separated).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeploymentForm {
    pub model_id: String,
    pub gpus_per_replica: String,
    pub gpu_products: String,
    pub min_gpu_memory_gib: String,
    pub min_replicas: String,
    pub max_replicas: String,
    pub target_requests_per_replica: String,
    pub priority: String,
    pub scale_to_zero_after_s: String,
    pub max_model_len: String,
    pub dtype: String,
    pub extra_args: String,
}

#[cfg(feature = "ssr")]
fn number<T: std::str::FromStr>(field: &str, raw: &str, default: T) -> Result<T, AppError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(default);
    }
    raw.parse().map_err(|_| {
        AppError::Domain(tollgate_domain::DomainError::invalid(format!(
            "{field} must be a whole number"
        )))
    })
}

#[cfg(feature = "ssr")]
impl DeploymentForm {
    fn input(&self) -> Result<tollgate_domain::fleet::DeploymentInput, AppError> {
        use tollgate_domain::fleet::{DeploymentInput, EngineArgs};
        let max_model_len: u32 = number("Max model length", &self.max_model_len, 0)?;
        Ok(DeploymentInput {
            model_id: self.model_id.clone(),
            engine: EngineArgs {
                tensor_parallel_size: None,
                max_model_len: (max_model_len > 0).then_some(max_model_len),
                max_num_seqs: None,
                dtype: Some(self.dtype.trim().to_string()).filter(|d| !d.is_empty()),
                extra_args: self
                    .extra_args
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
            },
            gpus_per_replica: number("GPUs per replica", &self.gpus_per_replica, 1)?,
            min_gpu_memory_gib: number("Minimum GPU memory", &self.min_gpu_memory_gib, 0)?,
            gpu_products: self
                .gpu_products
                .split([',', ' '])
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            min_replicas: number("Min replicas", &self.min_replicas, 1)?,
            max_replicas: number("Max replicas", &self.max_replicas, 1)?,
            target_requests_per_replica: number(
                "Target requests per replica",
                &self.target_requests_per_replica,
                8,
            )?,
            priority: number("Priority", &self.priority, 0)?,
            scale_to_zero_after_s: number("Scale to zero after", &self.scale_to_zero_after_s, 300)?,
            unknown: Default::default(),
        })
    }
}

/// Creates a deployment, then shows it.
#[server(endpoint = "fleet/create")]
pub async fn create_deployment(form: DeploymentForm) -> Result<DeploymentView, AppError> {
    let (fleet, caller) = super::ssr::fleet_caller().await?;
    let created = fleet.create(&caller, form.input()?).await?;
    leptos_axum::redirect(&format!("/admin/fleet/{}", created.id));
    Ok(created)
}

/// Sets a deployment's replica bounds (and priority), then shows it again.
#[server(endpoint = "fleet/scale")]
pub async fn scale_deployment(
    id: String,
    min_replicas: String,
    max_replicas: String,
    priority: String,
) -> Result<DeploymentView, AppError> {
    let (fleet, caller) = super::ssr::fleet_caller().await?;
    let patch = tollgate_domain::fleet::DeploymentPatch {
        min_replicas: Some(number("Min replicas", &min_replicas, 1)?),
        max_replicas: Some(number("Max replicas", &max_replicas, 1)?),
        priority: Some(number("Priority", &priority, 0)?),
        ..Default::default()
    };
    let d = fleet.update(&caller, &id, &patch).await?;
    leptos_axum::redirect(&format!("/admin/fleet/{id}"));
    Ok(d)
}

/// Deletes a deployment (its replicas drain first), then returns to the fleet.
#[server(endpoint = "fleet/delete")]
pub async fn delete_deployment(id: String) -> Result<DeploymentView, AppError> {
    let (fleet, caller) = super::ssr::fleet_caller().await?;
    let d = fleet.delete(&caller, &id).await?;
    leptos_axum::redirect("/admin/fleet");
    Ok(d)
}

/// Replaces the engine's arguments (a rolling update: new replicas start, old ones drain as they become ready).
#[server(endpoint = "fleet/engine")]
pub async fn update_engine(
    id: String,
    max_model_len: String,
    max_num_seqs: String,
    dtype: String,
    extra_args: String,
) -> Result<DeploymentView, AppError> {
    let (fleet, caller) = super::ssr::fleet_caller().await?;
    let optional = |field: &str, raw: &str| -> Result<Option<u32>, AppError> {
        Ok(Some(number(field, raw, 0u32)?).filter(|n| *n > 0))
    };
    let engine = tollgate_domain::fleet::EngineArgs {
        tensor_parallel_size: None,
        max_model_len: optional("Max model length", &max_model_len)?,
        max_num_seqs: optional("Max sequences", &max_num_seqs)?,
        dtype: Some(dtype.trim().to_string()).filter(|d| !d.is_empty()),
        extra_args: extra_args.split_whitespace().map(str::to_string).collect(),
    };
    let patch = tollgate_domain::fleet::DeploymentPatch {
        engine: Some(engine),
        ..Default::default()
    };
    let d = fleet.update(&caller, &id, &patch).await?;
    leptos_axum::redirect(&format!("/admin/fleet/{id}"));
    Ok(d)
}
