//! Usage alerts, the rules without IO: which quota thresholds a subscription's month-to-date use has crossed,
//! when refusals by a rate limit count as "repeatedly", the period an alert is sent once in, the words it is sent
//! in, the webhook's signature and the delivery's retry schedule. `tollgate-usage` evaluates and delivers them;
//! the store's unique key (subscription, kind, threshold, period) makes each one fire once.

use crate::time::Millis;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The percentages of the monthly token quota that raise an alert, in order.
pub const QUOTA_THRESHOLDS: [u8; 3] = [50, 90, 100];

/// How far back refusals by a rate limit are counted, in minutes.
pub const RATE_LIMIT_WINDOW_MINUTES: i64 = 10;

/// Delivery attempts before a delivery is given up.
pub const MAX_ATTEMPTS: u32 = 8;

/// The longest wait between two attempts, in milliseconds (an hour).
pub const MAX_BACKOFF_MS: i64 = 3_600_000;

/// What an alert is about.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A share of the monthly token quota used (`threshold` is the percentage).
    Quota,
    /// Requests refused by a rate limit repeatedly (`threshold` is 0; one alert per hour at most).
    RateLimited,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quota => "quota",
            Self::RateLimited => "rate_limited",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "quota" => Some(Self::Quota),
            "rate_limited" => Some(Self::RateLimited),
            _ => None,
        }
    }

    /// The period an alert of this kind is sent once in: the month (UTC, `2026-12`) for quotas, which reset
    /// monthly; the hour (`2026-12-07T11`) for rate limits, so a team refused all day hears of it once an hour.
    pub fn period(self, now: Millis) -> String {
        match self {
            Self::Quota => now.format_date()[..7].to_string(),
            Self::RateLimited => {
                let stamp = now.format_utc(); // YYYY-MM-DD HH:MM UTC
                format!("{}T{}", &stamp[..10], &stamp[11..13])
            }
        }
    }
}

/// The thresholds `used` tokens have reached of a `quota`, lowest first. A quota of 0 raises nothing: it is not
/// a budget but a switched-off subscription, refused from the first token.
pub fn crossed_thresholds(used: u64, quota: u64) -> Vec<u8> {
    if quota == 0 {
        return Vec::new();
    }
    QUOTA_THRESHOLDS
        .into_iter()
        // used / quota >= t / 100, in integers.
        .filter(|t| u128::from(used) * 100 >= u128::from(*t) * u128::from(quota))
        .collect()
}

/// The quota thresholds a subscription has reached: those `used` tokens have crossed, and 100 % when the quota is
/// spent in practice: at least 90 % used and the gateway refusing requests for the quota
/// (`quota_refusals` in the last [`RATE_LIMIT_WINDOW_MINUTES`]). The gateway refuses a request whose reservation
/// would pass the quota, so the tokens used rarely reach it exactly; below 90 %, a refusal only says that one
/// request asked for more than was left.
pub fn reached_thresholds(used: u64, quota: u64, quota_refusals: u64) -> Vec<u8> {
    let mut reached = crossed_thresholds(used, quota);
    let nearly = u128::from(used) * 10 >= u128::from(quota) * 9;
    if quota > 0 && quota_refusals > 0 && nearly && !reached.contains(&100) {
        reached.push(100);
    }
    reached
}

/// Whether `refusals` in the last [`RATE_LIMIT_WINDOW_MINUTES`] are "repeatedly" (`at_least` of them; 0 never).
pub fn rate_limited_repeatedly(refusals: u64, at_least: u64) -> bool {
    at_least > 0 && refusals >= at_least
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An alert as stored, the facts its words come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFacts<'a> {
    pub kind: AlertKind,
    pub threshold: u8,
    pub team_name: &'a str,
    pub model: &'a str,
    pub quota_tokens: Option<u64>,
    pub used_tokens: u64,
    pub refusals: u64,
}

impl AlertFacts<'_> {
    /// The alert in plain words: the email's subject, the portal's line, the webhook's `message`.
    pub fn message(&self) -> String {
        let quota = self.quota_tokens.unwrap_or_default();
        match self.kind {
            // 100 % reached by the gateway's refusals before the count: said as it is.
            AlertKind::Quota if self.threshold >= 100 && self.used_tokens < quota => format!(
                "Team {} used 100 % of its {} monthly tokens on model {} in practice: {} used, and what is left \
                 no longer covers a request, which the gateway refuses.",
                self.team_name,
                thousands(quota),
                self.model,
                thousands(self.used_tokens),
            ),
            AlertKind::Quota => format!(
                "Team {} used {} % of its {} monthly tokens on model {} ({} used).",
                self.team_name,
                self.threshold,
                thousands(self.quota_tokens.unwrap_or_default()),
                self.model,
                thousands(self.used_tokens),
            ),
            AlertKind::RateLimited => format!(
                "Team {} was refused by a rate limit {} times in the last {} minutes on model {}.",
                self.team_name,
                thousands(self.refusals),
                RATE_LIMIT_WINDOW_MINUTES,
                self.model,
            ),
        }
    }
}

/// When attempt `attempts + 1` is due after `attempts` failed ones, `first_ms` after the first failure and
/// doubling, at most [`MAX_BACKOFF_MS`]; `None` once [`MAX_ATTEMPTS`] have failed (the delivery is given up).
pub fn retry_delay_ms(attempts: u32, first_ms: i64) -> Option<i64> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let doublings = attempts.saturating_sub(1).min(30);
    Some(
        first_ms
            .max(1)
            .saturating_mul(1 << doublings)
            .min(MAX_BACKOFF_MS),
    )
}

/// The header a webhook's signature travels in.
pub const SIGNATURE_HEADER: &str = "Tollgate-Signature";

/// How a webhook delivery is signed: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>`.
/// The timestamp inside the signed text lets a receiver refuse replays of an old delivery.
pub fn signature(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    format!(
        "t={unix_seconds},v1={}",
        hex_lower(&mac(secret, unix_seconds, body))
    )
}

/// Whether `header` is a valid signature of `body` under `secret`, made at most `tolerance_s` from `now_s`.
/// What a receiver does; kept here so the README's recipe and the sender cannot disagree.
pub fn verify_signature(
    secret: &str,
    header: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now_s - t).abs() > tolerance_s {
        return false;
    }
    let expected = hex_lower(&mac(secret, t, body));
    use subtle::ConstantTimeEq;
    expected.as_bytes().ct_eq(v1.as_bytes()).into()
}

fn mac(secret: &str, unix_seconds: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length, so this cannot fail.
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return Vec::new();
    };
    m.update(unix_seconds.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Why a webhook URL is refused, in words; `Ok` for an absolute http(s) URL with a host and no credentials. Unless
/// `private` allows it, a host that is an internal address (`crate::net::is_public`) or `localhost` is refused too;
/// names that resolve to internal addresses are refused when a delivery resolves them.
pub fn check_webhook_url(url: &str, private: bool) -> Result<(), String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("The webhook URL must start with http:// or https://.")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err("The webhook URL has no host.".into());
    }
    if authority.contains('@') {
        return Err("The webhook URL must not carry a user name or password.".into());
    }
    if url.len() > 2048 || url.chars().any(char::is_whitespace) {
        return Err("The webhook URL is too long or contains spaces.".into());
    }
    if !private && webhook_host_is_internal(url) {
        return Err(PRIVATE_WEBHOOK.into());
    }
    Ok(())
}

/// Why a webhook to an internal address is refused.
pub const PRIVATE_WEBHOOK: &str = "The webhook URL points at a private, loopback or link-local address, which \
    this server does not call (TOLLGATE_ALERTS_WEBHOOK_PRIVATE=true allows receivers inside your network).";

/// True when a webhook URL's host is an internal address literal or `localhost` (the URL is one that
/// `check_webhook_url` accepts).
pub fn webhook_host_is_internal(url: &str) -> bool {
    let rest = url.trim().split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host_is_internal(host)
}

/// True when `host` (a URL's host, IPv6 with or without brackets) is `localhost`, an internal address, or a
/// number that URL parsers read as an IPv4 address (`2130706433`, `0x7f.0.0.1`, `127.1`) unless it is a plain
/// public dotted one: those spellings exist to slip past checks like this one.
pub fn host_is_internal(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return !crate::net::is_public(ip);
    }
    // The WHATWG URL standard parses a host whose last label is a number as IPv4, in decimal, octal or hex.
    let last = host.rsplit('.').next().unwrap_or_default();
    !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit())
            || last
                .strip_prefix("0x")
                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())))
}

/// One channel's delivery of an alert, as the portal and the API show it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertDeliveryView {
    /// `email` or `webhook`.
    pub channel: String,
    /// `pending` (will be tried again), `delivered` or `failed` (given up).
    pub status: String,
    pub attempts: u32,
    /// Why the last attempt failed; empty when none did.
    pub last_error: String,
    pub delivered_at: Option<Millis>,
}

impl AlertDeliveryView {
    /// The status of a delivery from its stored facts.
    pub fn status_of(delivered: bool, due: bool) -> &'static str {
        match (delivered, due) {
            (true, _) => "delivered",
            (false, true) => "pending",
            (false, false) => "failed",
        }
    }
}

/// An alert, as the portal and the management API list it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertView {
    pub id: String,
    pub at: Millis,
    pub tenant_id: String,
    pub team_id: String,
    pub team_name: String,
    pub subscription_id: String,
    pub model: String,
    pub kind: AlertKind,
    /// The percentage of the quota for quota alerts; 0 for rate-limit alerts.
    pub threshold: u8,
    /// The month (`2026-12`) or hour (`2026-12-07T11`) the alert is sent once in.
    pub period: String,
    pub quota_tokens: Option<u64>,
    pub used_tokens: u64,
    /// Requests refused by a rate limit in the window, for rate-limit alerts.
    pub refusals: u64,
    /// The alert in plain words.
    pub message: String,
    pub deliveries: Vec<AlertDeliveryView>,
}

/// One page of alerts, newest first; `next` is the cursor of the following page.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertPage {
    pub items: Vec<AlertView>,
    pub next: Option<String>,
}

/// A tenant's alert webhook. The secret is in the answer only when it was just made (creation or rotation).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookView {
    pub url: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// The signing secret, shown once: on creation and rotation only.
    pub secret: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_crossed_at_their_exact_share() {
        assert_eq!(crossed_thresholds(0, 1000), Vec::<u8>::new());
        assert_eq!(crossed_thresholds(499, 1000), Vec::<u8>::new());
        assert_eq!(crossed_thresholds(500, 1000), vec![50]);
        assert_eq!(crossed_thresholds(899, 1000), vec![50]);
        assert_eq!(crossed_thresholds(900, 1000), vec![50, 90]);
        assert_eq!(crossed_thresholds(1000, 1000), vec![50, 90, 100]);
        assert_eq!(crossed_thresholds(5000, 1000), vec![50, 90, 100]);
        assert_eq!(crossed_thresholds(10, 0), Vec::<u8>::new());
        assert_eq!(crossed_thresholds(u64::MAX, u64::MAX), vec![50, 90, 100]);
        // 1/3 of the quota is not 50 %, rounding never crosses early.
        assert_eq!(crossed_thresholds(1, 3), Vec::<u8>::new());
        // Refused by the quota at 90 % or more: spent in practice. Below, one request asked for too much.
        assert_eq!(reached_thresholds(950, 1000, 1), vec![50, 90, 100]);
        assert_eq!(reached_thresholds(900, 1000, 2), vec![50, 90, 100]);
        assert_eq!(reached_thresholds(899, 1000, 5), vec![50]);
        assert_eq!(reached_thresholds(950, 1000, 0), vec![50, 90]);
        assert_eq!(reached_thresholds(1200, 1000, 3), vec![50, 90, 100]);
        assert_eq!(reached_thresholds(0, 0, 3), Vec::<u8>::new());
        assert_eq!(crossed_thresholds(2, 3), vec![50]);
    }

    #[test]
    fn periods_are_the_month_for_quotas_and_the_hour_for_rate_limits() {
        // 2026-12-07 11:41:43 UTC.
        let now = Millis(1_796_643_703_000);
        assert_eq!(now.format_utc(), "2026-12-07 11:41 UTC");
        assert_eq!(AlertKind::Quota.period(now), "2026-12");
        assert_eq!(AlertKind::RateLimited.period(now), "2026-12-07T11");
        assert_eq!(
            AlertKind::RateLimited.period(now.plus_hours(1)),
            "2026-12-07T12"
        );
        for k in [AlertKind::Quota, AlertKind::RateLimited] {
            assert_eq!(AlertKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(AlertKind::parse("other"), None);
    }

    #[test]
    fn repeated_refusals_need_the_configured_count() {
        assert!(!rate_limited_repeatedly(2, 3));
        assert!(rate_limited_repeatedly(3, 3));
        assert!(!rate_limited_repeatedly(100, 0));
    }

    #[test]
    fn messages_are_plain_words() {
        let facts = AlertFacts {
            kind: AlertKind::Quota,
            threshold: 90,
            team_name: "Search",
            model: "llama-3-8b",
            quota_tokens: Some(1_000_000),
            used_tokens: 900_512,
            refusals: 0,
        };
        assert_eq!(
            facts.message(),
            "Team Search used 90 % of its 1,000,000 monthly tokens on model llama-3-8b (900,512 used)."
        );
        let spent = AlertFacts {
            threshold: 100,
            used_tokens: 968_001,
            ..facts.clone()
        };
        assert_eq!(
            spent.message(),
            "Team Search used 100 % of its 1,000,000 monthly tokens on model llama-3-8b in practice: 968,001 used, \
             and what is left no longer covers a request, which the gateway refuses."
        );
        let facts = AlertFacts {
            kind: AlertKind::RateLimited,
            refusals: 12,
            ..facts
        };
        assert_eq!(
            facts.message(),
            "Team Search was refused by a rate limit 12 times in the last 10 minutes on model llama-3-8b."
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn retries_double_up_to_an_hour_then_stop() {
        assert_eq!(retry_delay_ms(1, 1000), Some(1000));
        assert_eq!(retry_delay_ms(2, 1000), Some(2000));
        assert_eq!(retry_delay_ms(3, 1000), Some(4000));
        assert_eq!(retry_delay_ms(7, 1_000_000), Some(MAX_BACKOFF_MS));
        assert_eq!(retry_delay_ms(MAX_ATTEMPTS, 1000), None);
        assert_eq!(retry_delay_ms(0, 0), Some(1));
    }

    #[test]
    fn signatures_match_the_rfc_4231_hmac_and_verify() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"; here the data is "<t>.<body>".
        let sig = signature("Jefe", 1, b"what do ya want for nothing?");
        assert!(sig.starts_with("t=1,v1="));
        assert_eq!(sig.len(), "t=1,v1=".len() + 64);
        let known = {
            let mut m = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
            m.update(b"what do ya want for nothing?");
            hex_lower(&m.finalize().into_bytes())
        };
        assert_eq!(
            known,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let body = br#"{"kind":"quota"}"#;
        let header = signature("s3cret", 1_700_000_000, body);
        assert!(verify_signature(
            "s3cret",
            &header,
            body,
            1_700_000_100,
            300
        ));
        assert!(!verify_signature(
            "other",
            &header,
            body,
            1_700_000_100,
            300
        ));
        assert!(!verify_signature(
            "s3cret",
            &header,
            b"{}",
            1_700_000_100,
            300
        ));
        assert!(!verify_signature(
            "s3cret",
            &header,
            body,
            1_700_001_000,
            300
        ));
        assert!(!verify_signature(
            "s3cret",
            "garbage",
            body,
            1_700_000_000,
            300
        ));
    }

    #[test]
    fn webhook_urls_must_be_plain_http_or_https() {
        for private in [false, true] {
            assert!(check_webhook_url("https://hooks.example.com/tollgate", private).is_ok());
            assert!(check_webhook_url("http://203.0.113.7:8080/x?y=1", true).is_ok());
            assert!(check_webhook_url("ftp://example.com", private).is_err());
            assert!(check_webhook_url("file:///etc/passwd", private).is_err());
            assert!(check_webhook_url("https://", private).is_err());
            assert!(check_webhook_url("https://user:pw@example.com/", private).is_err());
            assert!(check_webhook_url("https://exa mple.com/", private).is_err());
        }
    }

    #[test]
    fn webhooks_to_internal_addresses_need_the_setting() {
        for url in [
            "http://10.0.0.5:8080/x?y=1",
            "http://127.0.0.1:9/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:8080/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:3000/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "https://192.168.0.10",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://127.1/",
            "http://017700000001:80/",
        ] {
            assert_eq!(
                check_webhook_url(url, false),
                Err(PRIVATE_WEBHOOK.to_string()),
                "{url}"
            );
            assert_eq!(check_webhook_url(url, true), Ok(()), "{url}");
        }
        for url in [
            "https://hooks.example.com/",
            "http://8.8.8.8/",
            "http://[2606:4700:4700::1111]:443/",
            "https://localhost.example.com/",
        ] {
            assert!(!webhook_host_is_internal(url), "{url}");
        }
    }

    #[test]
    fn delivery_status_reads_from_the_stored_facts() {
        assert_eq!(AlertDeliveryView::status_of(true, false), "delivered");
        assert_eq!(AlertDeliveryView::status_of(false, true), "pending");
        assert_eq!(AlertDeliveryView::status_of(false, false), "failed");
    }
}
