//! The `x-ratelimit-*` headers, on refusals and on successful answers alike (OpenAI's names and formats).

use super::Seen;
use http::{HeaderMap, HeaderName, HeaderValue};
use tollgate_domain::grant::Limits;

static LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
static REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
static RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
static LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
static REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
static RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");
// Tollgate's own, beside OpenAI's per-minute ones: the subscription's monthly token quota.
static LIMIT_MONTH: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens-month");
static REMAINING_MONTH: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens-month");

/// Adds the headers for the limits a subscription has (none for an unlimited dimension).
pub fn apply(headers: &mut HeaderMap, limits: &Limits, seen: Seen, reset_ms: i64) {
    let reset = HeaderValue::from_str(&duration_text(reset_ms)).ok();
    if let Some(rpm) = limits.requests_per_minute {
        let rpm = u64::from(rpm);
        headers.insert(LIMIT_REQUESTS.clone(), rpm.into());
        headers.insert(
            REMAINING_REQUESTS.clone(),
            rpm.saturating_sub(seen.requests).into(),
        );
        if let Some(r) = &reset {
            headers.insert(RESET_REQUESTS.clone(), r.clone());
        }
    }
    if let Some(tpm) = limits.tokens_per_minute {
        let tpm = u64::from(tpm);
        headers.insert(LIMIT_TOKENS.clone(), tpm.into());
        headers.insert(
            REMAINING_TOKENS.clone(),
            tpm.saturating_sub(seen.tokens).into(),
        );
        if let Some(r) = reset {
            headers.insert(RESET_TOKENS.clone(), r);
        }
    }
    if let Some(month) = limits.monthly_tokens {
        headers.insert(LIMIT_MONTH.clone(), month.into());
        headers.insert(
            REMAINING_MONTH.clone(),
            month.saturating_sub(seen.month_tokens).into(),
        );
    }
}

/// `850ms`, `12s`, `6m0s`: the format OpenAI uses for resets.
pub fn duration_text(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = (ms + 999) / 1000;
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

/// Whole seconds for `Retry-After`, at least 1.
pub fn retry_after_secs(ms: i64) -> u64 {
    (ms.max(1) as u64).div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_limited_dimensions_get_headers() {
        let mut h = HeaderMap::new();
        let limits = Limits {
            requests_per_minute: Some(10),
            ..Limits::default()
        };
        apply(
            &mut h,
            &limits,
            Seen {
                requests: 3,
                tokens: 99,
                month_tokens: 0,
            },
            1500,
        );
        assert_eq!(h["x-ratelimit-limit-requests"], "10");
        assert_eq!(h["x-ratelimit-remaining-requests"], "7");
        assert_eq!(h["x-ratelimit-reset-requests"], "2s");
        assert!(h.get("x-ratelimit-limit-tokens").is_none());
    }

    #[test]
    fn remaining_never_goes_below_zero() {
        let mut h = HeaderMap::new();
        let limits = Limits {
            tokens_per_minute: Some(100),
            ..Limits::default()
        };
        apply(
            &mut h,
            &limits,
            Seen {
                requests: 0,
                tokens: 150,
                month_tokens: 0,
            },
            10,
        );
        assert_eq!(h["x-ratelimit-remaining-tokens"], "0");
        assert_eq!(h["x-ratelimit-reset-tokens"], "10ms");
    }

    #[test]
    fn a_monthly_quota_says_what_is_left_of_it() {
        let mut h = HeaderMap::new();
        let limits = Limits {
            monthly_tokens: Some(1_000),
            ..Limits::default()
        };
        let seen = Seen {
            requests: 1,
            tokens: 40,
            month_tokens: 640,
        };
        apply(&mut h, &limits, seen, 10);
        assert_eq!(h["x-ratelimit-limit-tokens-month"], "1000");
        assert_eq!(h["x-ratelimit-remaining-tokens-month"], "360");
        assert!(h.get("x-ratelimit-limit-tokens").is_none());
        let mut h = HeaderMap::new();
        apply(&mut h, &Limits::default(), seen, 10);
        assert!(h.is_empty());
    }

    #[test]
    fn durations_read_like_openai_s() {
        assert_eq!(duration_text(-5), "0ms");
        assert_eq!(duration_text(999), "999ms");
        assert_eq!(duration_text(1000), "1s");
        assert_eq!(duration_text(59_001), "1m0s");
        assert_eq!(duration_text(360_000), "6m0s");
        assert_eq!(retry_after_secs(0), 1);
        assert_eq!(retry_after_secs(1001), 2);
    }
}
