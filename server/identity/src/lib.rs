//! Who is calling and what they may do: local accounts, OpenID Connect sign-in, database-backed sessions,
//! tenants, teams, members, invitations and the audit trail. Every operation takes a `Caller` and checks
//! `tollgate_domain::access::decide` before it reads or writes, so the portal and the API share one set of rules.

pub mod accounts;
pub mod audit;
pub mod bootstrap;
pub mod caller;
mod error;
pub mod oidc;
pub mod password;
pub mod platform_roles;
pub mod session;
pub mod session_store;
pub mod tenancy;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod throttle;
pub mod tokens;

pub use caller::Caller;
pub use error::internal;
pub use session_store::DbSessionStore;

use std::sync::Arc;
use tollgate_store::Store;

/// The identity services, shared by the portal's server functions and the HTTP API. Cheap to clone.
#[derive(Clone)]
pub struct Identity {
    pub store: Store,
    pub throttle: Arc<throttle::LoginThrottle>,
    pub oidc: Option<Arc<oidc::Oidc>>,
    pub settings: Arc<Settings>,
}

/// The identity settings that come from the server's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The portal's public base URL (for invitation links and OIDC redirects), without a trailing slash.
    pub public_url: String,
    /// Whether local (password) sign-in is offered.
    pub local_login: bool,
    /// Sign out after this long without a request.
    pub idle_timeout_secs: i64,
    /// Sign out this long after signing in, however active.
    pub absolute_timeout_secs: i64,
}

impl Identity {
    pub fn new(
        store: Store,
        settings: Settings,
        throttle: throttle::LoginThrottle,
        oidc: Option<oidc::Oidc>,
    ) -> Self {
        Self {
            store,
            throttle: Arc::new(throttle),
            oidc: oidc.map(Arc::new),
            settings: Arc::new(settings),
        }
    }
}
