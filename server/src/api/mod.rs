//! The management API under `/api/v1`: everything the portal does, as JSON, for scripts, CI and infrastructure
//! tools. Handlers are thin: authenticate (`auth`), call the same `Identity` / `Catalog` method the portal calls,
//! map errors in one place (`error`). The OpenAPI document (`openapi`) lists every route here.

mod auth;
mod catalog;
mod error;
pub mod openapi;
mod subscriptions;
mod tenancy;
mod usage;

use crate::state::AppState;
use axum::{
    routing::{delete, get, post, put},
    Json, Router,
};
use serde::Deserialize;
use tollgate_domain::page::PageRequest;

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

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .route("/me", get(tenancy::me))
        .route(
            "/models",
            get(catalog::list_models).post(catalog::create_model),
        )
        .route(
            "/models/{id}",
            get(catalog::get_model).put(catalog::update_model),
        )
        .route(
            "/plans",
            get(catalog::list_plans).post(catalog::create_plan),
        )
        .route("/plans/{id}", put(catalog::update_plan))
        .route("/plans/{id}/archive", post(catalog::archive_plan))
        .route("/plans/{id}/models/{model_id}", put(catalog::set_overrides))
        .route(
            "/subscriptions",
            get(subscriptions::list).post(subscriptions::create),
        )
        .route("/subscriptions/{id}", get(subscriptions::get))
        .route("/subscriptions/{id}/decision", post(subscriptions::decide))
        .route("/subscriptions/{id}/plan", post(subscriptions::change_plan))
        .route("/subscriptions/{id}/keys", post(subscriptions::create_key))
        .route("/approvals", get(subscriptions::approvals))
        .route("/keys/{id}", delete(subscriptions::revoke_key))
        .route("/keys/{id}/rotate", post(subscriptions::rotate_key))
        .route(
            "/tenants",
            get(tenancy::list_tenants).post(tenancy::create_tenant),
        )
        .route(
            "/teams",
            get(tenancy::list_teams).post(tenancy::create_team),
        )
        .route(
            "/teams/{id}",
            get(tenancy::get_team).delete(tenancy::delete_team),
        )
        .route("/teams/{id}/members", post(tenancy::add_team_member))
        .route(
            "/teams/{id}/members/{user_id}",
            delete(tenancy::remove_team_member),
        )
        .route("/members", get(tenancy::list_members))
        .route(
            "/members/{user_id}",
            put(tenancy::change_role).delete(tenancy::remove_member),
        )
        .route(
            "/invitations",
            get(tenancy::list_invitations).post(tenancy::invite),
        )
        .route("/audit", get(tenancy::audit))
        .route("/usage", get(usage::list))
        .fallback(|| async {
            error::ApiError::from(tollgate_domain::DomainError::not_found("API route"))
        })
}
