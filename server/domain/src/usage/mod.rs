//! Usage records as the portal and the management API read them: one per gateway request.

pub mod alerts;
pub mod rollup;

use crate::time::Millis;
use serde::{Deserialize, Serialize};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageView {
    pub id: String,
    pub request_id: String,
    pub at: Millis,
    pub tenant_id: String,
    pub team_id: String,
    pub subscription_id: String,
    /// The API key the request came with; null for playground requests, which have none.
    pub key_id: Option<String>,
    /// Where the request came from: `key` (an API key) or `playground` (the portal's playground).
    pub source: String,
    pub model: String,
    /// The engine that answered last: platform admins only (an internal address); empty for everyone else.
    pub replica: String,
    pub endpoint: String,
    pub status: u16,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub streamed: bool,
    pub client_disconnected: bool,
    /// Which limit refused a 429: `requests`, `tokens` or `concurrency` (per minute), or `monthly_tokens`; empty
    /// otherwise.
    pub refusal: String,
}

/// What an answer's status means, in words, for the list of recent errors; `refusal` names the limit of a 429.
pub fn status_reason(status: u16, refusal: &str) -> &'static str {
    match (status, refusal) {
        (429, rollup::MONTHLY_REFUSAL) => return "the monthly token quota is used up",
        (429, "requests") => return "too many requests this minute (the plan's limit)",
        (429, "tokens") => return "too many tokens this minute (the plan's limit)",
        (429, "concurrency") => return "too many requests at once (the plan's limit)",
        _ => {}
    }
    match status {
        400 => "bad request (the request was malformed or asked for too much)",
        401 => "the API key was not accepted",
        403 => "not allowed",
        404 => "unknown model or path",
        408 => "the request timed out",
        413 => "the request body was too large",
        429 => "refused by a rate limit or the monthly token quota",
        499 => "the client went away before the answer was complete",
        500 => "the engine failed",
        502 => "the engine could not be reached or answered badly",
        503 => "no replica of the model was ready",
        504 => "the engine took too long",
        s if s >= 500 => "server error",
        s if s >= 400 => "client error",
        _ => "",
    }
}

/// A page of usage records, newest first. `next` is the cursor of the following page (`after=`, the last
/// record's `<at>:<id>`); none at the end. Keyset paging: no count over the whole table.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecordPage {
    pub items: Vec<UsageView>,
    pub next: Option<String>,
}

/// The ranges a dashboard offers, ending now: `hour`, `day`, `7d`, `30d`. None for anything else (a custom range
/// names its own from and until).
///
/// Ranges end with the current bucket of their chart and start on a bucket's edge: the last hour to the minute, the
/// last 24 hours as whole hours (this one included), the last 7 or 30 days as whole UTC days (today included).
/// Whole buckets are what the rollups hold, so a month reads about 30 day rows per group instead of the hours and
/// minutes at its edges; the part of the current bucket still ahead holds no usage yet.
pub fn preset_range(name: &str, now: Millis) -> Option<(Millis, Millis)> {
    use rollup::Grain;
    let (grain, buckets) = match name {
        "hour" => return Some((Millis(now.0 - rollup::HOUR_MS), now)),
        "day" => (Grain::Hour, 24),
        "7d" => (Grain::Day, 7),
        "30d" => (Grain::Day, 30),
        _ => return None,
    };
    let until = grain.floor(now.0) + grain.millis();
    Some((Millis(until - buckets * grain.millis()), Millis(until)))
}

/// What usage figures can be grouped by.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageDimension {
    Tenant,
    Team,
    Subscription,
    Key,
    Model,
    Source,
    /// The subscription's plan now (a subscription moved to another plan counts under its current one).
    Plan,
}

impl UsageDimension {
    pub const ALL: [UsageDimension; 7] = [
        Self::Tenant,
        Self::Team,
        Self::Subscription,
        Self::Key,
        Self::Model,
        Self::Source,
        Self::Plan,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Team => "team",
            Self::Subscription => "subscription",
            Self::Key => "key",
            Self::Model => "model",
            Self::Source => "source",
            Self::Plan => "plan",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// The figures of one group of usage: requests, errors, tokens, latency and time to first token.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UsageFigures {
    pub requests: u64,
    /// Answers with a status of 400 or more (429s included).
    pub errors: u64,
    /// Answers refused by a rate limit or quota (429).
    pub rate_limited: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Errors per request, 0 to 1.
    pub error_rate: f64,
    pub latency_avg_ms: Option<f64>,
    /// Percentiles from a fixed histogram: exact to within their bucket (doubling from 25 ms).
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p95_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    /// At the catalog's list prices per million tokens, in micro-units of the platform currency; set where the
    /// group is one model (or sums such groups).
    pub cost_micros: Option<i64>,
}

impl UsageFigures {
    pub fn of(s: &rollup::Sums) -> Self {
        let per_request = |v: u64| (s.requests > 0).then(|| v as f64 / s.requests as f64);
        Self {
            requests: s.requests,
            errors: s.errors,
            rate_limited: s.rate_limited,
            prompt_tokens: s.prompt_tokens,
            completion_tokens: s.completion_tokens,
            error_rate: per_request(s.errors).unwrap_or(0.0),
            latency_avg_ms: per_request(s.latency_ms),
            latency_p50_ms: s.latency.quantile(0.50),
            latency_p95_ms: s.latency.quantile(0.95),
            latency_p99_ms: s.latency.quantile(0.99),
            ttft_p50_ms: s.ttft.quantile(0.50),
            ttft_p95_ms: s.ttft.quantile(0.95),
            ttft_p99_ms: s.ttft.quantile(0.99),
            cost_micros: None,
        }
    }

    pub fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// Tokens priced per million, in micro-units: `input_micros` and `output_micros` are the catalog's prices per 1M.
pub fn cost_micros(
    prompt_tokens: u64,
    completion_tokens: u64,
    input_micros: i64,
    output_micros: i64,
) -> i64 {
    let part = |tokens: u64, price: i64| {
        (i128::from(tokens) * i128::from(price.max(0)) / 1_000_000).min(i128::from(i64::MAX)) as i64
    };
    part(prompt_tokens, input_micros).saturating_add(part(completion_tokens, output_micros))
}

/// One group of a usage breakdown or series: its time bucket (series only) and its value of the dimension
/// grouped by ('' when not grouped; '' is also "no key", for playground requests grouped by key).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageGroup {
    /// The start of the minute, hour or day (series only).
    pub bucket: Option<Millis>,
    pub value: String,
    pub figures: UsageFigures,
}

/// A page of groups, in (bucket, value) order. `next` is the cursor of the following page (`after=`); none at the
/// end. Keyset paging: no count over the whole table.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageGroupPage {
    pub items: Vec<UsageGroup>,
    pub next: Option<String>,
}

/// A keyset cursor: the last (bucket, value) of a page, as `<bucket>:<value>`.
pub fn cursor(bucket: i64, value: &str) -> String {
    format!("{bucket}:{value}")
}

/// The cursor a caller sent with `after=`: none when absent or blank, an error in words when it is not one.
pub fn page_cursor(after: Option<&str>) -> Result<Option<(i64, String)>, crate::DomainError> {
    match after.map(str::trim).filter(|c| !c.is_empty()) {
        Some(raw) => parse_cursor(raw)
            .map(Some)
            .ok_or_else(|| crate::DomainError::invalid("The page cursor is not valid.")),
        None => Ok(None),
    }
}

/// The (bucket, value) a cursor names; None when it is not one.
pub fn parse_cursor(raw: &str) -> Option<(i64, String)> {
    let (bucket, value) = raw.split_once(':')?;
    Some((bucket.parse().ok()?, value.to_string()))
}

#[cfg(test)]
mod figures_tests {
    use super::*;

    #[test]
    fn preset_ranges_are_whole_buckets_ending_with_the_current_one() {
        use rollup::{cover, Grain, DAY_MS, HOUR_MS};
        let now = Millis(20_000 * DAY_MS + 13 * HOUR_MS + 25 * 60_000 + 7_000);
        let today = 20_000 * DAY_MS;
        assert_eq!(
            preset_range("hour", now),
            Some((Millis(now.0 - HOUR_MS), now))
        );
        let day = preset_range("day", now).unwrap_or_default();
        assert_eq!(
            day,
            (
                Millis(today + 14 * HOUR_MS - DAY_MS),
                Millis(today + 14 * HOUR_MS)
            )
        );
        let month = preset_range("30d", now).unwrap_or_default();
        assert_eq!(month, (Millis(today - 29 * DAY_MS), Millis(today + DAY_MS)));
        assert_eq!(
            preset_range("7d", now).map(|(f, u)| (u.0 - f.0) / DAY_MS),
            Some(7)
        );
        assert!(month.0 .0 <= now.0 - 29 * DAY_MS && now.0 < month.1 .0);
        // A month reads day rows only; a day, hour rows and at most one day row.
        assert!(cover(month.0 .0, month.1 .0)
            .iter()
            .all(|s| s.grain == Grain::Day));
        assert!(cover(day.0 .0, day.1 .0)
            .iter()
            .all(|s| s.grain != Grain::Minute));
        assert_eq!(preset_range("year", now), None);
    }

    #[test]
    fn cost_is_tokens_times_price_per_million() {
        // 2M prompt tokens at $0.20 and 500k completion tokens at $0.60: $0.40 + $0.30.
        assert_eq!(cost_micros(2_000_000, 500_000, 200_000, 600_000), 700_000);
        assert_eq!(cost_micros(0, 0, 200_000, 600_000), 0);
        assert_eq!(
            cost_micros(u64::MAX, u64::MAX, i64::MAX, i64::MAX),
            i64::MAX
        );
    }

    #[test]
    fn statuses_read_as_reasons() {
        assert!(status_reason(429, "").contains("rate limit"));
        assert!(status_reason(429, "monthly_tokens").contains("monthly token quota"));
        assert!(status_reason(429, "tokens").contains("tokens this minute"));
        assert!(status_reason(503, "").contains("no replica"));
        assert_eq!(status_reason(418, ""), "client error");
        assert_eq!(status_reason(507, ""), "server error");
        assert_eq!(status_reason(200, ""), "");
    }

    #[test]
    fn cursors_round_trip_values_with_colons() {
        assert_eq!(
            parse_cursor(&cursor(60_000, "a:b")),
            Some((60_000, "a:b".into()))
        );
        assert_eq!(parse_cursor("x:y"), None);
        assert_eq!(parse_cursor("nothing"), None);
    }

    #[test]
    fn figures_rate_errors_and_average_latency() {
        let mut s = rollup::Sums::default();
        s.record(200, "", 1, 2, 100, Some(10));
        s.record(429, "requests", 1, 0, 300, None);
        let f = UsageFigures::of(&s);
        assert_eq!(
            (f.requests, f.errors, f.rate_limited, f.tokens()),
            (2, 1, 1, 4)
        );
        assert_eq!(f.error_rate, 0.5);
        assert_eq!(f.latency_avg_ms, Some(200.0));
        assert!(f.ttft_p50_ms.is_some());
        assert_eq!(
            UsageFigures::of(&rollup::Sums::default()).latency_p99_ms,
            None
        );
    }
}

/// A subscription's monthly token quota and rate limits against what it used, from the rollups.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaView {
    pub subscription_id: String,
    pub tenant_id: String,
    pub team_id: String,
    pub team_name: String,
    pub model_id: String,
    pub model_name: String,
    pub plan_name: String,
    pub state: String,
    /// Prompt plus completion tokens since the start of the month (UTC).
    pub used_tokens: u64,
    /// None: no monthly quota.
    pub monthly_tokens: Option<u64>,
    pub remaining_tokens: Option<u64>,
    /// 0 to 100 (more when a last request overran the quota).
    pub used_percent: Option<f64>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    /// Requests and tokens in the current minute, for the rate-limit headroom.
    pub requests_this_minute: u64,
    pub tokens_this_minute: u64,
}

impl QuotaView {
    /// Fills `remaining_tokens` and `used_percent` from `used_tokens` and `monthly_tokens`.
    pub fn with_remaining(mut self) -> Self {
        self.remaining_tokens = self
            .monthly_tokens
            .map(|q| q.saturating_sub(self.used_tokens));
        self.used_percent = self
            .monthly_tokens
            .filter(|q| *q > 0)
            .map(|q| self.used_tokens as f64 * 100.0 / q as f64);
        self
    }
}

/// A name for an id in a dashboard's filters and tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// Everything the portal's usage page shows for one view (scope, range, filters), read from the rollups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageDashboard {
    /// Whose usage this is, in words ("Acme", "your teams in Acme", "every tenant").
    pub scope: String,
    pub from: Millis,
    pub until: Millis,
    /// The chart's buckets.
    pub grain: rollup::Grain,
    /// Whether the caller may pick other tenants (platform admins and platform viewers).
    pub platform: bool,
    pub tenants: Vec<Named>,
    pub teams: Vec<Named>,
    pub models: Vec<Named>,
    pub keys: Vec<String>,
    pub totals: UsageFigures,
    /// Tokens per bucket, an SVG drawn on the server (no script needed).
    pub chart_svg: String,
    pub series: Vec<UsageGroup>,
    pub by_model: Vec<UsageGroup>,
    pub by_team: Vec<UsageGroup>,
    pub by_key: Vec<UsageGroup>,
    pub by_tenant: Vec<UsageGroup>,
    pub by_source: Vec<UsageGroup>,
    /// By plan, with the cost at list prices: what each plan's subscriptions used.
    pub by_plan: Vec<UsageGroup>,
    pub plans: Vec<Named>,
    /// The current tenant's subscriptions (developers: their teams'): monthly quota and this minute's use.
    pub quotas: Vec<QuotaView>,
    /// The view's newest errors and refusals (status 400 or more), with their time and reason.
    pub recent_errors: Vec<UsageView>,
    /// Deprecated or retired models still called in this view, and by whom (teams, or tenants across tenants).
    pub deprecated_in_use: Vec<DeprecatedUse>,
    /// Per chart bucket: teams with usage and subscriptions created (model adoption over time).
    pub adoption: Vec<AdoptionPoint>,
}

/// Adoption in one bucket: how many teams used a model, how many subscriptions began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptionPoint {
    pub bucket: Millis,
    pub active_teams: u64,
    pub new_subscriptions: u64,
}

/// A deprecated (or retired) model that still gets requests, with who sends them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeprecatedUse {
    pub model: Named,
    pub status: String,
    /// Grouped by team in a tenant's view, by tenant across tenants.
    pub users: Vec<UsageGroup>,
}
