//! Request guards that apply to the portal as a whole:
//! - `require_sign_in`: portal pages send signed-out visitors to /login (server functions answer 401 themselves);
//! - `same_origin_writes`: state-changing requests must come from our own pages (CSRF defence on top of
//!   SameSite=Lax cookies): a cross-site Origin or `Sec-Fetch-Site: cross-site` is refused.

use crate::state::AppState;
use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use tollgate_identity::session::ClientInfo;
use tower_sessions::Session;

/// Paths anyone may open: sign-in, invitations, static assets, probes, and server functions (which check
/// the caller themselves).
fn is_public(path: &str) -> bool {
    const PREFIXES: [&str; 7] = [
        "/login", "/invite/", "/auth/", "/api/", "/pkg/", "/healthz", "/readyz",
    ];
    PREFIXES.iter().any(|p| path.starts_with(p))
        || path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains('.'))
}

pub async fn require_sign_in(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::GET || is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let Some(session) = req.extensions().get::<Session>().cloned() else {
        return next.run(req).await;
    };
    let client = req
        .extensions()
        .get::<ClientInfo>()
        .cloned()
        .unwrap_or_default();
    match state.identity.caller(&session, &client).await {
        Ok(_) => next.run(req).await,
        Err(_) => {
            let target = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let login = format!(
                "/login?next={}",
                tollgate_app::components::ui::urlencode(target)
            );
            Redirect::to(&login).into_response()
        }
    }
}

pub async fn same_origin_writes(req: Request<Body>, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let cross_origin = match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some("null") => true,
        Some(origin) => {
            let origin_host = origin
                .split_once("://")
                .map(|(_, rest)| rest)
                .unwrap_or(origin);
            !origin_host.eq_ignore_ascii_case(host)
        }
        None => headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site"),
    };
    if cross_origin {
        tracing::warn!(http.host = %host, "refused a cross-site state-changing request");
        return (StatusCode::FORBIDDEN, "cross-site requests are not allowed").into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn pages_need_sign_in_and_assets_do_not() {
        for p in ["/", "/teams", "/teams/team_1", "/admin", "/members"] {
            assert!(!is_public(p), "{p}");
        }
        for p in [
            "/login",
            "/invite/abc",
            "/auth/oidc/start",
            "/api/me",
            "/pkg/tollgate.wasm",
            "/favicon.ico",
            "/healthz",
        ] {
            assert!(is_public(p), "{p}");
        }
    }
}
