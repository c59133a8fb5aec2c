//! Signing in and out, and who is signed in.

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use tollgate_domain::views::{LoginOptions, Me};

/// The signed-in user, or None.
#[server(endpoint = "me", input = GetUrl)]
pub async fn get_me() -> Result<Option<Me>, AppError> {
    let identity = super::ssr::identity()?;
    match super::ssr::signed_in(&identity).await {
        Ok(caller) => Ok(Some(identity.me(&caller).await?)),
        Err(tollgate_domain::DomainError::Unauthenticated) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[server(endpoint = "auth/options", input = GetUrl)]
pub async fn get_login_options() -> Result<LoginOptions, AppError> {
    let identity = super::ssr::identity()?;
    Ok(LoginOptions {
        local: identity.settings.local_login,
        oidc: identity
            .oidc
            .as_ref()
            .map(|o| o.config.display_name.clone()),
    })
}

#[server(endpoint = "auth/login")]
pub async fn login(email: String, password: String, next: Option<String>) -> Result<(), AppError> {
    let identity = super::ssr::identity()?;
    let session = super::ssr::session().await?;
    let client = super::ssr::client_info().await;
    identity
        .sign_in_local(&session, &email, &password, &client)
        .await?;
    leptos_axum::redirect(tollgate_identity::oidc::safe_return_to(
        next.as_deref().unwrap_or("/"),
    ));
    Ok(())
}

/// Ends the session; when the user came through single sign-on, also ends the provider's session.
#[server(endpoint = "auth/logout")]
pub async fn logout() -> Result<(), AppError> {
    let identity = super::ssr::identity()?;
    let session = super::ssr::session().await?;
    let caller = super::ssr::signed_in(&identity).await.ok();
    let id_token = identity.end_session(&session, caller.as_ref()).await?;
    let provider_logout = match (&identity.oidc, id_token) {
        (Some(oidc), Some(token)) => oidc.end_session_url(Some(&token)).await,
        _ => None,
    };
    leptos_axum::redirect(provider_logout.as_deref().unwrap_or("/login?signed_out=1"));
    Ok(())
}

/// Makes another of the user's tenants the current one.
#[server(endpoint = "auth/switch-tenant")]
pub async fn switch_tenant(tenant_id: String) -> Result<(), AppError> {
    let (identity, caller) = super::ssr::caller().await?;
    let session = super::ssr::session().await?;
    identity
        .switch_tenant(&session, &caller, &tenant_id)
        .await?;
    leptos_axum::redirect("/");
    Ok(())
}
