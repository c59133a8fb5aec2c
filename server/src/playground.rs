//! The playground's calls from the browser: `POST /playground/api/{chat|completions|embeddings}?subscription=ID`
//! with an OpenAI request body. They are portal requests (session cookie, same-origin check, the portal's body
//! cap), authorized by the signed-in user's right to use the subscription (`Catalog::playground_subscription`),
//! then served by the gateway under the subscription's grant from its snapshot (`Gateway::serve_granted`): the
//! same limits, routing, rate-limit headers, streaming and metering as a key's request, recorded as playground
//! traffic. No API key is made or sent. Errors have OpenAI's body, so the page reads every answer one way.

use crate::state::AppState;
use axum::{
    extract::{Path, Query, Request, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use tollgate_domain::DomainError;
use tollgate_gateway::request::Endpoint;
use tollgate_identity::session::ClientInfo;
use tower_sessions::Session;

#[derive(serde::Deserialize)]
pub struct Target {
    subscription: String,
}

pub async fn call(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
    Query(target): Query<Target>,
    request: Request,
) -> Response {
    let endpoint = match endpoint.as_str() {
        "chat" => Endpoint::Chat,
        "completions" => Endpoint::Completions,
        "embeddings" => Endpoint::Embeddings,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "The playground calls chat, completions or embeddings.",
            )
        }
    };
    let (parts, body) = request.into_parts();
    let client = parts
        .extensions
        .get::<ClientInfo>()
        .cloned()
        .unwrap_or_default();
    let caller = match parts.extensions.get::<Session>() {
        Some(session) => state.identity.caller(session, &client).await,
        None => Err(DomainError::Unauthenticated),
    };
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return domain_error(&e),
    };
    if let Err(e) = state
        .catalog
        .playground_subscription(&caller, &target.subscription)
        .await
    {
        return domain_error(&e);
    }
    // Published with the subscription's activation; a moment's lag on another replica answers "retry".
    let Some(grant) = state.gateway.grant_of(&target.subscription) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "The gateway has not picked up this subscription yet; retry in a few seconds.",
        );
    };
    state
        .gateway
        .serve_granted(endpoint, grant, parts.headers, body)
        .await
}

fn domain_error(e: &DomainError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match e {
        DomainError::Unauthenticated => "unauthenticated",
        DomainError::Forbidden(_) => "forbidden",
        DomainError::NotFound(_) => "not_found",
        DomainError::Conflict(_) => "subscription_not_active",
        DomainError::Invalid(_) => "invalid_request",
        DomainError::Throttled(_) => "throttled",
        DomainError::Internal => "internal",
    };
    let message = match e {
        DomainError::Unauthenticated => "Your session has ended: sign in again.".to_string(),
        other => sentence(&other.to_string()),
    };
    error(status, code, &message)
}

/// "you do not have permission to x" -> "You do not have permission to x."
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut s: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = tollgate_gateway::error::error_body(message, "playground_error", None, code);
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(
            super::sentence("subscription not found"),
            "Subscription not found."
        );
        assert_eq!(super::sentence("Done."), "Done.");
    }
}
