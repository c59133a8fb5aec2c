//! Who is calling the management API: a personal access token (`Authorization: Bearer tgp-...`, for scripts),
//! or the portal session (for the browser). `X-Tollgate-Tenant` picks the tenant to work in; every service
//! checks the caller's role there, so naming another tenant only yields NotFound.

use super::error::ApiError;
use crate::state::AppState;
use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, Method, StatusCode},
};
use tollgate_domain::{api_key::TokenScope, DomainError};
use tollgate_identity::{session::ClientInfo, Caller};
use tower_sessions::Session;

pub const TENANT_HEADER: &str = "x-tollgate-tenant";

/// The authenticated caller of an API request.
pub struct ApiCaller(pub Caller);

impl ApiCaller {
    /// The tenant the call works in: the header's, else the caller's current one.
    pub fn tenant(&self) -> Result<String, ApiError> {
        Ok(self.0.current_tenant()?.to_string())
    }
}

fn header_str<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let client = parts
            .extensions
            .get::<ClientInfo>()
            .cloned()
            .unwrap_or_default();
        let tenant = header_str(parts, TENANT_HEADER).map(str::to_string);
        let bearer = header_str(parts, header::AUTHORIZATION.as_str()).map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim()
        });
        let mut caller = match bearer {
            Some(token) => {
                let (caller, scope) = state
                    .identity
                    .token_caller(token, tenant.as_deref(), &client)
                    .await?;
                let writes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
                if !scope.allows(writes) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "insufficient_scope",
                        format!(
                            "this token has the {} scope; changes need a write token",
                            TokenScope::Read.as_str()
                        ),
                    ));
                }
                caller
            }
            None => {
                let session = parts
                    .extensions
                    .get::<Session>()
                    .cloned()
                    .ok_or(DomainError::Unauthenticated)?;
                state.identity.caller(&session, &client).await?
            }
        };
        if let Some(t) = tenant {
            caller.tenant_id = Some(t);
        }
        Ok(Self(caller))
    }
}
