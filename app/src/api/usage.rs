//! Usage dashboards: one call for the whole page (`Usage::dashboard`), under the role rules of
//! `tollgate_domain::access::usage_reach`.

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};
use tollgate_domain::usage::UsageDashboard;

/// The page's query string, as the filter form sends it (every field text; empty means "any").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageParams {
    /// `hour`, `day`, `7d`, `30d` or `custom` (then `from` and `until`, `YYYY-MM-DD`).
    pub range: String,
    pub from: String,
    pub until: String,
    /// Empty: the current tenant; `all`: every tenant (platform admins and viewers); or a tenant id.
    pub tenant: String,
    pub team: String,
    pub model: String,
    pub key: String,
    pub source: String,
}

#[server(endpoint = "usage/dashboard", input = GetUrl)]
pub async fn read_usage_dashboard(params: UsageParams) -> Result<UsageDashboard, AppError> {
    use tollgate_domain::{time::Millis, usage::preset_range, DomainError};
    let (usage, caller) = super::ssr::usage_caller().await?;
    let now = Millis(tollgate_store::now_millis());
    let day = |raw: &str, end: bool| -> Result<Option<Millis>, DomainError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        let d = Millis::parse_date(raw)
            .ok_or_else(|| DomainError::invalid(format!("'{raw}' is not a date (YYYY-MM-DD)")))?;
        Ok(Some(if end { d.plus_hours(24) } else { d }))
    };
    let (from, until) = match params.range.as_str() {
        "custom" => (
            day(&params.from, false)?.unwrap_or(Millis(now.0 - 86_400_000)),
            day(&params.until, true)?.unwrap_or(now),
        ),
        "" => preset_range("day", now).unwrap_or((now, now)),
        other => preset_range(other, now)
            .ok_or_else(|| DomainError::invalid(format!("unknown range '{other}'")))?,
    };
    let sel = tollgate_usage::Selection {
        from,
        until,
        team_id: params.team,
        subscription_id: String::new(),
        key_id: params.key,
        model: params.model,
        source: params.source,
    };
    Ok(usage
        .dashboard(
            &caller,
            &tollgate_usage::TenantChoice::parse(&params.tenant),
            &sel,
        )
        .await?)
}
