//! Quotas: each visible subscription's monthly token quota (its plan's, or the plan's override for its model)
//! against the tokens used since the start of the month, and its per-minute limits against this minute's use;
//! both from the rollups.

use crate::Usage;
use std::collections::HashMap;
use tollgate_domain::{
    time::Millis,
    usage::{rollup::Grain, QuotaView},
    DomainError,
};
use tollgate_identity::{internal, Caller};
use tollgate_store::{Dimension, Grouping, PlanModelRow, PlanRow, RollupQuery, SubscriptionQuery};

/// The most subscriptions one quota list shows.
const MAX_SUBSCRIPTIONS: i64 = 500;

/// A subscription's monthly token quota: its plan's override for the model, else the plan's; None: no quota.
pub(crate) fn monthly_tokens(
    plans: &HashMap<String, PlanRow>,
    overrides: &HashMap<(String, String), PlanModelRow>,
    plan_id: &str,
    model_id: &str,
) -> Option<u64> {
    overrides
        .get(&(plan_id.to_string(), model_id.to_string()))
        .and_then(|o| o.monthly_tokens)
        .or_else(|| plans.get(plan_id).and_then(|p| p.monthly_tokens))
        .and_then(|v| u64::try_from(v).ok())
}

impl Usage {
    /// The quotas of the subscriptions `caller` sees in `tenant_id` (developers: their teams'), live ones first.
    pub async fn quotas(
        &self,
        caller: &Caller,
        tenant_id: &str,
        now: Millis,
    ) -> Result<Vec<QuotaView>, DomainError> {
        let scope = self.scope(caller, Some(tenant_id)).await?;
        let (subs, _) = self
            .store
            .list_subscriptions(&SubscriptionQuery {
                tenant_id: Some(tenant_id),
                team_id: None,
                states: vec!["active", "suspended"],
                search: "",
                offset: 0,
                limit: MAX_SUBSCRIPTIONS,
            })
            .await
            .map_err(internal)?;
        let subs: Vec<_> = subs
            .into_iter()
            .filter(|s| {
                scope
                    .team_ids
                    .as_ref()
                    .is_none_or(|teams| teams.contains(&s.team_id))
            })
            .collect();
        if subs.is_empty() {
            return Ok(Vec::new());
        }
        let plans: HashMap<String, _> = self
            .store
            .all_plans()
            .await
            .map_err(internal)?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        let overrides: HashMap<(String, String), _> = self
            .store
            .all_plan_models()
            .await
            .map_err(internal)?
            .into_iter()
            .map(|o| ((o.plan_id.clone(), o.model_id.clone()), o))
            .collect();
        let sums = |from: i64, until: i64| {
            let q = RollupQuery {
                from,
                until,
                tenant_id: Some(tenant_id.to_string()),
                team_ids: scope.team_ids.clone(),
                ..RollupQuery::default()
            };
            let store = self.store.clone();
            async move {
                store
                    .sum_rollups(
                        &q,
                        &Grouping {
                            by: Some(Dimension::Subscription),
                            ..Grouping::default()
                        },
                    )
                    .await
                    .map(|rows| {
                        rows.into_iter()
                            .map(|r| (r.value, r.sums))
                            .collect::<HashMap<_, _>>()
                    })
                    .map_err(internal)
            }
        };
        let minute = Grain::Minute.floor(now.0);
        let month = sums(now.month_start().0, minute + Grain::Minute.millis()).await?;
        let this_minute = sums(minute, minute + Grain::Minute.millis()).await?;
        let small = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
        Ok(subs
            .into_iter()
            .map(|s| {
                let plan = plans.get(&s.plan_id);
                let o = overrides.get(&(s.plan_id.clone(), s.model_id.clone()));
                let limit = |own: Option<i64>, plan: Option<i64>| own.or(plan);
                let used = month.get(&s.id).copied().unwrap_or_default();
                let minute_use = this_minute.get(&s.id).copied().unwrap_or_default();
                QuotaView {
                    monthly_tokens: monthly_tokens(&plans, &overrides, &s.plan_id, &s.model_id),
                    requests_per_minute: small(limit(
                        o.and_then(|o| o.requests_per_minute),
                        plan.and_then(|p| p.requests_per_minute),
                    )),
                    tokens_per_minute: small(limit(
                        o.and_then(|o| o.tokens_per_minute),
                        plan.and_then(|p| p.tokens_per_minute),
                    )),
                    used_tokens: used.tokens(),
                    requests_this_minute: minute_use.requests,
                    tokens_this_minute: minute_use.tokens(),
                    remaining_tokens: None,
                    used_percent: None,
                    subscription_id: s.id,
                    tenant_id: s.tenant_id,
                    team_id: s.team_id,
                    team_name: s.team_name,
                    model_id: s.model_id,
                    model_name: s.model_name,
                    plan_name: s.plan_name,
                    state: s.state,
                }
                .with_remaining()
            })
            .collect())
    }
}
