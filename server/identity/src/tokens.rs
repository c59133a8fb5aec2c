//! Personal access tokens: how scripts and CI call the management API as a user. A token carries its user's
//! permissions, narrowed by its scope (read or write); it is shown once, stored as a hash, expires and can be
//! revoked.

use crate::{internal, session::ClientInfo, Caller, Identity};
use rand::RngCore;
use tollgate_domain::{
    api_key::{self, AccessTokenCreated, AccessTokenView, KeyState, TokenScope},
    audit::AuditAction,
    secret::{self, SecretKind, ID_LEN, SECRET_LEN},
    text,
    time::Millis,
    DomainError,
};
use tollgate_store::{now_millis, AccessTokenRow, NewAccessToken};

/// A new secret of `kind` from the operating system's CSPRNG.
pub fn mint_secret(kind: SecretKind) -> secret::Minted {
    let mut random = [0u8; ID_LEN + SECRET_LEN];
    rand::rngs::OsRng.fill_bytes(&mut random);
    secret::mint(kind, &random)
}

fn view(r: AccessTokenRow, now: Millis) -> AccessTokenView {
    AccessTokenView {
        state: KeyState::of(
            r.revoked_at.map(Millis),
            r.expires_at.map(Millis),
            false,
            now,
        ),
        prefix: format!("{}{}", SecretKind::AccessToken.prefix(), r.id),
        // Stored scopes are written from TokenScope::as_str; anything else reads as the narrower scope.
        scope: TokenScope::parse(&r.scopes).unwrap_or(TokenScope::Read),
        created_at: Millis(r.created_at),
        expires_at: r.expires_at.map(Millis),
        last_used_at: r.last_used_at.map(Millis),
        id: r.id,
        name: r.name,
    }
}

impl Identity {
    pub async fn create_access_token(
        &self,
        caller: &Caller,
        name: &str,
        scope: &str,
        expiry_days: &str,
    ) -> Result<AccessTokenCreated, DomainError> {
        let name = text::name("The token name", name, 60)?;
        let scope = TokenScope::parse(scope)?;
        let now = Millis(now_millis());
        // Tokens always expire: a forgotten token in a CI system should not live forever.
        let expires_at = api_key::expiry_from_days(expiry_days, now)?
            .ok_or_else(|| DomainError::invalid("access tokens must expire: pick 1 to 366 days"))?;
        let minted = mint_secret(SecretKind::AccessToken);
        self.store
            .insert_access_token(NewAccessToken {
                id: &minted.id,
                user_id: &caller.user_id,
                name: &name,
                scopes: scope.as_str(),
                secret_hash: &hex::encode(minted.hash),
                expires_at: Some(expires_at.0),
            })
            .await
            .map_err(internal)?;
        self.audit(
            caller,
            None,
            AuditAction::TokenCreated,
            "access_token",
            &minted.id,
            &format!("{name} ({})", scope.as_str()),
        )
        .await;
        let row = self
            .store
            .access_token(&minted.id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::Internal)?;
        Ok(AccessTokenCreated {
            token: view(row, now),
            secret: minted.full,
        })
    }

    pub async fn access_tokens(
        &self,
        caller: &Caller,
    ) -> Result<Vec<AccessTokenView>, DomainError> {
        let now = Millis(now_millis());
        Ok(self
            .store
            .access_tokens_of(&caller.user_id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|r| view(r, now))
            .collect())
    }

    pub async fn revoke_access_token(&self, caller: &Caller, id: &str) -> Result<(), DomainError> {
        if !self
            .store
            .revoke_access_token(&caller.user_id, id)
            .await
            .map_err(internal)?
        {
            return Err(DomainError::not_found("access token"));
        }
        self.audit(
            caller,
            None,
            AuditAction::TokenRevoked,
            "access_token",
            id,
            "",
        )
        .await;
        Ok(())
    }

    /// The caller behind a presented `tgp-` token, with the token's scope. `tenant_id` picks the tenant the call
    /// works in (the user's first tenant when None).
    pub async fn token_caller(
        &self,
        presented: &str,
        tenant_id: Option<&str>,
        client: &ClientInfo,
    ) -> Result<(Caller, TokenScope), DomainError> {
        let p = secret::parse(SecretKind::AccessToken, presented)
            .ok_or(DomainError::Unauthenticated)?;
        let row = self
            .store
            .access_token(p.id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::Unauthenticated)?;
        let hash: [u8; 32] = hex::decode(&row.secret_hash)
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or(DomainError::Unauthenticated)?;
        let now = Millis(now_millis());
        if !secret::verify(p.secret, &hash) || !view(row.clone(), now).state.usable() {
            return Err(DomainError::Unauthenticated);
        }
        let user = self
            .store
            .user_by_id(&row.user_id)
            .await
            .map_err(internal)?
            .ok_or(DomainError::Unauthenticated)?;
        let tenant_id = match tenant_id {
            Some(t) => Some(t.to_string()),
            None => self
                .store
                .tenants_of_user(&user.id)
                .await
                .map_err(internal)?
                .into_iter()
                .next()
                .map(|t| t.tenant_id),
        };
        if let Err(e) = self.store.touch_access_token(&row.id).await {
            tracing::warn!(error = %e, "could not record access token use");
        }
        let scope = TokenScope::parse(&row.scopes).unwrap_or(TokenScope::Read);
        Ok((
            Caller {
                platform_admin: user.platform_admin != 0,
                platform_viewer: user.platform_viewer != 0,
                user_id: user.id,
                email: user.email,
                name: user.name,
                tenant_id,
                session_id: None,
                client: client.clone(),
            },
            scope,
        ))
    }
}
