//! The catalog side of the platform: models, plans, subscriptions and API keys, with their authorization, and
//! the key snapshot the gateway resolves keys against without touching the database. Usage is read by
//! `tollgate-usage`.
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
mod playground;
pub mod seed;
mod subscriptions;

pub use directory::{KeyDirectoryRefresher, Published};
pub use keys::Coverage;

use std::{sync::Arc, time::Duration};
use tokio::sync::{watch, Notify};
use tollgate_identity::Identity;
use tollgate_store::Store;

/// The catalog services. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    store: Store,
    identity: Identity,
    /// Woken after every change the gateway cares about, so this replica refreshes at once.
    changed: Arc<Notify>,
    /// The gateway revision this replica's key snapshot was last built from (sent by the refresher).
    applied: Arc<watch::Sender<i64>>,
}

impl Catalog {
    pub fn new(store: Store, identity: Identity) -> Self {
        Self {
            store,
            identity,
            changed: Arc::new(Notify::new()),
            applied: Arc::new(watch::Sender::new(i64::MIN)),
        }
    }

    /// The signal a `KeyDirectoryRefresher` listens to.
    pub fn changes(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Where a `KeyDirectoryRefresher` reports the revision it has published.
    pub fn applied(&self) -> Arc<watch::Sender<i64>> {
        self.applied.clone()
    }

    /// After a change the gateway cares about: wakes the refresher and waits (briefly) until this replica's
    /// snapshot includes it, so a key is usable, or a revocation effective, when the call that made it returns.
    /// Without a running refresher it does not wait; if the refresher is slow it gives up after a second; other replicas catch up
    /// within their refresh interval either way.
    async fn touched(&self) {
        self.changed.notify_one();
        if *self.applied.borrow() == i64::MIN {
            return; // no refresher serves this catalog (tools, tests)
        }
        let Ok(target) = self.store.gateway_revision().await else {
            return;
        };
        let mut seen = self.applied.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(1), seen.wait_for(|r| *r >= target)).await;
    }
}
