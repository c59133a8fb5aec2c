//! API keys of a subscription. Creating and rotating return the full key, which the page shows once.

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use tollgate_domain::api_key::{KeyCoverage, KeyCreated, KeyView};

/// `also`: other subscriptions of the team the key covers (checkboxes `also[i]`); `team_wide`: all of them, and
/// future ones.
#[server(endpoint = "keys/create")]
pub async fn create_key(
    subscription_id: String,
    name: String,
    expiry_days: String,
    also: Option<Vec<String>>,
    team_wide: Option<String>,
) -> Result<KeyCreated, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    let coverage = tollgate_catalog::Coverage {
        also: also.unwrap_or_default(),
        team_wide: team_wide.is_some_and(|v| v == "true"),
    };
    Ok(catalog
        .create_key_covering(&caller, &subscription_id, &name, &expiry_days, &coverage)
        .await?)
}

/// The team's other active subscriptions a new key may also cover.
#[server(endpoint = "keys/choices", input = GetUrl)]
pub async fn key_choices(subscription_id: String) -> Result<Vec<KeyCoverage>, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    Ok(catalog
        .key_coverage_choices(&caller, &subscription_id)
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
