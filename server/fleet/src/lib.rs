//! The fleet: which engine replicas run where, and keeping them so.
//!
//! - `rules/`: the decisions, in plain Rust without IO (placement on GPUs, autoscaling, a replica's lifecycle
//!   and a deployment's replica count), each tested with tables of cases.
//! - `controller.rs`: the reconcile loop that applies them, one server replica at a time (a lease in the
//!   database); `probe.rs` reads engines' `/health` and `/metrics`.
//! - `driver/`: where replicas run: the in-process simulator (`sim.rs`, the default), local processes on this
//!   machine's GPUs (`local.rs`, `nvidia_smi.rs`); one trait, chosen by configuration.
//! - `service.rs`: what platform admins do (the portal and `/api/v1` call it); `model.rs`: rows as the
//!   controller reads them; `metrics.rs`: the controller's series; `seed.rs`: deployments for the seed catalog.

pub mod controller;
pub mod driver;
pub mod metrics;
pub mod model;
pub mod probe;
pub mod rules;
pub mod seed;
pub mod service;

pub use controller::{Controller, ControllerConfig};
pub use driver::{Driver, DriverError};
pub use metrics::FleetMetrics;
pub use service::Fleet;
