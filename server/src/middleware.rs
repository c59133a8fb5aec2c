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

/// Reads the body of every portal request (server functions, sign-in included, and forms) whole, up to `limit`
/// bytes, before any handler runs: a larger one, declared or sent chunked, is answered 413 and never buffered
/// past the limit. Server functions read their bodies themselves and do not honour axum's `DefaultBodyLimit`, so
/// the cap is held here. The management API (`/api/v1`) keeps its own, in its JSON extractor.
pub async fn bounded_body(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/api/v1" || path.starts_with("/api/v1/") {
        return next.run(req).await;
    }
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than the {limit} bytes this server accepts"),
        )
            .into_response()
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit)).await {
        Ok(collected) => {
            next.run(Request::from_parts(parts, Body::from(collected.to_bytes())))
                .await
        }
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            too_large()
        }
        Err(_) => (
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        )
            .into_response(),
    }
}

/// Where state-changing requests may come from.
#[derive(Debug, Clone, Default)]
pub struct WriteOrigin {
    /// `scheme://host[:port]` of the configured public URL. When set, it is the only origin accepted, so a proxy
    /// that rewrites `Host` can neither break the check nor open it; without it, the `Host` the request was sent
    /// to is compared instead.
    pub public: Option<String>,
}

impl WriteOrigin {
    /// The origin of a configured public URL (`https://portal.example/base` -> `https://portal.example`).
    pub fn of(public_url: Option<&str>) -> Self {
        let public = public_url.and_then(|url| {
            let (scheme, rest) = url.split_once("://")?;
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            Some(format!("{scheme}://{authority}").to_ascii_lowercase())
        });
        Self { public }
    }

    /// Whether a request with this `Origin` header, sent to this `Host`, comes from another site.
    pub fn refuses(&self, origin: Option<&str>, host: &str, sec_fetch_site: Option<&str>) -> bool {
        match origin {
            Some("null") => true,
            Some(origin) => match &self.public {
                Some(public) => !origin.trim_end_matches('/').eq_ignore_ascii_case(public),
                None => {
                    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
                    !origin_host.eq_ignore_ascii_case(host)
                }
            },
            None => sec_fetch_site == Some("cross-site"),
        }
    }
}

pub async fn same_origin_writes(
    State(allowed): State<std::sync::Arc<WriteOrigin>>,
    req: Request<Body>,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let text = |name| {
        headers
            .get(name)
            .and_then(|h: &header::HeaderValue| h.to_str().ok())
    };
    let host = text(header::HOST).unwrap_or_default();
    if allowed.refuses(
        text(header::ORIGIN),
        host,
        text(header::HeaderName::from_static("sec-fetch-site")),
    ) {
        tracing::warn!(http.host = %host, "refused a cross-site state-changing request");
        return (StatusCode::FORBIDDEN, "cross-site requests are not allowed").into_response();
    }
    next.run(req).await
}

/// Lets a request through only if it bears `token` (`Authorization: Bearer <token>`), compared in constant time.
pub async fn bearer_token(
    State(token): State<std::sync::Arc<str>>,
    req: Request<Body>,
    next: Next,
) -> Response {
    use subtle::ConstantTimeEq;
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "this needs the metrics token",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::{is_public, WriteOrigin};

    #[test]
    fn writes_must_come_from_the_public_origin_when_one_is_configured() {
        let public = WriteOrigin::of(Some("https://Portal.example/base"));
        assert!(
            !public.refuses(Some("https://portal.example"), "10.0.0.5:3000", None),
            "Host rewritten by a proxy"
        );
        assert!(
            public.refuses(Some("http://10.0.0.5:3000"), "10.0.0.5:3000", None),
            "only the public origin"
        );
        assert!(public.refuses(Some("https://portal.example.evil"), "portal.example", None));
        assert!(public.refuses(Some("null"), "portal.example", None));
        let unset = WriteOrigin::of(None);
        assert!(!unset.refuses(Some("http://127.0.0.1:3000"), "127.0.0.1:3000", None));
        assert!(unset.refuses(Some("http://evil.example"), "127.0.0.1:3000", None));
        assert!(unset.refuses(None, "127.0.0.1:3000", Some("cross-site")));
        assert!(!unset.refuses(None, "127.0.0.1:3000", Some("same-origin")));
    }

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
