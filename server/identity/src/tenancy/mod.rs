//! Tenants, teams, members and invitations. Each operation authorizes first (`authorize`), then reads or
//! writes rows scoped by the tenant id, so an id from another tenant finds nothing and answers NotFound.
//!
//! One file per concern: `authorize` (the access check every operation starts with), `tenants`, `teams`,
//! `members` and `invitations`; this module holds the helpers they share.

mod authorize;
mod invitations;
mod members;
mod teams;
mod tenants;

pub use invitations::token_hash;

use tollgate_domain::{
    page::{Page, PageRequest},
    TenantRole,
};

fn page_of<T>(items: Vec<T>, total: i64, page: PageRequest) -> Page<T> {
    Page {
        items,
        total: u64::try_from(total).unwrap_or(0),
        page: page.page,
        per_page: page.per_page,
    }
}

fn role_of(s: &str) -> TenantRole {
    // Stored roles are written only from TenantRole::as_str; anything else is treated as least privilege.
    s.parse().unwrap_or(TenantRole::Viewer)
}
