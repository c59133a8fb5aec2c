//! Reading usage records, one per gateway request, under the dashboards' role rules (`Usage::scope`): developers
//! their teams', tenant admins and viewers their tenant's, platform admins and viewers any tenant's or all.

use crate::{Scope, Selection, Usage};
use tollgate_domain::{
    time::Millis,
    usage::{cursor, page_cursor, UsageRecordPage, UsageView},
    DomainError,
};
use tollgate_identity::{internal, Caller};
use tollgate_store::UsageRow;

/// The most records one page holds.
pub const MAX_RECORDS_PAGE: u32 = 1_000;

/// A record as `caller` may see it: the engine that answered is an internal address, shown to platform admins
/// only (tenants get an empty `replica`).
fn view(r: UsageRow, caller: &Caller) -> UsageView {
    let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
    UsageView {
        at: Millis(r.at),
        status: u16::try_from(r.status).unwrap_or(0),
        prompt_tokens: unsigned(r.prompt_tokens),
        completion_tokens: unsigned(r.completion_tokens),
        latency_ms: unsigned(r.latency_ms),
        ttft_ms: r.ttft_ms.map(unsigned),
        streamed: r.streamed != 0,
        client_disconnected: r.client_disconnected != 0,
        id: r.id,
        request_id: r.request_id,
        tenant_id: r.tenant_id,
        team_id: r.team_id,
        subscription_id: r.subscription_id,
        key_id: r.key_id,
        source: r.source,
        model: r.model,
        replica: if caller.platform_admin {
            r.replica
        } else {
            String::new()
        },
        endpoint: r.endpoint,
        refusal: r.refusal,
    }
}

impl Usage {
    /// One page of the usage records `caller` may read in `tenant_id` (None: every tenant, platform-wide readers
    /// only), newest first, after the cursor `after`: the same scope as the dashboards (developers their teams').
    /// `errors_only`: answers with a status of 400 or more only.
    pub async fn records(
        &self,
        caller: &Caller,
        tenant_id: Option<&str>,
        sel: &Selection,
        errors_only: bool,
        after: Option<&str>,
        limit: u32,
    ) -> Result<UsageRecordPage, DomainError> {
        let scope = self.scope(caller, tenant_id).await?;
        self.record_page_in(caller, &scope, sel, errors_only, after, limit)
            .await
    }

    /// `records` in a scope already resolved for `caller`.
    pub(crate) async fn record_page_in(
        &self,
        caller: &Caller,
        scope: &Scope,
        sel: &Selection,
        errors_only: bool,
        after: Option<&str>,
        limit: u32,
    ) -> Result<UsageRecordPage, DomainError> {
        let after = page_cursor(after)?;
        let limit = limit.clamp(1, MAX_RECORDS_PAGE);
        let scan = sel.records_in(scope.clone(), true, errors_only);
        // One more than asked, to know whether a next page exists.
        let mut rows = self
            .store
            .scan_usage(
                &scan,
                after.as_ref().map(|(at, id)| (*at, id.as_str())),
                i64::from(limit) + 1,
            )
            .await
            .map_err(internal)?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = more
            .then(|| rows.last().map(|r| cursor(r.at, &r.id)))
            .flatten();
        Ok(UsageRecordPage {
            items: rows.into_iter().map(|r| view(r, caller)).collect(),
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> UsageRow {
        UsageRow {
            id: "u1".into(),
            request_id: "r1".into(),
            at: 1,
            tenant_id: "t".into(),
            team_id: "team".into(),
            subscription_id: "s".into(),
            key_id: Some("k".into()),
            model: "m".into(),
            replica: "http://10.1.2.3:8000".into(),
            endpoint: "chat".into(),
            status: 200,
            prompt_tokens: 3,
            completion_tokens: 4,
            latency_ms: 5,
            ttft_ms: Some(1),
            streamed: 0,
            client_disconnected: 0,
            source: "key".into(),
            refusal: String::new(),
        }
    }

    fn caller(platform_admin: bool) -> Caller {
        Caller {
            user_id: "u".into(),
            email: "u@example.com".into(),
            name: "U".into(),
            platform_admin,
            platform_viewer: false,
            tenant_id: Some("t".into()),
            session_id: None,
            client: Default::default(),
        }
    }

    #[test]
    fn engine_addresses_are_for_platform_admins_only() {
        assert_eq!(
            view(row(), &caller(false)).replica,
            "",
            "a tenant member sees no internal address"
        );
        assert_eq!(view(row(), &caller(true)).replica, "http://10.1.2.3:8000");
        assert_eq!(
            view(row(), &caller(false)).prompt_tokens,
            3,
            "everything else is there"
        );
    }
}
