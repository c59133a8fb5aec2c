//! What callers do with alerts: list those they may see (the usage role rules: developers their teams',
//! tenant admins and viewers their tenant's, platform admins and viewers any or every tenant's), keyset-paged,
//! newest first; and, for tenant admins, the tenant's webhook: read it, set its URL, rotate its secret (shown
//! once), remove it.

use super::deliver::message;
use crate::Usage;
use rand::RngCore;
use std::collections::HashMap;
use tollgate_domain::{
    access::Action,
    audit::AuditAction,
    time::Millis,
    usage::{
        alerts::{
            check_webhook_url, AlertDeliveryView, AlertKind, AlertPage, AlertView, WebhookView,
        },
        cursor, page_cursor,
    },
    DomainError,
};
use tollgate_identity::{internal, Caller};
use tollgate_store::{AlertQuery, WebhookRow};

/// The most alerts one page holds.
pub const MAX_ALERTS_PAGE: u32 = 200;

impl Usage {
    /// A page of the alerts `caller` sees in `tenant_id` (None: every tenant, platform-wide readers only).
    pub async fn alerts(
        &self,
        caller: &Caller,
        tenant_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<AlertPage, DomainError> {
        let scope = self.scope(caller, tenant_id).await?;
        let before = page_cursor(after)?;
        let limit = limit.clamp(1, MAX_ALERTS_PAGE);
        let mut rows = self
            .store
            .list_alerts(&AlertQuery {
                tenant_id: scope.tenant_id,
                team_ids: scope.team_ids,
                before,
                limit: i64::from(limit) + 1,
            })
            .await
            .map_err(internal)?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let ids: Vec<String> = rows.iter().map(|a| a.id.clone()).collect();
        let mut deliveries: HashMap<String, Vec<AlertDeliveryView>> = HashMap::new();
        for d in self
            .store
            .deliveries_of_alerts(&ids)
            .await
            .map_err(internal)?
        {
            deliveries
                .entry(d.alert_id.clone())
                .or_default()
                .push(AlertDeliveryView {
                    status: AlertDeliveryView::status_of(
                        d.delivered_at.is_some(),
                        d.next_attempt_at.is_some(),
                    )
                    .to_string(),
                    channel: d.channel,
                    attempts: u32::try_from(d.attempts).unwrap_or(0),
                    last_error: d.last_error,
                    delivered_at: d.delivered_at.map(Millis),
                });
        }
        let next = more
            .then(|| rows.last().map(|a| cursor(a.created_at, &a.id)))
            .flatten();
        let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
        let items = rows
            .into_iter()
            .map(|a| AlertView {
                message: message(&a),
                deliveries: deliveries.remove(&a.id).unwrap_or_default(),
                kind: AlertKind::parse(&a.kind).unwrap_or(AlertKind::Quota),
                threshold: u8::try_from(a.threshold).unwrap_or(0),
                at: Millis(a.created_at),
                quota_tokens: a.quota_tokens.map(unsigned),
                used_tokens: unsigned(a.used_tokens),
                refusals: unsigned(a.refusals),
                id: a.id,
                tenant_id: a.tenant_id,
                team_id: a.team_id,
                team_name: a.team_name,
                subscription_id: a.subscription_id,
                model: a.model,
                period: a.period,
            })
            .collect();
        Ok(AlertPage { items, next })
    }

    /// The tenant's webhook, without its secret; None when it has none.
    pub async fn webhook(
        &self,
        caller: &Caller,
        tenant_id: &str,
    ) -> Result<Option<WebhookView>, DomainError> {
        self.identity
            .authorize(caller, tenant_id, Action::ManageAlerts)
            .await?;
        Ok(self
            .store
            .tenant_webhook(tenant_id)
            .await
            .map_err(internal)?
            .map(|w| view(w, false)))
    }

    /// Sets the tenant's webhook URL. A new webhook gets a secret, returned this once; changing the URL of an
    /// existing one keeps its secret (not returned).
    pub async fn set_webhook(
        &self,
        caller: &Caller,
        tenant_id: &str,
        url: &str,
    ) -> Result<WebhookView, DomainError> {
        self.identity
            .authorize(caller, tenant_id, Action::ManageAlerts)
            .await?;
        let url = url.trim();
        check_webhook_url(url, self.private_webhooks).map_err(DomainError::invalid)?;
        let now = tollgate_store::now_millis();
        let changed = self
            .store
            .set_tenant_webhook(tenant_id, url, None, now)
            .await
            .map_err(internal)?;
        if !changed {
            self.store
                .set_tenant_webhook(tenant_id, url, Some(&new_secret()), now)
                .await
                .map_err(internal)?;
        }
        let detail = if changed {
            "url changed to "
        } else {
            "created for "
        };
        // The query may carry a receiver's token: the log keeps the URL without it.
        let shown = url.split(['?', '#']).next().unwrap_or_default();
        self.audit_webhook(caller, tenant_id, &format!("{detail}{shown}"))
            .await;
        self.read_back(tenant_id, !changed).await
    }

    /// Gives the tenant's webhook a new secret, returned this once; the old one stops signing at once.
    pub async fn rotate_webhook_secret(
        &self,
        caller: &Caller,
        tenant_id: &str,
    ) -> Result<WebhookView, DomainError> {
        self.identity
            .authorize(caller, tenant_id, Action::ManageAlerts)
            .await?;
        let hook = self
            .store
            .tenant_webhook(tenant_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| DomainError::not_found("webhook"))?;
        self.store
            .set_tenant_webhook(
                tenant_id,
                &hook.url,
                Some(&new_secret()),
                tollgate_store::now_millis(),
            )
            .await
            .map_err(internal)?;
        self.audit_webhook(caller, tenant_id, "secret rotated")
            .await;
        self.read_back(tenant_id, true).await
    }

    /// Removes the tenant's webhook; deliveries still due to it fail ("removed") and are retried, then given up.
    pub async fn delete_webhook(
        &self,
        caller: &Caller,
        tenant_id: &str,
    ) -> Result<(), DomainError> {
        self.identity
            .authorize(caller, tenant_id, Action::ManageAlerts)
            .await?;
        if self
            .store
            .delete_tenant_webhook(tenant_id)
            .await
            .map_err(internal)?
        {
            self.audit_webhook(caller, tenant_id, "removed").await;
            Ok(())
        } else {
            Err(DomainError::not_found("webhook"))
        }
    }

    async fn audit_webhook(&self, caller: &Caller, tenant_id: &str, detail: &str) {
        self.identity
            .audit(
                caller,
                Some(tenant_id),
                AuditAction::AlertWebhookChanged,
                "alert_webhook",
                tenant_id,
                detail,
            )
            .await;
    }

    async fn read_back(
        &self,
        tenant_id: &str,
        with_secret: bool,
    ) -> Result<WebhookView, DomainError> {
        self.store
            .tenant_webhook(tenant_id)
            .await
            .map_err(internal)?
            .map(|w| view(w, with_secret))
            .ok_or_else(|| DomainError::not_found("webhook"))
    }
}

fn view(w: WebhookRow, with_secret: bool) -> WebhookView {
    WebhookView {
        url: w.url,
        created_at: Millis(w.created_at),
        updated_at: Millis(w.updated_at),
        secret: with_secret.then_some(w.secret),
    }
}

/// A new signing secret: `whsec_` and 256 random bits in hex.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("whsec_{hex}")
}
