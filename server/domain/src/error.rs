//! The one error type of the domain layer. The server maps it to HTTP statuses and the portal to messages.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DomainError {
    /// Nobody is signed in (or the session ended).
    #[error("you are not signed in")]
    Unauthenticated,
    /// Signed in, and allowed to know the object exists, but not to do this.
    #[error("you do not have permission to {0}")]
    Forbidden(String),
    /// The object does not exist, or belongs to a tenant the caller may not see: the two answer alike so that
    /// ids of other tenants leak nothing.
    #[error("{0} not found")]
    NotFound(String),
    /// The input breaks a rule; the message says which, in words a user understands.
    #[error("{0}")]
    Invalid(String),
    /// The input clashes with existing state (a duplicate name, an already used invitation).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; try again after the given number of seconds.
    #[error("too many attempts; try again in {0} seconds")]
    Throttled(u64),
    /// Something on our side failed; details are in the server log, not shown to users.
    #[error("something went wrong on our side; please try again")]
    Internal,
}

impl DomainError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
    pub fn conflict(msg: impl Into<String>) -> Self {
        Self::Conflict(msg.into())
    }
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(what.to_string())
    }
    pub fn forbidden(what: impl Into<String>) -> Self {
        Self::Forbidden(what.into())
    }

    /// The HTTP status this error answers with, at every boundary.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Unauthenticated => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Invalid(_) => 400,
            Self::Conflict(_) => 409,
            Self::Throttled(_) => 429,
            Self::Internal => 500,
        }
    }
}
