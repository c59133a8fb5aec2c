//! A fake Kubernetes API server for tests: what the driver calls, speaking the API's contract over real HTTP.
//!
//! It serves core/v1 `nodes`, `pods` (with `/log`) and `services`: lists with a resourceVersion, watches as
//! newline-delimited events from a version (and `ERROR` events with 410 Gone when told), server-side apply
//! (`application/apply-patch+yaml` with `fieldManager` and `force`: fields are owned by managers, and applying
//! a field another manager set to another value is a 409 Conflict unless forced), deletes (with the garbage
//! collector's part: objects whose owner reference names the deleted uid go too), and gets. Tests play the
//! kubelet and the scheduler by setting objects' status, and inject errors and delays per verb and resource.
//! Every call is recorded as (verb, resource), which the RBAC test compares with the manifests' rules.
//!
//! Simplifications, none of which the driver depends on: lists and arrays in applied objects are atomic (real
//! apply merges some lists by key); field ownership is per leaf path; label selectors are equality only.

// Test support (behind the `testing` feature, never in the server): a fake that cannot bind a port cannot serve
// its test, so it fails loudly.
#![allow(clippy::expect_used)]

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// One call the fake served: `verb` as RBAC names it (get, list, watch, create, patch, delete), `resource` as
/// RBAC names it (`pods`, `pods/log`, `services`, `nodes`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    pub verb: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// The query string, as sent.
    pub query: String,
}

/// An error (or a delay) the next `times` matching calls get.
#[derive(Debug, Clone)]
pub struct Fault {
    pub verb: String,
    pub resource: String,
    /// 0: no error, only the delay.
    pub status: u16,
    pub reason: String,
    pub times: usize,
    pub delay: Duration,
}

#[derive(Clone)]
struct Event {
    rv: u64,
    resource: String,
    namespace: Option<String>,
    kind: &'static str,
    object: Value,
}

type Key = (String, Option<String>, String);

#[derive(Default)]
struct World {
    rv: u64,
    uid: u64,
    objects: BTreeMap<Key, Value>,
    /// Leaf path ("spec.containers") -> the manager that set it, per object.
    owners: BTreeMap<Key, BTreeMap<String, String>>,
    log: Vec<Event>,
    faults: Vec<Fault>,
    calls: Vec<Call>,
    pod_logs: BTreeMap<(String, String), String>,
}

struct Shared {
    world: Mutex<World>,
    events: broadcast::Sender<Event>,
}

impl Shared {
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The fake API server, listening on a loopback port until dropped.
pub struct FakeApi {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn kind_of(resource: &str) -> (&'static str, bool) {
    match resource {
        "pods" => ("Pod", true),
        "services" => ("Service", true),
        "nodes" => ("Node", false),
        _ => ("Unknown", true),
    }
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code})
}

fn error(code: u16, reason: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(status_body(code, reason, message)),
    )
        .into_response()
}

/// Deep merge: objects merge key by key, anything else (arrays included) is replaced.
fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// Leaf paths of an applied object with their values (metadata's bookkeeping left out).
fn leaves(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if matches!(
                    path.as_str(),
                    "apiVersion" | "kind" | "metadata.name" | "metadata.namespace" | "status"
                ) {
                    continue;
                }
                leaves(v, &path, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

fn pointer(v: &Value, path: &str) -> Option<Value> {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur.clone())
}

fn labels_match(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let Some((k, v)) = term.split_once('=') else {
            return true;
        };
        let v = v.trim_start_matches('=');
        object
            .pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
            == Some(v)
    })
}

fn query_map(query: &str) -> BTreeMap<String, String> {
    url_decode_pairs(query).into_iter().collect()
}

fn url_decode_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let (events, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            world: Mutex::new(World::default()),
            events,
        });
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake API server");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeApi { url, shared, task }
    }

    /// A kube client for this server, with `namespace` as its default.
    pub fn client(&self, namespace: &str) -> kube::Client {
        let mut config = kube::Config::new(self.url.parse().expect("the fake's URL"));
        config.default_namespace = namespace.to_string();
        config.read_timeout = Some(Duration::from_secs(300));
        kube::Client::try_from(config).expect("a client for the fake API server")
    }

    /// A kubeconfig file's text pointing at this server (for a `tollgate` process under test).
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    namespace: {namespace}\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n",
            url = self.url
        )
    }

    /// A GPU node as NVIDIA's device plugin and feature discovery describe one.
    pub fn add_gpu_node(&self, name: &str, gpus: u32, product: &str, memory_mib: u64) {
        self.put(
            "nodes",
            None,
            name,
            json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product,
                    "nvidia.com/gpu.memory": memory_mib.to_string(), "kubernetes.io/hostname": name}},
                "spec": {"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]},
                "status": {"capacity": {"nvidia.com/gpu": gpus.to_string(), "cpu": "64"},
                    "allocatable": {"nvidia.com/gpu": gpus.to_string(), "cpu": "64"},
                    "conditions": [{"type": "Ready", "status": "True"}]}}),
        );
    }

    /// Stores `object` whole (as a controller other than Tollgate, or the test, would), with an event.
    pub fn put(&self, resource: &str, namespace: Option<&str>, name: &str, object: Value) {
        put(&self.shared, resource, namespace, name, object);
    }

    pub fn get(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let key = (
            resource.to_string(),
            namespace.map(String::from),
            name.to_string(),
        );
        self.shared.world().objects.get(&key).cloned()
    }

    pub fn list(&self, resource: &str) -> Vec<Value> {
        self.shared
            .world()
            .objects
            .iter()
            .filter(|(k, _)| k.0 == resource)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Replaces an object's status (as the kubelet or the scheduler would).
    pub fn set_status(&self, resource: &str, namespace: Option<&str>, name: &str, status: Value) {
        if let Some(mut object) = self.get(resource, namespace, name) {
            object["status"] = status;
            self.put(resource, namespace, name, object);
        }
    }

    /// Applies `patch` as field manager `manager` (a user's `kubectl apply --server-side`, say).
    pub fn apply_as(
        &self,
        manager: &str,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
        patch: Value,
        force: bool,
    ) -> Result<Value, (u16, String)> {
        apply(
            &self.shared,
            resource,
            namespace,
            name,
            patch,
            manager,
            force,
        )
    }

    pub fn set_pod_log(&self, namespace: &str, name: &str, text: &str) {
        self.shared
            .world()
            .pod_logs
            .insert((namespace.into(), name.into()), text.into());
    }

    pub fn fault(&self, fault: Fault) {
        self.shared.world().faults.push(fault);
    }

    /// The calls served so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.world().calls.clone()
    }

    /// The (verb, resource) pairs called so far.
    pub fn verbs(&self) -> BTreeSet<(String, String)> {
        self.calls()
            .into_iter()
            .map(|c| (c.verb, c.resource))
            .collect()
    }

    /// Field managers of an object's leaf paths.
    pub fn owners(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> BTreeMap<String, String> {
        let key = (
            resource.to_string(),
            namespace.map(String::from),
            name.to_string(),
        );
        self.shared
            .world()
            .owners
            .get(&key)
            .cloned()
            .unwrap_or_default()
    }

    /// Deletes an object as someone other than Tollgate would (`kubectl delete`, a node drain).
    pub fn delete(&self, resource: &str, namespace: Option<&str>, name: &str) -> bool {
        delete(&self.shared, resource, namespace, name)
    }
}

fn put(shared: &Shared, resource: &str, namespace: Option<&str>, name: &str, mut object: Value) {
    let mut w = shared.world();
    let key = (
        resource.to_string(),
        namespace.map(String::from),
        name.to_string(),
    );
    let existed = w.objects.contains_key(&key);
    w.rv += 1;
    w.uid += 1;
    let (rv, uid) = (w.rv, w.uid);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.entry("uid").or_insert(json!(format!("uid-{uid}")));
        if let Some(ns) = namespace {
            meta.insert("namespace".into(), json!(ns));
        }
    }
    w.objects.insert(key, object.clone());
    let event = Event {
        rv,
        resource: resource.to_string(),
        namespace: namespace.map(String::from),
        kind: if existed { "MODIFIED" } else { "ADDED" },
        object,
    };
    w.log.push(event.clone());
    drop(w);
    let _ = shared.events.send(event);
}

fn apply(
    shared: &Shared,
    resource: &str,
    namespace: Option<&str>,
    name: &str,
    patch: Value,
    manager: &str,
    force: bool,
) -> Result<Value, (u16, String)> {
    let key = (
        resource.to_string(),
        namespace.map(String::from),
        name.to_string(),
    );
    let mut mine = Vec::new();
    leaves(&patch, "", &mut mine);
    let mut w = shared.world();
    let existing = w.objects.get(&key).cloned();
    let owners = w.owners.get(&key).cloned().unwrap_or_default();
    if let Some(current) = &existing {
        let conflicts: Vec<String> = mine
            .iter()
            .filter(|(path, value)| {
                owners.get(path).is_some_and(|m| m != manager)
                    && pointer(current, path).as_ref() != Some(value)
            })
            .map(|(path, _)| format!("conflict with \"{}\": .{path}", owners[path]))
            .collect();
        if !conflicts.is_empty() && !force {
            return Err((
                409,
                format!(
                    "Apply failed with {} conflict(s): {}",
                    conflicts.len(),
                    conflicts.join(", ")
                ),
            ));
        }
    }
    let mut object = existing.clone().unwrap_or_else(|| {
        let (kind, _) = kind_of(resource);
        json!({"apiVersion": "v1", "kind": kind, "metadata": {}})
    });
    merge(&mut object, &patch);
    w.rv += 1;
    let rv = w.rv;
    if existing.is_none() {
        w.uid += 1;
        let uid = w.uid;
        object["metadata"]["uid"] = json!(format!("uid-{uid}"));
        object["metadata"]["creationTimestamp"] = json!(k8s_openapi::jiff::Timestamp::now()
            .round(k8s_openapi::jiff::Unit::Second)
            .map_or_else(|_| "2026-01-01T00:00:00Z".to_string(), |t| t.to_string()));
        if resource == "pods" {
            object["status"] = json!({"phase": "Pending"});
        }
    }
    object["metadata"]["name"] = json!(name);
    if let Some(ns) = namespace {
        object["metadata"]["namespace"] = json!(ns);
    }
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    let owned = w.owners.entry(key.clone()).or_default();
    for (path, _) in mine {
        owned.insert(path, manager.to_string());
    }
    w.objects.insert(key, object.clone());
    let event = Event {
        rv,
        resource: resource.to_string(),
        namespace: namespace.map(String::from),
        kind: if existing.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        },
        object: object.clone(),
    };
    w.log.push(event.clone());
    drop(w);
    let _ = shared.events.send(event);
    Ok(object)
}

fn delete(shared: &Shared, resource: &str, namespace: Option<&str>, name: &str) -> bool {
    let key = (
        resource.to_string(),
        namespace.map(String::from),
        name.to_string(),
    );
    let mut w = shared.world();
    let Some(object) = w.objects.remove(&key) else {
        return false;
    };
    w.owners.remove(&key);
    let uid = object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut gone = vec![(key, object)];
    // The garbage collector: dependents whose owner references name the deleted object's uid.
    let dependents: Vec<Key> = w
        .objects
        .iter()
        .filter(|(_, v)| {
            v.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == json!(uid)))
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in dependents {
        if let Some(v) = w.objects.remove(&k) {
            w.owners.remove(&k);
            gone.push((k, v));
        }
    }
    let mut events = Vec::new();
    for (k, mut v) in gone {
        w.rv += 1;
        v["metadata"]["resourceVersion"] = json!(w.rv.to_string());
        let event = Event {
            rv: w.rv,
            resource: k.0.clone(),
            namespace: k.1.clone(),
            kind: "DELETED",
            object: v,
        };
        w.log.push(event.clone());
        events.push(event);
    }
    drop(w);
    for e in events {
        let _ = shared.events.send(e);
    }
    true
}

/// A request's path: namespace, resource, name, subresource.
type Route = (Option<String>, String, Option<String>, Option<String>);

/// Parses `/api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUB]]`.
fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/api/v1/")?;
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let (ns, rest) = match parts.as_slice() {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    match rest {
        [resource] => Some((ns, resource.to_string(), None, None)),
        [resource, name] => Some((ns, resource.to_string(), Some(name.to_string()), None)),
        [resource, name, sub] => Some((
            ns,
            resource.to_string(),
            Some(name.to_string()),
            Some(sub.to_string()),
        )),
        _ => None,
    }
}

async fn serve(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let q = query_map(&query);
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if let Some(control) = path.strip_prefix("/fake/") {
        return fake_control(&shared, &method, control, request).await;
    }
    let Some((namespace, resource, name, sub)) = route(&path) else {
        return error(404, "NotFound", &format!("the fake serves no {path}"));
    };
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (&method, &name, &sub) {
        (&Method::GET, None, _) if watch => "watch",
        (&Method::GET, None, _) => "list",
        (&Method::GET, Some(_), _) => "get",
        (&Method::PATCH, Some(_), None) => "patch",
        (&Method::DELETE, Some(_), None) => "delete",
        (&Method::POST, None, _) => "create",
        _ => return error(405, "MethodNotAllowed", "not served by the fake"),
    };
    let rbac_resource = match &sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.clone(),
    };
    let (kind, namespaced) = kind_of(&resource);
    let key = (
        resource.clone(),
        namespace.clone(),
        name.clone().unwrap_or_default(),
    );
    let creates = verb == "patch" && !shared.world().objects.contains_key(&key);
    let fault = {
        let mut w = shared.world();
        for v in if creates {
            vec!["patch", "create"]
        } else {
            vec![verb]
        } {
            w.calls.push(Call {
                verb: v.into(),
                resource: rbac_resource.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
                query: query.clone(),
            });
        }
        let found = w
            .faults
            .iter()
            .position(|f| f.verb == verb && f.resource == rbac_resource && f.times > 0);
        found.map(|i| {
            w.faults[i].times -= 1;
            w.faults[i].clone()
        })
    };
    if let Some(f) = &fault {
        tokio::time::sleep(f.delay).await;
        if f.status == 410 && verb == "watch" {
            let body = format!(
                "{}\n",
                json!({"type": "ERROR", "object": status_body(410, "Expired", "too old resource version")})
            );
            return Response::new(Body::from(body));
        }
        if f.status != 0 {
            return error(f.status, &f.reason, &format!("injected: {}", f.reason));
        }
    }
    if namespaced != namespace.is_some()
        && kind != "Unknown"
        && !(verb == "list" || verb == "watch")
    {
        return error(404, "NotFound", "wrong scope");
    }
    match verb {
        "list" => {
            let w = shared.world();
            let selector = q.get("labelSelector").cloned().unwrap_or_default();
            let items: Vec<Value> = w
                .objects
                .iter()
                .filter(|(k, v)| {
                    k.0 == resource
                        && (namespace.is_none() || k.1 == namespace)
                        && labels_match(v, &selector)
                })
                .map(|(_, v)| v.clone())
                .collect();
            axum::Json(json!({"apiVersion": "v1", "kind": format!("{kind}List"),
                "metadata": {"resourceVersion": w.rv.to_string()}, "items": items}))
            .into_response()
        }
        "watch" => watch_stream(&shared, resource, namespace, &q),
        "get" if sub.as_deref() == Some("log") => {
            let w = shared.world();
            match (namespace, name) {
                (Some(ns), Some(n)) if w.objects.contains_key(&key) => w
                    .pod_logs
                    .get(&(ns, n))
                    .cloned()
                    .unwrap_or_default()
                    .into_response(),
                _ => error(404, "NotFound", "pods not found"),
            }
        }
        "get" => match shared.world().objects.get(&key) {
            Some(v) => axum::Json(v.clone()).into_response(),
            None => error(
                404,
                "NotFound",
                &format!("{resource} \"{}\" not found", key.2),
            ),
        },
        "patch" => {
            if content_type != "application/apply-patch+yaml" {
                return error(
                    415,
                    "UnsupportedMediaType",
                    "the fake takes server-side apply only",
                );
            }
            let Some(manager) = q.get("fieldManager").cloned() else {
                return error(422, "Invalid", "fieldManager is required for apply patch");
            };
            let force = q.get("force").is_some_and(|f| f == "true");
            let Ok(bytes) = axum::body::to_bytes(request.into_body(), 1 << 20).await else {
                return error(400, "BadRequest", "unreadable body");
            };
            // kube sends JSON, which is YAML; a YAML body (kubectl) parses too.
            let patch: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(_) => match serde_saphyr::from_slice(&bytes) {
                    Ok(v) => v,
                    Err(e) => return error(400, "BadRequest", &e.to_string()),
                },
            };
            if patch.get("kind").and_then(Value::as_str) != Some(kind) {
                return error(
                    400,
                    "BadRequest",
                    "the applied object's kind does not match the path",
                );
            }
            match apply(
                &shared,
                &resource,
                namespace.as_deref(),
                &key.2,
                patch,
                &manager,
                force,
            ) {
                Ok(object) => (
                    if creates {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    },
                    axum::Json(object),
                )
                    .into_response(),
                Err((code, message)) => error(code, "Conflict", &message),
            }
        }
        "delete" => {
            let object = shared.world().objects.get(&key).cloned();
            if delete(&shared, &resource, namespace.as_deref(), &key.2) {
                axum::Json(object.unwrap_or(Value::Null)).into_response()
            } else {
                error(
                    404,
                    "NotFound",
                    &format!("{resource} \"{}\" not found", key.2),
                )
            }
        }
        _ => error(405, "MethodNotAllowed", "not served by the fake"),
    }
}

/// The test's side, over HTTP (for tests in another process, such as the browser tests):
/// `POST /fake/status/RESOURCE/NAMESPACE/NAME` with a status object sets it (as the kubelet or the scheduler
/// would); `GET /fake/list/RESOURCE` lists objects; `GET /fake/calls` lists the calls served.
async fn fake_control(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    request: Request,
) -> Response {
    let parts: Vec<&str> = path.split('/').collect();
    match (method, parts.as_slice()) {
        (&Method::POST, ["status", resource, namespace, name]) => {
            let Ok(bytes) = axum::body::to_bytes(request.into_body(), 1 << 20).await else {
                return error(400, "BadRequest", "unreadable body");
            };
            let Ok(status) = serde_json::from_slice::<Value>(&bytes) else {
                return error(400, "BadRequest", "the status must be JSON");
            };
            let key = (
                resource.to_string(),
                Some(namespace.to_string()),
                name.to_string(),
            );
            let Some(mut object) = shared.world().objects.get(&key).cloned() else {
                return error(404, "NotFound", "no such object");
            };
            object["status"] = status;
            put(shared, resource, Some(namespace), name, object);
            StatusCode::NO_CONTENT.into_response()
        }
        (&Method::GET, ["list", resource]) => {
            let items: Vec<Value> = shared
                .world()
                .objects
                .iter()
                .filter(|(k, _)| k.0 == *resource)
                .map(|(_, v)| v.clone())
                .collect();
            axum::Json(items).into_response()
        }
        (&Method::GET, ["calls"]) => {
            let calls: Vec<Value> = shared
                .world()
                .calls
                .iter()
                .map(|c| json!({"verb": c.verb, "resource": c.resource, "name": c.name}))
                .collect();
            axum::Json(calls).into_response()
        }
        _ => error(404, "NotFound", "no such control"),
    }
}

fn watch_stream(
    shared: &Arc<Shared>,
    resource: String,
    namespace: Option<String>,
    q: &BTreeMap<String, String>,
) -> Response {
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let selector = q.get("labelSelector").cloned().unwrap_or_default();
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(290);
    // Subscribe before reading the log, so no event falls between them; duplicates are skipped by version.
    let mut live = shared.events.subscribe();
    let backlog: Vec<Event> = shared
        .world()
        .log
        .iter()
        .filter(|e| e.rv > from)
        .cloned()
        .collect();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let matches = move |e: &Event| {
        e.resource == resource
            && (namespace.is_none() || e.namespace == namespace)
            && labels_match(&e.object, &selector)
    };
    tokio::spawn(async move {
        let mut sent = from;
        let line =
            |e: &Event| Bytes::from(format!("{}\n", json!({"type": e.kind, "object": e.object})));
        for e in backlog {
            if matches(&e) && tx.send(line(&e)).await.is_err() {
                return;
            }
            sent = sent.max(e.rv);
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                got = live.recv() => match got {
                    Ok(e) if e.rv > sent => {
                        sent = e.rv;
                        if matches(&e) && tx.send(line(&e)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::new(Body::from_stream(stream))
}

/// Polls `f` until it gives Some, for at most `within`; panics naming `what` after that (test support: what a
/// watch or a controller pass delivers arrives asynchronously).
pub async fn eventually<T>(
    what: &str,
    within: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The fake's own rules.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_parse() {
        assert_eq!(
            route("/api/v1/namespaces/m/pods/p/log"),
            Some((
                Some("m".into()),
                "pods".into(),
                Some("p".into()),
                Some("log".into())
            ))
        );
        assert_eq!(
            route("/api/v1/nodes"),
            Some((None, "nodes".into(), None, None))
        );
        assert_eq!(
            query_map("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dtollgate&watch=true")
                ["labelSelector"],
            "app.kubernetes.io/managed-by=tollgate"
        );
        let obj = json!({"metadata": {"labels": {"a": "b"}}});
        assert!(labels_match(&obj, "a=b"));
        assert!(!labels_match(&obj, "a=c"));
    }
}
