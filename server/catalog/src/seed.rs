//! The catalog a new installation starts with (seed/catalog.toml), loaded only into an empty catalog.

use serde::Deserialize;
use tollgate_domain::{catalog::ModelInput, plan::PlanInput, DomainError};
use tollgate_store::Store;

const SEED: &str = include_str!("../seed/catalog.toml");

#[derive(Deserialize)]
struct SeedFile {
    models: Vec<ModelInput>,
    plans: Vec<PlanInput>,
}

/// Inserts the seed catalog when no model exists yet. Returns how many models it added.
pub async fn seed_if_empty(store: &Store) -> Result<usize, String> {
    if store.count_models().await.map_err(|e| e.to_string())? > 0 {
        return Ok(0);
    }
    let seed: SeedFile =
        toml::from_str(SEED).map_err(|e| format!("the seed catalog does not parse: {e}"))?;
    let invalid = |what: &str, e: DomainError| format!("seed {what}: {e}");
    // Replacements refer to other seeded models: insert the ones without a replacement first.
    let mut models = seed
        .models
        .iter()
        .map(|m| m.validate())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("model", e))?;
    models.sort_by_key(|m| m.replacement_id.is_some());
    for m in &models {
        store
            .insert_model(m)
            .await
            .map_err(|e| format!("seed model {}: {e}", m.id))?;
    }
    for p in &seed.plans {
        let plan = p.validate().map_err(|e| invalid("plan", e))?;
        store
            .create_plan(&plan)
            .await
            .map_err(|e| format!("seed plan {}: {e}", plan.name))?;
    }
    Ok(models.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_is_valid_and_covers_every_task() {
        let seed: SeedFile = toml::from_str(SEED).unwrap();
        let models: Vec<_> = seed.models.iter().map(|m| m.validate().unwrap()).collect();
        assert!(models.len() >= 8);
        for task in tollgate_domain::catalog::Task::ALL {
            assert!(models.iter().any(|m| m.task == *task), "{task}");
        }
        for m in &models {
            if let Some(r) = &m.replacement_id {
                assert!(
                    models.iter().any(|o| &o.id == r),
                    "{} names a missing replacement",
                    m.id
                );
            }
        }
        for p in &seed.plans {
            let plan = p.validate().unwrap();
            assert!(
                plan.models
                    .iter()
                    .all(|id| models.iter().any(|m| &m.id == id)),
                "{}",
                plan.name
            );
        }
    }
}
