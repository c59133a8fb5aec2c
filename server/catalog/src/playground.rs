//! The playground's side of the catalog: which models the caller may try in the browser, under which of their
//! teams' subscriptions, and the check before each call. Who may use a subscription is who may manage its API keys
//! (a developer of its team, a tenant admin, a platform admin); viewers may not; other tenants' ids are NotFound.

use crate::Catalog;
use std::collections::HashMap;
use tollgate_domain::{
    access::Action,
    catalog::ModelStatus,
    playground::{preference, unusable_because, PlaygroundChoice, PlaygroundSetup},
    subscription::State,
    DomainError, TenantRole,
};
use tollgate_identity::{internal, Caller};
use tollgate_store::{SubscriptionQuery, SubscriptionRow};

/// More subscriptions than a tenant can hold per model and team: the playground lists them all.
const ALL: i64 = 100_000;

impl Catalog {
    /// Every catalog model (but retired ones) as the playground offers it to `caller` in `tenant_id`: usable under
    /// an active subscription of one of their teams, or with the reason it is not.
    pub async fn playground(
        &self,
        caller: &Caller,
        tenant_id: &str,
    ) -> Result<PlaygroundSetup, DomainError> {
        let role = self
            .identity
            .authorize(caller, tenant_id, Action::ViewSubscriptions)
            .await?;
        let (rows, _) = self
            .store
            .list_subscriptions(&SubscriptionQuery {
                tenant_id: Some(tenant_id),
                limit: ALL,
                ..Default::default()
            })
            .await
            .map_err(internal)?;
        let plans = self.all_plans().await?;
        let mut member_of: HashMap<String, bool> = HashMap::new();
        for r in &rows {
            if !member_of.contains_key(&r.team_id) {
                let member = self
                    .acts_for_team(caller, role, tenant_id, &r.team_id)
                    .await?;
                member_of.insert(r.team_id.clone(), member);
            }
        }
        let mut choices = Vec::new();
        for model in self
            .all_models()
            .await?
            .into_iter()
            .filter(|m| m.status != ModelStatus::Retired)
        {
            let choice = |row: Option<&SubscriptionRow>, why: Option<&str>| {
                let limits = row
                    .and_then(|r| plans.iter().find(|p| p.id == r.plan_id))
                    .map(|p| p.limits_for(&model.id))
                    .unwrap_or_default();
                PlaygroundChoice {
                    model_id: model.id.clone(),
                    model_name: model.display_name.clone(),
                    task: model.task,
                    input_price: model.input_price,
                    output_price: model.output_price,
                    subscription_id: row.map(|r| r.id.clone()),
                    team_name: row.map(|r| r.team_name.clone()).unwrap_or_default(),
                    plan_name: row.map(|r| r.plan_name.clone()).unwrap_or_default(),
                    limits,
                    why: why.unwrap_or_default().to_string(),
                }
            };
            let mut of_model: Vec<(&SubscriptionRow, State, bool)> = rows
                .iter()
                .filter(|r| r.model_id == model.id)
                .filter_map(|r| {
                    let member = member_of.get(&r.team_id).copied().unwrap_or(false);
                    Some((r, State::parse(&r.state)?, member))
                })
                .collect();
            // Theirs first, then active, waiting, suspended, ended.
            of_model.sort_by_key(|(_, state, member)| (!member, preference(*state)));
            let why = |sub: Option<&(&SubscriptionRow, State, bool)>| {
                unusable_because(
                    sub.map(|s| s.1),
                    role,
                    caller.platform_admin,
                    sub.is_some_and(|s| s.2),
                )
            };
            let usable: Vec<_> = of_model
                .iter()
                .filter(|s| why(Some(*s)).is_none())
                .collect();
            if usable.is_empty() {
                let best = of_model.first();
                choices.push(choice(best.map(|s| s.0), why(best)));
            } else {
                choices.extend(usable.into_iter().map(|s| choice(Some(s.0), None)));
            }
        }
        choices.sort_by(|a, b| {
            (!a.usable(), &a.model_name, &a.team_name).cmp(&(
                !b.usable(),
                &b.model_name,
                &b.team_name,
            ))
        });
        Ok(PlaygroundSetup {
            choices,
            api_base: format!("{}/v1", self.identity.settings.public_url),
        })
    }

    /// Checks that `caller` may send a playground request under the subscription: NotFound outside its tenant,
    /// Forbidden for viewers and for developers outside its team, Conflict while it is not active. Returns the
    /// subscription's model.
    pub async fn playground_subscription(
        &self,
        caller: &Caller,
        subscription_id: &str,
    ) -> Result<String, DomainError> {
        let (row, role) = self
            .subscription_row(caller, subscription_id, Action::ViewSubscriptions)
            .await?;
        if !caller.platform_admin && role < Some(TenantRole::Developer) {
            return Err(DomainError::forbidden(
                "use the playground: viewers can look but not call models (ask a tenant admin for the developer role)",
            ));
        }
        let member = self
            .acts_for_team(caller, role, &row.tenant_id, &row.team_id)
            .await?;
        if !member {
            return Err(DomainError::forbidden(format!(
                "use the subscriptions of the team {}",
                row.team_name
            )));
        }
        match unusable_because(
            State::parse(&row.state),
            role,
            caller.platform_admin,
            member,
        ) {
            None => Ok(row.model_id),
            Some(why) => Err(DomainError::conflict(why)),
        }
    }
}
