//! Members of the current tenant and invitations to join it.

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use tollgate_domain::{
    page::Page,
    views::{InvitationCreated, InvitationPreview, InvitationView, MemberView},
};

#[server(endpoint = "members/list", input = GetUrl)]
pub async fn list_members(search: String, page: u32) -> Result<Page<MemberView>, AppError> {
    let (identity, caller, tenant) = super::ssr::tenant_caller().await?;
    let page = tollgate_domain::page::PageRequest::new(Some(page), None);
    Ok(identity
        .list_members(&caller, &tenant, &search, page)
        .await?)
}

#[server(endpoint = "members/change-role")]
pub async fn change_role(user_id: String, role: String) -> Result<(), AppError> {
    let (identity, caller, tenant) = super::ssr::tenant_caller().await?;
    Ok(identity
        .change_role(&caller, &tenant, &user_id, &role)
        .await?)
}

#[server(endpoint = "members/remove")]
pub async fn remove_member(user_id: String) -> Result<(), AppError> {
    let (identity, caller, tenant) = super::ssr::tenant_caller().await?;
    Ok(identity.remove_member(&caller, &tenant, &user_id).await?)
}

#[server(endpoint = "invitations/create")]
pub async fn invite_member(
    email: String,
    role: String,
    team_id: String,
    valid_hours: Option<u32>,
) -> Result<InvitationCreated, AppError> {
    let (identity, caller, tenant) = super::ssr::tenant_caller().await?;
    let team = Some(team_id.as_str()).filter(|t| !t.is_empty());
    Ok(identity
        .invite(
            &caller,
            &tenant,
            Some(email.as_str()),
            &role,
            team,
            valid_hours,
        )
        .await?)
}

#[server(endpoint = "invitations/list", input = GetUrl)]
pub async fn list_invitations(page: u32) -> Result<Page<InvitationView>, AppError> {
    let (identity, caller, tenant) = super::ssr::tenant_caller().await?;
    let page = tollgate_domain::page::PageRequest::new(Some(page), None);
    Ok(identity.list_invitations(&caller, &tenant, page).await?)
}

#[server(endpoint = "invitations/revoke")]
pub async fn revoke_invitation(invitation_id: String) -> Result<(), AppError> {
    let (identity, caller, tenant) = super::ssr::tenant_caller().await?;
    Ok(identity
        .revoke_invitation(&caller, &tenant, &invitation_id)
        .await?)
}

/// Anyone holding the link may look at it; the token is the credential.
#[server(endpoint = "invitations/preview", input = GetUrl)]
pub async fn preview_invitation(token: String) -> Result<InvitationPreview, AppError> {
    Ok(super::ssr::identity()?.preview_invitation(&token).await?)
}

/// Accepts as the signed-in user and switches to the tenant joined.
#[server(endpoint = "invitations/accept")]
pub async fn accept_invitation(token: String) -> Result<(), AppError> {
    let (identity, caller) = super::ssr::caller().await?;
    let session = super::ssr::session().await?;
    let tenant_id = identity.accept_invitation(&caller, &token).await?;
    identity
        .switch_tenant(&session, &caller, &tenant_id)
        .await?;
    leptos_axum::redirect("/");
    Ok(())
}

/// Creates an account for the invitee, accepts and signs in.
#[server(endpoint = "invitations/sign-up")]
pub async fn sign_up_with_invitation(
    token: String,
    email: String,
    name: String,
    password: String,
) -> Result<(), AppError> {
    let identity = super::ssr::identity()?;
    let session = super::ssr::session().await?;
    let client = super::ssr::client_info().await;
    identity
        .sign_up_with_invitation(&session, &token, &email, &name, &password, &client)
        .await?;
    leptos_axum::redirect("/");
    Ok(())
}
