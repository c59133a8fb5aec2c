//! The portal's usage page, assembled in one call: the scope in words, the filters' choices, totals, a chart,
//! breakdowns by model (with cost at list prices), team, key, tenant and source, and the quotas.

use crate::{chart, Scope, Selection, Usage};
use tollgate_domain::{
    time::Millis,
    usage::{
        rollup::Grain, AdoptionPoint, DeprecatedUse, Named, UsageDashboard, UsageDimension,
        UsageGroup,
    },
    DomainError,
};
use tollgate_identity::{internal, Caller};

/// Rows per breakdown table (the biggest first).
const TOP: usize = 20;

/// The newest errors and refusals the page lists.
const RECENT_ERRORS: u32 = 10;

/// Which tenant a page shows: the caller's current one, every tenant, or one named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantChoice {
    Current,
    All,
    One(String),
}

impl TenantChoice {
    /// The page's `tenant` parameter: empty for the current tenant, `all`, or a tenant id.
    pub fn parse(raw: &str) -> Self {
        match raw.trim() {
            "" => Self::Current,
            "all" => Self::All,
            id => Self::One(id.to_string()),
        }
    }
}

/// The biggest `TOP` groups by tokens, then requests.
fn top(mut groups: Vec<UsageGroup>) -> Vec<UsageGroup> {
    groups.sort_by(|a, b| {
        (b.figures.tokens(), b.figures.requests).cmp(&(a.figures.tokens(), a.figures.requests))
    });
    groups.truncate(TOP);
    groups
}

impl Usage {
    /// Everything the usage page shows for `caller`'s view.
    pub async fn dashboard(
        &self,
        caller: &Caller,
        choice: &TenantChoice,
        sel: &Selection,
    ) -> Result<UsageDashboard, DomainError> {
        if sel.until <= sel.from {
            return Err(DomainError::invalid("the range must end after it starts"));
        }
        let platform = caller.platform_admin || caller.platform_viewer;
        let tenant: Option<String> =
            match choice {
                TenantChoice::Current => match caller.tenant_id.clone() {
                    Some(t) => Some(t),
                    None if platform => None,
                    None => return Err(DomainError::invalid(
                        "you are not a member of any tenant yet: ask an admin for an invitation",
                    )),
                },
                TenantChoice::All => None,
                TenantChoice::One(t) => Some(t.clone()),
            };
        let scope: Scope = self.scope(caller, tenant.as_deref()).await?;
        let tenant_name = match &tenant {
            Some(t) => self
                .store
                .tenant_by_id(t)
                .await
                .map_err(internal)?
                .map_or_else(|| t.clone(), |t| t.name),
            None => String::new(),
        };
        let scope_words = match (&tenant, &scope.team_ids) {
            (None, _) => "every tenant".to_string(),
            (Some(_), Some(_)) => format!("your teams in {tenant_name}"),
            (Some(_), None) => tenant_name,
        };
        let tenants = if platform {
            self.store
                .list_tenants("", 0, 1_000)
                .await
                .map_err(internal)?
                .0
                .into_iter()
                .map(|t| Named {
                    id: t.id,
                    name: t.name,
                })
                .collect()
        } else {
            Vec::new()
        };
        let teams = match &tenant {
            Some(t) => self
                .store
                .list_teams(t, "", 0, 1_000)
                .await
                .map_err(internal)?
                .0
                .into_iter()
                .filter(|team| {
                    scope
                        .team_ids
                        .as_ref()
                        .is_none_or(|mine| mine.contains(&team.id))
                })
                .map(|team| Named {
                    id: team.id,
                    name: team.name,
                })
                .collect(),
            None => Vec::new(),
        };
        let catalog = self.store.all_models().await.map_err(internal)?;
        let models: Vec<Named> = catalog
            .iter()
            .map(|m| Named {
                id: m.id.clone(),
                name: m.display_name.clone(),
            })
            .collect();
        let grain = Grain::for_chart(sel.from.0, sel.until.0);
        let group = |by: Option<UsageDimension>, every: Option<Grain>| {
            let (scope, sel) = (scope.clone(), sel.clone());
            async move {
                Ok::<_, DomainError>(
                    self.figures_in(&scope, &sel, by, every, None, crate::MAX_GROUPS)
                        .await?
                        .items,
                )
            }
        };
        let series = group(None, Some(grain)).await?;
        let by_model_all = group(Some(UsageDimension::Model), None).await?;
        // Cost is known per model: the total is the sum over every model (the table shows the top ones).
        let cost: i64 = by_model_all
            .iter()
            .filter_map(|g| g.figures.cost_micros)
            .sum();
        // Deprecated and retired models still in use, and who uses them: the people to tell before a sunset.
        let mut deprecated_in_use = Vec::new();
        for m in catalog
            .iter()
            .filter(|m| m.status == "deprecated" || m.status == "retired")
        {
            if !by_model_all.iter().any(|g| g.value == m.id) {
                continue;
            }
            let mut only = sel.clone();
            only.model = m.id.clone();
            let who = if tenant.is_some() {
                UsageDimension::Team
            } else {
                UsageDimension::Tenant
            };
            let users = self
                .figures_in(&scope, &only, Some(who), None, None, crate::MAX_GROUPS)
                .await?
                .items;
            deprecated_in_use.push(DeprecatedUse {
                model: Named {
                    id: m.id.clone(),
                    name: m.display_name.clone(),
                },
                status: m.status.clone(),
                users: top(users),
            });
        }
        let by_model = top(by_model_all);
        let by_team = top(group(Some(UsageDimension::Team), None).await?);
        let by_key = top(group(Some(UsageDimension::Key), None).await?);
        let by_source = group(Some(UsageDimension::Source), None).await?;
        let by_plan = top(group(Some(UsageDimension::Plan), None).await?);
        let plans = self
            .store
            .all_plans()
            .await
            .map_err(internal)?
            .into_iter()
            .map(|p| Named {
                id: p.id,
                name: p.name,
            })
            .collect();
        let by_tenant = if tenant.is_none() {
            top(group(Some(UsageDimension::Tenant), None).await?)
        } else {
            Vec::new()
        };
        let mut totals = group(None, None)
            .await?
            .into_iter()
            .next()
            .map(|g| g.figures)
            .unwrap_or_default();
        totals.cost_micros = Some(cost);
        let quotas = match &tenant {
            Some(t) => {
                self.quotas(caller, t, Millis(tollgate_store::now_millis()))
                    .await?
            }
            None => Vec::new(),
        };
        // Adoption per chart bucket: active teams (from the rollups) and subscriptions created.
        let rq = tollgate_store::RollupQuery {
            from: sel.from.0,
            until: sel.until.0,
            tenant_id: scope.tenant_id.clone(),
            team_ids: scope.team_ids.clone(),
            model: crate::dashboard::non_empty(&sel.model),
            ..tollgate_store::RollupQuery::default()
        };
        let active = self
            .store
            .count_per_bucket(&rq, grain, tollgate_store::Dimension::Team)
            .await
            .map_err(internal)?;
        let created = self
            .store
            .subscriptions_created_per_bucket(
                tenant.as_deref(),
                grain.floor(sel.from.0),
                sel.until.0,
                grain.millis(),
            )
            .await
            .map_err(internal)?;
        let mut adoption: std::collections::BTreeMap<i64, AdoptionPoint> = Default::default();
        let point = |b: i64| AdoptionPoint {
            bucket: Millis(b),
            active_teams: 0,
            new_subscriptions: 0,
        };
        for (b, n) in active {
            adoption.entry(b).or_insert_with(|| point(b)).active_teams =
                u64::try_from(n).unwrap_or(0);
        }
        // Developers see their own teams only: the tenant's new subscriptions would tell them about other teams.
        if scope.team_ids.is_none() {
            for (b, n) in created {
                adoption
                    .entry(b)
                    .or_insert_with(|| point(b))
                    .new_subscriptions = u64::try_from(n).unwrap_or(0);
            }
        }
        let recent_errors = self
            .record_page_in(caller, &scope, sel, true, None, RECENT_ERRORS)
            .await?
            .items;
        let keys = by_key
            .iter()
            .map(|g| g.value.clone())
            .filter(|k| !k.is_empty())
            .collect();
        Ok(UsageDashboard {
            scope: scope_words,
            from: sel.from,
            until: sel.until,
            grain,
            platform,
            tenants,
            teams,
            models,
            keys,
            totals,
            chart_svg: chart::tokens_per_bucket(&series, grain, sel.from.0, sel.until.0),
            series,
            by_model,
            by_team,
            by_key,
            by_tenant,
            by_source,
            by_plan,
            plans,
            quotas,
            recent_errors,
            deprecated_in_use,
            adoption: adoption.into_values().collect(),
        })
    }
}
