//! Where each model is served: the engine's served name and its replicas. A table is built whole and swapped in
//! (from configuration now, from the fleet later); replicas keep their in-flight counters across swaps, so a new
//! table does not forget the load on an engine it still lists.

use crate::request::Endpoint;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The routes as configured: API model id -> served name and replica base URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Routes {
    #[serde(default)]
    pub models: BTreeMap<String, ModelRoute>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ModelRoute {
    /// The name the engines serve the model under (vLLM's `--served-model-name`).
    pub served_name: String,
    /// Base URLs of ready replicas (`http://host:port`; a trailing `/v1` is accepted).
    #[serde(default)]
    pub replicas: Vec<String>,
    /// How many replicas are starting: with none ready, clients are told to retry soon rather than that the
    /// model is down.
    #[serde(default)]
    pub starting: u32,
}

/// One engine, with the requests the gateway has in flight on it.
#[derive(Debug)]
pub struct Replica {
    /// The base URL, without a trailing slash or `/v1` (also the label in metrics and usage records).
    pub base: String,
    /// The engine URI of each endpoint, parsed once (None when the base does not make a valid URI).
    uris: [Option<http::Uri>; 3],
    outstanding: AtomicU64,
    /// What the engine itself last reported as extra load (see `engine_load`): 0 when unknown.
    reported: AtomicU64,
}

impl Replica {
    pub fn new(base: String) -> Self {
        let uri = |e: Endpoint| format!("{base}{}", e.path()).parse::<http::Uri>().ok();
        let uris = [
            uri(Endpoint::Chat),
            uri(Endpoint::Completions),
            uri(Endpoint::Embeddings),
        ];
        Self {
            base,
            uris,
            outstanding: AtomicU64::new(0),
            reported: AtomicU64::new(0),
        }
    }

    /// The URI to send `endpoint` requests to, or None when the base URL does not make one.
    pub fn uri(&self, endpoint: Endpoint) -> Option<&http::Uri> {
        let i = match endpoint {
            Endpoint::Chat => 0,
            Endpoint::Completions => 1,
            Endpoint::Embeddings => 2,
        };
        self.uris[i].as_ref()
    }

    pub fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// The load replica choice compares: requests this gateway has in flight there, plus what the engine reports
    /// beyond them (queued requests, a nearly full KV cache), which covers traffic from other gateway replicas.
    pub fn load(&self) -> u64 {
        self.outstanding() + self.reported.load(Ordering::Relaxed)
    }

    pub fn set_reported_load(&self, load: u64) {
        self.reported.store(load, Ordering::Relaxed);
    }

    /// Counts a request on this replica until the lease drops.
    pub fn lease(self: &Arc<Self>) -> Lease {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        Lease(self.clone())
    }
}

/// A request in flight on a replica.
#[derive(Debug)]
pub struct Lease(Arc<Replica>);

impl Lease {
    pub fn replica(&self) -> &Arc<Replica> {
        &self.0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct ModelTarget {
    pub served_name: String,
    pub replicas: Vec<Arc<Replica>>,
    pub starting: u32,
}

/// The table the request path reads.
#[derive(Debug, Default)]
pub struct RouteTable {
    models: HashMap<String, Arc<ModelTarget>>,
}

impl RouteTable {
    pub fn get(&self, model: &str) -> Option<&Arc<ModelTarget>> {
        self.models.get(model)
    }
}

/// Builds tables, reusing the replica objects of earlier tables by URL.
#[derive(Debug, Default)]
pub struct ReplicaRegistry {
    known: Mutex<HashMap<String, Arc<Replica>>>,
}

impl ReplicaRegistry {
    pub fn build(&self, routes: &Routes) -> RouteTable {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen: HashMap<String, Arc<Replica>> = HashMap::new();
        let models = routes
            .models
            .iter()
            .map(|(id, route)| {
                let replicas = route
                    .replicas
                    .iter()
                    .map(|url| {
                        let base = normalize_base(url);
                        let r = known
                            .get(&base)
                            .cloned()
                            .unwrap_or_else(|| Arc::new(Replica::new(base.clone())));
                        seen.insert(base, r.clone());
                        r
                    })
                    .collect();
                (
                    id.clone(),
                    Arc::new(ModelTarget {
                        served_name: route.served_name.clone(),
                        replicas,
                        starting: route.starting,
                    }),
                )
            })
            .collect();
        // Forget replicas no table lists any more (requests in flight keep theirs alive through their lease).
        *known = seen;
        RouteTable { models }
    }

    /// Every replica the current table lists, for the engine-load poller.
    pub fn replicas(&self) -> Vec<Arc<Replica>> {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

fn normalize_base(url: &str) -> String {
    let t = url.trim().trim_end_matches('/');
    t.strip_suffix("/v1").unwrap_or(t).to_string()
}

/// The replica to try next: the fewest requests in flight among those not tried yet; ties go to the first at or
/// after `start` (a rotating offset), so equally loaded replicas share the traffic.
pub fn choose(
    n: usize,
    load: impl Fn(usize) -> u64,
    tried: &[usize],
    start: usize,
) -> Option<usize> {
    (0..n)
        .map(|i| (start + i) % n)
        .filter(|i| !tried.contains(i))
        .min_by_key(|&i| load(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(loads: &[u64], tried: &[usize], start: usize) -> Option<usize> {
        choose(loads.len(), |i| loads[i], tried, start)
    }

    #[test]
    fn the_least_loaded_untried_replica_wins() {
        assert_eq!(pick(&[3, 1, 2], &[], 0), Some(1));
        assert_eq!(pick(&[3, 1, 2], &[1], 0), Some(2));
        assert_eq!(pick(&[3, 1, 2], &[0, 1, 2], 0), None);
        assert_eq!(pick(&[], &[], 5), None);
    }

    #[test]
    fn ties_rotate_with_the_offset() {
        assert_eq!(pick(&[0, 0, 0], &[], 0), Some(0));
        assert_eq!(pick(&[0, 0, 0], &[], 1), Some(1));
        assert_eq!(pick(&[0, 0, 0], &[], 5), Some(2));
        assert_eq!(pick(&[0, 0, 0], &[2], 5), Some(0));
    }

    #[test]
    fn replicas_keep_their_load_across_tables() {
        let registry = ReplicaRegistry::default();
        let routes = |urls: &[&str]| Routes {
            models: [(
                "m".to_string(),
                ModelRoute {
                    served_name: "served".into(),
                    replicas: urls.iter().map(|u| u.to_string()).collect(),
                    starting: 0,
                },
            )]
            .into(),
        };
        let first = registry.build(&routes(&["http://a:1/v1/", "http://b:2"]));
        let a = &first.get("m").unwrap().replicas[0];
        assert_eq!(a.base, "http://a:1");
        let lease = a.lease();
        let second = registry.build(&routes(&["http://a:1", "http://c:3"]));
        assert_eq!(second.get("m").unwrap().replicas[0].outstanding(), 1);
        drop(lease);
        assert_eq!(second.get("m").unwrap().replicas[0].outstanding(), 0);
        assert!(second.get("other").is_none());
    }

    #[test]
    fn routes_read_from_json() {
        let r: Routes = serde_json::from_str(
            r#"{"models":{"llama":{"served_name":"meta/llama","replicas":["http://127.0.0.1:8001"],"starting":1}}}"#,
        )
        .unwrap();
        assert_eq!(r.models["llama"].starting, 1);
    }
}
