//! What a portal session holds and the two transitions that matter: signing in (a fresh session id, so a
//! planted cookie is useless) and resolving the caller on each request (idle and absolute expiry enforced).

use crate::{internal, Caller, Identity};
use serde::{Deserialize, Serialize};
use tollgate_domain::DomainError;
use tollgate_store::{now_millis, UserRow};
use tower_sessions::Session;

pub const USER_ID: &str = "uid";
const TENANT_ID: &str = "tid";
const SIGNED_IN_AT: &str = "auth_at";
const METHOD: &str = "method";
const USER_AGENT: &str = "ua";
const IP: &str = "ip";
const ID_TOKEN: &str = "id_token";

/// Request facts recorded with a sign-in and in the audit log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Logs a session storage failure and answers Internal (the details stay in the log).
pub(crate) fn session_error(e: tower_sessions::session::Error) -> DomainError {
    tracing::error!(error = %e, "session storage failure");
    DomainError::Internal
}

impl Identity {
    /// Binds the session to a user after a successful sign-in. The session id is replaced first.
    pub async fn start_session(
        &self,
        session: &Session,
        user: &UserRow,
        method: &str,
        client: &ClientInfo,
        id_token: Option<&str>,
    ) -> Result<(), DomainError> {
        session.cycle_id().await.map_err(session_error)?;
        let tenant = self
            .store
            .tenants_of_user(&user.id)
            .await
            .map_err(internal)?
            .into_iter()
            .next();
        session
            .insert(USER_ID, &user.id)
            .await
            .map_err(session_error)?;
        session
            .insert(SIGNED_IN_AT, now_millis())
            .await
            .map_err(session_error)?;
        session
            .insert(METHOD, method)
            .await
            .map_err(session_error)?;
        session
            .insert(USER_AGENT, client.user_agent.clone().unwrap_or_default())
            .await
            .map_err(session_error)?;
        session
            .insert(IP, client.ip.clone().unwrap_or_default())
            .await
            .map_err(session_error)?;
        if let Some(t) = tenant {
            session
                .insert(TENANT_ID, t.tenant_id)
                .await
                .map_err(session_error)?;
        }
        if let Some(token) = id_token {
            session
                .insert(ID_TOKEN, token)
                .await
                .map_err(session_error)?;
        }
        // Write now, so that the session is listed (and revocable) before the response goes out.
        session.save().await.map_err(session_error)?;
        Ok(())
    }

    /// The signed-in caller, or Unauthenticated. Sessions past the absolute lifetime are ended here.
    pub async fn caller(
        &self,
        session: &Session,
        client: &ClientInfo,
    ) -> Result<Caller, DomainError> {
        let Some(user_id) = session
            .get::<String>(USER_ID)
            .await
            .map_err(session_error)?
        else {
            return Err(DomainError::Unauthenticated);
        };
        let signed_in_at = session
            .get::<i64>(SIGNED_IN_AT)
            .await
            .map_err(session_error)?
            .unwrap_or(0);
        if now_millis() - signed_in_at > self.settings.absolute_timeout_secs * 1000 {
            session.flush().await.map_err(session_error)?;
            return Err(DomainError::Unauthenticated);
        }
        let Some(user) = self.store.user_by_id(&user_id).await.map_err(internal)? else {
            // The account was deleted while signed in.
            session.flush().await.map_err(session_error)?;
            return Err(DomainError::Unauthenticated);
        };
        let tenant_id = session
            .get::<String>(TENANT_ID)
            .await
            .map_err(session_error)?;
        Ok(Caller {
            user_id: user.id,
            email: user.email,
            name: user.name,
            platform_admin: user.platform_admin != 0,
            platform_viewer: user.platform_viewer != 0,
            tenant_id,
            session_id: session
                .id()
                .map(|id| crate::session_store::session_key(&id)),
            client: client.clone(),
        })
    }

    /// Switches the tenant the caller works in; they must belong to it (or be a platform admin).
    pub async fn switch_tenant(
        &self,
        session: &Session,
        caller: &Caller,
        tenant_id: &str,
    ) -> Result<(), DomainError> {
        self.authorize(
            caller,
            tenant_id,
            tollgate_domain::access::Action::ViewTenant,
        )
        .await?;
        if self
            .store
            .tenant_by_id(tenant_id)
            .await
            .map_err(internal)?
            .is_none()
        {
            return Err(DomainError::not_found("tenant"));
        }
        session
            .insert(TENANT_ID, tenant_id)
            .await
            .map_err(session_error)
    }

    /// Ends the session; returns the ID token for the provider's end-session call when the user came by OIDC.
    pub async fn end_session(
        &self,
        session: &Session,
        caller: Option<&Caller>,
    ) -> Result<Option<String>, DomainError> {
        let id_token = session
            .get::<String>(ID_TOKEN)
            .await
            .map_err(session_error)?;
        if let Some(c) = caller {
            self.audit(
                c,
                None,
                tollgate_domain::audit::AuditAction::SignOut,
                "user",
                &c.user_id,
                "",
            )
            .await;
        }
        session.flush().await.map_err(session_error)?;
        Ok(id_token)
    }

    pub(crate) async fn session_method(session: &Session) -> String {
        session
            .get::<String>(METHOD)
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

/// Reads the stored facts of another session row for the "your sessions" list.
pub(crate) fn describe(data: &str) -> (String, String, String) {
    let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
    let get = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    (get(USER_AGENT), get(IP), get(METHOD))
}
