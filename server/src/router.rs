//! The route table and the middleware stack, in one place.

use crate::{config::Config, health, middleware, oidc_routes, state::AppState};
use axum::{extract::DefaultBodyLimit, routing::get, Router};
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tollgate_app::{api::ssr::Services, shell, App};
use tollgate_identity::DbSessionStore;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use tower_sessions::{
    cookie::{time::Duration, SameSite},
    Expiry, SessionManagerLayer,
};

/// Portal forms and server functions are small; anything larger is a mistake or an attack.
pub const PORTAL_BODY_LIMIT: usize = 256 * 1024;

/// The gateway alone, for its own listener (`gateway_listen`): `/v1`, and `/metrics` behind the metrics token
/// when one is set; nothing of the portal.
pub fn gateway_only(state: &AppState, config: &Config) -> Router {
    tollgate_gateway::router(state.gateway.clone())
        .merge(public_metrics(state, config.metrics_token.as_deref()))
}

/// `/metrics` on a public listener: only with a token configured, and only to requests that bear it. Metrics
/// name engines by their internal addresses, which are not the business of anyone who can reach the portal.
fn public_metrics(state: &AppState, token: Option<&str>) -> Router {
    match token.filter(|t| !t.is_empty()) {
        None => Router::new(),
        Some(token) => tollgate_gateway::metrics_router(state.gateway.clone()).layer(
            axum::middleware::from_fn_with_state(
                std::sync::Arc::<str>::from(token),
                middleware::bearer_token,
            ),
        ),
    }
}

/// `/metrics` alone, for the metrics listener (`metrics_listen`), which only monitoring should reach.
pub fn metrics_only(state: &AppState) -> Router {
    tollgate_gateway::metrics_router(state.gateway.clone())
}

pub fn build(state: AppState, config: &Config) -> anyhow::Result<Router> {
    let services = Services {
        identity: state.identity.clone(),
        catalog: state.catalog.clone(),
        fleet: state.fleet.clone(),
        usage: state.usage.clone(),
        serving: {
            let gateway = state.gateway.clone();
            std::sync::Arc::new(move || gateway.serving())
        },
    };
    let context = move || provide_context(services.clone());
    let leptos_options = state.leptos.clone();
    let routes = generate_route_list(App);

    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.store.clone()))
        .with_name("tollgate_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(config.secure_cookies())
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(Duration::minutes(
            config.session_idle_minutes,
        )));

    let portal = Router::<AppState>::new()
        .leptos_routes_with_context(&state, routes, context.clone(), {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .nest("/api/v1", crate::api::routes())
        .route("/auth/oidc/start", get(oidc_routes::start))
        .route("/auth/oidc/callback", get(oidc_routes::callback))
        // The playground's calls: session-authorized, same-origin, then the gateway under the subscription's grant.
        .route(
            "/playground/api/{endpoint}",
            axum::routing::post(crate::playground::call),
        )
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, shell))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::require_sign_in,
        ))
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(middleware::WriteOrigin::of(
                config.settings.public_url.as_deref(),
            )),
            middleware::same_origin_writes,
        ))
        .layer(sessions)
        .layer(DefaultBodyLimit::max(PORTAL_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            PORTAL_BODY_LIMIT,
            middleware::bounded_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(config.trusted_proxies.clone()),
            crate::client::remember_client,
        ));

    let gateway = state.gateway.clone();
    let metrics = public_metrics(&state, config.metrics_token.as_deref());
    let app = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(portal)
        .with_state(state)
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        // The gateway sits outside the portal's layers: no session or CSRF (requests carry API keys), and it
        // handles request ids, logging and metrics itself, keeping the hot path short.
        .merge(tollgate_gateway::router(gateway.clone()))
        .merge(metrics);
    Ok(app)
}
