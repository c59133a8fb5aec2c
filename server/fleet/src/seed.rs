//! On first start with the seed catalog, one deployment per model, so that a key made in the portal works at
//! once on the simulated fleet.

use std::collections::BTreeMap;
use tollgate_domain::{catalog::ModelStatus, fleet::DeploymentInput};
use tollgate_store::{new_id, now_millis, DeploymentRow, Store, StoreError};

/// Creates a one-GPU deployment (one replica, up to two under load) for every model that is not retired, has no
/// deployment yet, and is not served by statically configured engines (`skip`). Returns how many it made.
pub async fn seed_deployments(
    store: &Store,
    skip: &BTreeMap<String, Vec<String>>,
) -> Result<usize, StoreError> {
    let existing = store.deployments().await?;
    let mut made = 0;
    for m in store.all_models().await? {
        if m.status == ModelStatus::Retired.as_str()
            || skip.contains_key(&m.id)
            || existing.iter().any(|d| d.model_id == m.id)
        {
            continue;
        }
        let spec = DeploymentInput {
            model_id: m.id.clone(),
            engine: Default::default(),
            gpus_per_replica: 1,
            min_gpu_memory_gib: 0,
            gpu_products: Vec::new(),
            min_replicas: 1,
            max_replicas: 2,
            target_requests_per_replica: 8,
            priority: 0,
            scale_to_zero_after_s: 300,
            unknown: Default::default(),
        };
        let now = now_millis();
        let id = new_id("dep");
        let Ok(json) = serde_json::to_string(&spec) else {
            continue;
        };
        store
            .create_deployment(
                &DeploymentRow {
                    id: id.clone(),
                    model_id: m.id.clone(),
                    spec: json,
                    generation: 1,
                    desired_replicas: 1,
                    scale_reason: Some("seeded with the catalog".into()),
                    condition: None,
                    deleting: 0,
                    gpu_ms: 0,
                    created_at: now,
                    updated_at: now,
                },
                &crate::model::event(
                    &id,
                    None,
                    now,
                    "created",
                    "seeded with the catalog on first start".into(),
                ),
            )
            .await?;
        made += 1;
    }
    Ok(made)
}
