//! Subscriptions of the current tenant's teams, and the approvals queue.

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use tollgate_domain::{api_key::KeyView, page::Page, subscription::SubscriptionView};

/// Subscribes a team, then opens the new subscription.
#[server(endpoint = "subscriptions/create")]
pub async fn subscribe(
    team_id: String,
    model_id: String,
    plan_id: String,
    note: String,
) -> Result<SubscriptionView, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    let tenant = caller.current_tenant()?.to_string();
    let sub = catalog
        .subscribe(&caller, &tenant, &team_id, &model_id, &plan_id, &note)
        .await?;
    leptos_axum::redirect(&format!("/subscriptions/{}", sub.id));
    Ok(sub)
}

#[server(endpoint = "subscriptions/list", input = GetUrl)]
pub async fn list_subscriptions(
    search: String,
    state: String,
    team_id: String,
    page: u32,
) -> Result<Page<SubscriptionView>, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    let tenant = caller.current_tenant()?.to_string();
    let filter = tollgate_domain::subscription::SubscriptionFilter {
        search,
        state,
        team_id,
    };
    let page = tollgate_domain::page::PageRequest::new(Some(page), None);
    Ok(catalog
        .subscriptions(&caller, &tenant, &filter, page)
        .await?)
}

#[server(endpoint = "subscriptions/get", input = GetUrl)]
pub async fn get_subscription(id: String) -> Result<(SubscriptionView, Vec<KeyView>), AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    Ok(catalog.subscription(&caller, &id).await?)
}

#[server(endpoint = "approvals/list", input = GetUrl)]
pub async fn list_approvals(search: String, page: u32) -> Result<Page<SubscriptionView>, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    let page = tollgate_domain::page::PageRequest::new(Some(page), None);
    Ok(catalog
        .approvals(&caller, caller.tenant_id.as_deref(), &search, page)
        .await?)
}

/// approve | reject | suspend | resume | cancel.
#[server(endpoint = "subscriptions/decide")]
pub async fn decide_subscription(
    id: String,
    change: String,
    reason: String,
) -> Result<SubscriptionView, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    let change = tollgate_domain::subscription::Change::parse(&change)?;
    Ok(catalog.decide(&caller, &id, change, &reason).await?)
}

#[server(endpoint = "subscriptions/change-plan")]
pub async fn change_plan(id: String, plan_id: String) -> Result<SubscriptionView, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    Ok(catalog.change_plan(&caller, &id, &plan_id).await?)
}
