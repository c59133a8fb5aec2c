//! The driver: replicas as Pods (and Services) in one namespace, server-side applied under the field manager
//! `tollgate`; nodes and Pods kept current by watches (kube-rs reflectors), so `inventory` and `observe` read
//! memory, not the API.
//!
//! Kubernetes places Pods on nodes (node affinity for the allowed GPU products, the GPU resource limit); the
//! fleet still places each replica in its own view of the inventory, so that it knows what fits, says why a
//! replica waits, and preempts by priority. The kubelet probes `/health` (readiness and startup probes) and
//! restarts a crashing engine; `observe` reports the Pod's readiness, and a crash loop as waiting with its
//! restarts, so the two restart policies do not fight.

use crate::errors::{classify, timed_out};
use crate::objects::{self, FIELD_MANAGER};
use crate::settings::KubeSettings;
use crate::status::{node_of, process_of};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node as KubeNode, Pod, Service, Toleration};
use kube::api::{Api, DeleteParams, LogParams, Patch, PatchParams};
use kube::runtime::reflector::{self, reflector, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use std::future::Future;
use tokio::task::JoinHandle;
use tollgate_fleet::driver::{Driver, DriverError, ReplicaSpec, Started};
use tollgate_fleet::rules::lifecycle::Process;
use tollgate_fleet::rules::placement::Node;

/// A Pod of Tollgate's that no replica names is deleted once it is this old.
const ORPHAN_AFTER_MS: i64 = 120_000;

pub struct KubernetesDriver {
    namespace: String,
    settings: KubeSettings,
    tolerations: Vec<Toleration>,
    pods: Api<Pod>,
    services: Api<Service>,
    pod_store: Store<Pod>,
    node_store: Store<KubeNode>,
    watches: Vec<JoinHandle<()>>,
}

impl Drop for KubernetesDriver {
    fn drop(&mut self) {
        for w in &self.watches {
            w.abort();
        }
    }
}

/// A handle is `k8s:NAMESPACE/POD`.
fn parse_handle(handle: &str) -> Option<(&str, &str)> {
    handle.strip_prefix("k8s:")?.split_once('/')
}

impl KubernetesDriver {
    /// Connects with the kubeconfig (`KUBECONFIG`, `~/.kube/config`) or, inside a cluster, the pod's service
    /// account, and starts the watches.
    pub async fn connect(settings: KubeSettings) -> Result<Self, String> {
        let config = kube::Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes configuration (kubeconfig or in-cluster): {e}"))?;
        Self::with_config(config, settings)
    }

    /// Connects with the kubeconfig file at `path` (its current context).
    pub async fn connect_with_kubeconfig(
        path: &str,
        settings: KubeSettings,
    ) -> Result<Self, String> {
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .map_err(|e| format!("cannot read the kubeconfig {path}: {e}"))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| format!("the kubeconfig {path}: {e}"))?;
        Self::with_config(config, settings)
    }

    fn with_config(config: kube::Config, settings: KubeSettings) -> Result<Self, String> {
        let namespace = if settings.namespace.is_empty() {
            config.default_namespace.clone()
        } else {
            settings.namespace.clone()
        };
        let client = Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))?;
        Ok(Self::new(client, namespace, settings))
    }

    /// The driver over `client`, in `namespace` (tests pass a client for the fake API server).
    pub fn new(client: Client, namespace: String, settings: KubeSettings) -> Self {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
        let nodes: Api<KubeNode> = Api::all(client);
        let (pod_store, pod_writer) = reflector::store();
        let (node_store, node_writer) = reflector::store();
        let pod_watch = reflector(
            pod_writer,
            watcher(
                pods.clone(),
                watcher::Config::default().labels(&objects::managed_selector()),
            ),
        )
        .default_backoff();
        let node_watch =
            reflector(node_writer, watcher(nodes, watcher::Config::default())).default_backoff();
        let watches = vec![
            tokio::spawn(drain("pods", pod_watch)),
            tokio::spawn(drain("nodes", node_watch)),
        ];
        Self {
            tolerations: objects::tolerations(&settings),
            namespace,
            settings,
            pods,
            services,
            pod_store,
            node_store,
            watches,
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, DriverError> {
        match tokio::time::timeout(self.settings.api_timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(what, &e)),
            Err(_) => Err(timed_out(what, self.settings.api_timeout)),
        }
    }

    /// Waits (bounded) for a watch's first list; false when it has not arrived.
    async fn synced<K>(&self, store: &Store<K>) -> bool
    where
        K: kube::Resource + Clone + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        tokio::time::timeout(self.settings.api_timeout, store.wait_until_ready())
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Runs a watch until the driver goes; errors are logged and retried with backoff by the stream itself (a
/// `410 Gone` on a watch makes it list again).
async fn drain<S, T>(what: &'static str, stream: S)
where
    S: futures::Stream<Item = Result<T, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            tracing::warn!(watch = what, error = %e, "Kubernetes watch failed; retrying");
        }
    }
}

#[async_trait::async_trait]
impl Driver for KubernetesDriver {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    async fn inventory(&self) -> Result<Vec<Node>, DriverError> {
        if !self.synced(&self.node_store).await {
            return Err(DriverError::Transient(
                "the watch on the cluster's nodes has not listed them yet".into(),
            ));
        }
        let mut nodes: Vec<Node> = self
            .node_store
            .state()
            .iter()
            .filter_map(|n| node_of(n, &self.tolerations))
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes)
    }

    fn check_args(&self, _served_name: &str, args: &[String]) -> Result<(), String> {
        // vLLM judges its own arguments; the Pod's command line is a list, so only what Tollgate sets itself is
        // refused here (`EngineArgs` refuses those before).
        for owned in ["--host", "--port", "--served-model-name"] {
            if args
                .iter()
                .any(|a| a == owned || a.starts_with(&format!("{owned}=")))
            {
                return Err(format!("{owned} is set by Tollgate on Kubernetes"));
            }
        }
        Ok(())
    }

    async fn start(&self, spec: &ReplicaSpec) -> Result<Started, DriverError> {
        let name = objects::pod_name(&spec.replica_id);
        if let Some(old) = self
            .call(&format!("reading pod {name}"), self.pods.get_opt(&name))
            .await?
        {
            if old.metadata.deletion_timestamp.is_some() {
                return Err(DriverError::Transient(format!(
                    "the replica's previous pod {name} is still terminating"
                )));
            }
        }
        // Forced: Tollgate owns the fields it sets (a conflicting edit to one of them is taken back); fields it
        // does not set stay with whoever set them.
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        let pod = objects::pod(spec, &self.settings, &self.namespace);
        let applied = self
            .call(
                &format!("applying pod {name}"),
                self.pods.patch(&name, &apply, &Patch::Apply(&pod)),
            )
            .await?;
        let uid = applied.metadata.uid.clone().ok_or_else(|| {
            DriverError::Transient(format!("the API server returned pod {name} without a uid"))
        })?;
        let service = objects::service(spec, &self.settings, &self.namespace, &uid);
        self.call(
            &format!("applying service {name}"),
            self.services.patch(&name, &apply, &Patch::Apply(&service)),
        )
        .await?;
        Ok(Started {
            handle: format!("k8s:{}/{name}", self.namespace),
            base_url: objects::base_url(spec, &self.namespace, self.settings.port),
        })
    }

    async fn observe(&self, handle: &str) -> Process {
        let Some((namespace, name)) = parse_handle(handle) else {
            return Process::None;
        };
        if namespace != self.namespace {
            return Process::Exited(format!(
                "the pod is in namespace {namespace}, and Tollgate now manages {}",
                self.namespace
            ));
        }
        if !self.synced(&self.pod_store).await {
            return Process::Waiting(
                "the watch on the replicas' pods has not listed them yet".into(),
            );
        }
        if let Some(pod) = self.pod_store.get(&ObjectRef::new(name).within(namespace)) {
            return process_of(&pod);
        }
        // Not in the watch's picture: it may be a Pod applied a moment ago that the watch has not shown yet.
        // Ask once before calling it gone.
        match self
            .call(&format!("reading pod {name}"), self.pods.get_opt(name))
            .await
        {
            Ok(Some(pod)) => process_of(&pod),
            Ok(None) => Process::None,
            Err(e) => Process::Waiting(format!("cannot see the pod: {e}")),
        }
    }

    async fn stop(&self, handle: &str) -> Result<(), DriverError> {
        let Some((namespace, name)) = parse_handle(handle) else {
            return Ok(());
        };
        let grace = i64::try_from(self.settings.termination_grace.as_secs()).unwrap_or(30);
        let params = DeleteParams {
            grace_period_seconds: Some(u32::try_from(grace).unwrap_or(30)),
            ..DeleteParams::default()
        };
        let pods: Api<Pod> = if namespace == self.namespace {
            self.pods.clone()
        } else {
            Api::namespaced(self.pods.clone().into_client(), namespace)
        };
        let services: Api<Service> = Api::namespaced(pods.clone().into_client(), namespace);
        let deleted = [
            self.call(&format!("deleting pod {name}"), pods.delete(name, &params))
                .await
                .map(|_| ()),
            // Owned by the Pod, so the garbage collector removes it too; deleting it now frees the name at once.
            self.call(
                &format!("deleting service {name}"),
                services.delete(name, &DeleteParams::default()),
            )
            .await
            .map(|_| ()),
        ];
        for result in deleted {
            match result {
                // Already gone: stopped is stopped.
                Err(DriverError::Permanent(m)) if m.contains("(404)") => {}
                other => other?,
            }
        }
        Ok(())
    }

    async fn logs(&self, handle: &str, _replica_id: &str) -> Vec<String> {
        let Some((namespace, name)) = parse_handle(handle) else {
            return Vec::new();
        };
        if namespace != self.namespace {
            return Vec::new();
        }
        let params = LogParams {
            container: Some(objects::CONTAINER.into()),
            tail_lines: Some(200),
            limit_bytes: Some(256 * 1024),
            ..LogParams::default()
        };
        match self
            .call(
                &format!("reading the output of pod {name}"),
                self.pods.logs(name, &params),
            )
            .await
        {
            Ok(text) => text
                .lines()
                .map(|l| l.chars().take(2_000).collect())
                .collect(),
            Err(e) => vec![format!("(the engine's output cannot be read: {e})")],
        }
    }

    fn reports_readiness(&self) -> bool {
        true
    }

    async fn collect_garbage(&self, known: &std::collections::HashSet<String>) -> Vec<String> {
        if !self.synced(&self.pod_store).await {
            return Vec::new();
        }
        let now = k8s_openapi::jiff::Timestamp::now().as_millisecond();
        let mut stopped = Vec::new();
        for pod in self.pod_store.state() {
            let Some(name) = pod.metadata.name.as_deref() else {
                continue;
            };
            let handle = format!("k8s:{}/{name}", self.namespace);
            let age_ms = pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| now - t.0.as_millisecond());
            // Young pods are spared: one may have been applied by a controller whose row write is in flight.
            if known.contains(&handle)
                || age_ms < ORPHAN_AFTER_MS
                || pod.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            match self.stop(&handle).await {
                Ok(()) => stopped.push(handle),
                Err(e) => {
                    tracing::warn!(%handle, error = %e, "cannot delete an orphaned engine pod")
                }
            }
        }
        stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_name_a_namespace_and_a_pod() {
        assert_eq!(
            parse_handle("k8s:models/tollgate-r1"),
            Some(("models", "tollgate-r1"))
        );
        assert_eq!(parse_handle("local:1:2"), None);
        assert_eq!(parse_handle("k8s:nope"), None);
    }
}
