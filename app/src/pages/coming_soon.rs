//! Screens whose capability is not built yet. They say so plainly rather than pretend: the playground arrives
//! with the gateway.

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
pub fn PlaygroundPage() -> impl IntoView {
    view! { <NotYet title="Playground" what="The streaming playground needs the gateway, which is being built." /> }
}
