//! /api/v1/usage/alerts and /api/v1/alerts/webhook: usage alerts under the usage role rules
//! (`Usage::alerts`), and the tenant's alert webhook for tenant admins (its secret in the answer only when made).

use super::{auth::ApiCaller, error::ApiResult};
use crate::state::AppState;
use axum::{
    extract::{
        rejection::{JsonRejection, QueryRejection},
        Query, State,
    },
    http::StatusCode,
    Json,
};
use serde::Deserialize;
use tollgate_domain::usage::alerts::{AlertPage, WebhookView};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// Platform admins and viewers: every tenant instead of the current one.
    #[serde(default)]
    pub all_tenants: bool,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Alerts per page, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// Usage alerts, newest first: quota thresholds (50, 90, 100 % of a subscription's monthly tokens) and repeated
/// rate-limit refusals, with each delivery's status. Developers see their teams', tenant admins and viewers the
/// tenant's.
#[utoipa::path(get, path = "/usage/alerts", tag = "usage", params(AlertsQuery), responses((status = 200, body = AlertPage)))]
pub async fn list(
    caller: ApiCaller,
    State(s): State<AppState>,
    query: Result<Query<AlertsQuery>, QueryRejection>,
) -> ApiResult<Json<AlertPage>> {
    let Query(q) = query?;
    let tenant = if q.all_tenants {
        None
    } else {
        Some(caller.tenant()?)
    };
    Ok(Json(
        s.usage
            .alerts(
                &caller.0,
                tenant.as_deref(),
                q.after.as_deref(),
                q.limit.unwrap_or(50),
            )
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct WebhookInput {
    /// Where alerts are posted: an http:// or https:// URL. Redirects are not followed.
    pub url: String,
}

/// The tenant's alert webhook (tenant admins), without its secret; 404 when it has none.
#[utoipa::path(get, path = "/alerts/webhook", tag = "usage", responses((status = 200, body = WebhookView)))]
pub async fn get_webhook(
    caller: ApiCaller,
    State(s): State<AppState>,
) -> ApiResult<Json<WebhookView>> {
    let tenant = caller.tenant()?;
    Ok(Json(
        s.usage
            .webhook(&caller.0, &tenant)
            .await?
            .ok_or_else(|| tollgate_domain::DomainError::not_found("webhook"))?,
    ))
}

/// Set the tenant's alert webhook URL (tenant admins). A new webhook's signing secret is in this answer only;
/// changing the URL keeps the secret.
#[utoipa::path(put, path = "/alerts/webhook", tag = "usage", request_body = WebhookInput, responses((status = 200, body = WebhookView)))]
pub async fn set_webhook(
    caller: ApiCaller,
    State(s): State<AppState>,
    body: Result<Json<WebhookInput>, JsonRejection>,
) -> ApiResult<Json<WebhookView>> {
    let Json(b) = body?;
    let tenant = caller.tenant()?;
    Ok(Json(s.usage.set_webhook(&caller.0, &tenant, &b.url).await?))
}

/// Give the tenant's alert webhook a new signing secret (tenant admins), in this answer only.
#[utoipa::path(post, path = "/alerts/webhook/rotate", tag = "usage", responses((status = 200, body = WebhookView)))]
pub async fn rotate_webhook(
    caller: ApiCaller,
    State(s): State<AppState>,
) -> ApiResult<Json<WebhookView>> {
    let tenant = caller.tenant()?;
    Ok(Json(
        s.usage.rotate_webhook_secret(&caller.0, &tenant).await?,
    ))
}

/// Remove the tenant's alert webhook (tenant admins).
#[utoipa::path(delete, path = "/alerts/webhook", tag = "usage", responses((status = 204)))]
pub async fn delete_webhook(caller: ApiCaller, State(s): State<AppState>) -> ApiResult<StatusCode> {
    let tenant = caller.tenant()?;
    s.usage.delete_webhook(&caller.0, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}
