//! Reading usage records, with the portal's role rules: anyone in a tenant reads its usage; platform admins read
//! any tenant's, or all of them.

use crate::Usage;
use tollgate_domain::{
    access::Action,
    page::{Page, PageRequest},
    time::Millis,
    usage::{UsageFilter, UsageView},
    DomainError,
};
use tollgate_identity::{internal, Caller};
use tollgate_store::{UsageQuery, UsageRow};

fn non_empty(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

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
    }
}

impl Usage {
    /// Usage records of `tenant_id` (None: every tenant, platform admins only), newest first.
    pub async fn records(
        &self,
        caller: &Caller,
        tenant_id: Option<&str>,
        filter: &UsageFilter,
        page: PageRequest,
    ) -> Result<Page<UsageView>, DomainError> {
        match tenant_id {
            Some(t) => {
                self.identity
                    .authorize(caller, t, Action::ViewSubscriptions)
                    .await?;
            }
            None if caller.platform_admin => {}
            None => return Err(DomainError::not_found("tenant")),
        }
        let q = UsageQuery {
            tenant_id: tenant_id.map(str::to_string),
            team_id: non_empty(&filter.team_id),
            subscription_id: non_empty(&filter.subscription_id),
            key_id: non_empty(&filter.key_id),
            model: non_empty(&filter.model),
            from: filter.from.map(|m| m.0),
            until: filter.until.map(|m| m.0),
            offset: page.offset(),
            limit: page.limit(),
        };
        let (rows, total) = self.store.list_usage(&q).await.map_err(internal)?;
        Ok(Page {
            items: rows.into_iter().map(|r| view(r, caller)).collect(),
            total: u64::try_from(total).unwrap_or(0),
            page: page.page,
            per_page: page.per_page,
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
