//! The gateway's view of keys: a `KeySnapshot` built from the database and handed to whoever serves requests.
//!
//! A refresher task rebuilds it when the gateway revision (bumped by every relevant write, on any replica) moves.
//! It checks at once when this replica changed something (`Catalog::changes`), and otherwise every `interval`,
//! so a revocation on one replica reaches every other within one interval. Requests never wait for it.

use std::{collections::HashMap, sync::Arc, time::Duration};
use tokio::sync::Notify;
use tollgate_domain::{
    grant::{Grant, KeyEntry, KeySnapshot},
    plan::PlanView,
    time::Millis,
};
use tollgate_store::{GatewayKeyRow, Store, StoreError};

/// Builds the snapshot of every key the gateway should know, with limits resolved from plans.
pub async fn load_snapshot(store: &Store) -> Result<KeySnapshot, StoreError> {
    let keys = store.gateway_keys().await?;
    let plans =
        crate::convert::plan_views(store.all_plans().await?, &store.all_plan_models().await?);
    Ok(snapshot_of(keys, &plans))
}

fn snapshot_of(keys: Vec<GatewayKeyRow>, plans: &[PlanView]) -> KeySnapshot {
    let plans: HashMap<&str, &PlanView> = plans.iter().map(|p| (p.id.as_str(), p)).collect();
    // Keys of one subscription share one grant.
    let mut grants: HashMap<String, Arc<Grant>> = HashMap::new();
    let entries = keys.into_iter().filter_map(|k| {
        let Some(hash) = decode_hash(&k.secret_hash) else {
            tracing::warn!(key.id = %k.id, "stored key hash is unreadable; the key is left out");
            return None;
        };
        let grant = grants
            .entry(k.subscription_id.clone())
            .or_insert_with(|| {
                Arc::new(Grant {
                    limits: plans
                        .get(k.plan_id.as_str())
                        .map(|p| p.limits_for(&k.model_id))
                        .unwrap_or_default(),
                    active: k.subscription_state == "active",
                    tenant_id: k.tenant_id.clone(),
                    team_id: k.team_id.clone(),
                    subscription_id: k.subscription_id.clone(),
                    model: k.model_id.clone(),
                })
            })
            .clone();
        Some(KeyEntry {
            key_id: k.id,
            secret_hash: hash,
            revoked: k.revoked_at.is_some(),
            expires_at: k.expires_at.map(Millis),
            grant,
        })
    });
    KeySnapshot::new(entries.collect::<Vec<_>>())
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// Keeps a snapshot current and hands each new one to `publish`.
pub struct KeyDirectoryRefresher {
    store: Store,
    changes: Arc<Notify>,
    interval: Duration,
}

impl KeyDirectoryRefresher {
    pub fn new(store: Store, changes: Arc<Notify>, interval: Duration) -> Self {
        Self {
            store,
            changes,
            interval,
        }
    }

    /// Loads the first snapshot (so a server starts with every key), then refreshes in the background until the
    /// returned task is aborted.
    pub async fn start(
        self,
        publish: impl Fn(KeySnapshot) + Send + Sync + 'static,
    ) -> Result<tokio::task::JoinHandle<()>, StoreError> {
        let mut seen = self.store.gateway_revision().await?;
        publish(load_snapshot(&self.store).await?);
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = self.changes.notified() => {}
                    _ = tokio::time::sleep(self.interval) => {}
                }
                match self.refresh_if_moved(seen).await {
                    Ok(Some((revision, snapshot))) => {
                        seen = revision;
                        tracing::debug!(keys = snapshot.len(), revision, "key snapshot refreshed");
                        publish(snapshot);
                    }
                    Ok(None) => {}
                    // Keep serving the last snapshot; the next tick retries.
                    Err(e) => tracing::warn!(error = %e, "could not refresh the key snapshot"),
                }
            }
        }))
    }

    async fn refresh_if_moved(&self, seen: i64) -> Result<Option<(i64, KeySnapshot)>, StoreError> {
        let revision = self.store.gateway_revision().await?;
        if revision == seen {
            return Ok(None);
        }
        // Read the revision before the data: a write landing in between bumps it again and is picked up next time.
        Ok(Some((revision, load_snapshot(&self.store).await?)))
    }
}
