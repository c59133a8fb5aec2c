//! What the gateway knows about API keys: the in-memory snapshot that the catalog builds from the database and
//! the gateway reads on every request without touching the database, and the one rule that turns a presented
//! key into a grant or a rejection.

use crate::{
    secret::{self, Presented},
    time::Millis,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Per-subscription limits after the plan's defaults and its per-model overrides are resolved. None means
/// unlimited.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Requests admitted in any 60 seconds (a sliding window counted in one-second steps, not per clock minute).
    pub requests_per_minute: Option<u32>,
    /// Tokens (prompt and completion, as the engines count them) admitted in any 60 seconds, sliding as above.
    pub tokens_per_minute: Option<u32>,
    /// Requests running at once.
    pub max_concurrent: Option<u32>,
    /// Tokens per calendar month (UTC).
    pub monthly_tokens: Option<u64>,
}

/// What a key lets its holder do: call one subscribed model within limits, on behalf of a team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub tenant_id: String,
    pub team_id: String,
    pub subscription_id: String,
    /// The catalog's API model id that the subscription covers (what clients send as `model`).
    pub model: String,
    pub limits: Limits,
    /// False while the subscription is suspended: keys still resolve, but requests get 403.
    pub active: bool,
    /// vLLM's `priority` for the engine, from the plan's scheduling tier (lower runs earlier); None sends none.
    pub priority: Option<i32>,
}

/// One API key as the gateway holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The public part of the key (`tg-<id>...`), also the row id.
    pub key_id: String,
    pub secret_hash: [u8; 32],
    pub revoked: bool,
    pub expires_at: Option<Millis>,
    /// The grant of the subscription the key was made under (its home).
    pub grant: Arc<Grant>,
    /// The grants of the other subscriptions of its team that it covers, one model each; empty for a key of one
    /// model. Shared, so a request takes it with one reference count.
    pub also: Arc<[Arc<Grant>]>,
}

impl KeyEntry {
    /// The grant a request for `model` is served under: the home subscription's, or another that the key covers.
    pub fn grant_for<'a>(
        home: &'a Arc<Grant>,
        also: &'a [Arc<Grant>],
        model: &str,
    ) -> Option<&'a Arc<Grant>> {
        if home.model == model {
            return Some(home);
        }
        also.iter().find(|g| g.model == model)
    }

    /// Every grant of the key, home first.
    pub fn grants(&self) -> impl Iterator<Item = &Arc<Grant>> {
        std::iter::once(&self.grant).chain(self.also.iter())
    }
}

/// Why a presented key is refused; the gateway maps each to an OpenAI-style error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    /// No key in the request.
    Missing,
    /// Not a key of ours, an unknown id, or a wrong secret: all answer alike.
    Invalid,
    Expired,
    Revoked,
    /// The key is fine but its subscription is suspended (or no longer active).
    Suspended,
}

impl KeyRejection {
    /// The HTTP status for this rejection: 401 for bad credentials, 403 for a valid key that may not be used now.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Suspended => 403,
            _ => 401,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => {
                "You didn't provide an API key. Send it as `Authorization: Bearer tg-...`."
            }
            Self::Invalid => "Incorrect API key provided.",
            Self::Expired => "This API key has expired. Create a new one in the portal.",
            Self::Revoked => "This API key has been revoked.",
            Self::Suspended => "The subscription behind this API key is suspended.",
        }
    }
}

/// What `GET /v1/models` shows about a model: catalog metadata, plain data.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ModelCard {
    /// The API model id.
    pub id: String,
    /// When the model entered the catalog, seconds since the Unix epoch (OpenAI's `created`).
    pub created: i64,
    /// Who publishes the model (OpenAI's `owned_by`).
    pub owned_by: String,
    pub display_name: String,
    /// chat | completion | embeddings
    pub task: String,
    pub context_length: u64,
    /// preview | available | deprecated
    pub status: String,
}

/// Every key the gateway accepts, by public id, and the catalog entries of the models they cover. Built whole and
/// swapped in atomically by the catalog.
#[derive(Debug, Clone, Default)]
pub struct KeySnapshot {
    keys: HashMap<String, KeyEntry>,
    models: HashMap<String, Arc<ModelCard>>,
    /// Every live subscription's grant, by subscription id, whether or not it has keys: what the portal's
    /// playground serves requests under (keys of a subscription share its grant).
    grants: HashMap<String, Arc<Grant>>,
}

impl KeySnapshot {
    pub fn new(entries: impl IntoIterator<Item = KeyEntry>) -> Self {
        Self {
            keys: entries.into_iter().map(|e| (e.key_id.clone(), e)).collect(),
            models: HashMap::new(),
            grants: HashMap::new(),
        }
    }

    /// Adds the grants of subscriptions, keyed by their subscription id.
    pub fn with_grants(mut self, grants: impl IntoIterator<Item = Arc<Grant>>) -> Self {
        self.grants = grants
            .into_iter()
            .map(|g| (g.subscription_id.clone(), g))
            .collect();
        self
    }

    /// The grant of a live (active or suspended) subscription, for a request the portal authorized without a key.
    pub fn grant_of(&self, subscription_id: &str) -> Option<&Arc<Grant>> {
        self.grants.get(subscription_id)
    }

    /// Adds the catalog entries `/v1/models` shows.
    pub fn with_models(mut self, cards: impl IntoIterator<Item = ModelCard>) -> Self {
        self.models = cards
            .into_iter()
            .map(|c| (c.id.clone(), Arc::new(c)))
            .collect();
        self
    }

    /// The catalog entry of a model, when the snapshot has one.
    pub fn model_card(&self, id: &str) -> Option<&Arc<ModelCard>> {
        self.models.get(id)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Resolves a presented key (`tg-...`, or None when the request had none) at `now`.
    pub fn resolve(
        &self,
        presented: Option<&str>,
        now: Millis,
    ) -> Result<(&KeyEntry, &Arc<Grant>), KeyRejection> {
        let text = presented.ok_or(KeyRejection::Missing)?;
        let Presented { id, secret } =
            secret::parse(secret::SecretKind::ApiKey, text).ok_or(KeyRejection::Invalid)?;
        let entry = self.keys.get(id).ok_or(KeyRejection::Invalid)?;
        if !secret::verify(secret, &entry.secret_hash) {
            return Err(KeyRejection::Invalid);
        }
        if entry.revoked {
            return Err(KeyRejection::Revoked);
        }
        if entry.expires_at.is_some_and(|at| at <= now) {
            return Err(KeyRejection::Expired);
        }
        // Suspended when every subscription it covers is; otherwise the request's model decides (the gateway
        // answers 403 for a suspended one).
        if !entry.grants().any(|g| g.active) {
            return Err(KeyRejection::Suspended);
        }
        Ok((entry, &entry.grant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{mint, SecretKind, ID_LEN, SECRET_LEN};

    fn key(seed: u8, revoked: bool, expires_at: Option<i64>, active: bool) -> (String, KeyEntry) {
        let mut random = [0u8; ID_LEN + SECRET_LEN];
        for (i, b) in random.iter_mut().enumerate() {
            *b = seed.wrapping_add((i as u8).wrapping_mul(13));
        }
        let m = mint(SecretKind::ApiKey, &random);
        let entry = KeyEntry {
            key_id: m.id.clone(),
            secret_hash: m.hash,
            revoked,
            expires_at: expires_at.map(Millis),
            grant: Arc::new(Grant {
                tenant_id: "tnt_1".into(),
                team_id: "team_1".into(),
                subscription_id: "sub_1".into(),
                model: "llama".into(),
                limits: Limits::default(),
                active,
                priority: None,
            }),
            also: Arc::new([]),
        };
        (m.full, entry)
    }

    fn grant(sub: &str, model: &str, active: bool) -> Arc<Grant> {
        Arc::new(Grant {
            tenant_id: "tnt_1".into(),
            team_id: "team_1".into(),
            subscription_id: sub.into(),
            model: model.into(),
            limits: Limits::default(),
            active,
            priority: None,
        })
    }

    #[test]
    fn a_key_of_several_models_resolves_each_to_its_subscription() {
        let (secret, mut e) = key(7, false, None, false);
        e.also = vec![
            grant("sub_2", "mistral", true),
            grant("sub_3", "qwen", false),
        ]
        .into();
        let also = e.also.clone();
        let snap = KeySnapshot::new([e]);
        // The home subscription is suspended, another is active: the key still resolves.
        let (entry, home) = snap.resolve(Some(&secret), Millis(0)).unwrap();
        assert_eq!(entry.grants().count(), 3);
        let pick = |m: &str| KeyEntry::grant_for(home, &also, m).map(|g| g.subscription_id.clone());
        assert_eq!(pick("llama").as_deref(), Some("sub_1"));
        assert_eq!(pick("mistral").as_deref(), Some("sub_2"));
        assert_eq!(pick("qwen").as_deref(), Some("sub_3"));
        assert_eq!(pick("gpt"), None);
        // Every subscription suspended: the key is.
        let (secret, mut e) = key(8, false, None, false);
        e.also = vec![grant("sub_2", "mistral", false)].into();
        assert_eq!(
            KeySnapshot::new([e])
                .resolve(Some(&secret), Millis(0))
                .unwrap_err(),
            KeyRejection::Suspended
        );
    }

    #[test]
    fn each_state_resolves_to_its_answer() {
        let (good, e1) = key(1, false, None, true);
        let (revoked, e2) = key(2, true, None, true);
        let (expired, e3) = key(3, false, Some(1_000), true);
        let (suspended, e4) = key(4, false, None, false);
        let (rotating, e5) = key(5, false, Some(5_000), true);
        let snap = KeySnapshot::new([e1, e2, e3, e4, e5]);
        let now = Millis(2_000);
        assert_eq!(
            snap.resolve(Some(&good), now).unwrap().1.subscription_id,
            "sub_1"
        );
        assert_eq!(
            snap.resolve(Some(&revoked), now).unwrap_err(),
            KeyRejection::Revoked
        );
        assert_eq!(
            snap.resolve(Some(&expired), now).unwrap_err(),
            KeyRejection::Expired
        );
        assert_eq!(
            snap.resolve(Some(&suspended), now).unwrap_err(),
            KeyRejection::Suspended
        );
        assert!(
            snap.resolve(Some(&rotating), now).is_ok(),
            "inside its grace period"
        );
        assert_eq!(
            snap.resolve(Some(&rotating), Millis(5_000)).unwrap_err(),
            KeyRejection::Expired
        );
        assert_eq!(snap.resolve(None, now).unwrap_err(), KeyRejection::Missing);
    }

    #[test]
    fn a_right_id_with_a_wrong_secret_is_invalid_not_revoked() {
        let (revoked, e) = key(2, true, None, true);
        let snap = KeySnapshot::new([e]);
        let forged = format!(
            "{}{}",
            &revoked[..revoked.len() - 1],
            if revoked.ends_with('x') { 'y' } else { 'x' }
        );
        assert_eq!(
            snap.resolve(Some(&forged), Millis(0)).unwrap_err(),
            KeyRejection::Invalid
        );
        assert_eq!(
            snap.resolve(Some("sk-not-ours"), Millis(0)).unwrap_err(),
            KeyRejection::Invalid
        );
    }
}
