//! Signing in and out with local accounts, joining through an invitation, and a user's own sessions.

use crate::{error::duplicate_as, internal, password, session::ClientInfo, Caller, Identity};
use std::time::Instant;
use tollgate_domain::{
    audit::AuditAction,
    text,
    time::Millis,
    views::{Me, SessionView, TenantMembership},
    DomainError, TenantRole,
};
use tollgate_store::{NewAuditEvent, NewUser};
use tower_sessions::Session;

impl Identity {
    /// Local sign-in: throttled per email and per address, constant work for unknown emails, audited.
    pub async fn sign_in_local(
        &self,
        session: &Session,
        email: &str,
        password_input: &str,
        client: &ClientInfo,
    ) -> Result<(), DomainError> {
        if !self.settings.local_login {
            return Err(DomainError::invalid(
                "password sign-in is turned off on this server: use single sign-on",
            ));
        }
        let email = email.trim().to_ascii_lowercase();
        let ip_key = format!("ip:{}", client.ip.as_deref().unwrap_or("unknown"));
        let keys = [email.as_str(), ip_key.as_str()];
        if let Some(wait) = self.throttle.check(&keys, Instant::now()) {
            return Err(DomainError::Throttled(wait));
        }
        let user = self.store.user_by_email(&email).await.map_err(internal)?;
        let hash = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| password::dummy_hash().to_string());
        let ok = password::verify(password_input.to_string(), hash).await;
        let user = match user {
            Some(u) if ok && u.password_hash.is_some() => u,
            _ => {
                self.throttle.record_failure(&keys, Instant::now());
                self.record(NewAuditEvent {
                    actor_email: Some(&email),
                    action: AuditAction::SignInFailed.as_str(),
                    target_type: "user",
                    target_id: &email,
                    detail: "wrong email or password",
                    ip: client.ip.as_deref(),
                    ..Default::default()
                })
                .await;
                return Err(DomainError::invalid("wrong email or password"));
            }
        };
        self.throttle.record_success(&keys);
        self.finish_sign_in(session, &user, "password", client, None)
            .await
    }

    pub(crate) async fn finish_sign_in(
        &self,
        session: &Session,
        user: &tollgate_store::UserRow,
        method: &str,
        client: &ClientInfo,
        id_token: Option<&str>,
    ) -> Result<(), DomainError> {
        self.start_session(session, user, method, client, id_token)
            .await?;
        self.store.touch_sign_in(&user.id).await.map_err(internal)?;
        let tenants = self
            .store
            .tenants_of_user(&user.id)
            .await
            .map_err(internal)?;
        // One event per tenant the user belongs to, so each tenant's admins see their members' sign-ins.
        let tenant_ids: Vec<Option<&str>> = if tenants.is_empty() {
            vec![None]
        } else {
            tenants.iter().map(|t| Some(t.tenant_id.as_str())).collect()
        };
        for tenant_id in tenant_ids {
            self.record(NewAuditEvent {
                tenant_id,
                actor_id: Some(&user.id),
                actor_email: Some(&user.email),
                action: AuditAction::SignIn.as_str(),
                target_type: "user",
                target_id: &user.id,
                detail: method,
                ip: client.ip.as_deref(),
            })
            .await;
        }
        Ok(())
    }

    /// Creates a local account for someone who holds an invitation, accepts it and signs them in.
    pub async fn sign_up_with_invitation(
        &self,
        session: &Session,
        token: &str,
        email: &str,
        name: &str,
        password_input: &str,
        client: &ClientInfo,
    ) -> Result<(), DomainError> {
        let email = text::email(email)?;
        let name = text::name("Your name", name, 100)?;
        text::new_password(password_input)?;
        let invitation = self.invitation_for_token(token).await?;
        tollgate_domain::invitation::check_invitee(invitation.email.as_deref(), &email)?;
        Self::invitation_facts(&invitation)
            .check_acceptable(Millis(tollgate_store::now_millis()))?;
        if self
            .store
            .user_by_email(&email)
            .await
            .map_err(internal)?
            .is_some()
        {
            return Err(DomainError::conflict(
                "an account with this email already exists: sign in first, then open the invitation link again",
            ));
        }
        let hash = password::hash(password_input.to_string()).await?;
        let user = self
            .store
            .create_user(NewUser {
                email: &email,
                name: &name,
                password_hash: Some(&hash),
                oidc: None,
                platform_admin: false,
            })
            .await
            .map_err(duplicate_as("an account with this email already exists"))?;
        let caller = Caller {
            user_id: user.id.clone(),
            email: user.email.clone(),
            name: user.name.clone(),
            platform_admin: false,
            platform_viewer: false,
            tenant_id: None,
            session_id: None,
            client: client.clone(),
        };
        self.accept_invitation(&caller, token).await?;
        self.finish_sign_in(session, &user, "password", client, None)
            .await
    }

    /// The signed-in user with their tenants, for the portal header.
    pub async fn me(&self, caller: &Caller) -> Result<Me, DomainError> {
        let tenants: Vec<TenantMembership> = self
            .store
            .tenants_of_user(&caller.user_id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|t| TenantMembership {
                tenant_id: t.tenant_id,
                slug: t.slug,
                name: t.name,
                role: t.role.parse().ok(),
            })
            .collect();
        let tenant = match &caller.tenant_id {
            None => None,
            Some(id) => match tenants.iter().find(|t| &t.tenant_id == id) {
                Some(t) => Some(t.clone()),
                // A platform admin looking at a tenant they do not belong to.
                None if caller.platform_admin => self
                    .store
                    .tenant_by_id(id)
                    .await
                    .map_err(internal)?
                    .map(|t| TenantMembership {
                        tenant_id: t.id,
                        slug: t.slug,
                        name: t.name,
                        role: None,
                    }),
                None => None,
            },
        };
        Ok(Me {
            user_id: caller.user_id.clone(),
            email: caller.email.clone(),
            name: caller.name.clone(),
            platform_admin: caller.platform_admin,
            platform_viewer: caller.platform_viewer,
            tenant,
            tenants,
        })
    }

    /// The caller's role in their current tenant, for the portal to show or hide admin screens.
    pub async fn current_role(&self, caller: &Caller) -> Result<Option<TenantRole>, DomainError> {
        let Some(t) = &caller.tenant_id else {
            return Ok(None);
        };
        Ok(self
            .store
            .membership_role(t, &caller.user_id)
            .await
            .map_err(internal)?
            .and_then(|r| r.parse().ok()))
    }

    pub async fn my_sessions(
        &self,
        caller: &Caller,
        session: &Session,
    ) -> Result<Vec<SessionView>, DomainError> {
        let current = session
            .id()
            .map(|id| crate::session_store::session_key(&id));
        let current_method = Self::session_method(session).await;
        let rows = self
            .store
            .sessions_of_user(&caller.user_id)
            .await
            .map_err(internal)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let (user_agent, ip, method) = crate::session::describe(&r.data);
                let is_current = current.as_deref() == Some(r.id.as_str());
                SessionView {
                    current: is_current,
                    method: if is_current && method.is_empty() {
                        current_method.clone()
                    } else {
                        method
                    },
                    id: r.id,
                    created_at: Millis(r.created_at),
                    last_seen_at: Millis(r.last_seen_at),
                    expires_at: Millis(r.expires_at),
                    user_agent,
                    ip,
                }
            })
            .collect())
    }

    /// Revokes one of the caller's own sessions; another user's session id answers NotFound.
    pub async fn revoke_session(
        &self,
        caller: &Caller,
        session_id: &str,
    ) -> Result<(), DomainError> {
        if !self
            .store
            .delete_user_session(&caller.user_id, session_id)
            .await
            .map_err(internal)?
        {
            return Err(DomainError::not_found("session"));
        }
        self.audit(caller, None, AuditAction::SessionRevoked, "session", "", "")
            .await;
        Ok(())
    }
}
