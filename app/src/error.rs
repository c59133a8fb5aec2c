//! The portal's one error type: what a server function can fail with, carried over the network intact so
//! the page can show the same words the server chose.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
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
        set_status(&e);
        AppError::Domain(e)
    }
}

/// Answers API-style calls (the hydrated page, scripts) with the error's HTTP status. Plain HTML form posts
/// are left alone: Leptos redirects those back to the form with the error in the URL, and a 4xx status
/// would stop the browser from following that redirect.
#[cfg(feature = "ssr")]
fn set_status(e: &DomainError) {
    use leptos::prelude::use_context;
    let form_post = use_context::<http::request::Parts>().is_some_and(|parts| {
        parts.method == http::Method::POST
            && parts
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"))
    });
    if let (false, Some(resp)) = (form_post, use_context::<leptos_axum::ResponseOptions>()) {
        resp.set_status(
            http::StatusCode::from_u16(e.http_status())
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
        );
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}
