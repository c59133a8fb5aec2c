//! Screens whose capability is not built yet. They say so plainly rather than pretend: usage dashboards arrive
//! with the usage rollups.

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
pub fn UsagePage() -> impl IntoView {
    view! { <NotYet title="Usage" what="Usage dashboards arrive with the gateway's metering." /> }
}
