//! API keys of a subscription: create (shown once), rotate with a grace period, revoke. Team developers manage
//! their team's keys; tenant admins any key of their tenant.

use crate::{convert::key_view, Catalog};
use tollgate_domain::{
    access::Action,
    api_key::{self, KeyCreated, KeyView},
    audit::AuditAction,
    secret::{self, SecretKind},
    subscription::State,
    text,
    time::Millis,
    DomainError, TenantRole,
};
use tollgate_identity::{internal, tokens::mint_secret as mint, Caller};
use tollgate_store::{now_millis, NewApiKey, SubscriptionRow};

impl Catalog {
    pub(crate) async fn keys_of(
        &self,
        tenant_id: &str,
        subscription_id: &str,
    ) -> Result<Vec<KeyView>, DomainError> {
        let now = Millis(now_millis());
        Ok(self
            .store
            .api_keys_of(tenant_id, subscription_id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|r| key_view(r, now))
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

    pub async fn create_key(
        &self,
        caller: &Caller,
        subscription_id: &str,
        name: &str,
        expiry_days: &str,
    ) -> Result<KeyCreated, DomainError> {
        let sub = self.key_manager_of(caller, subscription_id).await?;
        if State::parse(&sub.state) != Some(State::Active) {
            return Err(DomainError::conflict(
                "keys can be created only for an active subscription",
            ));
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
            key: key_view(row, Millis(now_millis())),
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
        if !key_view(old.clone(), now).state.usable() || old.rotated_to.is_some() {
            return Err(DomainError::conflict("only an active key can be rotated"));
        }
        let deadline = api_key::rotation_deadline(grace_hours, now, old.expires_at.map(Millis))?;
        let minted = mint(SecretKind::ApiKey);
        let hash = hex::encode(minted.hash);
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
        Ok(key_view(row, Millis(now_millis())))
    }
}
