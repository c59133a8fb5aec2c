//! Tenants, for platform admins.

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use tollgate_domain::{page::Page, views::TenantView};

#[server(endpoint = "tenants/list", input = GetUrl)]
pub async fn list_tenants(search: String, page: u32) -> Result<Page<TenantView>, AppError> {
    let (identity, caller) = super::ssr::caller().await?;
    let page = tollgate_domain::page::PageRequest::new(Some(page), None);
    Ok(identity.list_tenants(&caller, &search, page).await?)
}

#[server(endpoint = "tenants/create")]
pub async fn create_tenant(name: String, slug: String) -> Result<TenantView, AppError> {
    let (identity, caller) = super::ssr::caller().await?;
    Ok(identity.create_tenant(&caller, &name, &slug).await?)
}
