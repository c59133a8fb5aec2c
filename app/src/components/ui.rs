//! Small building blocks: error banners, empty states, pagination, copy and confirm buttons, form fields.

use crate::error::AppError;
use base64::Engine;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use tollgate_domain::page::Page;

pub const BUTTON: &str = "inline-flex items-center gap-1 rounded-md bg-indigo-600 px-3 py-2 text-sm font-semibold text-white shadow-sm hover:bg-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-400 disabled:opacity-50";
pub const BUTTON_SECONDARY: &str = "inline-flex items-center gap-1 rounded-md bg-white px-3 py-2 text-sm font-medium text-slate-700 ring-1 ring-inset ring-slate-300 hover:bg-slate-50 dark:bg-slate-800 dark:text-slate-200 dark:ring-slate-600 dark:hover:bg-slate-700";
pub const BUTTON_DANGER: &str = "inline-flex items-center gap-1 rounded-md bg-white px-2.5 py-1.5 text-sm font-medium text-red-700 ring-1 ring-inset ring-red-300 hover:bg-red-50 dark:bg-slate-800 dark:text-red-300 dark:ring-red-800";
pub const INPUT: &str = "block w-full rounded-md border-0 px-3 py-2 text-sm ring-1 ring-inset ring-slate-300 placeholder:text-slate-400 focus:ring-2 focus:ring-indigo-500 dark:bg-slate-900 dark:ring-slate-700";
pub const LABEL: &str = "block text-sm font-medium text-slate-700 dark:text-slate-300 mb-1";
pub const CARD: &str =
    "rounded-lg bg-white p-5 shadow-sm ring-1 ring-slate-200 dark:bg-slate-900 dark:ring-slate-800";
pub const TABLE: &str = "min-w-full divide-y divide-slate-200 text-sm dark:divide-slate-800";
pub const TH: &str = "px-3 py-2 text-left font-semibold text-slate-600 dark:text-slate-400";
pub const TD: &str = "px-3 py-2 align-middle";

/// The message of an error a server function reported, in the user's words.
pub fn describe(e: &AppError) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

#[component]
pub fn ErrorBanner(#[prop(into)] message: String) -> impl IntoView {
    view! {
        <div role="alert" class="mb-4 rounded-md bg-red-50 p-3 text-sm text-red-800 ring-1 ring-red-200 dark:bg-red-950 dark:text-red-200 dark:ring-red-900">
            {message}
        </div>
    }
}

#[component]
pub fn Notice(#[prop(into)] message: String) -> impl IntoView {
    view! {
        <div role="status" class="mb-4 rounded-md bg-emerald-50 p-3 text-sm text-emerald-800 ring-1 ring-emerald-200 dark:bg-emerald-950 dark:text-emerald-200 dark:ring-emerald-900">
            {message}
        </div>
    }
}

/// Shows the error of the last form post on this page: the server redirects back with it in `__err`.
#[component]
pub fn FormError() -> impl IntoView {
    let query = use_query_map();
    move || {
        query.with(|q| q.get("__err")).and_then(|raw| {
            let bytes = base64::engine::general_purpose::URL_SAFE
                .decode(raw.as_bytes())
                .ok()?;
            let err: AppError = serde_json::from_slice(&bytes).ok()?;
            Some(view! { <ErrorBanner message=describe(&err) /> })
        })
    }
}

/// Shows a result that failed to load, or the sign-in prompt when the session ended.
#[component]
pub fn LoadError(error: AppError) -> impl IntoView {
    if error.is_unauthenticated() {
        view! { <ErrorBanner message="Your session has ended. Please sign in again." /> <a class="underline" href="/login">"Sign in"</a> }.into_any()
    } else {
        view! { <ErrorBanner message=describe(&error) /> }.into_any()
    }
}

#[component]
pub fn EmptyState(#[prop(into)] title: String, #[prop(into)] hint: String) -> impl IntoView {
    view! {
        <div class="rounded-lg border-2 border-dashed border-slate-300 p-8 text-center dark:border-slate-700">
            <p class="font-semibold">{title}</p>
            <p class="mt-1 text-sm text-slate-500">{hint}</p>
        </div>
    }
}

/// Previous / next links that keep the other query parameters.
#[component]
pub fn Pager<T: 'static>(page: Page<T>) -> impl IntoView {
    let query = use_query_map();
    let link = move |n: u32| {
        let mut pairs: Vec<(String, String)> = query.with_untracked(|q| {
            q.clone()
                .into_iter()
                .filter(|(k, _)| k != "page" && !k.starts_with("__"))
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        });
        pairs.push(("page".into(), n.to_string()));
        let qs: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect();
        format!("?{}", qs.join("&"))
    };
    let (current, pages, total, has_prev) = (page.page, page.pages(), page.total, page.has_prev());
    view! {
        <nav class="mt-3 flex items-center justify-between text-sm text-slate-600 dark:text-slate-400" aria-label="Pagination">
            <span>{format!("Page {current} of {pages} · {total} in all")}</span>
            <span class="flex gap-2">
                <Show when=move || has_prev>
                    <a class=BUTTON_SECONDARY href=link(current - 1) rel="prev">"Previous"</a>
                </Show>
                <Show when=move || { current < pages }>
                    <a class=BUTTON_SECONDARY href=link(current + 1) rel="next">"Next"</a>
                </Show>
            </span>
        </nav>
    }
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A copy-to-clipboard button. Plain `onclick`, so it works before hydration too.
#[component]
pub fn CopyButton(
    #[prop(into)] text: String,
    #[prop(optional, into)] label: Option<String>,
) -> impl IntoView {
    let label = label.unwrap_or_else(|| "Copy".into());
    let data_label = label.clone();
    view! {
        <button
            type="button"
            class=BUTTON_SECONDARY
            data-copy=text
            data-label=data_label
            onclick="navigator.clipboard.writeText(this.dataset.copy).then(() => { this.textContent = 'Copied'; setTimeout(() => this.textContent = this.dataset.label, 1500) })"
        >
            {label}
        </button>
    }
}

/// A form posting to a server function after the user confirms; used for every destructive action.
#[component]
pub fn ConfirmForm(
    #[prop(into)] action: String,
    #[prop(into)] confirm: String,
    #[prop(into)] label: String,
    fields: Vec<(&'static str, String)>,
) -> impl IntoView {
    let onsubmit = format!("return confirm({})", js_string(&confirm));
    view! {
        <form method="post" action=action onsubmit=onsubmit class="inline">
            {fields.into_iter().map(|(name, value)| view! { <input type="hidden" name=name value=value /> }).collect_view()}
            <button type="submit" class=BUTTON_DANGER>{label}</button>
        </form>
    }
}

/// A JavaScript string literal for inline handlers.
fn js_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"Are you sure?\"".into())
}

#[component]
pub fn PageHeader(
    #[prop(into)] title: String,
    #[prop(optional, into)] subtitle: Option<String>,
) -> impl IntoView {
    view! {
        <header class="mb-6">
            <h1 class="text-2xl font-bold tracking-tight">{title}</h1>
            {subtitle.map(|s| view! { <p class="mt-1 text-sm text-slate-500">{s}</p> })}
        </header>
    }
}

/// A search box that submits as a GET, so results are linkable and work without JavaScript.
#[component]
pub fn SearchBox(#[prop(into)] placeholder: String) -> impl IntoView {
    let query = use_query_map();
    let current = move || query.with(|q| q.get("q")).unwrap_or_default();
    view! {
        <form method="get" class="mb-4 flex gap-2" role="search">
            <label class="sr-only" for="search">"Search"</label>
            <input id="search" type="search" name="q" class=INPUT placeholder=placeholder value=current />
            <button type="submit" class=BUTTON_SECONDARY>"Search"</button>
        </form>
    }
}

/// The `page` query parameter (1 when absent or bad).
pub fn query_page() -> Memo<u32> {
    let query = use_query_map();
    Memo::new(move |_| {
        query
            .with(|q| q.get("page"))
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
    })
}

/// The `q` query parameter.
pub fn query_search() -> Memo<String> {
    let query = use_query_map();
    Memo::new(move |_| query.with(|q| q.get("q")).unwrap_or_default())
}
