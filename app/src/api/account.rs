//! The signed-in user's own account: their sessions.

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use tollgate_domain::views::SessionView;

#[server(endpoint = "account/sessions", input = GetUrl)]
pub async fn my_sessions() -> Result<Vec<SessionView>, AppError> {
    let (identity, caller) = super::ssr::caller().await?;
    let session = super::ssr::session().await?;
    Ok(identity.my_sessions(&caller, &session).await?)
}

#[server(endpoint = "account/revoke-session")]
pub async fn revoke_session(session_id: String) -> Result<(), AppError> {
    let (identity, caller) = super::ssr::caller().await?;
    Ok(identity.revoke_session(&caller, &session_id).await?)
}
