//! Usage alerts in the portal: the list the caller may see (`Usage::alerts`, the usage role rules) and the
//! tenant's alert webhook for tenant admins (`Usage::set_webhook`, ...: the secret comes back once).

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};
use tollgate_domain::usage::alerts::{AlertPage, WebhookView};

/// What the alerts page shows: a page of alerts, and the tenant's webhook when the caller manages it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsData {
    pub page: AlertPage,
    /// Tenant admins only (others cannot see or change the webhook).
    pub can_manage: bool,
    pub webhook: Option<WebhookView>,
}

#[server(endpoint = "alerts/list", input = GetUrl)]
pub async fn read_alerts(after: String) -> Result<AlertsData, AppError> {
    let (usage, caller) = super::ssr::usage_caller().await?;
    let tenant = caller.current_tenant()?.to_string();
    let page = usage
        .alerts(&caller, Some(&tenant), Some(&after), 50)
        .await?;
    let (can_manage, webhook) = match usage.webhook(&caller, &tenant).await {
        Ok(w) => (true, w),
        Err(_) => (false, None),
    };
    Ok(AlertsData {
        page,
        can_manage,
        webhook,
    })
}

#[server(endpoint = "alerts/webhook/set")]
pub async fn set_alert_webhook(url: String) -> Result<WebhookView, AppError> {
    let (usage, caller) = super::ssr::usage_caller().await?;
    let tenant = caller.current_tenant()?.to_string();
    Ok(usage.set_webhook(&caller, &tenant, &url).await?)
}

#[server(endpoint = "alerts/webhook/rotate")]
pub async fn rotate_alert_webhook() -> Result<WebhookView, AppError> {
    let (usage, caller) = super::ssr::usage_caller().await?;
    let tenant = caller.current_tenant()?.to_string();
    Ok(usage.rotate_webhook_secret(&caller, &tenant).await?)
}

#[server(endpoint = "alerts/webhook/delete")]
pub async fn delete_alert_webhook() -> Result<(), AppError> {
    let (usage, caller) = super::ssr::usage_caller().await?;
    let tenant = caller.current_tenant()?.to_string();
    Ok(usage.delete_webhook(&caller, &tenant).await?)
}
