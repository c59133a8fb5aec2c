//! Mapping storage failures to the domain error. A database failure is logged here, once, where it stops
//! being a storage problem and becomes a 500 for the user.

use tollgate_domain::DomainError;
use tollgate_store::StoreError;

/// Logs an unexpected storage failure and hides its details from the user.
pub fn internal(e: StoreError) -> DomainError {
    tracing::error!(error = %e, "storage failure");
    DomainError::Internal
}

/// A duplicate becomes a conflict with the caller's own words; anything else is internal.
pub(crate) fn duplicate_as(msg: &str) -> impl FnOnce(StoreError) -> DomainError + '_ {
    move |e| match e {
        StoreError::Duplicate => DomainError::conflict(msg),
        other => internal(other),
    }
}
