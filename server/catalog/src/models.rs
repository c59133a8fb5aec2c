//! Browsing the catalog (every signed-in user) and editing it (platform admins).

use crate::{convert::model_view, Catalog};
use tollgate_domain::{
    access::{decide, Action, Principal},
    audit::AuditAction,
    catalog::{CatalogFacets, CatalogQuery, ModelDetail, ModelInput, ModelView, ValidModel},
    page::{Page, PageRequest},
    DomainError,
};
use tollgate_identity::{internal, Caller};
use tollgate_store::StoreError;

pub(crate) fn require_platform_admin(caller: &Caller) -> Result<(), DomainError> {
    decide(
        Principal {
            platform_admin: caller.platform_admin,
            platform_viewer: caller.platform_viewer,
            role_in_tenant: None,
        },
        Action::ManageCatalog,
    )
}

impl Catalog {
    pub(crate) async fn all_models(&self) -> Result<Vec<ModelView>, DomainError> {
        Ok(self
            .store
            .all_models()
            .await
            .map_err(internal)?
            .into_iter()
            .map(model_view)
            .collect())
    }

    pub(crate) async fn model_row(&self, id: &str) -> Result<ModelView, DomainError> {
        self.store
            .model(id)
            .await
            .map_err(internal)?
            .map(model_view)
            .ok_or_else(|| DomainError::not_found("model"))
    }

    /// Searches, filters, sorts and pages the catalog; also returns the filter choices.
    pub async fn browse(
        &self,
        _caller: &Caller,
        query: &CatalogQuery,
        page: PageRequest,
    ) -> Result<(Page<ModelView>, CatalogFacets), DomainError> {
        let models = self.all_models().await?;
        Ok((query.apply(&models, page), CatalogFacets::of(&models)))
    }

    /// A model with the (unarchived) plans it is offered under.
    pub async fn model(&self, _caller: &Caller, id: &str) -> Result<ModelDetail, DomainError> {
        let model = self.model_row(id).await?;
        let plans = self
            .all_plans()
            .await?
            .into_iter()
            .filter(|p| !p.archived && p.covers(&model.id))
            .collect();
        let gateway_url = format!("{}/v1", self.identity.settings.public_url);
        Ok(ModelDetail {
            description_html: crate::markdown::to_safe_html(&model.description),
            model,
            plans,
            gateway_url,
        })
    }

    async fn check_replacement(&self, m: &ValidModel) -> Result<(), DomainError> {
        if let Some(r) = &m.replacement_id {
            if self.store.model(r).await.map_err(internal)?.is_none() {
                return Err(DomainError::invalid(format!(
                    "the replacement model '{r}' is not in the catalog"
                )));
            }
        }
        Ok(())
    }

    pub async fn create_model(
        &self,
        caller: &Caller,
        input: &ModelInput,
    ) -> Result<ModelView, DomainError> {
        require_platform_admin(caller)?;
        let m = input.validate()?;
        self.check_replacement(&m).await?;
        self.store.insert_model(&m).await.map_err(|e| match e {
            StoreError::Duplicate => {
                DomainError::conflict(format!("a model with the id '{}' already exists", m.id))
            }
            other => internal(other),
        })?;
        self.identity
            .audit(
                caller,
                None,
                AuditAction::ModelCreated,
                "model",
                &m.id,
                &m.display_name,
            )
            .await;
        self.touched().await;
        self.model_row(&m.id).await
    }

    pub async fn update_model(
        &self,
        caller: &Caller,
        input: &ModelInput,
    ) -> Result<ModelView, DomainError> {
        require_platform_admin(caller)?;
        let m = input.validate()?;
        self.check_replacement(&m).await?;
        if !self.store.update_model(&m).await.map_err(internal)? {
            return Err(DomainError::not_found("model"));
        }
        let detail = format!("status {}", m.status);
        self.identity
            .audit(
                caller,
                None,
                AuditAction::ModelUpdated,
                "model",
                &m.id,
                &detail,
            )
            .await;
        self.touched().await;
        self.model_row(&m.id).await
    }
}
