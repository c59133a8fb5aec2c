//! Subscriptions: requesting one for a team, approving and changing it, and reading them. Authorization is by
//! the subscription's own tenant, so an id from another tenant answers NotFound.

use crate::{convert::subscription_view, Catalog};
use tollgate_domain::{
    access::Action,
    audit::AuditAction,
    catalog::Visibility,
    page::{Page, PageRequest},
    subscription::{self, Approver, Change, State, SubscriptionFilter, SubscriptionView},
    DomainError, TenantRole,
};
use tollgate_identity::{internal, Caller};
use tollgate_store::{NewSubscription, StoreError, SubscriptionQuery, SubscriptionRow};

impl Catalog {
    /// Whether the caller may act for `team_id` as a developer: tenant admins for any team, developers for their own.
    pub(crate) async fn acts_for_team(
        &self,
        caller: &Caller,
        role: Option<TenantRole>,
        tenant_id: &str,
        team_id: &str,
    ) -> Result<bool, DomainError> {
        if caller.platform_admin || role == Some(TenantRole::Admin) {
            return Ok(true);
        }
        if role < Some(TenantRole::Developer) {
            return Ok(false);
        }
        self.store
            .is_team_member(tenant_id, team_id, &caller.user_id)
            .await
            .map_err(internal)
    }

    pub(crate) async fn subscription_row(
        &self,
        caller: &Caller,
        id: &str,
        action: Action,
    ) -> Result<(SubscriptionRow, Option<TenantRole>), DomainError> {
        // Only the owning tenant is read before authorization; the row itself is read within that tenant.
        let tenant_id = self
            .store
            .tenant_of_subscription(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| DomainError::not_found("subscription"))?;
        let role = self
            .identity
            .authorize(caller, &tenant_id, action)
            .await
            .map_err(|e| match e {
                DomainError::NotFound(_) => DomainError::not_found("subscription"),
                other => other,
            })?;
        let row = self
            .store
            .subscription(&tenant_id, id)
            .await
            .map_err(internal)?
            .ok_or_else(|| DomainError::not_found("subscription"))?;
        Ok((row, role))
    }

    async fn view(&self, row: SubscriptionRow) -> Result<SubscriptionView, DomainError> {
        let notice = self
            .model_row(&row.model_id)
            .await
            .ok()
            .and_then(|m| m.lifecycle_notice());
        Ok(subscription_view(row, notice))
    }

    pub async fn subscribe(
        &self,
        caller: &Caller,
        tenant_id: &str,
        team_id: &str,
        model_id: &str,
        plan_id: &str,
        note: &str,
    ) -> Result<SubscriptionView, DomainError> {
        let role = self
            .identity
            .authorize(caller, tenant_id, Action::UseModels)
            .await?;
        let team = self.identity.team_in(tenant_id, team_id).await?;
        if !self
            .acts_for_team(caller, role, tenant_id, &team.id)
            .await?
        {
            return Err(DomainError::forbidden(format!(
                "subscribe the team {} (you are not a member)",
                team.name
            )));
        }
        let model = self.model_row(model_id).await?;
        if !model.subscribable() {
            return Err(DomainError::invalid(format!(
                "{} is retired and takes no new subscriptions",
                model.display_name
            )));
        }
        let plan = self.plan_by_id(plan_id).await?;
        plan.check_offered_for(&model.id)?;
        let state = subscription::initial_state(
            plan.requires_approval,
            model.visibility == Visibility::Restricted,
        );
        let note: String = note.trim().chars().take(500).collect();
        let id = self
            .store
            .create_subscription(NewSubscription {
                tenant_id,
                team_id: &team.id,
                model_id: &model.id,
                plan_id: &plan.id,
                state: state.as_str(),
                note: &note,
                requested_by: &caller.user_id,
            })
            .await
            .map_err(|e| match e {
                StoreError::Duplicate => DomainError::conflict(format!(
                    "{} already has a subscription to {}: change its plan instead",
                    team.name, model.display_name
                )),
                other => internal(other),
            })?;
        let detail = format!(
            "{} for {} under {} ({})",
            model.id,
            team.name,
            plan.name,
            state.label()
        );
        self.identity
            .audit(
                caller,
                Some(tenant_id),
                AuditAction::SubscriptionRequested,
                "subscription",
                &id,
                &detail,
            )
            .await;
        self.touched().await;
        let (row, _) = self
            .subscription_row(caller, &id, Action::ViewSubscriptions)
            .await?;
        self.view(row).await
    }

    /// The tenant's subscriptions, filtered and paged.
    pub async fn subscriptions(
        &self,
        caller: &Caller,
        tenant_id: &str,
        filter: &SubscriptionFilter,
        page: PageRequest,
    ) -> Result<Page<SubscriptionView>, DomainError> {
        self.identity
            .authorize(caller, tenant_id, Action::ViewSubscriptions)
            .await?;
        let states = states_of(&filter.state)?;
        let q = SubscriptionQuery {
            tenant_id: Some(tenant_id),
            team_id: Some(filter.team_id.as_str()).filter(|t| !t.is_empty()),
            states,
            search: &filter.search,
            offset: page.offset(),
            limit: page.limit(),
        };
        self.page_of(&q, page).await
    }

    /// What waits for the caller's decision: a tenant admin sees their tenant's requests awaiting tenant approval;
    /// a platform admin sees every tenant's pending requests.
    pub async fn approvals(
        &self,
        caller: &Caller,
        tenant_id: Option<&str>,
        search: &str,
        page: PageRequest,
    ) -> Result<Page<SubscriptionView>, DomainError> {
        let q = if caller.platform_admin {
            SubscriptionQuery {
                states: vec![
                    State::PendingPlatform.as_str(),
                    State::PendingTenant.as_str(),
                ],
                search,
                offset: page.offset(),
                limit: page.limit(),
                ..Default::default()
            }
        } else {
            let tenant = tenant_id.ok_or_else(|| DomainError::not_found("tenant"))?;
            self.identity
                .authorize(caller, tenant, Action::DecideSubscriptions)
                .await?;
            SubscriptionQuery {
                tenant_id: Some(tenant),
                states: vec![State::PendingTenant.as_str()],
                search,
                offset: page.offset(),
                limit: page.limit(),
                ..Default::default()
            }
        };
        self.page_of(&q, page).await
    }

    async fn page_of(
        &self,
        q: &SubscriptionQuery<'_>,
        page: PageRequest,
    ) -> Result<Page<SubscriptionView>, DomainError> {
        let (rows, total) = self.store.list_subscriptions(q).await.map_err(internal)?;
        let models = self.all_models().await?;
        let items = rows
            .into_iter()
            .map(|r| {
                let notice = models
                    .iter()
                    .find(|m| m.id == r.model_id)
                    .and_then(|m| m.lifecycle_notice());
                subscription_view(r, notice)
            })
            .collect();
        Ok(Page {
            items,
            total: u64::try_from(total).unwrap_or(0),
            page: page.page,
            per_page: page.per_page,
        })
    }

    /// One subscription with its keys.
    pub async fn subscription(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(SubscriptionView, Vec<tollgate_domain::api_key::KeyView>), DomainError> {
        let (row, _) = self
            .subscription_row(caller, id, Action::ViewSubscriptions)
            .await?;
        let keys = self.keys_of(&row.tenant_id, &row.id).await?;
        Ok((self.view(row).await?, keys))
    }

    /// Approves, rejects, suspends, resumes or cancels a subscription.
    pub async fn decide(
        &self,
        caller: &Caller,
        id: &str,
        change: Change,
        reason: &str,
    ) -> Result<SubscriptionView, DomainError> {
        let (row, role) = self
            .subscription_row(caller, id, Action::ViewSubscriptions)
            .await?;
        let reason: String = reason.trim().chars().take(500).collect();
        if subscription::needs_reason(change) && reason.is_empty() {
            return Err(DomainError::invalid(
                "please give a reason: the team will see it",
            ));
        }
        let from = State::parse(&row.state).ok_or(DomainError::Internal)?;
        let model = self.model_row(&row.model_id).await?;
        let who = Approver {
            platform_admin: caller.platform_admin,
            tenant_admin: role == Some(TenantRole::Admin),
            team_developer: row.requested_by == caller.user_id
                && role >= Some(TenantRole::Developer)
                || self
                    .acts_for_team(caller, role, &row.tenant_id, &row.team_id)
                    .await?,
        };
        let to = subscription::transition(
            from,
            change,
            who,
            model.visibility == Visibility::Restricted,
        )?;
        if !self
            .store
            .set_subscription_state(
                &row.tenant_id,
                &row.id,
                from.as_str(),
                to.as_str(),
                &reason,
                &caller.user_id,
            )
            .await
            .map_err(internal)?
        {
            return Err(DomainError::conflict(
                "someone else changed this subscription just now: reload and try again",
            ));
        }
        let action = match change {
            Change::Approve => AuditAction::SubscriptionApproved,
            Change::Reject => AuditAction::SubscriptionRejected,
            Change::Suspend => AuditAction::SubscriptionSuspended,
            Change::Resume => AuditAction::SubscriptionResumed,
            Change::Cancel => AuditAction::SubscriptionCancelled,
        };
        let detail = if reason.is_empty() {
            format!("now {}", to.label())
        } else {
            format!("now {}: {reason}", to.label())
        };
        self.changed(caller, &row, action, &detail).await
    }

    /// Moves a live subscription to another plan (tenant admins and platform admins).
    pub async fn change_plan(
        &self,
        caller: &Caller,
        id: &str,
        plan_id: &str,
    ) -> Result<SubscriptionView, DomainError> {
        let (row, _) = self
            .subscription_row(caller, id, Action::DecideSubscriptions)
            .await?;
        let state = State::parse(&row.state).ok_or(DomainError::Internal)?;
        if !state.is_live() {
            return Err(DomainError::conflict(
                "a finished subscription cannot change plan",
            ));
        }
        let plan = self.plan_by_id(plan_id).await?;
        plan.check_offered_for(&row.model_id)?;
        self.store
            .set_subscription_plan(&row.tenant_id, &row.id, &plan.id)
            .await
            .map_err(internal)?;
        let detail = format!("{} -> {}", row.plan_name, plan.name);
        self.changed(caller, &row, AuditAction::SubscriptionPlanChanged, &detail)
            .await
    }

    /// After a change: audit it, refresh the gateway's snapshot, and answer with the subscription as it is now.
    async fn changed(
        &self,
        caller: &Caller,
        row: &SubscriptionRow,
        action: AuditAction,
        detail: &str,
    ) -> Result<SubscriptionView, DomainError> {
        self.identity
            .audit(
                caller,
                Some(&row.tenant_id),
                action,
                "subscription",
                &row.id,
                detail,
            )
            .await;
        self.touched().await;
        let (row, _) = self
            .subscription_row(caller, &row.id, Action::ViewSubscriptions)
            .await?;
        self.view(row).await
    }
}

/// The states a list filter names: "" is all, "pending" is both pending stages.
fn states_of(filter: &str) -> Result<Vec<&'static str>, DomainError> {
    match filter.trim() {
        "" => Ok(vec![]),
        "pending" => Ok(vec![
            State::PendingTenant.as_str(),
            State::PendingPlatform.as_str(),
        ]),
        other => State::parse(other)
            .map(|s| vec![s.as_str()])
            .ok_or_else(|| DomainError::invalid(format!("unknown subscription state '{other}'"))),
    }
}
