//! API keys of a subscription: create (shown once), rotate with a grace period, revoke. Team developers manage
//! their team's keys; tenant admins any key of their tenant. A key is made under one subscription (its home) and
//! may cover other active subscriptions of the same team, or all of them, present and future (`Coverage`): the
//! gateway resolves (key, model) to that model's subscription.

use crate::{convert::key_view, Catalog};
use tollgate_domain::{
    access::Action,
    api_key::{self, KeyCoverage, KeyCreated, KeyView},
    audit::AuditAction,
    secret::{self, SecretKind},
    subscription::State,
    text,
    time::Millis,
    DomainError, TenantRole,
};
use tollgate_identity::{internal, tokens::mint_secret as mint, Caller};
use tollgate_store::{now_millis, ApiKeyRow, NewApiKey, SubscriptionRow};

/// What a new key covers besides the subscription it is made under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Other active subscriptions of the same team.
    pub also: Vec<String>,
    /// Every live subscription of the team, present and future.
    pub team_wide: bool,
}

impl Catalog {
    pub(crate) async fn keys_of(
        &self,
        tenant_id: &str,
        subscription_id: &str,
    ) -> Result<Vec<KeyView>, DomainError> {
        let now = Millis(now_millis());
        let mut links = coverage_by_key(
            self.store
                .api_key_links(tenant_id, subscription_id, None)
                .await
                .map_err(internal)?,
        );
        Ok(self
            .store
            .api_keys_of(tenant_id, subscription_id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|r| {
                let also = links.remove(&r.id).unwrap_or_default();
                key_view(r, also, now)
            })
            .collect())
    }

    /// A key with the other subscriptions it covers.
    async fn view_of_key(&self, row: ApiKeyRow, now: Millis) -> Result<KeyView, DomainError> {
        let also = coverage_by_key(
            self.store
                .api_key_links(&row.tenant_id, &row.subscription_id, Some(&row.id))
                .await
                .map_err(internal)?,
        )
        .remove(&row.id)
        .unwrap_or_default();
        Ok(key_view(row, also, now))
    }

    /// The team's other active subscriptions that a key made under `subscription_id` may also cover.
    pub async fn key_coverage_choices(
        &self,
        caller: &Caller,
        subscription_id: &str,
    ) -> Result<Vec<KeyCoverage>, DomainError> {
        let sub = self.key_manager_of(caller, subscription_id).await?;
        Ok(self
            .store
            .active_subscriptions_of_team(&sub.tenant_id, &sub.team_id)
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|(id, _)| *id != sub.id)
            .map(|(subscription_id, model_id)| KeyCoverage {
                subscription_id,
                model_id,
            })
            .collect())
    }

    /// The subscription, if the caller may manage its keys.
    async fn key_manager_of(
        &self,
        caller: &Caller,
        subscription_id: &str,
    ) -> Result<SubscriptionRow, DomainError> {
        let (row, role) = self
            .subscription_row(caller, subscription_id, Action::ViewSubscriptions)
            .await?;
        let allowed = caller.platform_admin
            || role == Some(TenantRole::Admin)
            || (role >= Some(TenantRole::Developer)
                && self
                    .store
                    .is_team_member(&row.tenant_id, &row.team_id, &caller.user_id)
                    .await
                    .map_err(internal)?);
        if !allowed {
            return Err(DomainError::forbidden(format!(
                "manage the API keys of the team {}",
                row.team_name
            )));
        }
        Ok(row)
    }

    /// A key for one subscription's model.
    pub async fn create_key(
        &self,
        caller: &Caller,
        subscription_id: &str,
        name: &str,
        expiry_days: &str,
    ) -> Result<KeyCreated, DomainError> {
        self.create_key_covering(
            caller,
            subscription_id,
            name,
            expiry_days,
            &Coverage::default(),
        )
        .await
    }

    /// A key made under `subscription_id` that also covers `coverage`: other active subscriptions of the same
    /// team (any other id is refused, as not found), or all of the team's.
    pub async fn create_key_covering(
        &self,
        caller: &Caller,
        subscription_id: &str,
        name: &str,
        expiry_days: &str,
        coverage: &Coverage,
    ) -> Result<KeyCreated, DomainError> {
        let sub = self.key_manager_of(caller, subscription_id).await?;
        if State::parse(&sub.state) != Some(State::Active) {
            return Err(DomainError::conflict(
                "keys can be created only for an active subscription",
            ));
        }
        let team: Vec<String> = self
            .store
            .active_subscriptions_of_team(&sub.tenant_id, &sub.team_id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut also: Vec<String> = Vec::new();
        for id in coverage
            .also
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty() && *s != sub.id)
        {
            if !team.iter().any(|t| t == id) {
                return Err(DomainError::invalid(format!(
                    "{id} is not an active subscription of the team {}: a key covers its own team's subscriptions only",
                    sub.team_name
                )));
            }
            if !also.iter().any(|a| a == id) {
                also.push(id.to_string());
            }
        }
        let name = text::name("The key name", name, 60)?;
        let expires_at = api_key::expiry_from_days(expiry_days, Millis(now_millis()))?;
        let minted = mint(SecretKind::ApiKey);
        let hash = hex::encode(minted.hash);
        self.store
            .insert_api_key(NewApiKey {
                id: &minted.id,
                tenant_id: &sub.tenant_id,
                subscription_id: &sub.id,
                name: &name,
                secret_hash: &hash,
                created_by: &caller.user_id,
                expires_at: expires_at.map(|m| m.0),
                team_wide: coverage.team_wide,
                also: &also,
            })
            .await
            .map_err(internal)?;
        self.identity
            .audit(
                caller,
                Some(&sub.tenant_id),
                AuditAction::KeyCreated,
                "api_key",
                &minted.id,
                &name,
            )
            .await;
        self.touched().await;
        self.created(&sub.tenant_id, &minted).await
    }

    async fn created(
        &self,
        tenant_id: &str,
        minted: &secret::Minted,
    ) -> Result<KeyCreated, DomainError> {
        let row = self
            .store
            .api_key(tenant_id, &minted.id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::Internal)?;
        Ok(KeyCreated {
            key: self.view_of_key(row, Millis(now_millis())).await?,
            secret: minted.full.clone(),
        })
    }

    async fn key_in(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<(tollgate_store::ApiKeyRow, SubscriptionRow), DomainError> {
        // Only the owning tenant is read before authorization; the key itself is read within that tenant.
        let tenant_id = self
            .store
            .tenant_of_api_key(key_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| DomainError::not_found("API key"))?;
        self.identity
            .authorize(caller, &tenant_id, Action::ViewSubscriptions)
            .await
            .map_err(|e| match e {
                DomainError::NotFound(_) => DomainError::not_found("API key"),
                other => other,
            })?;
        let key = self
            .store
            .api_key(&tenant_id, key_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| DomainError::not_found("API key"))?;
        let sub = self
            .key_manager_of(caller, &key.subscription_id)
            .await
            .map_err(|e| match e {
                DomainError::NotFound(_) => DomainError::not_found("API key"),
                other => other,
            })?;
        Ok((key, sub))
    }

    /// Replaces a key: the new one is returned (shown once); the old one keeps working for `grace_hours`.
    pub async fn rotate_key(
        &self,
        caller: &Caller,
        key_id: &str,
        grace_hours: u32,
    ) -> Result<KeyCreated, DomainError> {
        let (old, sub) = self.key_in(caller, key_id).await?;
        let now = Millis(now_millis());
        if !key_view(old.clone(), Vec::new(), now).state.usable() || old.rotated_to.is_some() {
            return Err(DomainError::conflict("only an active key can be rotated"));
        }
        let deadline = api_key::rotation_deadline(grace_hours, now, old.expires_at.map(Millis))?;
        let minted = mint(SecretKind::ApiKey);
        let hash = hex::encode(minted.hash);
        // The new key covers what the old one did.
        let also: Vec<String> = self
            .store
            .api_key_links(&sub.tenant_id, &sub.id, Some(&old.id))
            .await
            .map_err(internal)?
            .into_iter()
            .map(|l| l.subscription_id)
            .collect();
        let rotated = self
            .store
            .rotate_api_key(
                &sub.tenant_id,
                &old.id,
                deadline.0,
                NewApiKey {
                    id: &minted.id,
                    tenant_id: &sub.tenant_id,
                    subscription_id: &sub.id,
                    name: &old.name,
                    secret_hash: &hash,
                    created_by: &caller.user_id,
                    expires_at: old.expires_at,
                    team_wide: old.team_wide != 0,
                    also: &also,
                },
            )
            .await
            .map_err(internal)?;
        if !rotated {
            return Err(DomainError::conflict(
                "this key was revoked or rotated just now: reload",
            ));
        }
        let detail = format!(
            "replaced by {}; old key valid until {}",
            minted.id,
            deadline.format_utc()
        );
        self.identity
            .audit(
                caller,
                Some(&sub.tenant_id),
                AuditAction::KeyRotated,
                "api_key",
                &old.id,
                &detail,
            )
            .await;
        self.touched().await;
        self.created(&sub.tenant_id, &minted).await
    }

    pub async fn revoke_key(&self, caller: &Caller, key_id: &str) -> Result<KeyView, DomainError> {
        let (key, sub) = self.key_in(caller, key_id).await?;
        if !self
            .store
            .revoke_api_key(&sub.tenant_id, &key.id)
            .await
            .map_err(internal)?
        {
            return Err(DomainError::conflict("this key is already revoked"));
        }
        self.identity
            .audit(
                caller,
                Some(&sub.tenant_id),
                AuditAction::KeyRevoked,
                "api_key",
                &key.id,
                &key.name,
            )
            .await;
        self.touched().await;
        let row = self
            .store
            .api_key(&sub.tenant_id, &key.id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::Internal)?;
        self.view_of_key(row, Millis(now_millis())).await
    }
}

/// What each key covers beyond its home subscription, by key id.
fn coverage_by_key(
    links: Vec<tollgate_store::KeyLinkRow>,
) -> std::collections::HashMap<String, Vec<KeyCoverage>> {
    let mut by_key: std::collections::HashMap<String, Vec<KeyCoverage>> = Default::default();
    for l in links {
        by_key.entry(l.key_id).or_default().push(KeyCoverage {
            subscription_id: l.subscription_id,
            model_id: l.model_id,
        });
    }
    by_key
}
