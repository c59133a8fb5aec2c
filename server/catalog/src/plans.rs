//! Plans: everyone may read them (the catalog shows them); platform admins edit them.

use crate::{convert::plan_views, models::require_platform_admin, Catalog};
use tollgate_domain::{
    audit::AuditAction,
    plan::{OverrideInput, PlanInput, PlanView},
    DomainError,
};
use tollgate_identity::{internal, Caller};
use tollgate_store::StoreError;

impl Catalog {
    pub(crate) async fn all_plans(&self) -> Result<Vec<PlanView>, DomainError> {
        let plans = self.store.all_plans().await.map_err(internal)?;
        let models = self.store.all_plan_models().await.map_err(internal)?;
        Ok(plan_views(plans, &models))
    }

    pub(crate) async fn plan_by_id(&self, id: &str) -> Result<PlanView, DomainError> {
        let plan = self
            .store
            .plan(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| DomainError::not_found("plan"))?;
        let models = self.store.all_plan_models().await.map_err(internal)?;
        plan_views(vec![plan], &models)
            .pop()
            .ok_or(DomainError::Internal)
    }

    /// Every plan whose name or description contains `search`; archived ones only for platform admins.
    pub async fn plans(&self, caller: &Caller, search: &str) -> Result<Vec<PlanView>, DomainError> {
        let search = search.trim().to_lowercase();
        let all = self.all_plans().await?;
        Ok(all
            .into_iter()
            .filter(|p| caller.platform_admin || !p.archived)
            .filter(|p| {
                search.is_empty()
                    || p.name.to_lowercase().contains(&search)
                    || p.description.to_lowercase().contains(&search)
            })
            .collect())
    }

    async fn check_models_exist(&self, models: &[String]) -> Result<(), DomainError> {
        for id in models {
            if self.store.model(id).await.map_err(internal)?.is_none() {
                return Err(DomainError::invalid(format!(
                    "the model '{id}' is not in the catalog"
                )));
            }
        }
        Ok(())
    }

    pub async fn create_plan(
        &self,
        caller: &Caller,
        input: &PlanInput,
    ) -> Result<PlanView, DomainError> {
        require_platform_admin(caller)?;
        let p = input.validate()?;
        self.check_models_exist(&p.models).await?;
        let id = self.store.create_plan(&p).await.map_err(duplicate_name)?;
        self.identity
            .audit(caller, None, AuditAction::PlanCreated, "plan", &id, &p.name)
            .await;
        self.touched().await;
        self.plan_by_id(&id).await
    }

    pub async fn update_plan(
        &self,
        caller: &Caller,
        id: &str,
        input: &PlanInput,
    ) -> Result<PlanView, DomainError> {
        require_platform_admin(caller)?;
        let p = input.validate()?;
        self.check_models_exist(&p.models).await?;
        if !self
            .store
            .update_plan(id, &p)
            .await
            .map_err(duplicate_name)?
        {
            return Err(DomainError::not_found("plan"));
        }
        self.identity
            .audit(caller, None, AuditAction::PlanUpdated, "plan", id, &p.name)
            .await;
        self.touched().await;
        self.plan_by_id(id).await
    }

    /// Sets one model's limits under a plan (empty fields keep the plan's). The model must be covered.
    pub async fn set_plan_overrides(
        &self,
        caller: &Caller,
        plan_id: &str,
        model_id: &str,
        input: &OverrideInput,
    ) -> Result<PlanView, DomainError> {
        require_platform_admin(caller)?;
        let overrides = input.validate()?;
        let plan = self.plan_by_id(plan_id).await?;
        self.model_row(model_id).await?;
        if !plan.covers(model_id) {
            return Err(DomainError::invalid(format!(
                "the plan '{}' does not cover {model_id}",
                plan.name
            )));
        }
        self.store
            .set_plan_model_overrides(plan_id, model_id, &overrides)
            .await
            .map_err(internal)?;
        let detail = format!("limits for {model_id}");
        self.identity
            .audit(
                caller,
                None,
                AuditAction::PlanUpdated,
                "plan",
                plan_id,
                &detail,
            )
            .await;
        self.touched().await;
        self.plan_by_id(plan_id).await
    }

    pub async fn set_plan_archived(
        &self,
        caller: &Caller,
        id: &str,
        archived: bool,
    ) -> Result<PlanView, DomainError> {
        require_platform_admin(caller)?;
        if !self
            .store
            .set_plan_archived(id, archived)
            .await
            .map_err(internal)?
        {
            return Err(DomainError::not_found("plan"));
        }
        let detail = if archived { "archived" } else { "restored" };
        self.identity
            .audit(caller, None, AuditAction::PlanUpdated, "plan", id, detail)
            .await;
        self.plan_by_id(id).await
    }
}

fn duplicate_name(e: StoreError) -> DomainError {
    match e {
        StoreError::Duplicate => DomainError::conflict("a plan with this name already exists"),
        other => internal(other),
    }
}
