//! Small coloured labels for statuses, so a state reads the same on every page.

use leptos::prelude::*;
use tollgate_domain::{
    api_key::KeyState,
    catalog::ModelStatus,
    fleet::{ReplicaState, Serving},
    subscription::State,
};

const BASE: &str =
    "inline-flex items-center rounded-full px-2 py-0.5 text-xs font-medium ring-1 ring-inset";
const GREEN: &str = "bg-emerald-50 text-emerald-700 ring-emerald-200 dark:bg-emerald-950 dark:text-emerald-300 dark:ring-emerald-900";
const AMBER: &str = "bg-amber-50 text-amber-800 ring-amber-200 dark:bg-amber-950 dark:text-amber-300 dark:ring-amber-900";
const RED: &str =
    "bg-red-50 text-red-700 ring-red-200 dark:bg-red-950 dark:text-red-300 dark:ring-red-900";
const BLUE: &str =
    "bg-sky-50 text-sky-700 ring-sky-200 dark:bg-sky-950 dark:text-sky-300 dark:ring-sky-900";
const GREY: &str = "bg-slate-100 text-slate-600 ring-slate-200 dark:bg-slate-800 dark:text-slate-300 dark:ring-slate-700";

#[component]
pub fn Badge(#[prop(into)] text: String, tone: &'static str) -> impl IntoView {
    view! { <span class=format!("{BASE} {tone}")>{text}</span> }
}

#[component]
pub fn ModelStatusBadge(status: ModelStatus) -> impl IntoView {
    let tone = match status {
        ModelStatus::Available => GREEN,
        ModelStatus::Preview => BLUE,
        ModelStatus::Deprecated => AMBER,
        ModelStatus::Retired => GREY,
    };
    view! { <Badge text=status.label() tone /> }
}

#[component]
pub fn SubscriptionBadge(state: State) -> impl IntoView {
    let tone = match state {
        State::Active => GREEN,
        State::PendingTenant | State::PendingPlatform => AMBER,
        State::Suspended | State::Rejected => RED,
        State::Cancelled => GREY,
    };
    view! { <span data-testid="subscription-state" class=format!("{BASE} {tone}")>{state.label()}</span> }
}

#[component]
pub fn KeyBadge(state: KeyState) -> impl IntoView {
    let tone = match state {
        KeyState::Active => GREEN,
        KeyState::Rotating(_) => AMBER,
        KeyState::Expired | KeyState::Revoked => GREY,
    };
    view! { <span data-testid="key-state" class=format!("{BASE} {tone}")>{state.label()}</span> }
}

/// The deprecation or retirement notice of a model, wherever the model appears.
#[component]
pub fn LifecycleNotice(notice: Option<String>) -> impl IntoView {
    notice.map(|n| view! {
        <p class="mt-1 text-xs font-medium text-amber-700 dark:text-amber-400" data-testid="lifecycle-notice">{n}</p>
    })
}

#[component]
pub fn ReplicaStateBadge(state: ReplicaState) -> impl IntoView {
    let tone = match state {
        ReplicaState::Ready => GREEN,
        ReplicaState::Pending | ReplicaState::Starting => AMBER,
        ReplicaState::Draining => BLUE,
        ReplicaState::Failed => RED,
        ReplicaState::Stopped => GREY,
    };
    view! { <Badge text=state.as_str() tone /> }
}

/// Whether a model can answer now, from the gateway's routes.
#[component]
pub fn ServingBadge(serving: Serving) -> impl IntoView {
    let tone = match serving {
        Serving::Ready => GREEN,
        Serving::Starting => AMBER,
        Serving::Idle => BLUE,
        Serving::Unavailable => GREY,
    };
    view! { <span data-testid="serving" data-serving=format!("{serving:?}").to_lowercase()><Badge text=serving.label() tone /></span> }
}
