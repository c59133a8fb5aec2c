//! The audit log.

use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use tollgate_domain::{page::Page, views::AuditEventView};

/// `all_tenants` is honoured for platform admins only; dates are `YYYY-MM-DD` (UTC, `until` inclusive).
#[server(endpoint = "audit/list", input = GetUrl)]
pub async fn list_audit(
    action: String,
    actor: String,
    from: String,
    until: String,
    all_tenants: bool,
    page: u32,
) -> Result<Page<AuditEventView>, AppError> {
    use tollgate_domain::{time::Millis, views::AuditFilter};
    let (identity, caller) = super::ssr::caller().await?;
    let tenant_id = if all_tenants && caller.platform_admin {
        None
    } else {
        Some(caller.current_tenant()?.to_string())
    };
    let filter = AuditFilter {
        action: Some(action),
        actor: Some(actor),
        from: Millis::parse_date(&from),
        until: Millis::parse_date(&until).map(|d| d.plus_hours(24)),
        tenant_id,
    };
    let page = tollgate_domain::page::PageRequest::new(Some(page), Some(50));
    Ok(identity.list_audit(&caller, filter, page).await?)
}
