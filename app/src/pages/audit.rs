//! The audit log: who did what, when, from where; filtered and paged.

use crate::{api::audit::list_audit, components::ui::*};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use tollgate_domain::{audit::AuditAction, views::Me};

#[component]
pub fn AuditPage() -> impl IntoView {
    let me = expect_context::<Me>();
    let query = use_query_map();
    let param = move |k: &'static str| move || query.with(|q| q.get(k)).unwrap_or_default();
    let (action, actor, from, until) = (
        param("action"),
        param("actor"),
        param("from"),
        param("until"),
    );
    let all = move || query.with(|q| q.get("all").is_some());
    let page = query_page();
    let events = Resource::new(
        move || (action(), actor(), from(), until(), all(), page.get()),
        |(a, b, c, d, e, p)| list_audit(a, b, c, d, e, p),
    );
    view! {
        <Title text="Audit log" />
        <PageHeader title="Audit log" subtitle="Sign-ins and every change to tenants, teams, members and roles." />
        <form method="get" class=format!("{CARD} mb-4 grid gap-3 sm:grid-cols-2 lg:grid-cols-6 items-end")>
            <div class="lg:col-span-2">
                <label class=LABEL for="f-action">"Action"</label>
                <select class=INPUT id="f-action" name="action">
                    <option value="">"Any action"</option>
                    {AuditAction::ALL.into_iter().map(|a| view! { <option value=a.as_str() selected=move || action() == a.as_str()>{a.as_str()}</option> }).collect_view()}
                </select>
            </div>
            <div>
                <label class=LABEL for="f-actor">"Actor email"</label>
                <input class=INPUT id="f-actor" name="actor" value=actor />
            </div>
            <div>
                <label class=LABEL for="f-from">"From"</label>
                <input class=INPUT id="f-from" name="from" type="date" value=from />
            </div>
            <div>
                <label class=LABEL for="f-until">"Until"</label>
                <input class=INPUT id="f-until" name="until" type="date" value=until />
            </div>
            <div class="flex items-center gap-3">
                {me.platform_admin.then(|| view! {
                    <label class="flex items-center gap-1 text-sm"><input type="checkbox" name="all" value="1" checked=all />"All tenants"</label>
                })}
                <button type="submit" class=BUTTON_SECONDARY>"Filter"</button>
            </div>
        </form>
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading events..."</p> }>
            {move || Suspend::new(async move {
                match events.await {
                    Err(e) => view! { <LoadError error=e /> }.into_any(),
                    Ok(p) if p.items.is_empty() => view! { <EmptyState title="No events" hint="Nothing matches these filters." /> }.into_any(),
                    Ok(p) => view! {
                        <div class=format!("{CARD} overflow-x-auto")>
                            <table class=TABLE data-testid="audit">
                                <thead><tr><th class=TH>"When"</th><th class=TH>"Who"</th><th class=TH>"Action"</th><th class=TH>"Target"</th><th class=TH>"Detail"</th><th class=TH>"From"</th></tr></thead>
                                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                    {p.items.iter().map(|e| view! {
                                        <tr>
                                            <td class=format!("{TD} whitespace-nowrap")>{e.at.format_utc()}</td>
                                            <td class=TD>{e.actor_email.clone().unwrap_or_default()}</td>
                                            <td class=TD><code class="text-xs">{e.action.clone()}</code></td>
                                            <td class=format!("{TD} text-xs text-slate-500")>{e.target.clone()}</td>
                                            <td class=TD>{e.detail.clone()}</td>
                                            <td class=format!("{TD} text-xs")>{e.ip.clone().unwrap_or_default()}</td>
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
