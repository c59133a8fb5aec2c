//! The gateway's routes, made in one place from three sources: the catalog's served names (from the key
//! refresher), the fleet's replicas (from the database, under their own `routes` revision, so every server
//! replica follows the controller without reloading keys) and the engines configured in `TOLLGATE_ENGINES`, which
//! Tollgate does not manage. Each change rebuilds the whole table and swaps it in, in order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tollgate_domain::catalog::{ModelStatus, ModelView};
use tollgate_gateway::{Gateway, ModelRoute, Routes};
use tollgate_store::{RouteRow, Store};

/// What the fleet says about routes: its replicas, and the models it serves (also those at zero replicas).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetRoutes {
    pub replicas: Vec<RouteRow>,
    pub deployed: Vec<String>,
}

/// The table: for each catalog model that is not retired, the static engines and the fleet's ready replicas;
/// replicas on their way count as `starting`, and a deployed model with none at all can be woken.
pub fn routes(
    models: &[ModelView],
    engines: &BTreeMap<String, Vec<String>>,
    fleet: &FleetRoutes,
) -> Routes {
    let mut routes = Routes::default();
    for m in models.iter().filter(|m| m.status != ModelStatus::Retired) {
        let mut route = ModelRoute {
            served_name: m.upstream_name.clone(),
            ..ModelRoute::default()
        };
        if let Some(urls) = engines.get(&m.id) {
            route.replicas.extend(urls.iter().cloned());
        }
        for r in fleet.replicas.iter().filter(|r| r.model_id == m.id) {
            match (r.state.as_str(), &r.base_url) {
                ("ready", Some(url)) => route.replicas.push(url.clone()),
                ("ready", None) => {}
                _ => route.starting += 1,
            }
        }
        let deployed = fleet.deployed.contains(&m.id);
        route.wakeable = deployed && route.replicas.is_empty() && route.starting == 0;
        if !route.replicas.is_empty() || route.starting > 0 || deployed {
            routes.models.insert(m.id.clone(), route);
        }
    }
    for model in engines.keys() {
        if !routes.models.contains_key(model) {
            tracing::warn!(model = %model, "engines are configured for a model that is not in the catalog (or is retired)");
        }
    }
    routes
}

#[derive(Default)]
struct Sources {
    models: Option<Vec<ModelView>>,
    fleet: FleetRoutes,
}

/// Keeps the gateway's table in step with its sources.
pub struct RoutePublisher {
    gateway: Gateway,
    store: Store,
    engines: BTreeMap<String, Vec<String>>,
    sources: Mutex<Sources>,
}

impl RoutePublisher {
    pub fn new(gateway: Gateway, store: Store, engines: BTreeMap<String, Vec<String>>) -> Self {
        Self {
            gateway,
            store,
            engines,
            sources: Mutex::default(),
        }
    }

    /// The catalog changed (the key refresher publishes the models with every snapshot).
    pub fn models_changed(&self, models: Vec<ModelView>) {
        self.publish(|s| s.models = Some(models));
    }

    async fn read_fleet(&self) -> Result<FleetRoutes, tollgate_store::StoreError> {
        Ok(FleetRoutes {
            replicas: self.store.fleet_routes().await?,
            deployed: self.store.deployed_models().await?,
        })
    }

    /// Builds and swaps in the table under the sources' lock, so the last change is the table that stays.
    fn publish(&self, change: impl FnOnce(&mut Sources)) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut sources);
        if let Some(models) = &sources.models {
            self.gateway
                .replace_routes(&routes(models, &self.engines, &sources.fleet));
        }
    }

    /// Reads the fleet's routes now (at start, before the server accepts requests).
    pub async fn load_fleet(&self) -> Result<i64, tollgate_store::StoreError> {
        let revision = self.store.routes_revision().await?;
        let fleet = self.read_fleet().await?;
        self.publish(|s| s.fleet = fleet);
        Ok(revision)
    }

    /// Follows the `routes` revision: at once when this server's controller says so, else every `interval`.
    pub fn spawn(
        self: Arc<Self>,
        mut seen: i64,
        changed: Arc<Notify>,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = changed.notified() => {}
                    _ = tokio::time::sleep(interval) => {}
                }
                let revision = match self.store.routes_revision().await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot read the routes revision");
                        continue;
                    }
                };
                if revision == seen {
                    continue;
                }
                match self.read_fleet().await {
                    Ok(fleet) => {
                        self.publish(|s| s.fleet = fleet);
                        seen = revision;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read the fleet's routes"),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(id: &str, status: ModelStatus) -> ModelView {
        let mut m: ModelView = serde_json::from_value(serde_json::json!({
            "id": id, "display_name": id, "family": "f", "provider": "p", "description": "",
            "parameters_millions": 1, "context_length": 8192, "task": "chat", "license": "", "tags": [],
            "versions": [], "input_price": 0, "output_price": 0, "status": "available", "sunset_at": null,
            "replacement_id": null, "visibility": "open", "upstream_name": format!("org/{id}"),
            "created_at": 0, "updated_at": 0
        }))
        .unwrap();
        m.status = status;
        m
    }

    fn row(model: &str, state: &str, url: Option<&str>) -> RouteRow {
        RouteRow {
            model_id: model.into(),
            state: state.into(),
            base_url: url.map(String::from),
        }
    }

    #[test]
    fn routes_combine_static_engines_and_the_fleet() {
        let models = vec![
            model("a", ModelStatus::Available),
            model("b", ModelStatus::Available),
            model("z", ModelStatus::Available),
            model("old", ModelStatus::Retired),
            model("none", ModelStatus::Available),
        ];
        let engines: BTreeMap<String, Vec<String>> = [
            ("a".to_string(), vec!["http://static:1".to_string()]),
            ("old".to_string(), vec!["http://static:2".to_string()]),
        ]
        .into();
        let fleet = FleetRoutes {
            replicas: vec![
                row("a", "ready", Some("http://fleet:1")),
                row("b", "ready", Some("http://fleet:2")),
                row("b", "starting", Some("http://fleet:3")),
                row("b", "pending", None),
                row("old", "ready", Some("http://fleet:4")),
            ],
            deployed: vec!["a".into(), "b".into(), "z".into()],
        };
        let r = routes(&models, &engines, &fleet);
        assert_eq!(
            r.models["a"].replicas,
            ["http://static:1", "http://fleet:1"]
        );
        assert_eq!(r.models["a"].served_name, "org/a");
        assert_eq!(
            (r.models["b"].replicas.len(), r.models["b"].starting),
            (1, 2)
        );
        assert!(!r.models["b"].wakeable);
        assert!(
            r.models["z"].wakeable,
            "deployed, scaled to zero: a request wakes it"
        );
        assert!(
            !r.models.contains_key("old"),
            "retired models are not routed"
        );
        assert!(!r.models.contains_key("none"), "nothing serves it");
    }
}
