//! The page for unknown paths.

use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <main class="mx-auto max-w-md p-12 text-center">
            <h1 class="text-3xl font-bold">"Page not found"</h1>
            <p class="mt-2 text-slate-500">"There is nothing at this address. It may have moved, or the link may be wrong."</p>
            <a class="mt-6 inline-block text-indigo-600 underline" href="/">"Back to the portal"</a>
        </main>
    }
}
