//! Tollgate's storage layer: the only place with SQL. One schema for SQLite and PostgreSQL, chosen by the
//! database URL; runtime queries (no compile-time checking against one backend) with the same test suite
//! run on both. Each module holds the queries of one table group, as `impl Store` blocks.

mod access_tokens;
mod alerts;
mod api_keys;
mod audit;
mod connect;
mod error;
mod filter;
mod fleet;
mod ids;
mod invitations;
mod models;
mod peers;
mod plans;
mod revisions;
mod sessions;
mod subscriptions;
mod teams;
mod tenants;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod usage;
mod users;

pub use access_tokens::{AccessTokenRow, NewAccessToken};
pub use alerts::{
    AlertQuery, AlertRow, AlertSubscriptionRow, DeliveryRow, NewAlert, NewDelivery, WebhookRow,
};
pub use api_keys::{ApiKeyRow, GatewayKeyRow, GatewaySubscriptionRow, KeyLinkRow, NewApiKey};
pub use audit::{AuditQuery, AuditRow, NewAuditEvent};
pub use connect::{Backend, Store};
pub use error::StoreError;
pub use fleet::{
    DeploymentRow, FleetChanges, FleetEventRow, LeaseFence, NodeRow, ReplicaRow, RouteRow,
};
pub use ids::new_id;
pub use invitations::{InvitationRow, NewInvitation};
pub use models::ModelRow;
pub use plans::{PlanModelRow, PlanRow};
pub use sessions::{SessionRow, SessionWrite};
pub use subscriptions::{NewSubscription, SubscriptionQuery, SubscriptionRow};
pub use teams::{TeamMemberRow, TeamRow};
pub use tenants::{
    MemberRow, MembershipSources, SsoRoleChange, TenantRow, TenantSummaryRow, UserTenantRow,
};
pub use usage::{Dimension, Grouping, NewUsage, RecordScan, RollupQuery, RollupRow, UsageRow};
pub use users::{NewUser, UserRow};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Current time in epoch milliseconds, the unit of every instant column.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
