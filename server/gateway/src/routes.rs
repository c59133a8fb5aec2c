//! Where each model is served: the engine's served name and its replicas. A table is built whole and swapped in
//! (from configuration now, from the fleet later); replicas keep their in-flight counters across swaps, so a new
//! table does not forget the load on an engine it still lists.

use crate::config::GatewayConfig;
use crate::engine_conn::{
    ConnectOptions, EngineAddress, EnginePool, EngineRequest, EngineResponse, RequestHead,
    SendError,
};
use crate::model_name::ModelRename;
use crate::request::Endpoint;
use http::HeaderValue;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
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
    /// How many replicas are starting: with none ready, requests wait for one (up to the wake wait) rather than
    /// being told that the model is down.
    #[serde(default)]
    pub starting: u32,
    /// The fleet serves this model but has scaled it to zero: a request wakes it and waits.
    #[serde(default)]
    pub wakeable: bool,
}

/// What the gateway's probes (the engine-load poller) last saw of a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    /// Not probed yet: routed to, so a gateway serves from its first request (a dead engine is then left for
    /// another replica by the request path's retries).
    Unprobed = 0,
    /// Its last probe answered.
    Ready = 1,
    /// Never answered yet: a vLLM engine does not listen until its model is loaded. Not routed to; a model with
    /// only such replicas tells clients to retry soon.
    Starting = 2,
    /// Answered before, fails now. Not routed to until it answers again.
    Down = 3,
}

impl Health {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Ready,
            2 => Self::Starting,
            3 => Self::Down,
            _ => Self::Unprobed,
        }
    }

    /// The state after a probe that answered (`ok`) or not.
    pub fn after_probe(self, ok: bool) -> Self {
        match (ok, self) {
            (true, _) => Self::Ready,
            (false, Self::Unprobed | Self::Starting) => Self::Starting,
            (false, Self::Ready | Self::Down) => Self::Down,
        }
    }

    pub fn routable(self) -> bool {
        matches!(self, Self::Unprobed | Self::Ready)
    }
}

/// One engine, with the requests the gateway has in flight on it and its pooled connections.
pub struct Replica {
    /// The base URL, without a trailing slash or `/v1` (also the label in metrics and usage records).
    pub base: String,
    /// None when the base URL is not one the gateway can reach (requests to it fail over to other replicas).
    address: Option<EngineAddress>,
    /// The request head of each endpoint (indexed by `Endpoint as usize`), built once.
    heads: [Option<RequestHead>; Endpoint::ALL.len()],
    pool: Arc<EnginePool>,
    outstanding: AtomicU64,
    /// What the engine itself last reported as extra load (see `engine_load`): 0 when unknown.
    reported: AtomicU64,
    /// A `Health`, as set by the probes.
    health: AtomicU8,
    /// The longest context its engine serves (vLLM's `max_model_len`), as its probe last read it: 0 when unknown.
    context: AtomicU64,
    /// Its identity for prefix affinity (`affinity::replica_id` of `base`).
    pub affinity: u64,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("base", &self.base)
            .field("outstanding", &self.outstanding())
            .field("health", &self.health())
            .finish()
    }
}

impl Replica {
    pub fn new(base: String) -> Self {
        let address = EngineAddress::parse(&base);
        let heads = Endpoint::ALL.map(|e| {
            address
                .as_ref()
                .and_then(|a| a.head("POST", e.path(), Some("application/json")))
        });
        // A base URL the gateway cannot send to is down from the start (not "starting": it never will).
        let health = match &address {
            Some(_) => Health::Unprobed,
            None => {
                tracing::error!(replica = %base, "not an http:// or https:// engine URL; requests to it will fail");
                Health::Down
            }
        };
        Self {
            affinity: crate::affinity::replica_id(&base),
            base,
            address,
            heads,
            pool: Arc::default(),
            outstanding: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            health: AtomicU8::new(health as u8),
            context: AtomicU64::new(0),
        }
    }

    /// Sends `body` to `endpoint` on this engine, on a pooled connection, and reads the answer's head.
    pub async fn post(
        &self,
        endpoint: Endpoint,
        body: &[u8],
        request_id: &HeaderValue,
        config: &GatewayConfig,
    ) -> Result<EngineResponse, SendError> {
        let (Some(address), Some(head)) = (&self.address, &self.heads[endpoint as usize]) else {
            return Err(SendError::BadAddress);
        };
        let request = EngineRequest {
            head,
            request_id: Some(request_id),
            body: Some(body),
        };
        self.send(address, request, config).await
    }

    /// `GET path` on this engine (its `/metrics`, say).
    pub async fn get(
        &self,
        path: &str,
        config: &GatewayConfig,
    ) -> Result<EngineResponse, SendError> {
        let Some((address, head)) = self
            .address
            .as_ref()
            .and_then(|a| Some((a, a.head("GET", path, None)?)))
        else {
            return Err(SendError::BadAddress);
        };
        let request = EngineRequest {
            head: &head,
            request_id: None,
            body: None,
        };
        self.send(address, request, config).await
    }

    async fn send(
        &self,
        address: &EngineAddress,
        request: EngineRequest<'_>,
        config: &GatewayConfig,
    ) -> Result<EngineResponse, SendError> {
        let options = ConnectOptions {
            connect_timeout: config.connect_timeout,
            idle_timeout: config.pool_idle_timeout,
            tls: &config.engine_tls,
        };
        self.pool.send(address, request, &options).await
    }

    /// The replica's connection pool.
    pub fn pool(&self) -> &EnginePool {
        &self.pool
    }

    pub fn health(&self) -> Health {
        Health::from_u8(self.health.load(Ordering::Relaxed))
    }

    /// Records a probe's outcome; returns the state before and after (only the poller writes it).
    pub fn probed(&self, ok: bool) -> (Health, Health) {
        let before = self.health();
        let after = before.after_probe(ok);
        self.health.store(after as u8, Ordering::Relaxed);
        (before, after)
    }

    pub fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// The longest context (prompt and completion, in tokens) the engine serves: 0 when not known yet.
    pub fn context_limit(&self) -> u64 {
        self.context.load(Ordering::Relaxed)
    }

    pub fn set_context_limit(&self, tokens: u64) {
        self.context.store(tokens, Ordering::Relaxed);
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
    /// Puts the API model id back where the engine writes its served name (None when they are the same); built
    /// with the table, not per request.
    pub rename: Option<Arc<ModelRename>>,
    pub replicas: Vec<Arc<Replica>>,
    pub starting: u32,
    pub wakeable: bool,
}

/// Whether a model can take a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Ready,
    /// No replica to route to, but some are starting: worth retrying soon.
    Starting,
    Unavailable,
}

impl ModelTarget {
    /// Ready when a replica answers its probes; Starting when none does but some have never answered yet; and
    /// when every replica is down, still Ready, as a last resort: a probe can miss under load (vLLM answers
    /// `/metrics` on its busy event loop), and trying a dead engine costs one failed connect, which the request
    /// path retries elsewhere or reports.
    pub fn availability(&self) -> Availability {
        let health = || self.replicas.iter().map(|r| r.health());
        if health().any(Health::routable) {
            Availability::Ready
        } else if self.starting > 0 || self.wakeable || health().any(|h| h == Health::Starting) {
            Availability::Starting
        } else if health().any(|h| h == Health::Down) {
            Availability::Ready
        } else {
            Availability::Unavailable
        }
    }

    /// The longest context every replica that reported one serves (the least of them: any may get the request);
    /// 0 when none has reported yet.
    pub fn context_limit(&self) -> u64 {
        self.replicas
            .iter()
            .map(|r| r.context_limit())
            .filter(|&c| c > 0)
            .min()
            .unwrap_or(0)
    }

    /// Whether replica choice should skip replicas that fail their probes: only while another one answers.
    pub fn skip_unhealthy(&self) -> bool {
        self.replicas.iter().any(|r| r.health().routable())
    }
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

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Arc<ModelTarget>)> {
        self.models.iter()
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
                        rename: ModelRename::new(&route.served_name, id).map(Arc::new),
                        replicas,
                        starting: route.starting,
                        wakeable: route.wakeable,
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

/// The replica to try next: the least loaded among those routable and not tried yet (`load` is None for a
/// replica not to route to); ties go to the first at or after `start` (a rotating offset), so equally loaded
/// replicas share the traffic.
pub fn choose(
    n: usize,
    load: impl Fn(usize) -> Option<u64>,
    tried: &[usize],
    start: usize,
) -> Option<usize> {
    (0..n)
        .map(|i| (start + i) % n)
        .filter(|i| !tried.contains(i))
        .filter_map(|i| Some((i, load(i)?)))
        .min_by_key(|&(_, l)| l)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(loads: &[u64], tried: &[usize], start: usize) -> Option<usize> {
        choose(loads.len(), |i| Some(loads[i]), tried, start)
    }

    #[test]
    fn replicas_not_to_route_to_are_never_chosen() {
        let loads = [Some(5), None, Some(9)];
        assert_eq!(choose(3, |i| loads[i], &[], 1), Some(0));
        assert_eq!(choose(3, |i| loads[i], &[0], 1), Some(2));
        assert_eq!(choose(3, |i| loads[i], &[0, 2], 1), None);
    }

    #[test]
    fn health_follows_the_probes() {
        use Health::*;
        assert_eq!(Unprobed.after_probe(false), Starting);
        assert_eq!(Starting.after_probe(false), Starting);
        assert_eq!(Starting.after_probe(true), Ready);
        assert_eq!(Ready.after_probe(false), Down);
        assert_eq!(Down.after_probe(false), Down);
        assert_eq!(Down.after_probe(true), Ready);
        assert!(Unprobed.routable() && Ready.routable());
        assert!(!Starting.routable() && !Down.routable());
    }

    #[test]
    fn availability_of_a_model() {
        let registry = ReplicaRegistry::default();
        let table = registry.build(&Routes {
            models: [(
                "m".to_string(),
                ModelRoute {
                    served_name: "s".into(),
                    replicas: vec!["http://a:1".into(), "http://b:2".into()],
                    starting: 0,
                    wakeable: false,
                },
            )]
            .into(),
        });
        let m = table.get("m").unwrap();
        let (a, b) = (&m.replicas[0], &m.replicas[1]);
        assert_eq!(
            m.availability(),
            Availability::Ready,
            "unprobed replicas serve"
        );
        a.probed(false);
        b.probed(true);
        assert_eq!(m.availability(), Availability::Ready);
        b.probed(false);
        assert_eq!((a.health(), b.health()), (Health::Starting, Health::Down));
        assert_eq!(m.availability(), Availability::Starting);
        a.probed(true);
        a.probed(false);
        assert_eq!(
            m.availability(),
            Availability::Ready,
            "all down: tried anyway, as a last resort"
        );
        assert!(!m.skip_unhealthy());
        let empty = registry.build(&Routes {
            models: [("e".to_string(), ModelRoute::default())].into(),
        });
        assert_eq!(
            empty.get("e").unwrap().availability(),
            Availability::Unavailable
        );
        let bad = Replica::new("ftp://files.example:21".into());
        assert_eq!(bad.health(), Health::Down, "never \"starting\"");
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
                    wakeable: false,
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
