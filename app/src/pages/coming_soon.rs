//! Screens whose capability is not built yet. They say so plainly rather than pretend: the catalog,
//! subscriptions and keys arrive with the catalog work, the playground and usage with the gateway.

use crate::components::ui::{EmptyState, PageHeader};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
fn NotYet(title: &'static str, what: &'static str) -> impl IntoView {
    view! {
        <Title text=title />
        <PageHeader title=title />
        <EmptyState title="Not available on this server yet" hint=what />
    }
}

#[component]
pub fn CatalogPage() -> impl IntoView {
    view! { <NotYet title="Catalog" what="The model catalog is being built: models, plans and their prices will be listed here." /> }
}

#[component]
pub fn PlaygroundPage() -> impl IntoView {
    view! { <NotYet title="Playground" what="The streaming playground needs the gateway, which is being built." /> }
}

#[component]
pub fn SubscriptionsPage() -> impl IntoView {
    view! { <NotYet title="Subscriptions & keys" what="Subscribing teams to models and creating API keys arrive with the catalog." /> }
}

#[component]
pub fn UsagePage() -> impl IntoView {
    view! { <NotYet title="Usage" what="Usage dashboards arrive with the gateway's metering." /> }
}
