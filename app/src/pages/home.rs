//! The landing page after sign-in: where you are and what you can do next.

use crate::components::{
    layout::is_tenant_admin,
    ui::{EmptyState, PageHeader, CARD},
};
use leptos::prelude::*;
use leptos_meta::Title;
use tollgate_domain::views::Me;

#[component]
pub fn HomePage() -> impl IntoView {
    let me = expect_context::<Me>();
    let admin = is_tenant_admin(&me);
    let greeting = format!("Welcome, {}", me.name);
    view! {
        <Title text="Home" />
        <PageHeader title=greeting subtitle="Open models, served on your own GPUs, the way a public AI API serves them." />
        {match me.tenant.clone() {
            None => view! {
                <EmptyState
                    title="You are not in a tenant yet"
                    hint=if me.platform_admin { "Create a tenant on the Admin page, or ask for an invitation." } else { "Ask an admin of your organisation for an invitation link." }
                />
            }.into_any(),
            Some(t) => view! {
                <div class="grid gap-4 sm:grid-cols-2 lg:grid-cols-3">
                    <div class=CARD>
                        <h2 class="font-semibold">"Tenant"</h2>
                        <p class="mt-1 text-lg">{t.name.clone()}</p>
                        <p class="text-sm text-slate-500">{t.role.map(|r| r.label()).unwrap_or("Platform admin (not a member)")}</p>
                    </div>
                    <a href="/teams" class=format!("{CARD} hover:ring-indigo-300")>
                        <h2 class="font-semibold">"Teams"</h2>
                        <p class="mt-1 text-sm text-slate-500">"Subscriptions and keys belong to teams."</p>
                    </a>
                    {admin.then(|| view! {
                        <a href="/members" class=format!("{CARD} hover:ring-indigo-300")>
                            <h2 class="font-semibold">"Members"</h2>
                            <p class="mt-1 text-sm text-slate-500">"Invite people and manage their roles."</p>
                        </a>
                    })}
                </div>
            }.into_any(),
        }}
    }
}
