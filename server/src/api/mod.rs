//! The management API under `/api/v1`: everything the portal does, as JSON, for scripts, CI and infrastructure
//! tools. Handlers are thin: authenticate (`auth`), call the same `Identity` / `Catalog` method the portal calls,
//! map errors in one place (`error`). The OpenAPI document (`openapi`) lists every route here.

mod alerts;
mod auth;
mod catalog;
mod error;
mod fleet;
pub mod openapi;
mod subscriptions;
mod tenancy;
mod usage;

use crate::state::AppState;
use axum::{routing::get, Json, Router};
use serde::Deserialize;
use tollgate_domain::page::PageRequest;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use auth::TENANT_HEADER;

/// `?page=&per_page=` on every list.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

impl PageQuery {
    pub fn request(&self) -> PageRequest {
        PageRequest::new(self.page, self.per_page)
    }
}

/// Every route of the API with its documentation: a route exists only through its handler's `#[utoipa::path]`,
/// so the router and the OpenAPI document cannot disagree.
pub(crate) fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<openapi::Shared as utoipa::OpenApi>::openapi())
        .routes(routes!(tenancy::me))
        .routes(routes!(catalog::list_models, catalog::create_model))
        .routes(routes!(catalog::get_model, catalog::update_model))
        .routes(routes!(catalog::list_plans, catalog::create_plan))
        .routes(routes!(catalog::update_plan))
        .routes(routes!(catalog::archive_plan))
        .routes(routes!(catalog::set_overrides))
        .routes(routes!(subscriptions::list, subscriptions::create))
        .routes(routes!(subscriptions::get))
        .routes(routes!(subscriptions::decide))
        .routes(routes!(subscriptions::change_plan))
        .routes(routes!(subscriptions::create_key))
        .routes(routes!(subscriptions::approvals))
        .routes(routes!(subscriptions::revoke_key))
        .routes(routes!(subscriptions::rotate_key))
        .routes(routes!(tenancy::list_tenants, tenancy::create_tenant))
        .routes(routes!(tenancy::list_teams, tenancy::create_team))
        .routes(routes!(tenancy::get_team, tenancy::delete_team))
        .routes(routes!(tenancy::add_team_member))
        .routes(routes!(tenancy::remove_team_member))
        .routes(routes!(tenancy::list_members))
        .routes(routes!(tenancy::change_role, tenancy::remove_member))
        .routes(routes!(tenancy::list_invitations, tenancy::invite))
        .routes(routes!(tenancy::audit))
        .routes(routes!(tenancy::list_platform_viewers))
        .routes(routes!(
            tenancy::grant_platform_viewer,
            tenancy::revoke_platform_viewer
        ))
        .routes(routes!(usage::list))
        .routes(routes!(usage::summary))
        .routes(routes!(usage::series))
        .routes(routes!(usage::quotas))
        .routes(routes!(usage::export_csv))
        .routes(routes!(alerts::list))
        .routes(routes!(
            alerts::get_webhook,
            alerts::set_webhook,
            alerts::delete_webhook
        ))
        .routes(routes!(alerts::rotate_webhook))
        .routes(routes!(fleet::nodes))
        .routes(routes!(fleet::list, fleet::create))
        .routes(routes!(fleet::get, fleet::update, fleet::delete))
        .routes(routes!(fleet::events))
}

pub fn routes() -> Router<AppState> {
    let (router, doc) = documented().split_for_parts();
    let doc = std::sync::Arc::new(openapi::finish(doc));
    router
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async {
            error::ApiError::from(tollgate_domain::DomainError::not_found("API route"))
        })
}
