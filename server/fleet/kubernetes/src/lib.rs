//! The fleet's Kubernetes driver (`TOLLGATE_FLEET_DRIVER=kubernetes`).
//!
//! - `objects.rs`: the Pod and Service one replica needs, built without IO from the replica and the settings.
//! - `status.rs`: a Pod's state as the fleet's `Process` (pending with the scheduler's reason, crash-looping,
//!   evicted, ready), and a Node as inventory; without IO.
//! - `errors.rs`: API errors as transient or permanent, in one place.
//! - `driver.rs`: the `Driver`: server-side apply, watches (reflectors) for Pods and Nodes, deletes, logs.
//! - `settings.rs`: what it is configured with, and the pod template's parsing.
//! - `testing.rs` (feature `testing`): a fake Kubernetes API server speaking the API's contract (lists,
//!   watches, server-side apply with field managers and conflicts, deletes with owner-reference garbage
//!   collection, injected errors), which the driver's and the server's tests run against, since no cluster
//!   runs in CI; it records every call, so the RBAC test checks the manifests cover exactly what the code calls.

pub mod driver;
pub mod errors;
pub mod objects;
pub mod settings;
pub mod status;
#[cfg(feature = "testing")]
pub mod testing;

pub use driver::KubernetesDriver;
pub use settings::{parse_pod_template, KubeSettings};
