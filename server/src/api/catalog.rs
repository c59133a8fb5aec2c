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
#[derive(Deserialize)]
pub struct ModelsQuery {
    #[serde(default)]
    pub search: String,
    #[serde(default)]
    pub task: String,
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub tag: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub sort: String,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ModelList {
    #[serde(flatten)]
    pub page: Page<ModelView>,
    pub facets: CatalogFacets,
}

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

pub async fn get_model(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ModelDetail>> {
    Ok(Json(s.catalog.model(&caller, &id).await?))
}

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

pub async fn list_plans(
    ApiCaller(caller): ApiCaller,
    State(s): State<AppState>,
    query: Result<Query<super::tenancy::Search>, QueryRejection>,
) -> ApiResult<Json<Vec<PlanView>>> {
    let Query(q) = query?;
    Ok(Json(s.catalog.plans(&caller, &q.search).await?))
}

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
