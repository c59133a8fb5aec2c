//! The gateway's view of keys: a `KeySnapshot` built from the database and handed to whoever serves requests.
//!
//! A refresher task rebuilds it when the gateway revision (bumped by every relevant write, on any replica) moves.
//! It checks at once when this replica changed something (`Catalog::changes`), and otherwise every `interval`,
//! so a revocation on one replica reaches every other within one interval. Requests never wait for it.

use std::{collections::HashMap, sync::Arc, time::Duration};
use tokio::sync::Notify;
use tollgate_domain::{
    catalog::{ModelStatus, ModelView},
    grant::{Grant, KeyEntry, KeySnapshot, ModelCard},
    plan::PlanView,
    time::Millis,
};
use tollgate_store::{GatewayKeyRow, GatewaySubscriptionRow, Store, StoreError};

/// What each refresh hands to the gateway: the keys (with the catalog cards `/v1/models` shows) and the models,
/// whose engine-side names the routes need.
pub struct Published {
    pub keys: KeySnapshot,
    pub models: Vec<ModelView>,
}

/// Builds the snapshot of every key the gateway should know, with limits resolved from plans.
pub async fn load_snapshot(store: &Store) -> Result<KeySnapshot, StoreError> {
    Ok(load(store).await?.keys)
}

/// Keys and models, read together.
pub async fn load(store: &Store) -> Result<Published, StoreError> {
    let subscriptions = store.gateway_subscriptions().await?;
    let keys = store.gateway_keys().await?;
    let links = store.gateway_key_links().await?;
    let plans =
        crate::convert::plan_views(store.all_plans().await?, &store.all_plan_models().await?);
    let models: Vec<ModelView> = store
        .all_models()
        .await?
        .into_iter()
        .map(crate::convert::model_view)
        .collect();
    let cards = models
        .iter()
        .filter(|m| m.status != ModelStatus::Retired)
        .map(card_of);
    Ok(Published {
        keys: snapshot_of(subscriptions, keys, &links, &plans).with_models(cards),
        models,
    })
}

/// What `GET /v1/models` shows of a model (OpenAI's fields plus a little catalog metadata).
fn card_of(m: &ModelView) -> ModelCard {
    ModelCard {
        id: m.id.clone(),
        created: m.created_at.0 / 1000,
        owned_by: m.provider.clone(),
        display_name: m.display_name.clone(),
        task: m.task.as_str().to_string(),
        context_length: u64::try_from(m.context_length).unwrap_or(0),
        status: m.status.as_str().to_string(),
    }
}

/// The grant of one subscription: its tenant, team and model, the limits its plan gives that model, and the
/// plan's engine priority.
fn grant_of(plans: &HashMap<&str, &PlanView>, s: &GatewaySubscriptionRow) -> Arc<Grant> {
    let plan = plans.get(s.plan_id.as_str());
    Arc::new(Grant {
        limits: plan.map(|p| p.limits_for(&s.model_id)).unwrap_or_default(),
        active: s.state == "active",
        priority: plan.and_then(|p| tollgate_domain::plan::engine_priority(p.tier)),
        tenant_id: s.tenant_id.clone(),
        team_id: s.team_id.clone(),
        subscription_id: s.id.clone(),
        model: s.model_id.clone(),
    })
}

/// `links`: (key, subscription) pairs a key covers beyond its home subscription.
fn snapshot_of(
    subscriptions: Vec<GatewaySubscriptionRow>,
    keys: Vec<GatewayKeyRow>,
    links: &[(String, String)],
    plans: &[PlanView],
) -> KeySnapshot {
    let plans: HashMap<&str, &PlanView> = plans.iter().map(|p| (p.id.as_str(), p)).collect();
    // One grant per subscription, shared by its keys and by the playground.
    let mut grants: HashMap<String, Arc<Grant>> = subscriptions
        .iter()
        .map(|s| (s.id.clone(), grant_of(&plans, s)))
        .collect();
    // Built once, so a key's other grants are found without a pass over every subscription or link.
    let mut by_team: HashMap<(&str, &str), Vec<Arc<Grant>>> = HashMap::new();
    for s in &subscriptions {
        if let Some(g) = grants.get(&s.id) {
            by_team
                .entry((s.tenant_id.as_str(), s.team_id.as_str()))
                .or_default()
                .push(g.clone());
        }
    }
    let mut links_of: HashMap<&str, Vec<&str>> = HashMap::new();
    for (key, sub) in links {
        links_of.entry(key.as_str()).or_default().push(sub.as_str());
    }
    let entries = keys.into_iter().filter_map(|k| {
        let Some(hash) = decode_hash(&k.secret_hash) else {
            tracing::warn!(key.id = %k.id, "stored key hash is unreadable; the key is left out");
            return None;
        };
        // A subscription that went live between the two reads has no grant yet: its key row has all it takes.
        let team_wide = k.team_wide != 0;
        let grant = grants
            .entry(k.subscription_id.clone())
            .or_insert_with(|| {
                grant_of(
                    &plans,
                    &GatewaySubscriptionRow {
                        id: k.subscription_id.clone(),
                        tenant_id: k.tenant_id.clone(),
                        team_id: k.team_id.clone(),
                        state: k.subscription_state.clone(),
                        model_id: k.model_id.clone(),
                        plan_id: k.plan_id.clone(),
                    },
                )
            })
            .clone();
        // Other live subscriptions it covers: listed ones, or every one of its team; one per model (a team holds
        // one live subscription per model).
        let mut also: Vec<Arc<Grant>> = if team_wide {
            by_team
                .get(&(grant.tenant_id.as_str(), grant.team_id.as_str()))
                .cloned()
                .unwrap_or_default()
        } else {
            links_of
                .get(k.id.as_str())
                .into_iter()
                .flatten()
                .filter_map(|sub| grants.get(*sub).cloned())
                .filter(|g| g.tenant_id == grant.tenant_id && g.team_id == grant.team_id)
                .collect()
        };
        also.retain(|g| g.model != grant.model);
        also.sort_by(|a, b| a.model.cmp(&b.model));
        also.dedup_by(|a, b| a.model == b.model);
        Some(KeyEntry {
            key_id: k.id,
            secret_hash: hash,
            revoked: k.revoked_at.is_some(),
            expires_at: k.expires_at.map(Millis),
            grant,
            also: also.into(),
        })
    });
    let entries: Vec<KeyEntry> = entries.collect();
    KeySnapshot::new(entries).with_grants(grants.into_values())
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// Keeps a snapshot current and hands each new one to `publish`.
pub struct KeyDirectoryRefresher {
    store: Store,
    changes: Arc<Notify>,
    applied: Arc<tokio::sync::watch::Sender<i64>>,
    interval: Duration,
}

impl KeyDirectoryRefresher {
    /// `changes` and `applied` come from the `Catalog` of this replica (`Catalog::changes`, `Catalog::applied`).
    pub fn new(
        store: Store,
        changes: Arc<Notify>,
        applied: Arc<tokio::sync::watch::Sender<i64>>,
        interval: Duration,
    ) -> Self {
        Self {
            store,
            changes,
            applied,
            interval,
        }
    }

    /// Loads the first snapshot (so a server starts with every key), then refreshes in the background until the
    /// returned task is aborted.
    pub async fn start(
        self,
        publish: impl Fn(Published) + Send + Sync + 'static,
    ) -> Result<tokio::task::JoinHandle<()>, StoreError> {
        let mut seen = self.store.gateway_revision().await?;
        publish(load(&self.store).await?);
        self.applied.send_replace(seen);
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = self.changes.notified() => {}
                    _ = tokio::time::sleep(self.interval) => {}
                }
                match self.refresh_if_moved(seen).await {
                    Ok(Some((revision, published))) => {
                        seen = revision;
                        tracing::debug!(
                            keys = published.keys.len(),
                            revision,
                            "key snapshot refreshed"
                        );
                        publish(published);
                        self.applied.send_replace(revision);
                    }
                    Ok(None) => {}
                    // Keep serving the last snapshot; the next tick retries.
                    Err(e) => tracing::warn!(error = %e, "could not refresh the key snapshot"),
                }
            }
        }))
    }

    async fn refresh_if_moved(&self, seen: i64) -> Result<Option<(i64, Published)>, StoreError> {
        let revision = self.store.gateway_revision().await?;
        if revision == seen {
            return Ok(None);
        }
        // Read the revision before the data: a write landing in between bumps it again and is picked up next time.
        Ok(Some((revision, load(&self.store).await?)))
    }
}
