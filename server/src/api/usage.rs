//! /api/v1/usage: usage records, one per gateway request, with the portal's role rules (`Usage::records`), and
//! the dashboards' figures from the rollups (`/usage/summary`, `/usage/series`, `Usage::figures`).

use super::{auth::ApiCaller, error::ApiResult};
use crate::state::AppState;
use axum::{
    extract::{rejection::QueryRejection, Query, State},
    Json,
};
use serde::Deserialize;
use tollgate_domain::{
    time::Millis,
    usage::{
        preset_range, rollup::Grain, QuotaView, UsageDimension, UsageGroupPage, UsageRecordPage,
    },
    DomainError,
};
use tollgate_usage::Selection;

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
    /// `key` or `playground`.
    #[serde(default)]
    pub source: String,
    /// Only errors and refusals (status 400 or more).
    #[serde(default)]
    pub errors_only: bool,
    /// `YYYY-MM-DD` or epoch milliseconds.
    pub from: Option<String>,
    /// `YYYY-MM-DD` (inclusive) or epoch milliseconds (exclusive).
    pub until: Option<String>,
    /// Platform admins and platform viewers: every tenant instead of the current one.
    #[serde(default)]
    pub all_tenants: bool,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Records per page, 1 to 1000 (default 100).
    pub limit: Option<u32>,
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

/// Usage records, one per gateway request, newest first, a page at a time (`after` = the previous page's `next`).
/// Developers read their teams' records, tenant admins and viewers the tenant's.
#[utoipa::path(get, path = "/usage", tag = "usage", params(UsageQuery), responses((status = 200, body = UsageRecordPage)))]
pub async fn list(
    caller: ApiCaller,
    State(s): State<AppState>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> ApiResult<Json<UsageRecordPage>> {
    let Query(q) = query?;
    let sel = Selection {
        from: instant(&q.from, false)?.unwrap_or(Millis(0)),
        until: instant(&q.until, true)?.unwrap_or(Millis(i64::MAX)),
        team_id: q.team_id,
        subscription_id: q.subscription_id,
        key_id: q.key_id,
        model: q.model,
        source: q.source,
    };
    let tenant = if q.all_tenants {
        None
    } else {
        Some(caller.tenant()?)
    };
    Ok(Json(
        s.usage
            .records(
                &caller.0,
                tenant.as_deref(),
                &sel,
                q.errors_only,
                q.after.as_deref(),
                q.limit.unwrap_or(100),
            )
            .await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FiguresQuery {
    /// `hour`, `day`, `7d` or `30d`, ending now; or leave it out and give `from` and `until`.
    pub range: Option<String>,
    /// `YYYY-MM-DD` or epoch milliseconds (counted from the start of its minute).
    pub from: Option<String>,
    /// `YYYY-MM-DD` (inclusive) or epoch milliseconds (exclusive).
    pub until: Option<String>,
    /// `tenant`, `team`, `subscription`, `key`, `model`, `source` or `plan` (the subscriptions' current plans, with
    /// their cost; not per bucket); absent: one total (or one per bucket).
    pub group_by: Option<String>,
    /// Series only: `minute`, `hour` or `day` buckets; absent: chosen from the range's length.
    pub grain: Option<String>,
    /// One team.
    #[serde(default)]
    pub team_id: String,
    /// One subscription.
    #[serde(default)]
    pub subscription_id: String,
    /// One API key (its id).
    #[serde(default)]
    pub key_id: String,
    /// One model id.
    #[serde(default)]
    pub model: String,
    /// `key` or `playground`.
    #[serde(default)]
    pub source: String,
    /// Platform admins and platform viewers: every tenant instead of the current one.
    #[serde(default)]
    pub all_tenants: bool,
    /// A tenant id instead of the current tenant (the tenant header does the same).
    #[serde(default)]
    pub tenant: String,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Groups per page, 1 to 1000 (default 100).
    pub limit: Option<u32>,
}

impl FiguresQuery {
    fn selection(&self) -> Result<Selection, DomainError> {
        let now = Millis(tollgate_store::now_millis());
        let (from, until) = match self
            .range
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            Some(name) => preset_range(name, now).ok_or_else(|| {
                DomainError::invalid(format!("unknown range '{name}': use hour, day, 7d or 30d"))
            })?,
            None => (
                instant(&self.from, false)?.unwrap_or(Millis(now.0 - 24 * 3_600_000)),
                instant(&self.until, true)?.unwrap_or(now),
            ),
        };
        Ok(Selection {
            from,
            until,
            team_id: self.team_id.clone(),
            subscription_id: self.subscription_id.clone(),
            key_id: self.key_id.clone(),
            model: self.model.clone(),
            source: self.source.clone(),
        })
    }

    /// The tenant the call reads: none for every tenant, the `tenant` parameter, or the caller's current one.
    fn tenant(&self, caller: &ApiCaller) -> Result<Option<String>, super::error::ApiError> {
        Ok(if self.all_tenants {
            None
        } else if !self.tenant.trim().is_empty() {
            Some(self.tenant.trim().to_string())
        } else {
            Some(caller.tenant()?)
        })
    }

    fn group_by(&self) -> Result<Option<UsageDimension>, DomainError> {
        match self
            .group_by
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty())
        {
            None => Ok(None),
            Some(g) => UsageDimension::parse(g).map(Some).ok_or_else(|| {
                DomainError::invalid(format!(
                    "cannot group by '{g}': use tenant, team, subscription, key, model or source"
                ))
            }),
        }
    }
}

async fn figures(
    caller: &ApiCaller,
    s: &AppState,
    q: &FiguresQuery,
    series: bool,
) -> ApiResult<Json<UsageGroupPage>> {
    let sel = q.selection()?;
    let every = if series {
        Some(
            match q.grain.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
                None => Grain::for_chart(sel.from.0, sel.until.0),
                Some(g) => Grain::parse(g).ok_or_else(|| {
                    DomainError::invalid(format!("unknown grain '{g}': use minute, hour or day"))
                })?,
            },
        )
    } else {
        None
    };
    let tenant = q.tenant(caller)?;
    Ok(Json(
        s.usage
            .figures(
                &caller.0,
                tenant.as_deref(),
                &sel,
                q.group_by()?,
                every,
                q.after.as_deref(),
                q.limit.unwrap_or(100),
            )
            .await?,
    ))
}

/// Usage summed over a range, from the rollups: one total, or one per `group_by` value (top consumers, by model
/// with cost at list prices, ...). Developers see their own teams only; tenant admins and viewers their tenant.
#[utoipa::path(get, path = "/usage/summary", tag = "usage", params(FiguresQuery), responses((status = 200, body = UsageGroupPage)))]
pub async fn summary(
    caller: ApiCaller,
    State(s): State<AppState>,
    query: Result<Query<FiguresQuery>, QueryRejection>,
) -> ApiResult<Json<UsageGroupPage>> {
    let Query(q) = query?;
    figures(&caller, &s, &q, false).await
}

/// Usage per minute, hour or day over a range, from the rollups, optionally per `group_by` value: the figures
/// behind the portal's charts. Keyset paging: pass `next` as `after`.
#[utoipa::path(get, path = "/usage/series", tag = "usage", params(FiguresQuery), responses((status = 200, body = UsageGroupPage)))]
pub async fn series(
    caller: ApiCaller,
    State(s): State<AppState>,
    query: Result<Query<FiguresQuery>, QueryRejection>,
) -> ApiResult<Json<UsageGroupPage>> {
    let Query(q) = query?;
    figures(&caller, &s, &q, true).await
}

/// Each subscription's monthly token quota, used and remaining since the start of the month (UTC), and its
/// per-minute limits against this minute's use: developers see their teams' subscriptions, tenant admins and
/// viewers the tenant's.
#[utoipa::path(get, path = "/usage/quotas", tag = "usage", responses((status = 200, body = Vec<QuotaView>)))]
pub async fn quotas(
    caller: ApiCaller,
    State(s): State<AppState>,
) -> ApiResult<Json<Vec<QuotaView>>> {
    let tenant = caller.tenant()?;
    Ok(Json(
        s.usage
            .quotas(&caller.0, &tenant, Millis(tollgate_store::now_millis()))
            .await?,
    ))
}

/// The records behind a view (the same range, filters and role rules as `/usage/summary`), as CSV, oldest first,
/// streamed in pages: any number of rows without holding them in memory.
#[utoipa::path(get, path = "/usage/export.csv", tag = "usage", params(FiguresQuery), responses((status = 200, content_type = "text/csv", body = String)))]
pub async fn export_csv(
    caller: ApiCaller,
    State(s): State<AppState>,
    query: Result<Query<FiguresQuery>, QueryRejection>,
) -> ApiResult<axum::response::Response> {
    use futures_util::StreamExt;
    let Query(q) = query?;
    let sel = q.selection()?;
    let tenant = q.tenant(&caller)?;
    let chunks = s
        .usage
        .export_csv(&caller.0, tenant.as_deref(), &sel)
        .await?
        .map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())));
    Ok(axum::response::Response::builder()
        .header(http::header::CONTENT_TYPE, "text/csv; charset=utf-8")
        .header(
            http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"tollgate-usage.csv\"",
        )
        .body(axum::body::Body::from_stream(chunks))
        .map_err(|_| DomainError::Internal)?)
}
