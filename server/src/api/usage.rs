//! /api/v1/usage: usage records, one per gateway request, with the portal's role rules (`Catalog::usage`).

use super::{auth::ApiCaller, error::ApiResult, PageQuery};
use crate::state::AppState;
use axum::{
    extract::{rejection::QueryRejection, Query, State},
    Json,
};
use serde::Deserialize;
use tollgate_domain::{
    page::Page,
    time::Millis,
    usage::{UsageFilter, UsageView},
    DomainError,
};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// One subscription.
    #[serde(default)]
    pub subscription_id: String,
    /// One API key (its id, the part after tg-).
    #[serde(default)]
    pub key_id: String,
    /// One model id.
    #[serde(default)]
    pub model: String,
    /// One team.
    #[serde(default)]
    pub team_id: String,
    /// `YYYY-MM-DD` or epoch milliseconds.
    pub from: Option<String>,
    /// `YYYY-MM-DD` (inclusive) or epoch milliseconds (exclusive).
    pub until: Option<String>,
    /// Platform admins: every tenant instead of the current one.
    #[serde(default)]
    pub all_tenants: bool,
    /// 1-based page number.
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    pub per_page: Option<u32>,
}

fn instant(raw: &Option<String>, end_of_day: bool) -> Result<Option<Millis>, DomainError> {
    let Some(raw) = raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(Some(Millis(ms)));
    }
    let day = Millis::parse_date(raw).ok_or_else(|| {
        DomainError::invalid(format!(
            "'{raw}' is not a date (YYYY-MM-DD) or epoch milliseconds"
        ))
    })?;
    Ok(Some(if end_of_day { day.plus_hours(24) } else { day }))
}

/// Usage records, one per gateway request, newest first.
#[utoipa::path(get, path = "/usage", tag = "usage", params(UsageQuery), responses((status = 200, body = Page<UsageView>)))]
pub async fn list(
    caller: ApiCaller,
    State(s): State<AppState>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> ApiResult<Json<Page<UsageView>>> {
    let Query(q) = query?;
    let filter = UsageFilter {
        subscription_id: q.subscription_id,
        key_id: q.key_id,
        model: q.model,
        team_id: q.team_id,
        from: instant(&q.from, false)?,
        until: instant(&q.until, true)?,
    };
    let tenant = if q.all_tenants {
        None
    } else {
        Some(caller.tenant()?)
    };
    let page = PageQuery {
        page: q.page,
        per_page: q.per_page,
    }
    .request();
    Ok(Json(
        s.catalog
            .usage(&caller.0, tenant.as_deref(), &filter, page)
            .await?,
    ))
}
