//! What fires: every active subscription's month-to-date tokens against its monthly quota, and its refusals by a
//! rate limit in the last minutes, both from the rollups. An alert already recorded for its key is skipped
//! without writing; a new one is written with its deliveries in one transaction that loses quietly to another
//! server writing the same key.

use super::Alerts;
use crate::quotas::monthly_tokens;
use std::collections::{HashMap, HashSet};
use tollgate_domain::{
    time::Millis,
    usage::{
        alerts::{
            rate_limited_repeatedly, reached_thresholds, AlertKind, RATE_LIMIT_WINDOW_MINUTES,
        },
        rollup::{Grain, Sums},
    },
};
use tollgate_store::{
    AlertSubscriptionRow, Dimension, Grouping, NewAlert, NewDelivery, RollupQuery, StoreError,
};

/// Subscriptions read per page.
const PAGE: i64 = 500;

type Key = (String, String, i64, String);

impl Alerts {
    /// Records the alerts that `now` raises and were not recorded yet; returns how many this call recorded.
    pub async fn evaluate(&self, now: i64) -> Result<usize, StoreError> {
        let at = Millis(now);
        let month_start = at.month_start().0;
        let minute = Grain::Minute.floor(now);
        let until = minute + Grain::Minute.millis();
        // Alerts of this month and of this hour were recorded after the month began (or within the hour).
        let fired: HashSet<Key> = self
            .store
            .alert_keys_since(month_start.min(now - 3_600_000))
            .await?
            .into_iter()
            .collect();
        let month = self.sums_by_subscription(month_start, until).await?;
        let window = self
            .sums_by_subscription(
                until - RATE_LIMIT_WINDOW_MINUTES * Grain::Minute.millis(),
                until,
            )
            .await?;
        let plans: HashMap<_, _> = self
            .store
            .all_plans()
            .await?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        let overrides: HashMap<_, _> = self
            .store
            .all_plan_models()
            .await?
            .into_iter()
            .map(|o| ((o.plan_id.clone(), o.model_id.clone()), o))
            .collect();
        let mut recorded = 0;
        let mut after = String::new();
        loop {
            let subs = self
                .store
                .active_subscriptions_for_alerts(&after, PAGE)
                .await?;
            let Some(last) = subs.last() else { break };
            after = last.id.clone();
            for s in &subs {
                let used = month.get(&s.id).map(Sums::tokens).unwrap_or_default();
                let quota = monthly_tokens(&plans, &overrides, &s.plan_id, &s.model_id);
                // Recorded a millisecond apart in threshold order, so the newest-first list reads 100, 90, 50.
                let quota_refusals = window.get(&s.id).map_or(0, |x| x.quota_refused);
                for (i, t) in quota
                    .map(|q| reached_thresholds(used, q, quota_refusals))
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                {
                    let facts = Fired {
                        kind: AlertKind::Quota,
                        threshold: t,
                        quota,
                        used,
                        refusals: 0,
                    };
                    recorded += usize::from(self.fire(s, &facts, at, i as i64, &fired).await?);
                }
                let refusals = window.get(&s.id).map_or(0, |x| x.rate_limited);
                if rate_limited_repeatedly(refusals, self.settings.rate_limited_at_least) {
                    let facts = Fired {
                        kind: AlertKind::RateLimited,
                        threshold: 0,
                        quota,
                        used,
                        refusals,
                    };
                    recorded += usize::from(self.fire(s, &facts, at, 0, &fired).await?);
                }
            }
            if subs.len() < PAGE as usize {
                break;
            }
        }
        Ok(recorded)
    }

    /// Every subscription's sums over [from, until), from the rollups.
    async fn sums_by_subscription(
        &self,
        from: i64,
        until: i64,
    ) -> Result<HashMap<String, Sums>, StoreError> {
        Ok(self
            .store
            .sum_rollups(
                &RollupQuery {
                    from,
                    until,
                    ..RollupQuery::default()
                },
                &Grouping {
                    by: Some(Dimension::Subscription),
                    ..Grouping::default()
                },
            )
            .await?
            .into_iter()
            .map(|r| (r.value, r.sums))
            .collect())
    }

    /// Records one alert with a delivery per configured channel, unless `fired` already holds its key. Its period
    /// is `at`'s; it is recorded `order` milliseconds after `at`.
    async fn fire(
        &self,
        s: &AlertSubscriptionRow,
        f: &Fired,
        at: Millis,
        order: i64,
        fired: &HashSet<Key>,
    ) -> Result<bool, StoreError> {
        let period = f.kind.period(at);
        let key = (
            s.id.clone(),
            f.kind.as_str().to_string(),
            i64::from(f.threshold),
            period.clone(),
        );
        if fired.contains(&key) {
            return Ok(false);
        }
        let recipients = match &self.mailer {
            Some(_) => self
                .store
                .alert_recipients(&s.tenant_id, &s.team_id)
                .await?
                .join(", "),
            None => String::new(),
        };
        let webhook = self.store.tenant_webhook(&s.tenant_id).await?;
        let mut deliveries = Vec::new();
        if !recipients.is_empty() {
            deliveries.push(NewDelivery {
                channel: "email",
                target: &recipients,
            });
        }
        if let Some(w) = &webhook {
            deliveries.push(NewDelivery {
                channel: "webhook",
                target: &w.url,
            });
        }
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.store
            .record_alert(
                &NewAlert {
                    tenant_id: &s.tenant_id,
                    team_id: &s.team_id,
                    subscription_id: &s.id,
                    kind: f.kind.as_str(),
                    threshold: i64::from(f.threshold),
                    period: &period,
                    team_name: &s.team_name,
                    model: &s.model_name,
                    quota_tokens: f.quota.map(clamp),
                    used_tokens: clamp(f.used),
                    refusals: clamp(f.refusals),
                    at: at.0 + order,
                },
                &deliveries,
            )
            .await
    }
}

/// What an alert reports.
struct Fired {
    kind: AlertKind,
    threshold: u8,
    quota: Option<u64>,
    used: u64,
    refusals: u64,
}
