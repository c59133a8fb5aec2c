//! Platform administration: tenants, with links to models, plans, the fleet and approvals.

use crate::{
    api::{
        auth::SwitchTenant,
        tenants::{list_tenants, CreateTenant},
    },
    components::ui::*,
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use tollgate_domain::views::Me;

#[component]
pub fn AdminPage() -> impl IntoView {
    let me = expect_context::<Me>();
    if !me.platform_admin {
        return view! { <ErrorBanner message="This page is for platform admins." /> }.into_any();
    }
    let (search, page) = (query_search(), query_page());
    let tenants = Resource::new(
        move || (search.get(), page.get()),
        |(s, p)| list_tenants(s, p),
    );
    view! {
        <Title text="Admin" />
        <PageHeader title="Platform admin" subtitle="Tenants on this platform." />
        <nav class="mb-6 flex gap-2" aria-label="Admin sections">
            <a class=BUTTON_SECONDARY href="/admin/models">"Models"</a>
            <a class=BUTTON_SECONDARY href="/admin/plans">"Plans"</a>
            <a class=BUTTON_SECONDARY href="/admin/fleet">"Fleet"</a>
            <a class=BUTTON_SECONDARY href="/approvals">"Approvals"</a>
        </nav>
        <FormError />
        <div class="grid gap-6 lg:grid-cols-3">
            <section class="lg:col-span-2">
                <SearchBox placeholder="Search tenants" />
                <Transition fallback=|| view! { <p class="text-slate-500">"Loading tenants..."</p> }>
                    {move || Suspend::new(async move {
                        match tenants.await {
                            Err(e) => view! { <LoadError error=e /> }.into_any(),
                            Ok(p) if p.items.is_empty() => view! { <EmptyState title="No tenants found" hint="Create a tenant for each organisation that uses the platform." /> }.into_any(),
                            Ok(p) => view! {
                                <div class=CARD>
                                    <table class=TABLE>
                                        <thead><tr><th class=TH>"Name"</th><th class=TH>"Short name"</th><th class=TH>"Members"</th><th class=TH>"Teams"</th><th class=TH></th></tr></thead>
                                        <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                            {p.items.iter().map(|t| view! {
                                                <tr>
                                                    <td class=TD>{t.name.clone()}</td>
                                                    <td class=TD><code class="text-xs">{t.slug.clone()}</code></td>
                                                    <td class=TD>{t.members}</td>
                                                    <td class=TD>{t.teams}</td>
                                                    <td class=TD>
                                                        <form method="post" action=SwitchTenant::url()>
                                                            <input type="hidden" name="tenant_id" value=t.id.clone() />
                                                            <button type="submit" class=BUTTON_SECONDARY>"Open"</button>
                                                        </form>
                                                    </td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                    <Pager page=p />
                                </div>
                            }.into_any(),
                        }
                    })}
                </Transition>
            </section>
            <section class=CARD>
                <h2 class="mb-3 font-semibold">"New tenant"</h2>
                <form method="post" action=CreateTenant::url() class="space-y-3">
                    <div>
                        <label class=LABEL for="tenant-name">"Name"</label>
                        <input class=INPUT id="tenant-name" name="name" required maxlength="100" />
                    </div>
                    <div>
                        <label class=LABEL for="tenant-slug">"Short name (optional)"</label>
                        <input class=INPUT id="tenant-slug" name="slug" placeholder="derived from the name" pattern="[a-z][a-z0-9-]{1,39}" />
                    </div>
                    <button type="submit" class=BUTTON>"Create tenant"</button>
                </form>
                <p class="mt-3 text-xs text-slate-500">"Then open the tenant and invite its first admin from the Members page."</p>
            </section>
        </div>
    }.into_any()
}
