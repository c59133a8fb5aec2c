//! Server functions: the portal's calls into the server. Each is a thin edge: resolve the caller from the
//! session, call one `Identity` or `Catalog` operation, return its result. No rule lives here.

pub mod account;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod fleet;
pub mod keys;
pub mod members;
pub mod playground;
pub mod subscriptions;
pub mod teams;
pub mod tenants;
pub mod tokens;
pub mod usage;

#[cfg(feature = "ssr")]
pub mod ssr;
