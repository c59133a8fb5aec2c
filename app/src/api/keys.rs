//! API keys of a subscription. Creating and rotating return the full key, which the page shows once.

use crate::error::AppError;
use leptos::prelude::*;
use tollgate_domain::api_key::{KeyCreated, KeyView};

#[server(endpoint = "keys/create")]
pub async fn create_key(
    subscription_id: String,
    name: String,
    expiry_days: String,
) -> Result<KeyCreated, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    Ok(catalog
        .create_key(&caller, &subscription_id, &name, &expiry_days)
        .await?)
}

#[server(endpoint = "keys/rotate")]
pub async fn rotate_key(key_id: String, grace_hours: u32) -> Result<KeyCreated, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    Ok(catalog.rotate_key(&caller, &key_id, grace_hours).await?)
}

#[server(endpoint = "keys/revoke")]
pub async fn revoke_key(key_id: String) -> Result<KeyView, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    Ok(catalog.revoke_key(&caller, &key_id).await?)
}
