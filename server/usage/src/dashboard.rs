//! Dashboard figures: usage summed from the rollups (never the raw records), grouped by a dimension, by time, or
//! both, under the role rules of `tollgate_domain::access::usage_reach`: tenant admins and viewers read their
//! tenant, developers their own teams, platform admins and platform viewers every tenant.

use crate::Usage;
use std::collections::HashMap;
use tollgate_domain::{
    access::{decide, usage_reach, Action, Principal, UsageReach},
    time::Millis,
    usage::{
        cost_micros, cursor, parse_cursor,
        rollup::{Grain, Sums},
        UsageDimension, UsageFigures, UsageGroup, UsageGroupPage,
    },
    DomainError,
};
use tollgate_identity::{internal, Caller};
use tollgate_store::{Dimension, Grouping, RollupQuery};

/// The most groups one page holds.
pub const MAX_GROUPS: u32 = 1_000;

/// What to sum: the range and the filters (empty strings match everything).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub from: Millis,
    pub until: Millis,
    pub team_id: String,
    pub subscription_id: String,
    pub key_id: String,
    pub model: String,
    pub source: String,
}

impl Selection {
    /// The rollups of this selection in `scope`.
    pub(crate) fn rollups_in(&self, scope: Scope) -> RollupQuery {
        RollupQuery {
            from: self.from.0,
            until: self.until.0,
            tenant_id: scope.tenant_id,
            team_ids: scope.team_ids,
            team_id: non_empty(&self.team_id),
            subscription_id: non_empty(&self.subscription_id),
            key_id: non_empty(&self.key_id),
            model: non_empty(&self.model),
            source: non_empty(&self.source),
        }
    }

    /// The raw records of this selection in `scope`, in (at, id) order (`newest_first` reverses it);
    /// `errors_only`: answers with a status of 400 or more only.
    pub(crate) fn records_in(
        &self,
        scope: Scope,
        newest_first: bool,
        errors_only: bool,
    ) -> tollgate_store::RecordScan {
        tollgate_store::RecordScan {
            from: self.from.0,
            until: self.until.0,
            newest_first,
            errors_only,
            tenant_id: scope.tenant_id,
            team_ids: scope.team_ids,
            team_id: non_empty(&self.team_id),
            subscription_id: non_empty(&self.subscription_id),
            key_id: non_empty(&self.key_id),
            model: non_empty(&self.model),
            source: non_empty(&self.source),
        }
    }
}

/// Whose usage a caller reads, resolved once per call: a tenant (or every tenant), and for developers their teams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub tenant_id: Option<String>,
    pub team_ids: Option<Vec<String>>,
}

/// The rollups' own dimension; None for the plan, which rollups do not hold (a subscription's plan can change).
fn dimension(d: UsageDimension) -> Option<Dimension> {
    Some(match d {
        UsageDimension::Tenant => Dimension::Tenant,
        UsageDimension::Team => Dimension::Team,
        UsageDimension::Subscription => Dimension::Subscription,
        UsageDimension::Key => Dimension::Key,
        UsageDimension::Model => Dimension::Model,
        UsageDimension::Source => Dimension::Source,
        UsageDimension::Plan => return None,
    })
}

pub(crate) fn non_empty(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

impl Usage {
    /// The scope `caller` reads in `tenant_id` (None: every tenant, platform admins and viewers only). A caller
    /// outside the tenant gets NotFound.
    pub async fn scope(
        &self,
        caller: &Caller,
        tenant_id: Option<&str>,
    ) -> Result<Scope, DomainError> {
        let Some(tenant) = tenant_id else {
            decide(
                Principal {
                    platform_admin: caller.platform_admin,
                    platform_viewer: caller.platform_viewer,
                    role_in_tenant: None,
                },
                Action::ViewAllUsage,
            )
            .map_err(|_| DomainError::not_found("tenant"))?;
            return Ok(Scope {
                tenant_id: None,
                team_ids: None,
            });
        };
        let role = self
            .identity
            .authorize(caller, tenant, Action::ViewUsage)
            .await?;
        let reach = usage_reach(Principal {
            platform_admin: caller.platform_admin,
            platform_viewer: caller.platform_viewer,
            role_in_tenant: role,
        })?;
        let team_ids = match reach {
            UsageReach::Tenant => None,
            UsageReach::OwnTeams => Some(
                self.store
                    .team_ids_of_member(tenant, &caller.user_id)
                    .await
                    .map_err(internal)?,
            ),
        };
        Ok(Scope {
            tenant_id: Some(tenant.to_string()),
            team_ids,
        })
    }

    /// Usage of `tenant_id` (None: every tenant) summed per group: by `by`, per bucket of `every`, both or
    /// neither; one keyset page of at most `limit` groups after the cursor `after`.
    #[allow(clippy::too_many_arguments)]
    pub async fn figures(
        &self,
        caller: &Caller,
        tenant_id: Option<&str>,
        sel: &Selection,
        by: Option<UsageDimension>,
        every: Option<Grain>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<UsageGroupPage, DomainError> {
        if sel.until <= sel.from {
            return Err(DomainError::invalid("the range must end after it starts"));
        }
        let after = match after.map(str::trim).filter(|a| !a.is_empty()) {
            None => None,
            Some(a) => Some(parse_cursor(a).ok_or_else(|| {
                DomainError::invalid(format!("'{a}' is not a cursor from a previous page"))
            })?),
        };
        let scope = self.scope(caller, tenant_id).await?;
        self.figures_in(&scope, sel, by, every, after, limit).await
    }

    /// [`Usage::figures`] in a scope already resolved.
    pub(crate) async fn figures_in(
        &self,
        scope: &Scope,
        sel: &Selection,
        by: Option<UsageDimension>,
        every: Option<Grain>,
        after: Option<(i64, String)>,
        limit: u32,
    ) -> Result<UsageGroupPage, DomainError> {
        let scope = scope.clone();
        let limit = limit.clamp(1, MAX_GROUPS);
        if by == Some(UsageDimension::Plan) {
            return self.figures_by_plan(&scope, sel, every, after, limit).await;
        }
        let q = sel.rollups_in(scope);
        let rows = self
            .store
            .sum_rollups(
                &q,
                &Grouping {
                    by: by.and_then(dimension),
                    every,
                    after,
                    // One more than asked, to know whether a next page exists.
                    limit: Some(i64::from(limit) + 1),
                },
            )
            .await
            .map_err(internal)?;
        let prices = if by == Some(UsageDimension::Model) {
            self.prices().await?
        } else {
            HashMap::new()
        };
        let more = rows.len() > limit as usize;
        let items: Vec<UsageGroup> = rows
            .into_iter()
            .take(limit as usize)
            .map(|r| {
                let mut figures = UsageFigures::of(&r.sums);
                if let Some((input, output)) = prices.get(&r.value) {
                    figures.cost_micros = Some(cost_micros(
                        r.sums.prompt_tokens,
                        r.sums.completion_tokens,
                        *input,
                        *output,
                    ));
                }
                UsageGroup {
                    bucket: every.map(|_| Millis(r.bucket)),
                    value: r.value,
                    figures,
                }
            })
            .collect();
        let next = if more {
            items
                .last()
                .map(|g| cursor(g.bucket.map_or(0, |b| b.0), &g.value))
        } else {
            None
        };
        Ok(UsageGroupPage { items, next })
    }

    /// Figures per plan: every subscription's sums in the view, each added to its plan's (the plan it is on now),
    /// with the cost at each subscription's model's list prices; keyset-paged by plan id.
    async fn figures_by_plan(
        &self,
        scope: &Scope,
        sel: &Selection,
        every: Option<Grain>,
        after: Option<(i64, String)>,
        limit: u32,
    ) -> Result<UsageGroupPage, DomainError> {
        if every.is_some() {
            return Err(DomainError::invalid(
                "usage by plan is a breakdown, not a series: leave out grain",
            ));
        }
        let q = sel.rollups_in(scope.clone());
        let subscriptions = self
            .store
            .sum_rollups(
                &q,
                &Grouping {
                    by: Some(Dimension::Subscription),
                    ..Grouping::default()
                },
            )
            .await
            .map_err(internal)?;
        let ids: Vec<String> = subscriptions.iter().map(|r| r.value.clone()).collect();
        let of: HashMap<String, (String, String)> = self
            .store
            .plans_of_subscriptions(&ids)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|(sub, plan, model)| (sub, (plan, model)))
            .collect();
        let prices = self.prices().await?;
        let mut plans: std::collections::BTreeMap<String, (Sums, i64)> = Default::default();
        for r in subscriptions {
            let Some((plan, model)) = of.get(&r.value) else {
                continue; // a subscription since deleted
            };
            let cost = prices.get(model).map_or(0, |(input, output)| {
                cost_micros(
                    r.sums.prompt_tokens,
                    r.sums.completion_tokens,
                    *input,
                    *output,
                )
            });
            let entry = plans.entry(plan.clone()).or_default();
            entry.0.merge(&r.sums);
            entry.1 += cost;
        }
        let start = after.map(|(_, plan)| plan);
        let mut items: Vec<UsageGroup> = plans
            .into_iter()
            .filter(|(plan, _)| start.as_ref().is_none_or(|s| plan > s))
            .take(limit as usize + 1)
            .map(|(plan, (sums, cost))| UsageGroup {
                bucket: None,
                value: plan,
                figures: UsageFigures {
                    cost_micros: Some(cost),
                    ..UsageFigures::of(&sums)
                },
            })
            .collect();
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next = more
            .then(|| items.last().map(|g| cursor(0, &g.value)))
            .flatten();
        Ok(UsageGroupPage { items, next })
    }

    /// The catalog's list prices per million tokens, by model id: (input, output) in micro-units.
    async fn prices(&self) -> Result<HashMap<String, (i64, i64)>, DomainError> {
        Ok(self
            .store
            .all_models()
            .await
            .map_err(internal)?
            .into_iter()
            .map(|m| (m.id, (m.input_price_micros, m.output_price_micros)))
            .collect())
    }
}
