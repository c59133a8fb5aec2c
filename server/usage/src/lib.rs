//! Usage, in a room of its own: what the gateway metered, read back under the role rules. Records (one per
//! request, `records.rs`) for those who need the detail; everything else reads the rollups the store keeps beside
//! them.
//!
//! Like the catalog and identity services, every operation takes a `Caller`, is authorized through
//! `Identity::authorize` and `tollgate_domain::access`, and only then reads through `tollgate_store` (the only
//! SQL). The portal's server functions and the management API call these same methods.

pub mod alerts;
mod chart;
mod dashboard;
pub mod export;
pub mod generate;
mod page;
mod quotas;
mod records;
pub mod retention;

pub use dashboard::{Scope, Selection, MAX_GROUPS};
pub use page::TenantChoice;

use tollgate_identity::Identity;
use tollgate_store::Store;

/// The usage services. Cheap to clone.
#[derive(Clone)]
pub struct Usage {
    store: Store,
    identity: Identity,
    /// Whether tenants' alert webhooks may point at internal addresses (`TOLLGATE_ALERTS_WEBHOOK_PRIVATE`).
    private_webhooks: bool,
}

impl Usage {
    pub fn new(store: Store, identity: Identity) -> Self {
        Self {
            store,
            identity,
            private_webhooks: false,
        }
    }

    /// Lets tenant admins name webhooks on internal addresses (receivers inside the network).
    pub fn allowing_private_webhooks(self, allowed: bool) -> Self {
        Self {
            private_webhooks: allowed,
            ..self
        }
    }
}
