//! Sending what is due: each delivery is claimed (one server per attempt), sent by email or to the tenant's
//! webhook, then marked delivered, put off by the backoff schedule, or given up after the last attempt with the
//! reason kept.

use super::Alerts;
use serde_json::json;
use tollgate_domain::usage::alerts::{
    host_is_internal, retry_delay_ms, signature, AlertFacts, AlertKind, PRIVATE_WEBHOOK,
    SIGNATURE_HEADER,
};
use tollgate_store::{AlertRow, DeliveryRow, StoreError};

/// Deliveries sent per pass at most.
const BATCH: i64 = 100;

/// How long a claimed attempt keeps the row from other servers: longer than any attempt takes.
const CLAIM_MS: i64 = 5 * 60_000;

/// The longest error kept with a delivery.
const MAX_ERROR: usize = 500;

impl Alerts {
    /// Sends the deliveries due at `now`; returns how many were delivered.
    pub async fn deliver_due(&self, now: i64) -> Result<usize, StoreError> {
        let mut delivered = 0;
        for (d, alert) in self.store.due_deliveries(now, BATCH).await? {
            let Some(seen) = d.next_attempt_at else {
                continue;
            };
            if !self
                .store
                .claim_delivery(&d.id, seen, now + CLAIM_MS)
                .await?
            {
                continue; // another server has it
            }
            let attempts = u32::try_from(d.attempts + 1).unwrap_or(u32::MAX);
            let outcome = self.send(&d, &alert).await;
            let done = tollgate_store::now_millis();
            match outcome {
                Ok(()) => {
                    self.store.finish_delivery(&d.id, done, None, None).await?;
                    delivered += 1;
                }
                Err(Failure { why: e, permanent }) => {
                    let first =
                        i64::try_from(self.settings.retry_first.as_millis()).unwrap_or(i64::MAX);
                    let retry_at = retry_delay_ms(attempts, first)
                        .filter(|_| !permanent)
                        .map(|ms| done + ms);
                    let mut e = e;
                    if e.len() > MAX_ERROR {
                        let mut cut = MAX_ERROR;
                        while !e.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        e.truncate(cut);
                    }
                    tracing::warn!(
                        delivery = %d.id, channel = %d.channel, attempts, error = %e,
                        given_up = retry_at.is_none(), "usage alert delivery failed"
                    );
                    self.store
                        .finish_delivery(&d.id, done, Some(&e), retry_at)
                        .await?;
                }
            }
        }
        Ok(delivered)
    }

    async fn send(&self, d: &DeliveryRow, a: &AlertRow) -> Result<(), Failure> {
        let message = message(a);
        match d.channel.as_str() {
            "email" => {
                let Some(mailer) = &self.mailer else {
                    return Err(Failure::permanent(
                        "email is not configured (TOLLGATE_SMTP_URL)",
                    ));
                };
                let body = format!(
                    "{message}\n\nPeriod: {}\nSubscription: {}\n\nThis alert is sent once per threshold and period.\n",
                    a.period, a.subscription_id
                );
                mailer
                    .send(&d.target, &format!("Tollgate alert: {message}"), body)
                    .await
                    .map_err(Failure::transient)
            }
            "webhook" => {
                // The tenant's current webhook: a rotated secret signs, a removed webhook stops deliveries.
                let hook = self
                    .store
                    .tenant_webhook(&d.tenant_id)
                    .await
                    .map_err(|e| Failure::transient(format!("could not read the webhook: {e}")))?
                    .ok_or(Failure::permanent("the tenant's webhook was removed"))?;
                // An address literal is not resolved, so the resolver cannot refuse it: checked here (a webhook
                // saved while the setting allowed it, or written before the rule).
                // The host as the client will read it (`0x7f.0.0.1` is 127.0.0.1 to a URL parser).
                let url = reqwest::Url::parse(&hook.url).map_err(|e| {
                    Failure::permanent(format!("the webhook URL is not valid: {e}"))
                })?;
                if !self.settings.webhook_private
                    && host_is_internal(url.host_str().unwrap_or_default())
                {
                    return Err(Failure::permanent(PRIVATE_WEBHOOK));
                }
                let body = json!({
                    "type": "usage.alert",
                    "id": a.id,
                    "delivery_id": d.id,
                    "kind": a.kind,
                    "threshold": a.threshold,
                    "period": a.period,
                    "tenant_id": a.tenant_id,
                    "team_id": a.team_id,
                    "team_name": a.team_name,
                    "subscription_id": a.subscription_id,
                    "model": a.model,
                    "quota_tokens": a.quota_tokens,
                    "used_tokens": a.used_tokens,
                    "refusals": a.refusals,
                    "message": message,
                    "created_at": a.created_at,
                })
                .to_string();
                let unix = tollgate_store::now_millis() / 1000;
                let answer = self
                    .http
                    .post(url)
                    .header("content-type", "application/json")
                    .header(
                        SIGNATURE_HEADER,
                        signature(&hook.secret, unix, body.as_bytes()),
                    )
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| Failure::transient(without_url(&e)))?;
                let status = answer.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(Failure::transient(format!(
                        "answered HTTP {}",
                        status.as_u16()
                    )))
                }
            }
            other => Err(Failure::permanent(format!("unknown channel {other:?}"))),
        }
    }
}

/// Why a delivery attempt failed, and whether trying again could help: a removed webhook or email that is not
/// configured is given up at once instead of retried for hours.
struct Failure {
    why: String,
    permanent: bool,
}

impl Failure {
    fn transient(why: impl Into<String>) -> Self {
        Self {
            why: why.into(),
            permanent: false,
        }
    }

    fn permanent(why: impl Into<String>) -> Self {
        Self {
            why: why.into(),
            permanent: true,
        }
    }
}

/// The alert in plain words.
pub(crate) fn message(a: &AlertRow) -> String {
    let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
    AlertFacts {
        kind: AlertKind::parse(&a.kind).unwrap_or(AlertKind::Quota),
        threshold: u8::try_from(a.threshold).unwrap_or(0),
        team_name: &a.team_name,
        model: &a.model,
        quota_tokens: a.quota_tokens.map(unsigned),
        used_tokens: unsigned(a.used_tokens),
        refusals: unsigned(a.refusals),
    }
    .message()
}

/// A reqwest error without its URL (which may carry a token in its query), with its cause.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirects are not followed"
    } else {
        "request failed"
    };
    // The innermost cause says what happened ("Connection refused (os error 111)"); the outer ones repeat it.
    let mut cause = std::error::Error::source(e);
    let mut innermost = None;
    while let Some(c) = cause {
        innermost = Some(c);
        cause = c.source();
    }
    match innermost {
        Some(c) => format!("{kind}: {c}"),
        None => kind.to_string(),
    }
}
