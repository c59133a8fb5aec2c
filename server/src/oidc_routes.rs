//! The two browser routes of single sign-on: start (redirect to the provider) and callback (back from it).
//! Failures land on the sign-in page with the reason, never on a raw error page.

use crate::state::AppState;
use axum::{
    extract::{Query, State},
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Redirect, Response},
    Extension,
};
use serde::Deserialize;
use tollgate_identity::oidc::{PENDING_COOKIE, PENDING_MAX_AGE_SECS};
use tollgate_identity::session::ClientInfo;
use tower_sessions::Session;

/// The pending sign-in cookie: only sent back to the callback, never readable by scripts, Lax so that the
/// provider's top-level redirect back carries it.
fn pending_cookie(state: &AppState, value: &str, max_age: i64) -> Option<HeaderValue> {
    let secure = if state.identity.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{PENDING_COOKIE}={value}; Path=/auth/oidc; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

/// The pending sign-in cookie's value from the request, if any.
fn pending_from(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == PENDING_COOKIE)
        .map(|(_, value)| value)
}

#[derive(Deserialize)]
pub struct StartParams {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn to_login(message: &str) -> Redirect {
    Redirect::to(&format!(
        "/login?sso_error={}",
        tollgate_app::components::ui::urlencode(message)
    ))
}

/// Redirects to the provider. The sign-in in progress is kept in a cookie, not in a session: an anonymous
/// visitor starting sign-ins writes nothing on the server.
pub async fn start(State(state): State<AppState>, Query(p): Query<StartParams>) -> Response {
    match state
        .identity
        .oidc_begin(p.next.as_deref().unwrap_or("/"))
        .await
    {
        Ok((url, pending)) => {
            let mut response = Redirect::to(&url).into_response();
            if let Some(cookie) =
                pending_cookie(&state, &pending.cookie_value(), PENDING_MAX_AGE_SECS)
            {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(e) => to_login(&e.to_string()).into_response(),
    }
}

pub async fn callback(
    State(state): State<AppState>,
    session: Session,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    Query(p): Query<CallbackParams>,
) -> Response {
    let redirect = if let Some(error) = p.error {
        let detail = p.error_description.unwrap_or_default();
        to_login(&format!("the sign-in provider refused: {error} {detail}"))
    } else if let (Some(code), Some(returned_state)) = (p.code, p.state) {
        match state
            .identity
            .oidc_complete(
                &session,
                pending_from(&headers),
                &returned_state,
                &code,
                &client,
            )
            .await
        {
            Ok(return_to) => Redirect::to(&return_to),
            Err(e) => to_login(&e.to_string()),
        }
    } else {
        to_login("the sign-in provider sent an incomplete answer: please try again")
    };
    // The pending sign-in is single use, whatever the outcome: a replayed callback finds nothing.
    let mut response = redirect.into_response();
    if let Some(cookie) = pending_cookie(&state, "", 0) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}
