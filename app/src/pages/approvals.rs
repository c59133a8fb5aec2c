//! Subscription requests waiting for the caller's decision (tenant admins: their tenant; platform admins: all).

use crate::{
    api::subscriptions::{list_approvals, DecideSubscription},
    components::{badges::*, layout::is_tenant_admin, ui::*},
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use tollgate_domain::views::Me;

#[component]
pub fn ApprovalsPage() -> impl IntoView {
    let me = expect_context::<Me>();
    if !is_tenant_admin(&me) {
        return view! { <ErrorBanner message="Approvals are for tenant admins and platform admins." /> }.into_any();
    }
    let (search, page) = (query_search(), query_page());
    let pending = Resource::new(
        move || (search.get(), page.get()),
        |(s, p)| list_approvals(s, p),
    );
    view! {
        <Title text="Approvals" />
        <PageHeader title="Approvals" subtitle="Subscription requests waiting for your decision. Rejections need a reason, which the team sees." />
        <FormError />
        <SearchBox placeholder="Search by model or team" />
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading requests..."</p> }>
            {move || Suspend::new(async move {
                match pending.await {
                    Err(e) => view! { <LoadError error=e /> }.into_any(),
                    Ok(p) if p.items.is_empty() => view! { <EmptyState title="Nothing to approve" hint="New subscription requests that need approval appear here." /> }.into_any(),
                    Ok(p) => view! {
                        <div class=CARD>
                            <table class=TABLE data-testid="approvals">
                                <thead><tr><th class=TH>"Model"</th><th class=TH>"Team"</th><th class=TH>"Plan"</th><th class=TH>"Requested by"</th><th class=TH>"State"</th><th class=TH>"Decide"</th></tr></thead>
                                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                    {p.items.iter().map(|s| view! {
                                        <tr data-subscription=s.id.clone()>
                                            <td class=TD><a class="font-medium text-indigo-600 hover:underline" href=format!("/subscriptions/{}", s.id)>{s.model_name.clone()}</a>
                                                <LifecycleNotice notice=s.model_notice.clone() />
                                                {(!s.note.is_empty()).then(|| view! { <p class="text-xs text-slate-500">{format!("“{}”", s.note)}</p> })}</td>
                                            <td class=TD>{s.team_name.clone()}</td>
                                            <td class=TD>{s.plan_name.clone()}</td>
                                            <td class=TD>{s.requested_by.clone()}<p class="text-xs text-slate-500">{s.created_at.format_utc()}</p></td>
                                            <td class=TD><SubscriptionBadge state=s.state /></td>
                                            <td class=TD>
                                                <div class="flex flex-wrap items-center gap-2">
                                                    <form method="post" action=DecideSubscription::url()>
                                                        <input type="hidden" name="id" value=s.id.clone() />
                                                        <input type="hidden" name="change" value="approve" />
                                                        <input type="hidden" name="reason" value="" />
                                                        <button type="submit" class=BUTTON>"Approve"</button>
                                                    </form>
                                                    <form method="post" action=DecideSubscription::url() class="flex gap-1">
                                                        <input type="hidden" name="id" value=s.id.clone() />
                                                        <input type="hidden" name="change" value="reject" />
                                                        <label class="sr-only" for=format!("reject-{}", s.id)>"Reason for rejecting"</label>
                                                        <input id=format!("reject-{}", s.id) name="reason" class="rounded-md border-0 px-2 py-1 text-sm ring-1 ring-slate-300 dark:bg-slate-900" placeholder="Reason" required />
                                                        <button type="submit" class=BUTTON_DANGER>"Reject"</button>
                                                    </form>
                                                </div>
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
    }.into_any()
}
