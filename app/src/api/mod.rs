//! Server functions: the portal's calls into the server. Each is a thin edge: resolve the caller from the
//! session, call one `Identity` operation, return its result. No rule lives here.

pub mod account;
pub mod audit;
pub mod auth;
pub mod members;
pub mod teams;
pub mod tenants;

#[cfg(feature = "ssr")]
pub mod ssr;
