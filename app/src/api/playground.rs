//! The playground's starting point: which models the caller may try, under which subscription. The calls
//! themselves are not server functions: the island streams them from `POST /playground/api/...` (server/src/playground.rs).

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use tollgate_domain::playground::PlaygroundSetup;

#[server(endpoint = "playground/setup", input = GetUrl)]
pub async fn playground_choices() -> Result<PlaygroundSetup, AppError> {
    let (catalog, caller) = super::ssr::catalog_caller().await?;
    let tenant = caller.current_tenant()?.to_string();
    Ok(catalog.playground(&caller, &tenant).await?)
}
