//! The browser entry point: hydrates the islands of the server-rendered portal. Empty on the host (see
//! Cargo.toml). The islands are compiled in through the app crate.

// Links the app crate, whose #[island] components register themselves for `hydrate_islands`.
#[cfg(target_arch = "wasm32")]
use tollgate_app as _;

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Only the #[island] components hydrate; the rest of each page is plain server-rendered HTML.
    leptos::mount::hydrate_islands();
    // Lets end-to-end tests (and curious users) see that the page is interactive now.
    if let Some(body) = leptos::prelude::document().body() {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
