//! /api/v1/subscriptions, approvals and keys: thin handlers over `Catalog`.

use super::{auth::ApiCaller, error::ApiResult, PageQuery};
use crate::state::AppState;
use axum::{
    extract::{rejection::JsonRejection, rejection::QueryRejection, Path, Query, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use tollgate_domain::{
    api_key::{KeyCreated, KeyView},
    page::Page,
    subscription::{Change, SubscriptionFilter, SubscriptionView},
};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Model or team name contains.
    #[serde(default)]
    pub search: String,
    /// A state, or "pending" for both pending stages.
    #[serde(default)]
    pub state: String,
    /// One team.
    #[serde(default)]
    pub team_id: String,
    /// 1-based page number.
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    pub per_page: Option<u32>,
}

/// The tenant's subscriptions.
#[utoipa::path(get, path = "/subscriptions", tag = "subscriptions", params(ListQuery), responses((status = 200, body = Page<SubscriptionView>)))]
pub async fn list(
    caller: ApiCaller,
    State(s): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Page<SubscriptionView>>> {
    let Query(q) = query?;
    let tenant = caller.tenant()?;
    let filter = SubscriptionFilter {
        search: q.search,
        state: q.state,
        team_id: q.team_id,
    };
    let page = PageQuery {
        page: q.page,
        per_page: q.per_page,
    }
    .request();
    Ok(Json(
        s.catalog
            .subscriptions(&caller.0, &tenant, &filter, page)
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewSubscription {
    pub team_id: String,
    pub model_id: String,
    pub plan_id: String,
    #[serde(default)]
    pub note: String,
}

/// Subscribe a team to a model under a plan.
#[utoipa::path(post, path = "/subscriptions", tag = "subscriptions", request_body = NewSubscription, responses((status = 201, body = SubscriptionView)))]
pub async fn create(
    caller: ApiCaller,
    State(s): State<AppState>,
    body: Result<Json<NewSubscription>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<SubscriptionView>)> {
    let Json(b) = body?;
    let tenant = caller.tenant()?;
    let sub = s
        .catalog
        .subscribe(
            &caller.0,
            &tenant,
            &b.team_id,
            &b.model_id,
            &b.plan_id,
            &b.note,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(sub)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WithKeys {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    pub keys: Vec<KeyView>,
}

/// A subscription with its keys (prefixes only).
#[utoipa::path(get, path = "/subscriptions/{id}", tag = "subscriptions", responses((status = 200, body = WithKeys)))]
pub async fn get(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<WithKeys>> {
    let (subscription, keys) = s.catalog.subscription(&caller, &id).await?;
    Ok(Json(WithKeys { subscription, keys }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Decision {
    pub change: Change,
    #[serde(default)]
    pub reason: String,
}

/// Approve, reject, suspend, resume or cancel.
#[utoipa::path(post, path = "/subscriptions/{id}/decision", tag = "subscriptions", request_body = Decision, responses((status = 200, body = SubscriptionView)))]
pub async fn decide(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<Decision>, JsonRejection>,
) -> ApiResult<Json<SubscriptionView>> {
    let Json(d) = body?;
    Ok(Json(
        s.catalog.decide(&caller, &id, d.change, &d.reason).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PlanChange {
    pub plan_id: String,
}

/// Move a subscription to another plan (tenant admins).
#[utoipa::path(post, path = "/subscriptions/{id}/plan", tag = "subscriptions", request_body = PlanChange, responses((status = 200, body = SubscriptionView)))]
pub async fn change_plan(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<PlanChange>, JsonRejection>,
) -> ApiResult<Json<SubscriptionView>> {
    let Json(p) = body?;
    Ok(Json(s.catalog.change_plan(&caller, &id, &p.plan_id).await?))
}

/// Requests waiting for the caller's decision.
#[utoipa::path(get, path = "/approvals", tag = "subscriptions", params(super::tenancy::Search), responses((status = 200, body = Page<SubscriptionView>)))]
pub async fn approvals(
    caller: ApiCaller,
    State(s): State<AppState>,
    query: Result<Query<super::tenancy::Search>, QueryRejection>,
) -> ApiResult<Json<Page<SubscriptionView>>> {
    let Query(q) = query?;
    let tenant = caller.0.tenant_id.clone();
    let page = PageQuery {
        page: q.page,
        per_page: q.per_page,
    }
    .request();
    Ok(Json(
        s.catalog
            .approvals(&caller.0, tenant.as_deref(), &q.search, page)
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewKey {
    pub name: String,
    /// Days until the key expires; absent or 0 for never.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
    /// Other active subscriptions of the same team that the key also covers: with one key, a client calls each
    /// of their models (`model` picks the subscription, whose limits and usage apply).
    #[serde(default)]
    pub also_subscription_ids: Vec<String>,
    /// Cover every subscription of the team, present and future.
    #[serde(default)]
    pub team_wide: bool,
}

/// Create an API key; the secret is in this response only. A key may cover several of its team's subscriptions
/// (`also_subscription_ids`, or `team_wide` for all of them, including future ones).
#[utoipa::path(post, path = "/subscriptions/{id}/keys", tag = "keys", request_body = NewKey, responses((status = 201, body = KeyCreated)))]
pub async fn create_key(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<NewKey>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<KeyCreated>)> {
    let Json(k) = body?;
    let days = k.expires_in_days.map(|d| d.to_string()).unwrap_or_default();
    let coverage = tollgate_catalog::Coverage {
        also: k.also_subscription_ids,
        team_wide: k.team_wide,
    };
    Ok((
        StatusCode::CREATED,
        Json(
            s.catalog
                .create_key_covering(&caller, &id, &k.name, &days, &coverage)
                .await?,
        ),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Rotation {
    /// How long the old key keeps working, in hours (0 to 720).
    #[serde(default)]
    pub grace_hours: u32,
}

/// Replace a key; the old one stays valid for the grace period.
#[utoipa::path(post, path = "/keys/{id}/rotate", tag = "keys", request_body = Rotation, responses((status = 201, body = KeyCreated)))]
pub async fn rotate_key(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<Rotation>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<KeyCreated>)> {
    let Json(r) = body?;
    Ok((
        StatusCode::CREATED,
        Json(s.catalog.rotate_key(&caller, &id, r.grace_hours).await?),
    ))
}

/// Revoke an API key.
#[utoipa::path(delete, path = "/keys/{id}", tag = "keys", responses((status = 200, body = KeyView)))]
pub async fn revoke_key(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyView>> {
    Ok(Json(s.catalog.revoke_key(&caller, &id).await?))
}
