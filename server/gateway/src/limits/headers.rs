//! The `x-ratelimit-*` headers, on refusals and on successful answers alike (OpenAI's names and formats).

use super::Seen;
use bytes::BytesMut;
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
    if limits.requests_per_minute.is_none()
        && limits.tokens_per_minute.is_none()
        && limits.monthly_tokens.is_none()
    {
        return;
    }
    let mut values = Values(BytesMut::with_capacity(160));
    let reset = values.text(&duration_text(reset_ms));
    let mut put = |name: &HeaderName, value: Option<HeaderValue>| {
        if let Some(v) = value {
            headers.insert(name.clone(), v);
        }
    };
    if let Some(rpm) = limits.requests_per_minute {
        let rpm = u64::from(rpm);
        put(&LIMIT_REQUESTS, values.number(rpm));
        put(
            &REMAINING_REQUESTS,
            values.number(rpm.saturating_sub(seen.requests)),
        );
        put(&RESET_REQUESTS, reset.clone());
    }
    if let Some(tpm) = limits.tokens_per_minute {
        let tpm = u64::from(tpm);
        put(&LIMIT_TOKENS, values.number(tpm));
        put(
            &REMAINING_TOKENS,
            values.number(tpm.saturating_sub(seen.tokens)),
        );
        put(&RESET_TOKENS, reset);
    }
    if let Some(month) = limits.monthly_tokens {
        put(&LIMIT_MONTH, values.number(month));
        put(
            &REMAINING_MONTH,
            values.number(month.saturating_sub(seen.month_tokens)),
        );
    }
}

/// Header values written into one buffer and handed out as views of it: one allocation for an answer's six
/// numbers, where `HeaderValue::from(u64)` makes one each (DHAT showed them on every answer).
struct Values(BytesMut);

impl Values {
    fn number(&mut self, n: u64) -> Option<HeaderValue> {
        self.text(itoa::Buffer::new().format(n))
    }

    /// None only for text a header cannot carry (never for digits and duration units).
    fn text(&mut self, s: &str) -> Option<HeaderValue> {
        self.0.extend_from_slice(s.as_bytes());
        HeaderValue::from_maybe_shared(self.0.split().freeze()).ok()
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
