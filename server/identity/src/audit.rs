//! Recording and reading the audit log. Recording never fails the user's action: the action already
//! happened, so a failed audit write is logged loudly instead.

use crate::{internal, Caller, Identity};
use tollgate_domain::{
    access::Action,
    audit::AuditAction,
    page::{Page, PageRequest},
    time::Millis,
    views::{AuditEventView, AuditFilter},
    DomainError,
};
use tollgate_store::{AuditQuery, NewAuditEvent};

impl Identity {
    pub async fn audit(
        &self,
        caller: &Caller,
        tenant_id: Option<&str>,
        action: AuditAction,
        target_type: &str,
        target_id: &str,
        detail: &str,
    ) {
        self.record(NewAuditEvent {
            tenant_id,
            actor_id: Some(&caller.user_id),
            actor_email: Some(&caller.email),
            action: action.as_str(),
            target_type,
            target_id,
            detail,
            ip: caller.client.ip.as_deref(),
        })
        .await;
    }

    pub(crate) async fn record(&self, event: NewAuditEvent<'_>) {
        let action = event.action.to_string();
        if let Err(e) = self.store.record_audit(event).await {
            tracing::error!(error = %e, audit.action = %action, "could not write an audit event");
        }
    }

    /// Tenant admins read their tenant's log; platform admins read any tenant's, or all of them.
    pub async fn list_audit(
        &self,
        caller: &Caller,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEventView>, DomainError> {
        let tenant_id = if caller.platform_admin {
            filter.tenant_id.clone()
        } else {
            let tenant = filter
                .tenant_id
                .clone()
                .or_else(|| caller.tenant_id.clone())
                .ok_or(DomainError::not_found("tenant"))?;
            self.authorize(caller, &tenant, Action::ViewAudit).await?;
            Some(tenant)
        };
        let action = filter.action.filter(|a| !a.is_empty());
        if let Some(a) = &action {
            if AuditAction::parse(a).is_none() {
                return Err(DomainError::invalid(format!("unknown audit action '{a}'")));
            }
        }
        let q = AuditQuery {
            tenant_id,
            action,
            actor: filter.actor.filter(|a| !a.trim().is_empty()),
            from: filter.from.map(|m| m.0),
            until: filter.until.map(|m| m.0),
            offset: page.offset(),
            limit: page.limit(),
        };
        let (rows, total) = self.store.list_audit(&q).await.map_err(internal)?;
        Ok(Page {
            items: rows
                .into_iter()
                .map(|r| AuditEventView {
                    id: r.id,
                    at: Millis(r.at),
                    tenant_id: r.tenant_id,
                    actor_email: r.actor_email,
                    action: r.action,
                    target: format!("{} {}", r.target_type, r.target_id),
                    detail: r.detail,
                    ip: r.ip,
                })
                .collect(),
            total: u64::try_from(total).unwrap_or(0),
            page: page.page,
            per_page: page.per_page,
        })
    }
}
