//! Which engines serve which catalog model, until the fleet places replicas: the configured URLs, under the name
//! the catalog says the engines serve the model as.

use std::collections::BTreeMap;
use tollgate_domain::catalog::{ModelStatus, ModelView};
use tollgate_gateway::{ModelRoute, Routes};

/// Routes for every configured model that is in the catalog and not retired.
pub fn routes(models: &[ModelView], engines: &BTreeMap<String, Vec<String>>) -> Routes {
    let mut routes = Routes::default();
    for (model_id, replicas) in engines {
        match models
            .iter()
            .find(|m| &m.id == model_id && m.status != ModelStatus::Retired)
        {
            Some(m) => {
                routes.models.insert(
                    m.id.clone(),
                    ModelRoute {
                        served_name: m.upstream_name.clone(),
                        replicas: replicas.clone(),
                        starting: 0,
                    },
                );
            }
            None => {
                tracing::warn!(model = %model_id, "engines are configured for a model that is not in the catalog (or is retired)")
            }
        }
    }
    routes
}
