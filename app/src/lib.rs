//! The Tollgate portal: server-rendered Leptos pages that hydrate in the browser. Pages live in `pages/`,
//! shared widgets in `components/`, and the calls into the server in `api/` (server functions).
//! Forms are plain HTML forms posting to server functions, so every page works before (or without) wasm.

#![recursion_limit = "256"]

pub mod api;
pub mod components;
pub mod error;
pub mod pages;

use components::layout::Layout;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{ParentRoute, Route, Router, Routes},
    path,
};

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <AutoReload options=options.clone() />
                <HydrationScripts options islands=true />
                <MetaTags />
            </head>
            <body class="bg-slate-50 text-slate-900 dark:bg-slate-950 dark:text-slate-100 antialiased">
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/tollgate.css" />
        <Title formatter=|t: String| if t.is_empty() { "Tollgate".to_string() } else { format!("{t} · Tollgate") } />
        <Router>
            <Routes fallback=pages::not_found::NotFound>
                <Route path=path!("/login") view=pages::login::LoginPage />
                <Route path=path!("/invite/:token") view=pages::invite::InvitePage />
                <ParentRoute path=path!("") view=Layout>
                    <Route path=path!("/") view=pages::home::HomePage />
                    <Route path=path!("/catalog") view=pages::catalog::CatalogPage />
                    <Route path=path!("/catalog/:id") view=pages::model::ModelPage />
                    <Route path=path!("/playground") view=pages::playground::PlaygroundPage />
                    <Route path=path!("/subscriptions") view=pages::subscriptions::SubscriptionsPage />
                    <Route path=path!("/subscriptions/:id") view=pages::subscription::SubscriptionPage />
                    <Route path=path!("/approvals") view=pages::approvals::ApprovalsPage />
                    <Route path=path!("/usage") view=pages::usage::UsagePage />
                    <Route path=path!("/usage/alerts") view=pages::alerts::AlertsPage />
                    <Route path=path!("/teams") view=pages::teams::TeamsPage />
                    <Route path=path!("/teams/:id") view=pages::team::TeamPage />
                    <Route path=path!("/members") view=pages::members::MembersPage />
                    <Route path=path!("/audit") view=pages::audit::AuditPage />
                    <Route path=path!("/account") view=pages::account::AccountPage />
                    <Route path=path!("/admin") view=pages::admin::AdminPage />
                    <Route path=path!("/admin/models") view=pages::admin_models::AdminModelsPage />
                    <Route path=path!("/admin/models/:id") view=pages::admin_models::AdminModelEditPage />
                    <Route path=path!("/admin/plans") view=pages::admin_plans::AdminPlansPage />
                    <Route path=path!("/admin/fleet") view=pages::admin_fleet::AdminFleetPage />
                    <Route path=path!("/admin/fleet/:id") view=pages::admin_fleet::AdminDeploymentPage />
                </ParentRoute>
            </Routes>
        </Router>
    }
}
