//! Teams of the current tenant.

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use tollgate_domain::{
    page::Page,
    views::{TeamMemberView, TeamView},
};

#[server(endpoint = "teams/list", input = GetUrl)]
pub async fn list_teams(search: String, page: u32) -> Result<Page<TeamView>, AppError> {
    let (identity, caller, tenant) = super::ssr::tenant_caller().await?;
    let page = tollgate_domain::page::PageRequest::new(Some(page), None);
    Ok(identity.list_teams(&caller, &tenant, &search, page).await?)
}

#[server(endpoint = "teams/get", input = GetUrl)]
pub async fn get_team(team_id: String) -> Result<(TeamView, Vec<TeamMemberView>), AppError> {
    let (identity, caller, tenant) = super::ssr::tenant_caller().await?;
    Ok(identity.team(&caller, &tenant, &team_id).await?)
}

#[server(endpoint = "teams/create")]
pub async fn create_team(name: String, description: String) -> Result<TeamView, AppError> {
    let (identity, caller, tenant) = super::ssr::tenant_caller().await?;
    Ok(identity
        .create_team(&caller, &tenant, &name, &description)
        .await?)
}

#[server(endpoint = "teams/delete")]
pub async fn delete_team(team_id: String) -> Result<(), AppError> {
    let (identity, caller, tenant) = super::ssr::tenant_caller().await?;
    identity.delete_team(&caller, &tenant, &team_id).await?;
    leptos_axum::redirect("/teams");
    Ok(())
}

#[server(endpoint = "teams/add-member")]
pub async fn add_team_member(team_id: String, email: String) -> Result<(), AppError> {
    let (identity, caller, tenant) = super::ssr::tenant_caller().await?;
    Ok(identity
        .add_team_member(&caller, &tenant, &team_id, &email)
        .await?)
}

#[server(endpoint = "teams/remove-member")]
pub async fn remove_team_member(team_id: String, user_id: String) -> Result<(), AppError> {
    let (identity, caller, tenant) = super::ssr::tenant_caller().await?;
    Ok(identity
        .remove_team_member(&caller, &tenant, &team_id, &user_id)
        .await?)
}
