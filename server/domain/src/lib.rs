//! Tollgate's domain: the rules of who may do what, and the plain data types that the server and the portal
//! share. Nothing here does IO, so it compiles to wasm32 for the portal and is tested with plain unit tests.

pub mod access;
pub mod api_key;
pub mod audit;
pub mod catalog;
pub mod error;
pub mod fleet;
pub mod grant;
pub mod invitation;
pub mod membership;
pub mod net;
pub mod page;
pub mod plan;
pub mod playground;
pub mod role;
pub mod secret;
pub mod subscription;
pub mod text;
pub mod time;
pub mod usage;
pub mod views;

pub use error::DomainError;
pub use role::TenantRole;
