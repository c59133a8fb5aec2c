//! The catalog and plans: browsing (everyone signed in) and editing (platform admins).

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use tollgate_domain::{
    catalog::{CatalogFacets, ModelDetail, ModelInput, ModelView},
    page::Page,
    plan::{OverrideInput, PlanInput, PlanView},
};

#[server(endpoint = "catalog/browse", input = GetUrl)]
pub async fn browse_catalog(
    search: String,
    task: String,
    family: String,
    tag: String,
    status: String,
    sort: String,
    page: u32,
) -> Result<(Page<ModelView>, CatalogFacets), AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    let query = tollgate_domain::catalog::CatalogQuery {
        search,
        task,
        family,
        tag,
        status,
        sort,
    };
    let page = tollgate_domain::page::PageRequest::new(Some(page), Some(12));
    Ok(catalog.browse(&caller, &query, page).await?)
}

/// Whether each routed model can answer now (serving, starting, idle); models not listed are unavailable.
#[server(endpoint = "catalog/serving", input = GetUrl)]
pub async fn catalog_serving() -> Result<Vec<(String, tollgate_domain::fleet::Serving)>, AppError> {
    let serving = super::ssr::serving_of()?;
    super::ssr::caller().await?;
    Ok(serving())
}

#[server(endpoint = "catalog/model", input = GetUrl)]
pub async fn get_model(id: String) -> Result<ModelDetail, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    Ok(catalog.model(&caller, &id).await?)
}

/// Creates (`create`) or updates a model, then returns to the admin list.
#[server(endpoint = "admin/models/save")]
pub async fn save_model(input: ModelInput, create: bool) -> Result<ModelView, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    let saved = if create {
        catalog.create_model(&caller, &input).await?
    } else {
        catalog.update_model(&caller, &input).await?
    };
    leptos_axum::redirect(&format!("/catalog/{}", saved.id));
    Ok(saved)
}

#[server(endpoint = "plans/list", input = GetUrl)]
pub async fn list_plans(search: String) -> Result<Vec<PlanView>, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    Ok(catalog.plans(&caller, &search).await?)
}

/// Creates a plan (empty `plan_id`) or updates one.
#[server(endpoint = "admin/plans/save")]
pub async fn save_plan(plan_id: String, input: PlanInput) -> Result<PlanView, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    let saved = if plan_id.is_empty() {
        catalog.create_plan(&caller, &input).await?
    } else {
        catalog.update_plan(&caller, &plan_id, &input).await?
    };
    leptos_axum::redirect("/admin/plans");
    Ok(saved)
}

#[server(endpoint = "admin/plans/archive")]
pub async fn archive_plan(plan_id: String, archived: bool) -> Result<PlanView, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    Ok(catalog
        .set_plan_archived(&caller, &plan_id, archived)
        .await?)
}

#[server(endpoint = "admin/plans/overrides")]
pub async fn set_plan_overrides(
    plan_id: String,
    model_id: String,
    input: OverrideInput,
) -> Result<PlanView, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    Ok(catalog
        .set_plan_overrides(&caller, &plan_id, &model_id, &input)
        .await?)
}
