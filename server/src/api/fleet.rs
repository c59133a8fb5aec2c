//! /api/v1/fleet/nodes and /api/v1/deployments: thin handlers over `Fleet` (platform admins only).

use super::{auth::ApiCaller, error::ApiResult};
use crate::state::AppState;
use axum::{
    extract::{rejection::JsonRejection, rejection::QueryRejection, Path, Query, State},
    http::StatusCode,
    Json,
};
use serde::Deserialize;
use tollgate_domain::fleet::{
    DeploymentInput, DeploymentPatch, DeploymentView, FleetEventView, NodeView,
};

/// The GPU inventory: every node and GPU, and which replica holds each.
#[utoipa::path(get, path = "/fleet/nodes", tag = "fleet", responses((status = 200, body = Vec<NodeView>)))]
pub async fn nodes(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
) -> ApiResult<Json<Vec<NodeView>>> {
    Ok(Json(s.fleet.nodes(&caller).await?))
}

/// Every deployment, with its replicas.
#[utoipa::path(get, path = "/deployments", tag = "fleet", responses((status = 200, body = Vec<DeploymentView>)))]
pub async fn list(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
) -> ApiResult<Json<Vec<DeploymentView>>> {
    Ok(Json(s.fleet.deployments(&caller).await?))
}

/// Deploy a catalog model onto GPUs. Replicas come up in the background: poll the deployment (or its events).
#[utoipa::path(post, path = "/deployments", tag = "fleet", request_body = DeploymentInput, responses((status = 201, body = DeploymentView)))]
pub async fn create(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    body: Result<Json<DeploymentInput>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<DeploymentView>)> {
    let Json(input) = body?;
    Ok((
        StatusCode::CREATED,
        Json(s.fleet.create(&caller, input).await?),
    ))
}

/// A deployment with its replicas (state, node, GPUs, restarts, why one is pending).
#[utoipa::path(get, path = "/deployments/{id}", tag = "fleet", responses((status = 200, body = DeploymentView)))]
pub async fn get(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentView>> {
    Ok(Json(s.fleet.deployment(&caller, &id).await?))
}

/// Scale or change a deployment; new engine arguments roll its replicas over, keeping capacity.
#[utoipa::path(patch, path = "/deployments/{id}", tag = "fleet", request_body = DeploymentPatch, responses((status = 200, body = DeploymentView)))]
pub async fn update(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<DeploymentPatch>, JsonRejection>,
) -> ApiResult<Json<DeploymentView>> {
    let Json(patch) = body?;
    Ok(Json(s.fleet.update(&caller, &id, &patch).await?))
}

/// Delete a deployment: its replicas leave the routes, drain, stop; then it is gone (202 while that happens).
#[utoipa::path(delete, path = "/deployments/{id}", tag = "fleet", responses((status = 202, body = DeploymentView)))]
pub async fn delete(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<DeploymentView>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.fleet.delete(&caller, &id).await?),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events older than this one: the `id` of the last event of the previous page.
    pub before: Option<String>,
    /// At most this many, 1 to 500 (default 100).
    pub limit: Option<u32>,
}

/// A deployment's events, newest first: every state change of it and its replicas.
#[utoipa::path(get, path = "/deployments/{id}/events", tag = "fleet", params(EventsQuery), responses((status = 200, body = Vec<FleetEventView>)))]
pub async fn events(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<FleetEventView>>> {
    let Query(q) = query?;
    Ok(Json(
        s.fleet
            .events(&caller, &id, q.before.as_deref(), q.limit.unwrap_or(100))
            .await?,
    ))
}
