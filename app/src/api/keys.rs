//! API keys of a subscription. Creating and rotating return the full key, which the page shows once.

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use tollgate_domain::api_key::{KeyCoverage, KeyCreated, KeyView};

/// `coverage`: what the key covers besides this subscription: nothing (empty), `team` (every subscription of the
/// team, future ones too) or the id of one other subscription of the team. (One choice, so the form stays a plain
/// `<select>`; the management API takes a list.)
#[server(endpoint = "keys/create")]
pub async fn create_key(
    subscription_id: String,
    name: String,
    expiry_days: String,
    #[server(default)] coverage: String,
) -> Result<KeyCreated, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    let coverage = match coverage.trim() {
        "" => tollgate_catalog::Coverage::default(),
        "team" => tollgate_catalog::Coverage {
            also: Vec::new(),
            team_wide: true,
        },
        other => tollgate_catalog::Coverage {
            also: vec![other.to_string()],
            team_wide: false,
        },
    };
    Ok(catalog
        .create_key_covering(&caller, &subscription_id, &name, &expiry_days, &coverage)
        .await?)
}

/// The keys of a subscription (what the keys island refreshes; the subscription itself it does not need).
#[server(endpoint = "keys/list", input = GetUrl)]
pub async fn list_keys(subscription_id: String) -> Result<Vec<KeyView>, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    Ok(catalog.subscription(&caller, &subscription_id).await?.1)
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
