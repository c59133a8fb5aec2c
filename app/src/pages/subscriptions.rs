//! The tenant's subscriptions: filter by state, search by model or team, open one to manage its keys.

use crate::{
    api::subscriptions::list_subscriptions,
    components::{badges::*, layout::is_tenant_admin, ui::*},
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use tollgate_domain::{subscription::State, views::Me};

#[component]
pub fn SubscriptionsPage() -> impl IntoView {
    let me = expect_context::<Me>();
    let query = use_query_map();
    let state = Memo::new(move |_| query.with(|q| q.get("state")).unwrap_or_default());
    let (search, page) = (query_search(), query_page());
    let subs = Resource::new(
        move || (search.get(), state.get(), page.get()),
        |(q, s, p)| list_subscriptions(q, s, String::new(), p),
    );
    let approver = is_tenant_admin(&me);
    view! {
        <Title text="Subscriptions & keys" />
        <PageHeader title="Subscriptions & keys" subtitle="Your teams' subscriptions to models. Open one to create and manage its API keys." />
        <FormError />
        <div class="mb-4 flex flex-wrap items-end gap-3">
            <form method="get" class="flex flex-wrap items-end gap-2" role="search">
                <div>
                    <label class=LABEL for="search">"Search"</label>
                    <input id="search" type="search" name="q" class=INPUT placeholder="Model or team" value=search.get_untracked() />
                </div>
                <div>
                    <label class=LABEL for="state">"State"</label>
                    <select id="state" name="state" class=INPUT>
                        <option value="">"Any"</option>
                        <option value="pending" selected=state.get_untracked() == "pending">"Pending approval"</option>
                        {State::ALL.into_iter().filter(|s| !s.is_pending()).map(|s| view! { <option value=s.as_str() selected=state.get_untracked() == s.as_str()>{s.label()}</option> }).collect_view()}
                    </select>
                </div>
                <button type="submit" class=BUTTON_SECONDARY>"Filter"</button>
            </form>
            <span class="ml-auto flex gap-2">
                {approver.then(|| view! { <a class=BUTTON_SECONDARY href="/approvals">"Approvals"</a> })}
                <a class=BUTTON href="/catalog">"Subscribe to a model"</a>
            </span>
        </div>
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading subscriptions..."</p> }>
            {move || Suspend::new(async move {
                match subs.await {
                    Err(e) => view! { <LoadError error=e /> }.into_any(),
                    Ok(p) if p.items.is_empty() => view! {
                        <EmptyState title="No subscriptions yet" hint="Pick a model in the catalog and subscribe one of your teams to it." />
                    }.into_any(),
                    Ok(p) => view! {
                        <div class=CARD>
                            <table class=TABLE data-testid="subscriptions">
                                <thead><tr><th class=TH>"Model"</th><th class=TH>"Team"</th><th class=TH>"Plan"</th><th class=TH>"State"</th><th class=TH>"Keys"</th><th class=TH>"Updated"</th></tr></thead>
                                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                    {p.items.iter().map(|s| view! {
                                        <tr data-subscription=s.id.clone()>
                                            <td class=TD>
                                                <a class="font-medium text-indigo-600 hover:underline dark:text-indigo-400" href=format!("/subscriptions/{}", s.id)>{s.model_name.clone()}</a>
                                                <LifecycleNotice notice=s.model_notice.clone() />
                                            </td>
                                            <td class=TD>{s.team_name.clone()}</td>
                                            <td class=TD>{s.plan_name.clone()}</td>
                                            <td class=TD><SubscriptionBadge state=s.state /></td>
                                            <td class=TD>{s.active_keys}</td>
                                            <td class=TD>{s.updated_at.format_utc()}</td>
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
    }
}
