//! Server-side helpers shared by every server function: the services from context, the session, the caller.

use crate::error::AppError;
use leptos::prelude::*;
use tollgate_domain::DomainError;
use tollgate_identity::{session::ClientInfo, Caller, Identity};
use tower_sessions::Session;

/// Everything the portal's server functions need, provided once per request by the server.
#[derive(Clone)]
pub struct Services {
    pub identity: Identity,
    pub catalog: tollgate_catalog::Catalog,
    pub fleet: tollgate_fleet::Fleet,
    pub usage: tollgate_usage::Usage,
    /// Whether each routed model can answer now (the gateway's routes).
    pub serving: ServingOf,
}

/// Lists whether each routed model can answer now.
pub type ServingOf =
    std::sync::Arc<dyn Fn() -> Vec<(String, tollgate_domain::fleet::Serving)> + Send + Sync>;

/// The serving lookup, taken from context before any await.
pub fn serving_of() -> Result<ServingOf, AppError> {
    use_context::<Services>().map(|s| s.serving).ok_or_else(|| {
        tracing::error!("portal services missing from the request context");
        AppError::Domain(DomainError::Internal)
    })
}

pub fn identity() -> Result<Identity, AppError> {
    use_context::<Services>()
        .map(|s| s.identity)
        .ok_or_else(|| {
            tracing::error!("portal services missing from the request context");
            AppError::Domain(DomainError::Internal)
        })
}

pub fn catalog() -> Result<tollgate_catalog::Catalog, AppError> {
    use_context::<Services>().map(|s| s.catalog).ok_or_else(|| {
        tracing::error!("portal services missing from the request context");
        AppError::Domain(DomainError::Internal)
    })
}

/// The signed-in caller and the fleet (taken from context before the first await, as `catalog_caller`).
pub async fn fleet_caller() -> Result<(tollgate_fleet::Fleet, Caller), AppError> {
    let fleet = use_context::<Services>().map(|s| s.fleet).ok_or_else(|| {
        tracing::error!("portal services missing from the request context");
        AppError::Domain(DomainError::Internal)
    })?;
    let (_, caller) = caller().await?;
    Ok((fleet, caller))
}

/// The signed-in caller and the usage services (taken from context before the first await, as `catalog_caller`).
pub async fn usage_caller() -> Result<(tollgate_usage::Usage, Caller), AppError> {
    let usage = use_context::<Services>().map(|s| s.usage).ok_or_else(|| {
        tracing::error!("portal services missing from the request context");
        AppError::Domain(DomainError::Internal)
    })?;
    let (_, caller) = caller().await?;
    Ok((usage, caller))
}

/// The signed-in caller and the catalog services.
///
/// Services are taken from context before the first await: during server rendering a Suspense may render its
/// children twice and drop the first owner while its futures still run, after which `use_context` finds nothing.
pub async fn catalog_caller() -> Result<(tollgate_catalog::Catalog, Caller), AppError> {
    let catalog = catalog()?;
    let (_, caller) = caller().await?;
    Ok((catalog, caller))
}

/// The request this server function serves, from context. Read it before the first await: during server
/// rendering a Suspense may render its children twice and drop the first owner while its futures still run,
/// after which context lookups find nothing.
fn request_parts() -> Result<http::request::Parts, DomainError> {
    use_context::<http::request::Parts>().ok_or_else(|| {
        tracing::error!("request parts missing from the context");
        DomainError::Internal
    })
}

fn session_of(parts: &http::request::Parts) -> Result<Session, DomainError> {
    parts.extensions.get::<Session>().cloned().ok_or_else(|| {
        tracing::error!("no session layer on this request");
        DomainError::Internal
    })
}

pub async fn session() -> Result<Session, AppError> {
    Ok(session_of(&request_parts()?)?)
}

/// The client's address and browser, worked out once per request by the server (trusted proxies included).
pub async fn client_info() -> ClientInfo {
    use_context::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<ClientInfo>().cloned())
        .unwrap_or_default()
}

/// The signed-in caller, or Unauthenticated (which sets the response status to 401).
pub async fn caller() -> Result<(Identity, Caller), AppError> {
    let identity = identity()?;
    let caller = signed_in(&identity).await?;
    Ok((identity, caller))
}

/// The signed-in caller, without touching the response: for callers that treat "signed out" as an answer.
pub async fn signed_in(identity: &Identity) -> Result<Caller, DomainError> {
    let parts = request_parts()?;
    let session = session_of(&parts)?;
    let client = parts
        .extensions
        .get::<ClientInfo>()
        .cloned()
        .unwrap_or_default();
    identity.caller(&session, &client).await
}

/// The caller and the tenant they are working in.
pub async fn tenant_caller() -> Result<(Identity, Caller, String), AppError> {
    let (identity, caller) = caller().await?;
    let tenant = caller.current_tenant()?.to_string();
    Ok((identity, caller, tenant))
}
