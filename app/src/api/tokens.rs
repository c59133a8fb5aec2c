//! The signed-in user's personal access tokens for the management API.

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use tollgate_domain::api_key::{AccessTokenCreated, AccessTokenView};

#[server(endpoint = "tokens/list", input = GetUrl)]
pub async fn list_tokens() -> Result<Vec<AccessTokenView>, AppError> {
    let (identity, caller) = super::ssr::caller().await?;
    Ok(identity.access_tokens(&caller).await?)
}

#[server(endpoint = "tokens/create")]
pub async fn create_token(
    name: String,
    scope: String,
    expiry_days: String,
) -> Result<AccessTokenCreated, AppError> {
    let (identity, caller) = super::ssr::caller().await?;
    Ok(identity
        .create_access_token(&caller, &name, &scope, &expiry_days)
        .await?)
}

#[server(endpoint = "tokens/revoke")]
pub async fn revoke_token(token_id: String) -> Result<(), AppError> {
    let (identity, caller) = super::ssr::caller().await?;
    Ok(identity.revoke_access_token(&caller, &token_id).await?)
}
