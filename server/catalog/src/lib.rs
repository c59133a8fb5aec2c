//! The catalog side of the platform: models, plans, subscriptions and API keys, with their authorization, and
//! the key snapshot the gateway resolves keys against without touching the database.
//!
//! Every operation takes a `Caller`, asks `tollgate_domain::access::decide` (through `Identity::authorize`), applies
//! the domain rules, and only then reads or writes through `tollgate_store`. The portal's server functions and the
//! management API call these same methods.

mod convert;
pub mod directory;
mod keys;
mod markdown;
mod models;
mod plans;
pub mod seed;
mod subscriptions;
mod usage;

pub use directory::{KeyDirectoryRefresher, Published};

use std::sync::Arc;
use tokio::sync::Notify;
use tollgate_identity::Identity;
use tollgate_store::Store;

/// The catalog services. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    store: Store,
    identity: Identity,
    /// Woken after every change the gateway cares about, so this replica refreshes at once.
    changed: Arc<Notify>,
}

impl Catalog {
    pub fn new(store: Store, identity: Identity) -> Self {
        Self {
            store,
            identity,
            changed: Arc::new(Notify::new()),
        }
    }

    /// The signal a `KeyDirectoryRefresher` listens to.
    pub fn changes(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    fn touched(&self) {
        self.changed.notify_one();
    }
}
