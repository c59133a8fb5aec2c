//! The portal's one error type: what a server function can fail with, carried over the network intact so
//! the page can show the same words the server chose.

use leptos::server_fn::{codec::JsonEncoding, error::{FromServerFnError, ServerFnErrorErr}};
use serde::{Deserialize, Serialize};
use tollgate_domain::DomainError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Domain(DomainError),
    /// The request did not reach our code or its answer did not come back (network, encoding).
    #[error("the server could not be reached: {0}")]
    Transport(String),
}

impl AppError {
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, AppError::Domain(DomainError::Unauthenticated))
    }
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> Self {
        #[cfg(feature = "ssr")]
        if let Some(resp) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(http::StatusCode::from_u16(e.http_status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR));
        }
        AppError::Domain(e)
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}
