//! /api/v1/models and /api/v1/plans: thin handlers over `Catalog`.

use super::{auth::ApiCaller, error::ApiResult, PageQuery};
use crate::state::AppState;
use axum::{
    extract::{rejection::JsonRejection, rejection::QueryRejection, Path, Query, State},
    http::StatusCode,
    Json,
};
use serde::Deserialize;
use tollgate_domain::{
    catalog::{CatalogFacets, CatalogQuery, ModelDetail, ModelInput, ModelView},
    page::Page,
    plan::{OverrideInput, PlanInput, PlanView},
};

/// Query strings are flat (serde's `flatten` cannot parse numbers from them), so the filter is spelled out.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelsQuery {
    /// Words matched against id, name, family, provider, description and tags.
    #[serde(default)]
    pub search: String,
    /// chat | completion | embeddings
    #[serde(default)]
    pub task: String,
    /// A model family.
    #[serde(default)]
    pub family: String,
    /// One tag.
    #[serde(default)]
    pub tag: String,
    /// preview | available | deprecated | retired | all (default: all but retired)
    #[serde(default)]
    pub status: String,
    /// name | newest | price | context | size
    #[serde(default)]
    pub sort: String,
    /// 1-based page number.
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    pub per_page: Option<u32>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ModelList {
    #[serde(flatten)]
    pub page: Page<ModelView>,
    pub facets: CatalogFacets,
}

/// Search, filter, sort and page the catalog.
#[utoipa::path(get, path = "/models", tag = "catalog", params(ModelsQuery), responses((status = 200, body = ModelList)))]
pub async fn list_models(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    query: Result<Query<ModelsQuery>, QueryRejection>,
) -> ApiResult<Json<ModelList>> {
    let Query(q) = query?;
    let filter = CatalogQuery {
        search: q.search,
        task: q.task,
        family: q.family,
        tag: q.tag,
        status: q.status,
        sort: q.sort,
    };
    let page = PageQuery {
        page: q.page,
        per_page: q.per_page,
    }
    .request();
    let (page, facets) = s.catalog.browse(&caller, &filter, page).await?;
    Ok(Json(ModelList { page, facets }))
}

/// A model with the plans offering it.
#[utoipa::path(get, path = "/models/{id}", tag = "catalog", responses((status = 200, body = ModelDetail)))]
pub async fn get_model(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ModelDetail>> {
    Ok(Json(s.catalog.model(&caller, &id).await?))
}

/// Add a model (platform admins).
#[utoipa::path(post, path = "/models", tag = "catalog", request_body = ModelInput, responses((status = 201, body = ModelView)))]
pub async fn create_model(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    body: Result<Json<ModelInput>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<ModelView>)> {
    let Json(input) = body?;
    Ok((
        StatusCode::CREATED,
        Json(s.catalog.create_model(&caller, &input).await?),
    ))
}

/// Replace a model's fields (platform admins).
#[utoipa::path(put, path = "/models/{id}", tag = "catalog", request_body = ModelInput, responses((status = 200, body = ModelView)))]
pub async fn update_model(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<ModelInput>, JsonRejection>,
) -> ApiResult<Json<ModelView>> {
    let Json(mut input) = body?;
    input.id = id;
    Ok(Json(s.catalog.update_model(&caller, &input).await?))
}

/// Every plan (archived ones for platform admins only).
#[utoipa::path(get, path = "/plans", tag = "catalog", params(super::tenancy::Search), responses((status = 200, body = Vec<PlanView>)))]
pub async fn list_plans(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    query: Result<Query<super::tenancy::Search>, QueryRejection>,
) -> ApiResult<Json<Vec<PlanView>>> {
    let Query(q) = query?;
    Ok(Json(s.catalog.plans(&caller, &q.search).await?))
}

/// Create a plan (platform admins).
#[utoipa::path(post, path = "/plans", tag = "catalog", request_body = PlanInput, responses((status = 201, body = PlanView)))]
pub async fn create_plan(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    body: Result<Json<PlanInput>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<PlanView>)> {
    let Json(input) = body?;
    Ok((
        StatusCode::CREATED,
        Json(s.catalog.create_plan(&caller, &input).await?),
    ))
}

/// Replace a plan's settings (platform admins).
#[utoipa::path(put, path = "/plans/{id}", tag = "catalog", request_body = PlanInput, responses((status = 200, body = PlanView)))]
pub async fn update_plan(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<PlanInput>, JsonRejection>,
) -> ApiResult<Json<PlanView>> {
    let Json(input) = body?;
    Ok(Json(s.catalog.update_plan(&caller, &id, &input).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Archive {
    pub archived: bool,
}

/// Archive or restore a plan (platform admins).
#[utoipa::path(post, path = "/plans/{id}/archive", tag = "catalog", request_body = Archive, responses((status = 200, body = PlanView)))]
pub async fn archive_plan(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<Archive>, JsonRejection>,
) -> ApiResult<Json<PlanView>> {
    let Json(a) = body?;
    Ok(Json(
        s.catalog
            .set_plan_archived(&caller, &id, a.archived)
            .await?,
    ))
}

/// Set one model's limits under a plan (platform admins).
#[utoipa::path(put, path = "/plans/{id}/models/{model_id}", tag = "catalog", request_body = OverrideInput, responses((status = 200, body = PlanView)))]
pub async fn set_overrides(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path((id, model_id)): Path<(String, String)>,
    body: Result<Json<OverrideInput>, JsonRejection>,
) -> ApiResult<Json<PlanView>> {
    let Json(o) = body?;
    Ok(Json(
        s.catalog
            .set_plan_overrides(&caller, &id, &model_id, &o)
            .await?,
    ))
}
