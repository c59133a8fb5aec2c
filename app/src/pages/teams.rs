//! Teams of the current tenant: search, page through, create (admins), open one.

use crate::{
    api::teams::{list_teams, CreateTeam},
    components::{layout::is_tenant_admin, ui::*},
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use tollgate_domain::views::Me;

#[component]
pub fn TeamsPage() -> impl IntoView {
    let me = expect_context::<Me>();
    let admin = is_tenant_admin(&me);
    let (search, page) = (query_search(), query_page());
    let teams = Resource::new(
        move || (search.get(), page.get()),
        |(s, p)| list_teams(s, p),
    );
    view! {
        <Title text="Teams" />
        <PageHeader title="Teams" subtitle="Teams group the people who share subscriptions and API keys." />
        <FormError />
        <div class="grid gap-6 lg:grid-cols-3">
            <section class="lg:col-span-2">
                <SearchBox placeholder="Search teams by name" />
                <Transition fallback=|| view! { <p class="text-slate-500">"Loading teams..."</p> }>
                    {move || Suspend::new(async move {
                        match teams.await {
                            Err(e) => view! { <LoadError error=e /> }.into_any(),
                            Ok(p) if p.items.is_empty() => view! {
                                <EmptyState title="No teams found" hint=if search.get_untracked().is_empty() { "Create the first team to start subscribing to models." } else { "No team matches this search." } />
                            }.into_any(),
                            Ok(p) => view! {
                                <div class=CARD>
                                    <table class=TABLE>
                                        <thead><tr><th class=TH>"Name"</th><th class=TH>"Description"</th><th class=TH>"Members"</th><th class=TH>"Created"</th></tr></thead>
                                        <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                            {p.items.iter().map(|t| view! {
                                                <tr>
                                                    <td class=TD><a class="font-medium text-indigo-600 hover:underline dark:text-indigo-400" href=format!("/teams/{}", t.id)>{t.name.clone()}</a></td>
                                                    <td class=TD>{t.description.clone()}</td>
                                                    <td class=TD>{t.members}</td>
                                                    <td class=TD>{t.created_at.format_utc()}</td>
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
            {admin.then(|| view! {
                <section class=CARD>
                    <h2 class="mb-3 font-semibold">"New team"</h2>
                    <form method="post" action=CreateTeam::url() class="space-y-3">
                        <div>
                            <label class=LABEL for="team-name">"Name"</label>
                            <input class=INPUT id="team-name" name="name" required maxlength="80" />
                        </div>
                        <div>
                            <label class=LABEL for="team-description">"Description"</label>
                            <textarea class=INPUT id="team-description" name="description" rows="3" maxlength="500"></textarea>
                        </div>
                        <button type="submit" class=BUTTON>"Create team"</button>
                    </form>
                </section>
            })}
        </div>
    }
}
